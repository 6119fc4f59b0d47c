"""Each declared plan's cells as a grid of targets x dates, one mark per cell: whether it was
sent (sync) and what the platform last said became of it (health, journaled by `refresh`).

A stage like diff: plans and the state in, immutable data out; `views.grid` draws it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from reconciler.domain import Health, Plan, merge_spans

# Types only: the views and `reports` import the marks without the stages' dependencies.
if TYPE_CHECKING:
    from reconciler.expand import Desired
    from reconciler.state import State, SubmissionRecord


class Mark(StrEnum):
    """What one cell of the grid shows: a health where the platform said one, else its sync."""

    SUCCEEDED = Health.SUCCEEDED.value
    FAILED = Health.FAILED.value
    RUNNING = Health.RUNNING.value
    WAITING = Health.WAITING.value
    STOPPED = Health.STOPPED.value
    UNKNOWN = Health.UNKNOWN.value
    """The platform said something this tool does not know."""
    SUBMITTED = "submitted"
    """Submitted; `refresh` has not reported on it yet."""
    OUTCOME_UNKNOWN = "outcome unknown"
    """Its submission may or may not have been created: a person or a lookup settles it."""
    NOT_SUBMITTED = "not submitted"


MARKS: tuple[Mark, ...] = tuple(Mark)
"""Every mark, in the order legends and counts list them: done, then still to come."""


Run = tuple[int, int, Mark]
"""Consecutive days (first and last ordinal) of one target with the same mark."""


@dataclass(frozen=True, slots=True)
class Row:
    target: str
    runs: tuple[Run, ...]
    """Sorted; days the plan does not declare (between its ranges) are in no run."""


@dataclass(frozen=True, slots=True)
class PlanGrid:
    plan: Plan
    first: int
    last: int
    """The plan's first and last declared day (ordinals)."""
    rows: tuple[Row, ...]

    @property
    def counts(self) -> Mapping[Mark, int]:
        counts: Counter[Mark] = Counter()
        for row in self.rows:
            for first, last, mark in row.runs:
                counts[mark] += last - first + 1
        return {mark: counts[mark] for mark in MARKS if counts[mark]}

    @property
    def days(self) -> int:
        return self.last - self.first + 1


def _mark(record: SubmissionRecord | None, target: str, number: int) -> Mark:
    if record is None:
        return Mark.NOT_SUBMITTED
    if record.needs_attention:
        return Mark.OUTCOME_UNKNOWN
    seen = record.health_at(target, number)
    return Mark(seen[0].value) if seen else Mark.SUBMITTED


def _row(plan: Plan, target: str, spans: Sequence[tuple[int, int]], state: State) -> Row:
    """The target's marks, worked out once per stretch of days where nothing changes (no
    covering submission or observed health starts or ends inside): a long plan is not walked
    day by day."""
    covered = state.covered(plan.name, plan.revision, target)
    cuts: set[int] = set()
    for first, last, record in covered.runs:
        cuts.update((first, last + 1))
        for each, start, end, _, _ in record.health:
            if each == target:
                cuts.update((start, end + 1))
    runs: list[Run] = []
    for first, last in spans:
        starts = sorted({first, *(cut for cut in cuts if first < cut <= last)})
        for start, end in zip(starts, [*starts[1:], last + 1], strict=True):
            mark = _mark(covered.at(start), target, start)
            if runs and runs[-1][2] is mark and runs[-1][1] + 1 == start:
                runs[-1] = (runs[-1][0], end - 1, mark)
            else:
                runs.append((start, end - 1, mark))
    return Row(target, tuple(runs))


def grids(
    desired: Sequence[Desired], state: State, *, plan: str | None = None
) -> tuple[PlanGrid, ...]:
    """One grid per declared plan (only `plan`'s, if given), its rows in declaration order."""
    made = []
    for item in desired:
        if plan is not None and item.plan.name != plan:
            continue
        spans: dict[str, list[tuple[int, int]]] = {}
        for group in item.groups:
            for target in group.targets:
                spans.setdefault(target, []).extend(group.spans)
        rows = tuple(
            _row(item.plan, target, merge_spans(each), state) for target, each in spans.items()
        )
        every = [span for row in spans.values() for span in row]
        made.append(
            PlanGrid(
                item.plan,
                min(first for first, _ in every),
                max(last for _, last in every),
                rows,
            )
        )
    return tuple(made)
