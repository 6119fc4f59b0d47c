"""`lock`: one writer at a time, by `flock`, with a record of who holds it for the people waiting.

The OS drops an flock when its holder dies, even by SIGKILL, so a crashed run never blocks the
next one; the holder record it leaves behind is only stale information.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from reconciler.errors import StateError

LOCK_FILE = "lock"
_POLL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class LockHolder:
    id: str
    """Short and random: what `backfill state unlock <id>` names."""
    pid: int
    host: str
    user: str
    command: str
    since: str

    def __str__(self) -> str:
        return (
            f"`{self.command}` (pid {self.pid}, user {self.user} on host {self.host},"
            f" since {self.since})"
        )


class Lock:
    """A held lock; `release` clears the holder record and lets the next writer in."""

    def __init__(self, fd: int, holder: LockHolder) -> None:
        self._fd = fd
        self.holder = holder

    @classmethod
    def acquire(cls, directory: Path, *, command: str, since: str, timeout: float) -> Lock:
        """Waits up to `timeout` seconds, then raises StateError naming the holder.

        Raises OSError when the lock file cannot be opened (a directory that is not writable).
        """
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _wait_for_lock(fd, directory, timeout)
            holder = LockHolder(
                id=secrets.token_hex(4),
                pid=os.getpid(),
                host=socket.gethostname(),
                user=_user(),
                command=command,
                since=since,
            )
            _write_holder(fd, holder)
        except BaseException:
            os.close(fd)  # closing the descriptor also drops the flock if we got it
            raise
        return cls(fd, holder)

    def release(self) -> None:
        try:
            # an empty record is a courtesy to readers; the flock is what counts
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)


def _wait_for_lock(fd: int, directory: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _busy(directory, timeout) from None
            time.sleep(min(_POLL_SECONDS, remaining))
        else:
            return


_RECORD_GRACE_SECONDS = 1.0
"""A holder writes its record right after it takes the flock; a refusal in that instant waits
this long for the name rather than report an anonymous holder."""


def _busy(directory: Path, timeout: float) -> StateError:
    holder = read_lock_holder(directory)
    deadline = time.monotonic() + _RECORD_GRACE_SECONDS
    while holder is None and time.monotonic() < deadline:
        time.sleep(0.01)
        holder = read_lock_holder(directory)
    still = f"still locked after {timeout:g}s" if timeout > 0 else "locked"
    who = str(holder) if holder else "another process (it has not written its name yet)"
    unlock = f"`backfill state unlock {holder.id}`" if holder else "`backfill state unlock`"
    return StateError(
        f"{directory}/ is {still} by {who}",
        hint=f"wait for it, pass --lock-timeout, or if that process is gone run {unlock}",
    )


def _write_holder(fd: int, holder: LockHolder) -> None:
    data = json.dumps(asdict(holder), sort_keys=True).encode() + b"\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry or $USER
        return str(os.getuid())


def read_lock_holder(directory: Path) -> LockHolder | None:
    """Who holds the lock, or held it last and was killed before clearing the record.

    None when no writer has recorded itself (or the last one released cleanly).
    """
    try:
        text = (directory / LOCK_FILE).read_text()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(text)
        return LockHolder(**value) if isinstance(value, dict) else None
    except (ValueError, TypeError):  # a record torn by a kill mid-write says nothing useful
        return None


def force_unlock(directory: Path, lock_id: str) -> list[str]:
    """Clears the holder record left by a process that is gone; returns warnings to show.

    A live holder keeps its flock (no other process can take it away): that is a StateError
    saying so, whatever `lock_id` says.
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return [f"{directory}/ has no lock: nothing to unlock"]
    except OSError as error:
        raise StateError(f"cannot open {path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_lock_holder(directory)
            raise StateError(
                f"{directory}/ is locked by {holder or 'another process'}, which is still running",
                hint="a running holder cannot be unlocked: wait for it or stop it; once it is"
                " gone, the lock is free by itself",
            ) from None
        holder = read_lock_holder(directory)
        warnings = []
        if holder is None:
            warnings.append(f"{directory}/ is not locked: nothing to unlock")
        elif holder.id != lock_id:
            warnings.append(
                f"{directory}/ was last locked by {holder} with id {holder.id}, not {lock_id};"
                " no process holds it, so its record was cleared anyway"
            )
        os.ftruncate(fd, 0)
        return warnings
    finally:
        os.close(fd)
