"""The typed values that flow between the pipeline's stages: plans, cells, submissions, outcomes.

Every value here is immutable; a stage takes some of these and returns others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from reconciler.errors import Location

if TYPE_CHECKING:  # the contract's models need pydantic, which only plan files need
    from reconciler.contract import Spec

JSON = Any
"""A value that `json.dumps` accepts: what YAML and the APIs exchange."""


MAX_CELLS_PER_CALL = 10_000
"""One API call covers at most this many cells (targets x days), whatever `spec.chunk` says:
an unknown outcome quarantines every cell of its call, and a person has to settle them, so a
call stays a size a person can check (a year of 27 tasks)."""
MAX_DAYS_PER_PLAN = 3653
"""Ten years of daily data, the longest history one reviewed plan re-runs; more is several
plans. `chunk` goes no higher."""
MAX_CELLS_PER_PLAN = 100_000
"""Cells (targets x days) of one plan: a plan is reviewed, planned and journaled cell by cell,
so its size bounds the memory and the time of `plan` and `apply`."""

DATE_PATTERN = r"^(19[7-9][0-9]|20[0-9][0-9])-[0-9]{2}-[0-9]{2}$"
"""How a plan file writes a date, which also bounds its year; whether the date exists is a rule
of `validate`."""
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
"""How a plan file writes a time of day, HH:mm."""


_ORDINALS: dict[str, int] = {}
_DAYS: dict[int, str] = {}
"""One string per calendar day, shared by every cell and record that names it (a repo-scale
state names millions of cells but only a few thousand days), and its ordinal."""


def ordinal(day: str) -> int:
    """The proleptic ordinal of an ISO date; ValueError if it is not one."""
    number = _ORDINALS.get(day)
    if number is None:
        number = date.fromisoformat(day).toordinal()
        _ORDINALS[day] = number
    return number


def day(number: int) -> str:
    """The shared ISO string of a day's ordinal."""
    text = _DAYS.get(number)
    if text is None:
        text = _DAYS[number] = date.fromordinal(number).isoformat()
        _ORDINALS.setdefault(text, number)
    return text


def days(start: str, end: str) -> list[str]:
    """Every day from start to end, inclusive."""
    return [day(n) for n in range(ordinal(start), ordinal(end) + 1)]


def runs(dates: Iterable[str]) -> list[tuple[int, int]]:
    """Dates as sorted, merged runs of consecutive days (first and last ordinal)."""
    return merge_spans((number, number) for number in map(ordinal, dates))


def contiguous_runs(dates: Iterable[str]) -> list[tuple[str, str]]:
    """ISO dates -> inclusive (start, end) runs of consecutive days."""
    return [(day(first), day(last)) for first, last in runs(dates)]


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Runs of days, sorted and merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def span_text(first: int, last: int) -> str:
    """A run of days as text: `2025-09-01..2025-09-30`, or the date alone for one day."""
    return day(first) if first == last else f"{day(first)}..{day(last)}"


def compact_dates(spans: Iterable[tuple[int, int]]) -> list[str]:
    """Runs of days as text, one `span_text` each."""
    return [span_text(first, last) for first, last in spans]


def range_span(start: str, end: str) -> tuple[int, int]:
    """An inclusive range of ISO dates as a run of days."""
    return ordinal(start), ordinal(end)


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""Made once: `json.dumps` with these options makes this encoder on every call."""


def canonical_json(value: JSON) -> str:
    """The one serialisation that hashes, keys and fingerprints are computed over."""
    return _CANONICAL.encode(value)


def digest(value: JSON) -> str:
    # Loaded here: OpenSSL's start-up is a cost of every command, and `validate` hashes nothing.
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


class Reprocess(StrEnum):
    """`spec.reprocess`: what an apply sends again besides cells never submitted."""

    NONE = "none"
    FAILED = "failed"
    """Cells whose latest attempt failed, as a new attempt, up to `spec.maxAttempts` in all."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One validated `BackfillPlan` document."""

    name: str
    spec: Spec
    """The validated `spec`, typed by provider, defaults filled in; the provider interprets it."""
    location: Location
    owner: str = ""
    reason: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    takeover: Mapping[str, str] = field(default_factory=dict)
    """`spec.takeover` as other plans whose submissions cover this plan's cells: name ->
    `rename` or `rerun` (looked up cell by cell)."""
    locator: Callable[[Sequence[str | int]], Location] | None = field(
        default=None, compare=False, repr=False
    )
    """Finds where a field was written, for messages that point at it (positions are lazy)."""

    @property
    def provider(self) -> str:
        return self.spec.provider

    @property
    def revision(self) -> int:
        return self.spec.revision

    @property
    def chunk(self) -> int | None:
        return self.spec.chunk

    @property
    def reprocess(self) -> Reprocess:
        return self.spec.reprocess

    @property
    def max_attempts(self) -> int:
        return self.spec.max_attempts

    def locate(self, *path: str | int) -> Location:
        return self.locator(path) if self.locator else self.location

    @property
    def header(self) -> PlanHeader:
        return PlanHeader(
            self.name,
            self.provider,
            self.revision,
            self.location,
            self.owner,
            self.reason,
            self.labels,
        )


@dataclass(frozen=True, slots=True)
class PlanHeader:
    """What is shown of a plan that makes no call: who it is and where it was written, not its
    typed spec (a big repo's plans are mostly in sync, and their specs are most of a plan)."""

    name: str
    provider: str
    revision: int
    location: Location
    owner: str
    reason: str
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True, order=True)
class Cell:
    """The unit of coverage: one target (WeData task, DMS DAG) on one date of one plan revision."""

    plan: str
    revision: int
    target: str
    date: str

    def __str__(self) -> str:
        return f"{self.plan}@r{self.revision}:{self.target}:{self.date}"


@dataclass(frozen=True, slots=True)
class CellGroup:
    """Cells of a plan that share every request parameter, hence one fingerprint.

    `params` holds every request field except the target ids and the dates (plus the region);
    the fingerprint is its digest, so editing any of them changes it.
    """

    plan: str
    revision: int
    targets: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    """The dates as sorted, disjoint runs of days (first and last ordinal): a plan's ranges,
    kept as ranges so that a repo of plans is not spelt out date by date."""
    params: Mapping[str, JSON]
    fingerprint: str

    @property
    def dates(self) -> tuple[str, ...]:
        return tuple(day(n) for first, last in self.spans for n in range(first, last + 1))

    @property
    def days(self) -> int:
        return sum(last - first + 1 for first, last in self.spans)


def fingerprint(params: Mapping[str, JSON]) -> str:
    return digest(dict(params))[:16]


@dataclass(frozen=True, slots=True)
class Batch:
    """Missing cells that one API call can cover: every target with every date."""

    targets: tuple[str, ...]
    dates: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Submission:
    """One API call that creates a backfill, with everything needed to make and to audit it."""

    key: str
    plan: str
    revision: int
    provider: str
    action: str
    region: str
    targets: tuple[str, ...]
    dates: tuple[str, ...]
    fingerprint: str
    params: Mapping[str, JSON]
    request: Mapping[str, JSON]
    """The action's request parameters exactly as they will be sent (no credentials)."""
    replaces: tuple[str, ...] = ()
    """The keys of the failed attempts whose cells this one runs again (`reprocess: failed`)."""

    @property
    def size(self) -> int:
        return len(self.targets) * len(self.dates)


def submission_key(
    plan: str,
    revision: int,
    targets: tuple[str, ...],
    dates: tuple[str, ...],
    fp: str,
    *,
    replaces: tuple[str, ...] = (),
) -> str:
    """Deterministic: the same YAML and the same state always give the same keys.

    A retry's key names the attempts it replaces, so it is never the key of the first attempt
    (whose intent would refuse it), and an apply killed after journaling it finds the same key
    again, which then covers its cells: there is never a third attempt by accident.
    """
    identity: dict[str, JSON] = {
        "plan": plan,
        "revision": revision,
        "targets": sorted(targets),
        "dates": sorted(dates),
        "fingerprint": fp,
    }
    if replaces:  # first attempts keep the keys they always had
        identity["replaces"] = sorted(replaces)
    return digest(identity)[:20]


class Health(StrEnum):
    """What became of one cell on the platform, as `backfill refresh` last saw it."""

    WAITING = "waiting"
    """Not started: waiting for its turn, its upstream or an event (or not listed yet)."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    """Stopped or paused by a person on the platform."""
    UNKNOWN = "unknown"
    """The platform said something this tool does not know (kept raw beside it)."""


FINAL_HEALTH = frozenset({Health.SUCCEEDED, Health.FAILED, Health.STOPPED})
"""A cell in one of these states is never asked about again."""

NOT_OBSERVED = "not observed"
"""What a submitted cell's health is called until `refresh` has reported on it."""


class OutcomeKind(StrEnum):
    SUBMITTED = "submitted"
    """The API created it (a read: the API answered it, with its data in `detail`)."""
    REJECTED = "rejected"
    """Definitely not created (validation, authentication, permission)."""
    RETRYABLE = "retryable"
    """Definitely not executed (throttled): try again."""
    UNKNOWN = "unknown"
    """May have been created: never resubmitted without a person or a remote lookup."""
    UNSENT = "unsent"
    """Provably never left the process (no connection could be made): nothing was created."""


class SubmissionStatus(StrEnum):
    """What became of a submission, as the state folds its journal events."""

    PENDING = "pending"
    """An intent without an outcome; seen on load, its process died in between: treat as unknown."""
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    MISSING = "missing"
    """A remote lookup found it was not created."""
    FORGOTTEN = "forgotten"
    UNSENT = "unsent"
    """Never sent: its cells stay missing, and the next apply submits them."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one API call came to, as every provider classifies its reply: a create's, or a
    read's (`status`, `recover`)."""

    kind: OutcomeKind
    remote_id: str = ""
    request_id: str = ""
    code: str = ""
    message: str = ""
    detail: Mapping[str, JSON] = field(default_factory=dict)
    emulator: bool = False
    """The reply came from the built-in emulator, not a real cloud endpoint."""
    halt: str = ""
    """Set when no other call to the same endpoint can fare better (nothing answers there, the
    credentials were refused): why, and what to fix. The run sends that endpoint nothing more."""
