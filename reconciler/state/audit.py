"""The state read back for an audit: every submission attempt from the journal's first line,
and the verdict on the whole state directory (`backfill audit log`, `backfill audit verify`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.domain import JSON
from reconciler.errors import Diagnostic
from reconciler.state.journal import JOURNAL_FILE
from reconciler.state.records import ZERO_HASH, EventType, SubmissionRecord
from reconciler.state.store import SNAPSHOT_FILE, History, load_state, verify_journal


@dataclass(frozen=True, slots=True)
class Step:
    """One journal event of an attempt: what happened, when, and who made it happen."""

    seq: int
    time: str
    type: EventType
    actor: Mapping[str, JSON]
    reason: str = ""
    """Why a person (import, forget) or a lookup (resolved) settled it, as they said."""

    @property
    def verdict(self) -> bool:
        """A lookup or a person settled the outcome, not the API's reply."""
        return self.type in _VERDICTS


_VERDICTS = frozenset({EventType.RESOLVED, EventType.IMPORTED, EventType.FORGOTTEN})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One intent and what became of it. A key retried after a rejection has two attempts."""

    number: int
    """1 for a key's first intent, 2 for its retry, ..."""
    record: SubmissionRecord
    """The key's record as of the attempt's last event: its outcome, remote id, RequestId."""
    steps: tuple[Step, ...]
    """The intent first, then the outcome and any later verdict (lookup, import, forget)."""

    @property
    def intent(self) -> Step:
        return self.steps[0]

    @property
    def settled(self) -> Step | None:
        """The event that gave the attempt its present outcome; None while it has none."""
        return self.steps[-1] if len(self.steps) > 1 else None


@dataclass(frozen=True, slots=True)
class AuditLog:
    journal: Path
    attempts: tuple[Attempt, ...]
    """In journal order: every attempt, or those a selection kept."""
    journaled: int
    """How many attempts the journal holds, whatever a selection kept."""
    seq: int
    head_hash: str
    warnings: tuple[str, ...] = ()


def audit_log(directory: Path) -> AuditLog:
    """Every attempt in journal order, read from line 1 with the chain checked as it goes.

    Raises StateError naming the first damaged line: a log read from a broken chain would be
    an account nobody can vouch for (`verify` lists every problem).
    """
    events = History(directory)
    steps: dict[str, list[Step]] = {}
    numbers: dict[str, int] = {}
    order: list[tuple[str, int]] = []
    finished: dict[tuple[str, int], Attempt] = {}
    for event, record in events:
        if record is None:
            continue  # about the state itself, not an attempt
        key = record.key
        data = event["data"]
        step = Step(
            event["seq"],
            event["time"],
            EventType(event["type"]),
            event["actor"],
            str(data.get("reason", data.get("how", ""))),
        )
        if step.type is EventType.INTENT:
            numbers[key] = numbers.get(key, 0) + 1
            steps[key] = []
            order.append((key, numbers[key]))
        steps[key].append(step)
        finished[(key, numbers[key])] = Attempt(numbers[key], record, tuple(steps[key]))
    return AuditLog(
        journal=events.path,
        attempts=tuple(finished[slot] for slot in order),
        journaled=len(order),
        seq=events.seq,
        head_hash=events.head_hash,
        warnings=events.warnings,
    )


@dataclass(frozen=True, slots=True)
class Verification:
    """The verdict of `verify`: intact when `problems` is empty."""

    journal: Path
    problems: tuple[Diagnostic, ...]
    seq: int = 0
    head_hash: str = ZERO_HASH
    snapshot: bool = False
    """A snapshot was there to compare."""
    warnings: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(directory: Path) -> Verification:
    """The whole hash chain from line 1, and the snapshot against the full fold of the journal.

    Problems come journal lines first, in line order, so the first one names the first bad
    line; then the snapshot's. A directory that holds no state is a StateError, as for every
    command that reads one.
    """
    journal = directory / JOURNAL_FILE
    if not journal.is_file() or not journal.stat().st_size:
        load_state(directory)  # raises: no state there, or a snapshot without its journal
    problems = sorted(
        verify_journal(directory),
        key=lambda d: (Path(d.location.file) != journal, d.location.line),
    )
    if problems:
        return Verification(journal, tuple(problems))
    state = load_state(directory)
    return Verification(
        journal,
        (),
        seq=state.seq,
        head_hash=state.head_hash,
        snapshot=(directory / SNAPSHOT_FILE).is_file(),
        warnings=state.warnings,
    )
