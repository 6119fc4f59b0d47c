"""What `status` found: the platforms' word on the submitted backfills, or each plan's grid."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.grid import MARKS, Mark, PlanGrid

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.diff import Changeset, PlanChanges
    from reconciler.providers.protocol import Progress
    from reconciler.state import SubmissionRecord


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
