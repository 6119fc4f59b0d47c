"""The state directory: loading it read-only, writing it under the lock, and auditing it whole.

Nothing else in the project touches `journal.jsonl`, `snapshot.json` or `lock`.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.domain import JSON, canonical_json
from reconciler.errors import Diagnostic, Location, StateError
from reconciler.state import journal, snapshot
from reconciler.state.fold import FoldError, Replay, check_data
from reconciler.state.journal import JOURNAL_FILE, Journal, JournalFile
from reconciler.state.lock import Lock
from reconciler.state.records import ZERO_HASH, EventType, State, record_to_json

SNAPSHOT_FILE = "snapshot.json"
GITIGNORE = "lock\n.snapshot.json.*.tmp\n"
"""The state is committed with the plans; the lock and a crashed writer's temp file are not."""

CHECKPOINT_EVERY = 5000
"""Events between snapshots in a long run: rewriting it per event would cost O(n) each time."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Loaded:
    replay: Replay
    journal_end: int
    last_start: int
    snapshot_seq: int
    warnings: list[str]


def _load(directory: Path) -> _Loaded:
    """Snapshot, then the journal lines after it: the lines the snapshot vouches for stay unread."""
    found = snapshot.read(directory / SNAPSHOT_FILE)
    start = found.seq if found else 0
    replay = Replay(found.state() if found else None)
    warnings: list[str] = []
    lines = JournalFile(directory / JOURNAL_FILE)
    offset = found.offset if found and _points_at(lines.path, found) else None
    for line, event in lines.read(first=max(start, 1), offset=offset):
        where = Location(str(lines.path), line.number)
        if event is None:
            warnings.append(lines.torn_warning(line))
        elif found is not None and line.number == start:
            if event["seq"] != start or event["hash"] != found.hash:
                raise _snapshot_mismatch(directory, start, "its hash is not that line's hash")
        else:
            journal.check_link(event, where, line.number, replay.head_hash)
            try:
                replay.apply(event)
            except FoldError as error:
                raise journal.damage(where, str(error)) from None
    if lines.count < start:
        raise _snapshot_mismatch(
            directory, start, f"the journal has only {lines.count} complete lines"
        )
    return _Loaded(replay, lines.end, lines.last_start, start, warnings)


def _points_at(path: Path, found: snapshot.Snapshot) -> bool:
    """The snapshot's offset is where its own line begins (else read from line 1: the journal
    may have been rewritten, or the snapshot come from elsewhere)."""
    if found.offset is None or found.seq == 0:
        return False
    try:
        with path.open("rb") as handle:
            handle.seek(found.offset)
            event = json.loads(handle.readline())
    except (OSError, ValueError):
        return False
    return isinstance(event, dict) and (event.get("seq"), event.get("hash")) == (
        found.seq,
        found.hash,
    )


def _snapshot_mismatch(directory: Path, line: int, why: str) -> StateError:
    return StateError(
        f"snapshot does not match the journal at line {line}: {why}",
        location=Location(str(directory / SNAPSHOT_FILE)),
        hint="if the journal is right, delete snapshot.json and it is rebuilt from the journal;"
        " otherwise restore both from git",
    )


def load_state(directory: Path) -> State:
    """The state as of the last complete event: read-only and lock-free, so a `plan` can run
    while an `apply` appends. A missing directory or file is an empty state.

    Raises StateError naming `<dir>/journal.jsonl:<line>` for damage, or the snapshot when it
    disagrees with the journal; a torn last line is only a warning in `State.warnings`.
    """
    loaded = _load(directory)
    return loaded.replay.state(tuple(loaded.warnings))


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
        self._last_start = loaded.last_start
        self._since_checkpoint = 0
        path = directory / JOURNAL_FILE
        try:
            self._journal: Journal | None = Journal(path, loaded.journal_end)
        except OSError as error:
            raise _io_error(error, path, "open") from None

    @property
    def state(self) -> State:
        """The state including every append so far (a new immutable value after each change)."""
        return self._replay.state(self._warnings)

    def append(self, type: EventType | str, data: Mapping[str, Any]) -> dict[str, JSON]:
        """Journals one event durably (written and fsynced) and returns it as it was written.

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
        check_data(event_type, plain_data)
        event = journal.seal(
            seq=self._replay.seq + 1,
            time=journal.timestamp(self._clock()),
            kind=event_type,
            actor=self.actor,
            data=plain_data,
            prev=self._replay.head_hash,
        )
        try:
            record = self._replay.next(event)
        except FoldError as error:
            raise StateError(str(error)) from None
        line = journal.line_of(event)
        starts_at = self._journal.size
        try:
            self._journal.append(line)
        except OSError as error:
            raise _io_error(error, self._journal.path, f"journal `{event_type}` to") from None
        self._replay.apply(event, record)
        self._last_start = starts_at
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

    def checkpoint(self) -> None:
        """Writes the snapshot of the state so far, atomically."""
        path = self.directory / SNAPSHOT_FILE
        value = snapshot.document(
            self._replay.seq,
            self._replay.head_hash,
            self._replay.emulator,
            self._replay.records(),
            self._last_start,
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
    """Creates the directory if needed, takes the lock, loads the state, drops a torn last line.

    `actor` (user or CI actor, commit, PR, run URL, tool version) is stored as is in every event;
    `command` is shown to whoever finds the state locked. Raises StateError when the state is
    locked for longer than `lock_timeout` seconds, damaged, or cannot be written.
    """
    canonical_json(journal.plain(actor))  # not JSON: fail before taking the lock
    _create(directory)
    try:
        lock = Lock.acquire(
            directory, command=command, since=journal.timestamp(clock()), timeout=lock_timeout
        )
    except OSError as error:
        raise _io_error(error, directory / "lock", "lock") from None
    try:
        _ignore_lock_in_git(directory)
        snapshot.remove_stale_temp_files(directory)
        loaded = _load(directory)
        return StateWriter(directory, actor=actor, lock=lock, clock=clock, loaded=loaded)
    except BaseException:
        lock.release()
        raise


def _create(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True)
        journal.fsync_directory(directory.parent)
    except FileExistsError:
        return  # another writer created it first; the lock decides who goes on
    except OSError as error:
        raise _io_error(error, directory, "create") from None


def _ignore_lock_in_git(directory: Path) -> None:
    """On first use only: after that, the `.gitignore` is the user's to edit."""
    path = directory / ".gitignore"
    if (directory / JOURNAL_FILE).exists() or path.exists():
        return
    try:
        path.write_text(GITIGNORE)
    except OSError as error:
        raise _io_error(error, path, "write") from None


def verify_journal(directory: Path) -> list[Diagnostic]:
    """Audits the whole state: every line of the chain from line 1, and the snapshot against
    the full fold. Reports every problem found instead of stopping at the first.

    A torn last line is not a problem here (`load_state` reports it as a warning).
    """
    problems: list[Diagnostic] = []
    snapshot_path = directory / SNAPSHOT_FILE
    try:
        found = snapshot.read(snapshot_path)
    except StateError as error:
        problems.append(Diagnostic(error.location or Location(str(snapshot_path)), error.message))
        found = None
    replay = Replay()
    if found is not None and found.seq == 0:
        problems += _compare_snapshot(directory, found, replay, ZERO_HASH)
    lines = JournalFile(directory / JOURNAL_FILE)
    # after a damaged line, carry on from what the next line says it follows, so that one
    # damaged line is one problem and not one per line after it
    expected: tuple[int, str] | None = (1, ZERO_HASH)
    damaged = False
    for line in lines.lines():
        where = Location(str(lines.path), line.number)
        if line.torn:
            continue
        try:
            if not line.raw:
                raise journal.damage(where, "is blank")
            event = journal.decode_event(line.raw, where)
        except StateError as error:
            problems.append(Diagnostic(where, error.message))
            expected, damaged = None, True
            continue
        checks = [partial(journal.check_hash, event, where)]
        if expected is not None:
            checks.append(partial(journal.check_link, event, where, *expected))
        for check in checks:
            try:
                check()
            except StateError as error:
                problems.append(Diagnostic(where, error.message))
                damaged = True
        expected = (event["seq"] + 1, event["hash"])
        try:
            replay.apply(event)
        except FoldError as error:
            # once the chain is damaged, a refused transition is most likely its echo, and the
            # snapshot would differ from the fold for the same reason
            if not damaged:
                problems.append(Diagnostic(where, str(error)))
        if found is not None and found.seq and event["seq"] == found.seq and not damaged:
            problems += _compare_snapshot(directory, found, replay, event["hash"])
    if found is not None and lines.count < found.seq:
        problems.append(
            Diagnostic(
                Location(str(snapshot_path)),
                f"snapshot does not match the journal at line {found.seq}:"
                f" the journal has only {lines.count} complete lines",
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
