"""The typed values that flow between the pipeline's stages: plans, cells, submissions, outcomes.

Every value here is immutable; a stage takes some of these and returns others. The words they
are made of (days, limits, statuses) are defined in `vocabulary` and offered here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from reconciler.errors import Location
from reconciler.vocabulary import (
    DATE_PATTERN,
    FINAL_HEALTH,
    JSON,
    MAX_CELLS_PER_CALL,
    MAX_CELLS_PER_PLAN,
    MAX_DAYS_PER_PLAN,
    NOT_OBSERVED,
    TIME_PATTERN,
    Health,
    OutcomeKind,
    SubmissionStatus,
    compact_dates,
    contiguous_runs,
    day,
    days,
    merge_spans,
    ordinal,
    range_span,
    runs,
    span_text,
)

if TYPE_CHECKING:  # the contract's models need pydantic, which only plan files need
    from reconciler.contract import Spec

__all__ = [
    "DATE_PATTERN",
    "FINAL_HEALTH",
    "JSON",
    "MAX_CELLS_PER_CALL",
    "MAX_CELLS_PER_PLAN",
    "MAX_DAYS_PER_PLAN",
    "NOT_OBSERVED",
    "TIME_PATTERN",
    "Batch",
    "Cell",
    "CellGroup",
    "Health",
    "Outcome",
    "OutcomeKind",
    "Plan",
    "PlanHeader",
    "Reprocess",
    "Submission",
    "SubmissionStatus",
    "canonical_json",
    "compact_dates",
    "contiguous_runs",
    "day",
    "days",
    "digest",
    "fingerprint",
    "merge_spans",
    "ordinal",
    "range_span",
    "runs",
    "span_text",
    "submission_key",
]


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
