"""What a command found, as its views receive it: immutable data that `commands/` builds and
`views/` renders, so that neither imports the other."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.domain import FINAL_HEALTH, Health, OutcomeKind
from reconciler.errors import WAIT_INTERRUPTED, WAIT_TIMED_OUT
from reconciler.grid import MARKS, Mark, PlanGrid

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.diff import Changeset, PlanChanges
    from reconciler.domain import JSON
    from reconciler.execute import Result
    from reconciler.providers.protocol import Instance, Lookup, Progress
    from reconciler.state import IntentDetails, State, SubmissionRecord


@dataclass(frozen=True, slots=True)
class Finding:
    """What a remote lookup said of a submission whose outcome is unknown."""

    record: SubmissionRecord
    lookup: Lookup


@dataclass(frozen=True, slots=True)
class Started:
    """`backfill init`: the state as it is now, and whether this run made it."""

    state_dir: Path
    state: State | None
    """None when the state's branch already held one (nothing was done here)."""
    created: bool
    published: str = ""
    """The remote branch the new state was pushed to, or that already held one."""


@dataclass(frozen=True, slots=True)
class Planned:
    """`backfill plan`: the calls an apply would make, and what the run found on the way."""

    changes: Changeset
    changed: frozenset[Path] | None = None
    """With --changed-since: the files the change touched (their plans are shown apart)."""
    findings: tuple[Finding, ...] | None = None
    """With --recover: the lookups, as if journaled (plan writes nothing)."""
    saved: Path | None = None
    """With --out: where the plan was saved."""
    refreshed: Refreshed | None = None
    """With --refresh: what the platforms said (as if journaled: plan writes nothing)."""


@dataclass(frozen=True, slots=True)
class Tally:
    """What a run's calls came to, as every report of an apply counts them."""

    submitted: int
    not_created: int
    """Rejected, or still throttled after the last attempt: nothing was created."""
    unknown: int
    not_sent: int
    """Journaled, but no connection could be made: nothing was created."""
    not_attempted: int
    """Not journaled: the run stopped, or their endpoint took no more calls."""

    @classmethod
    def of(cls, results: Sequence[Result], planned: int) -> Tally:
        kinds = [r.outcome.kind for r in results]
        return cls(
            submitted=kinds.count(OutcomeKind.SUBMITTED),
            not_created=kinds.count(OutcomeKind.REJECTED) + kinds.count(OutcomeKind.RETRYABLE),
            unknown=kinds.count(OutcomeKind.UNKNOWN),
            not_sent=kinds.count(OutcomeKind.UNSENT),
            not_attempted=planned - len(results),
        )

    @property
    def all_submitted(self) -> bool:
        return not (self.not_created or self.unknown or self.not_sent)


@dataclass(frozen=True, slots=True)
class Applied:
    """`backfill apply`: what its calls came to, and why the run failed beyond them."""

    changes: Changeset
    results: tuple[Result, ...] = ()
    reasons: tuple[str, ...] = ()
    """Why the run failed beyond its calls: a publish that failed, cells needing attention."""
    actors: Mapping[str, Mapping[str, JSON]] | None = None
    """Each plan's actor (its commit and pull request), for the pull request comments."""
    signal: int = 0
    """The signal that stopped the run after its calls in flight (0: none)."""

    @property
    def planned(self) -> int:
        return len(self.changes.creates)

    @property
    def tally(self) -> Tally:
        return Tally.of(self.results, self.planned)


@dataclass(frozen=True, slots=True)
class Listing:
    """`backfill state list`: the submissions chosen, oldest intent first."""

    records: tuple[SubmissionRecord, ...]
    total: int
    """Submissions in the state, chosen or not."""
    seq: int
    details: Mapping[str, IntentDetails] | None = None
    """What each chosen record's intent journaled, when the view shows it."""
    warnings: tuple[str, ...] = ()
    """About the state's files (a torn last line, a snapshot ignored)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A person's word on one submission: it ran as `remote_id`, or (None) it did not run."""

    key: str
    remote_id: str | None


@dataclass(frozen=True, slots=True)
class Tracked:
    record: SubmissionRecord
    progress: Progress


@dataclass(frozen=True, slots=True)
class StatusReport:
    """`backfill status`: what the platforms say now of the submitted backfills."""

    tracked: tuple[Tracked, ...]
    unsettled: tuple[SubmissionRecord, ...]
    """Submissions whose outcome is unknown: the state cannot say what to ask the platform."""
    warnings: tuple[str, ...] = ()
    """About the state's files (a torn last line, a snapshot ignored)."""

    @property
    def ok(self) -> bool:
        """Every platform answered (whatever the backfills' own progress)."""
        return not any(t.progress.error for t in self.tracked)


@dataclass(frozen=True, slots=True)
class Seen:
    """What one refresh read of one submission: the health of its cells not final yet, or why
    it could not be read."""

    record: SubmissionRecord
    cells: tuple[Instance, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class Observed:
    """An `observed` event a refresh journaled: the cells of one submission whose health or
    word changed, as journaled (`[target, dates, health, raw]` runs)."""

    key: str
    plan: str
    cells: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Refreshed:
    """`backfill refresh`: how many submissions it asked about and what it journaled."""

    asked: int
    final: int
    """Submitted backfills already final before it began: not asked."""
    observed: tuple[Observed, ...] = ()
    errors: tuple[Seen, ...] = ()
    """The submissions it could not read (their `error`)."""
    cells: int = 0
    """Cells read (of the submissions read: those not final yet)."""
    changed_cells: int = 0
    """Cells read whose health is not what the state said, or that it had never seen."""


@dataclass(frozen=True, slots=True)
class CellHealth:
    """One followed cell, as its latest submitted attempt was last observed (None: never)."""

    plan: str
    target: str
    date: str
    health: Health | None
    raw: str
    key: str


@dataclass(frozen=True, slots=True)
class Followed:
    """`--wait`: the followed cells after a round, and what the round could not read."""

    cells: tuple[CellHealth, ...]
    errors: tuple[str, ...] = ()
    interrupted: bool = False
    """Ctrl-C stopped the waiting."""

    @property
    def final(self) -> bool:
        return all(c.health in FINAL_HEALTH for c in self.cells)

    @property
    def failed(self) -> tuple[CellHealth, ...]:
        """Final without having succeeded (failed, or stopped on the platform)."""
        return tuple(
            c for c in self.cells if c.health in FINAL_HEALTH and c.health is not Health.SUCCEEDED
        )

    def per_plan(self) -> dict[str, Counter[Health | None]]:
        counts: dict[str, Counter[Health | None]] = {}
        for cell in self.cells:
            counts.setdefault(cell.plan, Counter())[cell.health] += 1
        return counts

    @property
    def exit_code(self) -> int:
        """WAIT_INTERRUPTED, 1 when a cell did not succeed, 0 when all did, else WAIT_TIMED_OUT."""
        if self.interrupted:
            return WAIT_INTERRUPTED
        if self.failed:
            return 1
        return 0 if self.final else WAIT_TIMED_OUT


@dataclass(frozen=True, slots=True)
class Grids:
    """`backfill status`: every declared plan (or one) with its sync, as `plan` counts it, and
    its grid."""

    changes: Changeset
    grids: tuple[PlanGrid, ...]
    seq: int
    """The journal event the state was read at."""
    warnings: tuple[str, ...] = ()

    _by_name: Mapping[str, PlanChanges] = field(init=False, repr=False, compare=False)
    """`changes` by plan: asked once per grid, a scan each time would be quadratic in a big
    repo's plans."""

    def __post_init__(self) -> None:
        by_name = {p.plan.name: p for p in self.changes.plans}
        object.__setattr__(self, "_by_name", by_name)  # frozen: set once, as it is made

    def sync(self, plan: str) -> PlanChanges:
        """The plan's counts in `changes` (every grid's plan has them)."""
        return self._by_name[plan]

    @property
    def totals(self) -> Mapping[Mark, int]:
        counts: Counter[Mark] = Counter()
        for grid in self.grids:
            counts.update(grid.counts)
        return {mark: counts[mark] for mark in MARKS if counts[mark]}


@dataclass(frozen=True, slots=True)
class Succeeded:
    """Consecutive dates of one target that one attempt ran to success."""

    target: str
    spans: tuple[tuple[int, int], ...]
    key: str
    revision: int
    remote_id: str
    finished: str
    """When `refresh` first journaled them succeeded (the platform's time is not journaled)."""
    actor: Mapping[str, JSON]
    """Who journaled the attempt's intent: user, commit, pull request, workflow run."""
    replaces: tuple[str, ...]
    """A retry's: the attempts whose failed cells it ran again."""


@dataclass(frozen=True, slots=True)
class NeverSucceeded:
    """Consecutive dates of one target that no attempt ran to success, and why not, as the
    last attempt at them stands."""

    target: str
    spans: tuple[tuple[int, int], ...]
    last: str
    """`failed`, `running`, `submitted` (not observed), `rejected`, `unknown`, ..."""
    attempts: int
    """Attempts at these cells that may have run (rejected, unsent or forgotten did not)."""


@dataclass(frozen=True, slots=True)
class PlanRan:
    plan: str
    succeeded: tuple[Succeeded, ...]
    never: tuple[NeverSucceeded, ...]


@dataclass(frozen=True, slots=True)
class Ran:
    journal: Path
    plans: tuple[PlanRan, ...]
    seq: int
    head_hash: str
    warnings: tuple[str, ...] = ()
