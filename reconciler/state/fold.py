"""Folding: the pure function from (record, event) to the next record, and the replay built on it.

Loading a snapshot and replaying the rest gives the same state as replaying everything, because
every event changes one record and nothing here depends on anything but its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.domain import SubmissionStatus, runs
from reconciler.state.records import (
    EventType,
    State,
    SubmissionRecord,
    health_from_json,
    observe,
)

Event = Mapping[str, Any]
"""One journal line, parsed and checked by `journal.parse_event` (or built by `journal.seal`)."""


class FoldError(ValueError):
    """The event cannot follow the state: the caller says where (journal line, or the append)."""


_S = SubmissionStatus
_SETTLED_BY_A_PERSON = frozenset(_S) - {_S.SUBMITTED}
ALLOWED_FROM: Mapping[EventType, frozenset[SubmissionStatus]] = {
    EventType.SUBMITTED: frozenset({_S.PENDING}),
    EventType.REJECTED: frozenset({_S.PENDING}),
    EventType.UNKNOWN: frozenset({_S.PENDING}),
    EventType.RESOLVED: frozenset({_S.PENDING, _S.UNKNOWN}),
    # a person may correct anything but a confirmed submission: a backfill that ran cannot be
    # un-run, and a second remote id for one call would make the audit trail lie
    EventType.IMPORTED: _SETTLED_BY_A_PERSON,
    EventType.FORGOTTEN: _SETTLED_BY_A_PERSON,
    EventType.UNSENT: frozenset({_S.PENDING}),
    # what the platform says of a backfill it created; only new words are journaled
    EventType.OBSERVED: frozenset({_S.SUBMITTED}),
}
"""The statuses an outcome may follow. An intent may follow none or a status that covers nothing."""

STATE_EVENTS = frozenset({EventType.INITIALIZED, EventType.TORN})
"""Events about the state itself, not a submission: they carry no `key`."""


def fold(record: SubmissionRecord | None, event: Event) -> SubmissionRecord:
    """The record for `event`'s key after `event`, given the record before it (None: no intent yet).

    Raises FoldError when the event cannot happen in that state: an intent for a key that may
    already have run (the lowest-level exactly-once guard), or an outcome without its intent.
    """
    kind = EventType(event["type"])
    data = event["data"]
    key = data["key"]
    seq, time = event["seq"], event["time"]
    if kind is EventType.INTENT:
        if record is not None and record.covers_cells:
            raise FoldError(_refusal(record))
        return SubmissionRecord(
            key=key,
            plan=data["plan"],
            revision=data["revision"],
            provider=data["provider"],
            action=data["action"],
            region=data["region"],
            targets=tuple(data["targets"]),
            spans=tuple(runs(data["dates"])),
            fingerprint=data["fingerprint"],
            status=_S.PENDING,
            remote_id="",
            request_id="",
            code="",
            message="",
            detail={},
            emulator=False,
            attempts=record.attempts + 1 if record else 1,
            intent_seq=seq,
            intent_time=time,
            updated_seq=seq,
            updated_time=time,
            health=(),
            observed_time="",
        )
    if record is None:
        raise FoldError(f"`{kind}` for submission {key}, which has no intent")
    if record.status not in ALLOWED_FROM[kind]:
        allowed = " or ".join(sorted(ALLOWED_FROM[kind]))
        raise FoldError(
            f"`{kind}` for submission {key}, which is {record.status}"
            f" (only a {allowed} submission can take it)"
        )
    if kind is EventType.OBSERVED:  # no outcome: the status and its time stay
        try:
            cells = health_from_json(data["cells"])
        except ValueError as error:
            raise FoldError(f"`data.cells` of an observed event: {error}") from None
        for target, first, last, _, _ in cells:
            if target not in record.targets or not any(
                start <= first and last <= end for start, end in record.spans
            ):
                raise FoldError(
                    f"`observed` for submission {key} names {target} on days it does not cover"
                )
        return replace(record, health=observe(record.health, cells), observed_time=time)
    record = replace(record, updated_seq=seq, updated_time=time)
    if kind is EventType.SUBMITTED:
        return replace(
            record,
            status=_S.SUBMITTED,
            remote_id=data["remote_id"],
            request_id=data["request_id"],
            detail=data["detail"],
            emulator=data["emulator"],
        )
    if kind is EventType.REJECTED:
        return replace(
            record,
            status=_S.REJECTED,
            code=data["code"],
            message=data["message"],
            request_id=data["request_id"],
        )
    if kind is EventType.UNKNOWN:
        return replace(record, status=_S.UNKNOWN, code=data["code"], message=data["message"])
    if kind is EventType.UNSENT:
        return replace(record, status=_S.UNSENT, code=data["code"], message=data["message"])
    if kind is EventType.RESOLVED:
        return replace(
            record,
            status=_S(data["status"]),
            remote_id=data["remote_id"],
            code="",
            message=data["how"],
        )
    if kind is EventType.IMPORTED:
        return replace(
            record,
            status=_S.SUBMITTED,
            remote_id=data["remote_id"],
            code="",
            message=data["reason"],
        )
    return replace(record, status=_S.FORGOTTEN, code="", message=data["reason"])


def _refusal(record: SubmissionRecord) -> str:
    why = {
        _S.SUBMITTED: f"it was submitted as {record.remote_id or '(no remote id)'}; bump"
        " spec.revision to run these dates again",
        _S.PENDING: "its request may have been sent; look it up remotely, or settle it with"
        " `backfill state import` or `backfill state forget`",
        _S.UNKNOWN: "its request may have executed; look it up remotely, or settle it with"
        " `backfill state import` or `backfill state forget`",
    }[record.status]
    return (
        f"refusing a second intent for submission {record.key}"
        f" ({record.status} since seq {record.updated_seq}): {why}"
    )


class Replay:
    """Folds events one at a time onto a state. Mutable and O(1) per event; `state()` freezes it."""

    def __init__(self, start: State | None = None, *, journal: Path | None = None) -> None:
        start = start or State()
        self.journal = journal
        self.seq = start.seq
        self.head_hash = start.head_hash
        self.state_id = start.state_id
        self.emulator = start.emulator
        self._submissions = dict(start.submissions)
        self._frozen: State | None = None

    def record(self, key: str) -> SubmissionRecord | None:
        return self._submissions.get(key)

    def next(self, event: Event) -> SubmissionRecord | None:
        """The record `event` would make (None for an event about the state itself), without
        applying it: FoldError if it cannot happen."""
        kind = EventType(event["type"])
        if kind is EventType.INITIALIZED and event["seq"] != 1:
            raise FoldError("`initialized` is only ever the first event of a state")
        if kind in STATE_EVENTS:
            return None
        return fold(self._submissions.get(event["data"]["key"]), event)

    def apply(self, event: Event, record: SubmissionRecord | None = None) -> None:
        """Applies `event`; `record` is what `next(event)` returned, to not fold twice."""
        record = record or self.next(event)
        if record is not None:
            self._submissions[record.key] = record
        if event["type"] == EventType.INITIALIZED:
            self.state_id = event["data"]["state_id"]
        self.seq = event["seq"]
        self.head_hash = event["hash"]
        if event["type"] == EventType.SUBMITTED and event["data"]["emulator"]:
            self.emulator = True
        self._frozen = None

    def records(self) -> Iterable[SubmissionRecord]:
        return self._submissions.values()

    def state(self, warnings: tuple[str, ...] = ()) -> State:
        """The state so far. One copy of the records per call after a change, none otherwise."""
        if self._frozen is None or self._frozen.warnings != warnings:
            self._frozen = State(
                seq=self.seq,
                head_hash=self.head_hash,
                state_id=self.state_id,
                emulator=self.emulator,
                submissions=MappingProxyType(dict(self._submissions)),
                warnings=warnings,
                journal=self.journal,
            )
        return self._frozen
