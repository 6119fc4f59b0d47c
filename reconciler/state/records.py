"""What the journal folds into: one record per submission, and the immutable state they make up.

A record's JSON form is what `snapshot.json` stores; `record_from_json` checks it on the way in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from reconciler.domain import JSON, Cell

ZERO_HASH = "0" * 64
"""The `prev` of the first event, and the hash of an empty journal."""


class EventType(StrEnum):
    INTENT = "intent"
    """Journaled before the request leaves the process."""
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    """The request may have executed."""
    RESOLVED = "resolved"
    """A remote lookup settled an unknown."""
    IMPORTED = "imported"
    """A person says it ran."""
    FORGOTTEN = "forgotten"
    """A person says it did not run."""


class SubmissionStatus(StrEnum):
    PENDING = "pending"
    """An intent without an outcome; seen on load, its process died in between: treat as unknown."""
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    MISSING = "missing"
    """A remote lookup found it was not created."""
    FORGOTTEN = "forgotten"


COVERING = frozenset(
    {SubmissionStatus.PENDING, SubmissionStatus.SUBMITTED, SubmissionStatus.UNKNOWN}
)
"""A submission in one of these states may have run, so its cells must not be submitted again."""


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """One submission key as the journal has it now: its latest intent and what became of it."""

    key: str
    plan: str
    revision: int
    provider: str
    action: str
    region: str
    endpoint: str
    targets: tuple[str, ...]
    dates: tuple[str, ...]
    fingerprint: str
    params: Mapping[str, JSON]
    request: Mapping[str, JSON]
    status: SubmissionStatus
    remote_id: str
    request_id: str
    code: str
    message: str
    """The API's error (rejected, unknown) or the reason a lookup or a person gave (resolved,
    imported, forgotten)."""
    detail: Mapping[str, JSON]
    emulator: bool
    """The `submitted` reply came from the built-in emulator."""
    attempts: int
    """How many intents this key has had (a retry follows rejected, missing or forgotten)."""
    intent_seq: int
    intent_time: str
    updated_seq: int
    updated_time: str
    actor: Mapping[str, JSON]
    """Who journaled the latest intent."""

    @property
    def covers_cells(self) -> bool:
        """It may have run: its cells count as covered and are never submitted again by diff."""
        return self.status in COVERING

    @property
    def size(self) -> int:
        return len(self.targets) * len(self.dates)

    @property
    def needs_attention(self) -> bool:
        """It may have run and nobody knows: never resubmitted until a lookup or a person says.

        A `pending` record read back from disk is one whose process died between the intent and
        the outcome, which is as uncertain as `unknown`.
        """
        return self.status in (SubmissionStatus.PENDING, SubmissionStatus.UNKNOWN)

    def cells(self) -> tuple[Cell, ...]:
        return tuple(
            Cell(self.plan, self.revision, target, date)
            for target in self.targets
            for date in self.dates
        )


@dataclass(frozen=True, slots=True)
class State:
    """The journal folded up to `seq`. Immutable: the writer hands out a new one after appends.

    Two states are equal when they are the same fold; `warnings` are about the files, not the state.
    """

    seq: int = 0
    head_hash: str = ZERO_HASH
    """The hash of event `seq`: the next event's `prev`."""
    emulator: bool = False
    """Some `submitted` outcome came from the emulator: this state is not a record of real runs."""
    submissions: Mapping[str, SubmissionRecord] = field(
        default_factory=lambda: MappingProxyType({})
    )
    warnings: tuple[str, ...] = field(default=(), compare=False)
    _coverage: Mapping[Cell, SubmissionRecord] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def coverage(self) -> Mapping[Cell, SubmissionRecord]:
        """Every cell that a pending, submitted or unknown submission covers, and by which one.

        Where two submissions cover one cell, the later intent wins. Computed on the first call
        (most readers of a state never ask) and kept.
        """
        if self._coverage is None:
            covering = sorted(
                (record for record in self.submissions.values() if record.covers_cells),
                key=lambda record: record.intent_seq,
            )
            cells = {cell: record for record in covering for cell in record.cells()}
            object.__setattr__(self, "_coverage", MappingProxyType(cells))
        assert self._coverage is not None
        return self._coverage


def record_to_json(record: SubmissionRecord) -> dict[str, JSON]:
    return {
        "key": record.key,
        "plan": record.plan,
        "revision": record.revision,
        "provider": record.provider,
        "action": record.action,
        "region": record.region,
        "endpoint": record.endpoint,
        "targets": list(record.targets),
        "dates": list(record.dates),
        "fingerprint": record.fingerprint,
        "params": record.params,
        "request": record.request,
        "status": str(record.status),
        "remote_id": record.remote_id,
        "request_id": record.request_id,
        "code": record.code,
        "message": record.message,
        "detail": record.detail,
        "emulator": record.emulator,
        "attempts": record.attempts,
        "intent_seq": record.intent_seq,
        "intent_time": record.intent_time,
        "updated_seq": record.updated_seq,
        "updated_time": record.updated_time,
        "actor": record.actor,
    }


_RECORD_TYPES: Mapping[str, type] = {
    "key": str,
    "plan": str,
    "revision": int,
    "provider": str,
    "action": str,
    "region": str,
    "endpoint": str,
    "targets": list,
    "dates": list,
    "fingerprint": str,
    "params": dict,
    "request": dict,
    "status": str,
    "remote_id": str,
    "request_id": str,
    "code": str,
    "message": str,
    "detail": dict,
    "emulator": bool,
    "attempts": int,
    "intent_seq": int,
    "intent_time": str,
    "updated_seq": int,
    "updated_time": str,
    "actor": dict,
}


_RECORD_TYPE_ITEMS = tuple(_RECORD_TYPES.items())
_STATUSES = {str(status): status for status in SubmissionStatus}


def record_from_json(value: Any) -> SubmissionRecord:
    """Raises ValueError with a sentence naming the field when `value` is not a record."""
    if not isinstance(value, dict):
        raise ValueError("is not a JSON object")
    if value.keys() != _RECORD_TYPES.keys():
        missing = sorted(_RECORD_TYPES.keys() - value.keys())
        extra = sorted(value.keys() - _RECORD_TYPES.keys())
        what = [f"missing {', '.join(missing)}"] if missing else []
        what += [f"unexpected {', '.join(extra)}"] if extra else []
        raise ValueError("; ".join(what))
    # exact types, since `json.loads` makes nothing else (and a bool is never a count); this
    # runs once per submission on every load, so it stays one pass without isinstance calls
    for name, kind in _RECORD_TYPE_ITEMS:
        if type(value[name]) is not kind:
            raise ValueError(f"`{name}` is not a {kind.__name__}")
    targets, dates = tuple(value["targets"]), tuple(value["dates"])
    if {type(item) for item in targets + dates} - {str}:
        raise ValueError("`targets` or `dates` is not a list of strings")
    status = _STATUSES.get(value["status"])
    if status is None:
        raise ValueError(f"unknown status {value['status']!r}")
    return SubmissionRecord(**{**value, "status": status, "targets": targets, "dates": dates})
