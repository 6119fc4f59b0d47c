"""The state directory: loading it read-only, writing it under the lock, and auditing it whole.

Nothing else in the project touches `journal.jsonl`, `snapshot.json` or `lock`.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from reconciler.domain import JSON, Health, canonical_json, ordinal
from reconciler.errors import Diagnostic, Location, StateError
from reconciler.state import committed, journal, snapshot
from reconciler.state.chain import Chain, Vouched, torn_data
from reconciler.state.fold import Event, FoldError, Replay
from reconciler.state.journal import JOURNAL_FILE, Journal
from reconciler.state.records import (
    ZERO_HASH,
    EventType,
    HealthRun,
    State,
    SubmissionRecord,
    health_to_json,
    observe,
    record_to_json,
)

if TYPE_CHECKING:
    from reconciler.state.lock import Lock

SNAPSHOT_FILE = "snapshot.json"
GITIGNORE = "lock\n.snapshot.json.*.tmp\n"
"""The state is committed; the lock and a crashed writer's temp file are not."""
GITATTRIBUTES = "journal.jsonl -text\nsnapshot.json -text\n"
"""Committed byte for byte (no line-ending conversion): the journal's committed versions are
checked as prefixes of the journal on disk."""

CHECKPOINT_EVERY = 5000
"""Events between snapshots in a long run: rewriting it per event would cost O(n) each time."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Loaded:
    replay: Replay
    chain: Chain
    snapshot_seq: int
    """The event the snapshot on disk vouches for; -1 when it vouches for nothing (missing or
    untrusted), so that the next writer rewrites it."""
    warnings: list[str]
    committed: committed.Committed
    """The versions of the journal git has committed, as the load found them."""


def _load(directory: Path) -> _Loaded:
    """Every line of the journal checked against the chain and against the versions git has
    committed; the snapshot trusted for the events it vouches for only when its digest and the
    hash of the line it names both hold; the events after it folded."""
    warnings: list[str] = []
    path = directory / JOURNAL_FILE
    try:
        found = snapshot.read(directory / SNAPSHOT_FILE)
    except snapshot.Untrusted as error:
        warnings.append(
            f"{error.location}: {error.message}; ignored it and replayed {path} (the next"
            " writer rewrites it)"
        )
        found = None
    git = committed.versions(path)
    chain = Chain(
        path,
        vouched=(
            Vouched(found.journal_size, found.journal_sha256, found.seq, found.hash)
            if found
            else None
        ),
        prefixes=[version.size for version in git.versions],
        object_format=git.object_format,
    )
    replay = Replay(found.state() if found else None, journal=path)
    for entry in chain:
        if found is not None and entry.seq == found.seq and entry.hash != found.hash:
            raise _snapshot_mismatch(directory, entry.line, "its hash is not that line's hash")
        if entry.event is None:
            continue
        try:
            replay.apply(entry.event)
        except FoldError as error:
            raise journal.damage(chain.where(entry.line), str(error)) from None
    git.check(chain.size, chain.prefix_ids)
    if found is not None and chain.seq < found.seq:
        raise _snapshot_mismatch(directory, found.seq, f"the journal has only {chain.seq} events")
    if chain.torn is not None:
        warnings.append(_torn_warning(chain))
    # A snapshot whose vouch no longer holds is still right (every line was checked and its
    # event's hash matched) but no longer saves a load any work: the next writer rewrites it.
    trusted = found is not None and not chain.vouch_broken
    return _Loaded(replay, chain, found.seq if trusted and found else -1, warnings, git)


def _torn_warning(chain: Chain) -> str:
    assert chain.torn is not None
    return (
        f"{chain.path}:{chain.torn.line}: a torn last line ({len(chain.torn.raw)} bytes without"
        " a newline): a write was cut short by a crash or a full disk. An intent is on disk"
        " before its request leaves, so if it was an intent its request was never sent; if it"
        " was an outcome, that submission shows as unknown. The next writer acknowledges it"
        " with a `torn` event and leaves the bytes where they are"
    )


def _snapshot_mismatch(directory: Path, line: int, why: str) -> StateError:
    return StateError(
        f"snapshot does not match the journal at line {line}: {why}",
        location=Location(str(directory / SNAPSHOT_FILE)),
        hint="the journal may have lost or rewritten events: compare it with git (`git log -p --"
        " journal.jsonl`); if the journal is right, delete snapshot.json and it is rebuilt"
        " from the journal",
    )


def _no_state(directory: Path, known: committed.Committed | None = None) -> StateError:
    """Why `directory` holds no state: a journal git knows had events, or nothing ever.
    `known`: the committed versions a load just asked git for (not asked again)."""
    path = directory / JOURNAL_FILE
    if directory.is_dir():
        if path.exists() and not path.is_file():
            return StateError(
                f"{path} is a directory, not the journal",
                hint="restore the state directory from git",
            )
        try:
            (known or committed.versions(path)).check(0, {})
        except StateError as error:
            return error
    if not directory.exists():
        what = f"{directory} does not exist"
    elif not directory.is_dir():
        what = f"{directory} is not a directory"
    else:
        what = f"{directory} holds no state (no events in {JOURNAL_FILE})"
    return StateError(
        f"{what}: nothing was ever journaled there",
        hint=f"check the path (--state-dir, BACKFILL_STATE_DIR); to start a new state, run"
        f" `backfill init --state-dir {directory}`",
    )


def load_state(directory: Path, *, missing_ok: bool = False) -> State:
    """The state as of the last complete event: read-only and lock-free, so a `plan` can run
    while an `apply` appends.

    A directory without a state (see `backfill init`) is a StateError, or with `missing_ok` an
    empty state with a warning saying so. Raises StateError naming `<dir>/journal.jsonl:<line>`
    for damage, or the snapshot when it disagrees with the journal; a torn last line and an
    untrusted snapshot (replayed instead) are warnings in `State.warnings`.
    """
    known = None
    if directory.is_dir():
        loaded = _load(directory)
        if loaded.chain.seq or loaded.chain.torn is not None:
            return loaded.replay.state(tuple(loaded.warnings))
        known = loaded.committed
    elif directory.exists():
        raise _no_state(directory)
    if (directory / SNAPSHOT_FILE).exists():
        raise StateError(
            f"{directory / SNAPSHOT_FILE} exists but {directory / JOURNAL_FILE} has no events:"
            " the journal is the record the snapshot was folded from",
            hint="restore journal.jsonl from git (`git log -p -- journal.jsonl`)",
        )
    if not missing_ok:
        raise _no_state(directory, known)
    error = _no_state(directory, known)
    return State(warnings=(f"{error.message}; {error.hint}",))


class History:
    """Every event of a state from its first line, with the chain and the committed versions
    checked as it is read, each with the submission record it leaves (None for an event about
    the state itself). After iterating, `seq`, `head_hash` and `warnings` describe the journal.

    Raises StateError at the first damage: an account read from a broken chain is one nobody
    can vouch for (`verify_journal` audits it whole).
    """

    def __init__(self, directory: Path) -> None:
        if not (directory / JOURNAL_FILE).is_file():
            raise _no_state(directory)
        self.path = directory / JOURNAL_FILE
        self.seq = 0
        self.head_hash = ZERO_HASH
        self.warnings: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[tuple[Event, SubmissionRecord | None]]:
        git = committed.versions(self.path)
        chain = Chain(
            self.path,
            prefixes=[version.size for version in git.versions],
            object_format=git.object_format,
        )
        replay = Replay()
        for entry in chain:
            assert entry.event is not None
            try:
                replay.apply(entry.event)
            except FoldError as error:
                raise journal.damage(chain.where(entry.line), str(error)) from None
            key = entry.event["data"].get("key")
            yield entry.event, replay.record(key) if isinstance(key, str) else None
        git.check(chain.size, chain.prefix_ids)
        self.seq, self.head_hash = chain.seq, chain.head_hash
        self.warnings = (_torn_warning(chain),) if chain.torn is not None else ()


def _io_error(error: OSError, path: Path, doing: str) -> StateError:
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StateError(
            f"cannot {doing} {path}: the state directory is not writable ({error.strerror})",
            hint="run where the state directory can be written, or fix its permissions",
        )
    if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StateError(
            f"cannot {doing} {path}: no space left on the device ({error.strerror})",
            hint="free some space and run again; nothing was left half-written",
        )
    return StateError(f"cannot {doing} {path}: {error.strerror or error}")


class StateWriter:
    """The one process allowed to change a state directory, from `open_state` until `close`.

    Not thread-safe: threads that share a writer take turns (one lock around `append`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        actor: Mapping[str, Any],
        lock: Lock,
        clock: Clock,
        loaded: _Loaded,
    ) -> None:
        self.directory = directory
        self.actor = journal.plain(actor)
        self.lock = lock
        self._clock = clock
        self._replay = loaded.replay
        self._warnings = tuple(loaded.warnings)
        self._snapshot_seq = loaded.snapshot_seq
        self._since_checkpoint = 0
        chain = loaded.chain
        try:
            self._journal: Journal | None = Journal(
                chain.path, chain.size, needs_newline=chain.needs_newline, content=chain.content
            )
        except OSError as error:
            raise _io_error(error, chain.path, "open") from None
        if chain.torn is not None:
            # Acknowledged before anything else is appended, so the bytes stay in the audit
            # trail and the chain goes on from the event before them.
            self.append(EventType.TORN, torn_data(chain.torn.raw))

    @property
    def state(self) -> State:
        """The state including every append so far (a new immutable value after each change)."""
        return self._replay.state(self._warnings)

    def append(
        self,
        type: EventType | str,
        data: Mapping[str, Any],
        *,
        actor: Mapping[str, Any] | None = None,
    ) -> dict[str, JSON]:
        """Journals one event durably (written and fsynced) and returns it as it was written.

        `actor` replaces the writer's for this event only: an intent names the commit and pull
        request of its own plan, which differ from plan to plan within one run.

        Raises StateError, writing nothing, when the event cannot follow the state: an intent
        for a submission that is pending, submitted or unknown (the exactly-once guard), or an
        outcome without its intent. Raises ValueError when `data` lacks the event's fields.
        """
        if self._journal is None:
            raise StateError(f"the writer of {self.directory}/ is already closed")
        if self._journal.broken:
            raise StateError(
                f"an earlier write to {self._journal.path} failed and could not be undone",
                hint="run again: the next writer drops the partial line",
            )
        event_type = EventType(type)
        plain_data = journal.plain(data)
        # The model itself, here where it is cheap (an event per call); pydantic loads with the
        # first event appended, not with every read of a state.
        from reconciler.state import formats  # noqa: PLC0415

        formats.check_data(event_type, plain_data)
        event = journal.seal(
            seq=self._replay.seq + 1,
            time=journal.timestamp(self._clock()),
            kind=event_type,
            actor=self.actor if actor is None else journal.plain(actor),
            data=plain_data,
            prev=self._replay.head_hash,
        )
        try:
            record = self._replay.next(event)
        except FoldError as error:
            raise StateError(str(error)) from None
        line = journal.line_of(event)
        try:
            self._journal.append(line)
        except OSError as error:
            raise _io_error(error, self._journal.path, f"journal `{event_type}` to") from None
        self._replay.apply(event, record)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            try:
                self.checkpoint()
            except StateError as error:
                # the event is durable and the snapshot only a cache: the caller's step must
                # not look failed (an intent that seems unwritten would strand its request)
                self._warnings += (f"no checkpoint at seq {self._replay.seq}: {error.message}",)
                self._since_checkpoint = 0
        # a copy: `event` shares its dicts with the state, which must not change under us
        written: dict[str, JSON] = json.loads(line)
        return written

    def record_observed(
        self, key: str, cells: Iterable[tuple[str, str, Health, str]]
    ) -> dict[str, JSON] | None:
        """Journals what the platform said of some cells of submission `key` (as `refresh`
        does): `cells` are (target, ISO date, health, the platform's own word). Only what is new
        is journaled, as runs of days; returns the `observed` event, or None when nothing was
        new. Raises StateError when `key` is not a submitted backfill covering those cells."""
        record = self._replay.record(key)
        if record is None:
            raise StateError(f"no submission {key} in {self.directory}/")
        fresh: list[HealthRun] = []
        for target, date, health, raw in cells:
            if record.health_of(target, date) != (health, raw):
                number = ordinal(date)
                fresh.append((target, number, number, health, raw))
        if not fresh:
            return None
        runs = observe((), fresh)
        return self.append(EventType.OBSERVED, {"key": key, "cells": health_to_json(runs)})

    def checkpoint(self) -> None:
        """Writes the snapshot of the state so far, atomically."""
        if self._journal is None:
            raise StateError(f"the writer of {self.directory}/ is already closed")
        path = self.directory / SNAPSHOT_FILE
        value = snapshot.document(
            seq=self._replay.seq,
            head_hash=self._replay.head_hash,
            state_id=self._replay.state_id,
            emulator=self._replay.emulator,
            records=self._replay.records(),
            journal=(self._journal.size, self._journal.content.hexdigest()),
        )
        try:
            snapshot.write(path, value)
        except OSError as error:
            raise _io_error(error, path, "write") from None
        self._snapshot_seq = self._replay.seq
        self._since_checkpoint = 0

    def close(self) -> None:
        """Checkpoints when the snapshot lags the journal, then releases the lock (always)."""
        if self._journal is None:
            return
        try:
            if self._snapshot_seq != self._replay.seq:
                self.checkpoint()
        finally:
            self._journal.close()
            self._journal = None
            self.lock.release()

    def __enter__(self) -> StateWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except StateError as error:
            if exc is None:
                raise
            # the run's own failure is the news; the journal already has every event
            exc.add_note(f"also, the snapshot was not updated: {error.message}")


def open_state(
    directory: Path,
    *,
    actor: Mapping[str, Any],
    command: str,
    lock_timeout: float = 0.0,
    clock: Clock = _utc_now,
) -> StateWriter:
    """Takes the lock of an existing state (see `init_state`) and loads it.

    `actor` (user or CI actor, commit, PR, run URL, tool version) is stored as is in every event;
    `command` is shown to whoever finds the state locked. Raises StateError when there is no
    state there, when it is locked for longer than `lock_timeout` seconds, damaged, or cannot be
    written.
    """
    canonical_json(journal.plain(actor))  # not JSON: fail before taking the lock
    path = directory / JOURNAL_FILE
    if not directory.is_dir() or not path.is_file() or not path.stat().st_size:
        raise _no_state(directory)
    lock = _lock(directory, command, clock, lock_timeout)
    try:
        snapshot.remove_stale_temp_files(directory)
        loaded = _load(directory)
        if not loaded.chain.seq:
            raise _no_state(directory)
        return StateWriter(directory, actor=actor, lock=lock, clock=clock, loaded=loaded)
    except BaseException:
        lock.release()
        raise


def init_state(
    directory: Path, *, actor: Mapping[str, Any], clock: Clock = _utc_now
) -> tuple[State, bool]:
    """Starts a state in `directory` (created with its parents): its `.gitignore`,
    `.gitattributes` and a journal whose first event is `initialized`. Returns the state and
    whether it was made now; a directory that already holds a state is left as it is.
    """
    canonical_json(journal.plain(actor))
    if directory.is_dir() and (directory / JOURNAL_FILE).exists():
        return load_state(directory), False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        journal.fsync_directory(directory.parent)
    except OSError as error:
        raise _io_error(error, directory, "create") from None
    lock = _lock(directory, "backfill init", clock, 0.0)
    try:
        path = directory / JOURNAL_FILE
        if path.exists():  # another init won the race
            return load_state(directory), False
        for name, text in ((".gitignore", GITIGNORE), (".gitattributes", GITATTRIBUTES)):
            if not (directory / name).exists():
                _write_new(directory / name, text.encode())
        event = journal.seal(
            seq=1,
            time=journal.timestamp(clock()),
            kind=EventType.INITIALIZED,
            actor=journal.plain(actor),
            data={"state_id": secrets.token_hex(8)},
            prev=ZERO_HASH,
        )
        _write_new(path, journal.line_of(event))
    finally:
        lock.release()
    return load_state(directory), True


def _write_new(path: Path, content: bytes) -> None:
    """A new file, durably: written, fsynced, and its directory entry fsynced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        journal.fsync_directory(path.parent)
    except OSError as error:
        raise _io_error(error, path, "write") from None


def _lock(directory: Path, command: str, clock: Clock, timeout: float) -> Lock:
    from reconciler.state.lock import Lock  # noqa: PLC0415 (a writer's: reading takes no lock)

    try:
        return Lock.acquire(
            directory, command=command, since=journal.timestamp(clock()), timeout=timeout
        )
    except OSError as error:
        raise _io_error(error, directory / "lock", "lock") from None


def verify_journal(directory: Path) -> list[Diagnostic]:
    """Audits the whole state: every line of the chain from line 1, decoded and folded, the
    committed versions of the journal, and the snapshot (its digest, and every submission
    against the fold of the journal up to the event it names).

    The journal's first damage ends the audit there: nothing after it can be vouched for. A
    torn last line is not a problem here (`load_state` reports it as a warning).
    """
    path = directory / JOURNAL_FILE
    snapshot_path = directory / SNAPSHOT_FILE
    problems: list[Diagnostic] = []
    try:
        found = snapshot.read(snapshot_path)
    except StateError as error:
        problems.append(Diagnostic(error.location or Location(str(snapshot_path)), error.message))
        found = None
    git = committed.versions(path)
    chain = Chain(
        path, prefixes=[version.size for version in git.versions], object_format=git.object_format
    )
    replay = Replay()
    if found is not None and found.seq == 0:
        problems += _compare_snapshot(directory, found, replay, ZERO_HASH)
    try:
        for entry in chain:
            assert entry.event is not None
            try:
                replay.apply(entry.event)
            except FoldError as error:
                raise journal.damage(chain.where(entry.line), str(error)) from None
            if found is not None and found.seq and entry.seq == found.seq:
                # Its `journal_size` and `journal_sha256` only spare a load the hashing of each
                # line: where they no longer hold (blank lines added), a load checks every line
                # and the next writer rewrites them; where they hold, those bytes are the ones
                # checked here. Neither is damage.
                problems += _compare_snapshot(directory, found, replay, entry.hash)
        git.check(chain.size, chain.prefix_ids)
    except StateError as error:
        return [Diagnostic(error.location or Location(str(path)), error.message)]
    if found is not None and chain.seq < found.seq:
        problems.append(
            Diagnostic(
                Location(str(snapshot_path)),
                f"snapshot does not match the journal at line {found.seq}:"
                f" the journal has only {chain.seq} events",
            )
        )
    return problems


def _compare_snapshot(
    directory: Path, found: snapshot.Snapshot, replay: Replay, event_hash: str
) -> list[Diagnostic]:
    where = Location(str(directory / SNAPSHOT_FILE))
    problems = []
    if found.hash != event_hash:
        problems.append(
            Diagnostic(
                where,
                f"snapshot does not match the journal at line {found.seq}: its hash is not"
                " that line's hash",
            )
        )
    if found.emulator != replay.emulator:
        problems.append(Diagnostic(where, "`emulator` differs from the fold of the journal"))
    if found.state_id != replay.state_id:
        problems.append(Diagnostic(where, "`state_id` differs from the fold of the journal"))
    folded = {record.key: record for record in replay.records()}
    for key in sorted(folded.keys() | found.submissions.keys()):
        kept, replayed = found.submissions.get(key), folded.get(key)
        if kept == replayed:
            continue
        if kept is None or replayed is None:
            side = "snapshot" if kept is None else "journal"
            problems.append(Diagnostic(where, f"submission {key} is missing from the {side}"))
            continue
        left, right = record_to_json(kept), record_to_json(replayed)
        fields = ", ".join(f"`{name}`" for name in left if left[name] != right[name])
        problems.append(
            Diagnostic(where, f"submission {key} differs from the fold of the journal in {fields}")
        )
    return problems
