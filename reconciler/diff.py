"""Fourth stage: desired cells against the state's coverage give the changeset.

A cell not covered is created; covered with the same fingerprint it is in sync; covered with
another fingerprint it is a conflict; covered by an unknown outcome it needs attention (never
resubmitted by itself); covered but no longer declared it is orphaned (reported only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler import providers
from reconciler.domain import JSON, Cell, Plan, Submission, merge_spans, submission_key
from reconciler.errors import Location
from reconciler.expand import Desired
from reconciler.state import State, SubmissionRecord


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: JSON
    new: JSON


@dataclass(frozen=True, slots=True)
class Conflict:
    """Declared cells already submitted with other parameters."""

    plan: str
    revision: int
    key: str
    """The earlier submission that covers them."""
    cells: int
    first_date: str
    last_date: str
    changes: tuple[FieldChange, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class Attention:
    """Declared cells covered by a submission whose outcome is unknown."""

    plan: str
    key: str
    status: str
    cells: int
    remote_name: str
    """What to search for on the platform to find out whether it ran."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """Cells in the state that no plan declares any more: reported, never undone."""

    plan: str
    revision: int
    key: str
    cells: int
    plan_removed: bool


@dataclass(frozen=True, slots=True)
class PlanChanges:
    plan: Plan
    create_cells: int = 0
    in_sync_cells: int = 0
    conflict_cells: int = 0
    attention_cells: int = 0
    submissions: tuple[Submission, ...] = ()


@dataclass(frozen=True, slots=True)
class Changeset:
    plans: tuple[PlanChanges, ...]
    conflicts: tuple[Conflict, ...] = ()
    attention: tuple[Attention, ...] = ()
    orphans: tuple[Orphan, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def creates(self) -> tuple[Submission, ...]:
        return tuple(s for p in self.plans for s in p.submissions)

    @property
    def has_changes(self) -> bool:
        return any(p.submissions for p in self.plans)

    def count(self, what: str) -> int:
        return sum(getattr(p, what) for p in self.plans)


def diff(desired: Sequence[Desired], state: State) -> Changeset:
    changes: list[PlanChanges] = []
    conflicts: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    conflict_context: dict[tuple[str, str], tuple[Plan, Mapping[str, JSON]]] = {}
    attention: dict[tuple[str, str], int] = defaultdict(int)
    declared_whole: set[tuple[str, int, str]] = set()
    """Targets whose every covered day is declared: none of their cells can be orphaned."""
    for item in desired:
        plan, provider = item.plan, providers.get(item.plan.provider)
        counts = {"in_sync": 0, "conflict": 0, "attention": 0, "create": 0}
        submissions: list[Submission] = []
        for group in item.groups:
            missing: dict[str, list[str]] = {}
            spans = list(group.spans)
            for target in group.targets:
                covered = state.covered(plan.name, plan.revision, target)
                if not covered:
                    missing[target] = list(group.dates)
                    continue
                if covered.settled_with(group.fingerprint):  # the common case, counted by runs
                    inside, total = covered.count_within(spans)
                    if inside == total and len(item.groups) == 1:
                        declared_whole.add((plan.name, plan.revision, target))
                    counts["in_sync"] += inside
                    if inside < group.days:
                        missing[target] = [d for d in group.dates if covered.get(d) is None]
                    continue
                for date in group.dates:
                    record = covered.get(date)
                    if record is None:
                        missing.setdefault(target, []).append(date)
                    elif record.fingerprint == group.fingerprint and not record.needs_attention:
                        counts["in_sync"] += 1
                    elif record.needs_attention:
                        attention[(plan.name, record.key)] += 1
                        counts["attention"] += 1
                    else:
                        earlier = (plan.name, record.key)
                        conflicts[earlier].append(Cell(plan.name, plan.revision, target, date))
                        conflict_context[earlier] = (plan, group.params)
                        counts["conflict"] += 1
            for batch in provider.batches(plan, missing):
                key = submission_key(
                    plan.name, plan.revision, batch.targets, batch.dates, group.fingerprint
                )
                submissions.append(
                    Submission(
                        key=key,
                        plan=plan.name,
                        revision=plan.revision,
                        provider=provider.name,
                        action=provider.action,
                        region=provider.region(plan),
                        targets=batch.targets,
                        dates=batch.dates,
                        fingerprint=group.fingerprint,
                        params=group.params,
                        request=provider.request(plan, group, batch, key),
                    )
                )
                counts["create"] += len(batch.targets) * len(batch.dates)
        changes.append(
            PlanChanges(
                plan=plan,
                create_cells=counts["create"],
                in_sync_cells=counts["in_sync"],
                conflict_cells=counts["conflict"],
                attention_cells=counts["attention"],
                submissions=tuple(submissions),
            )
        )
    return Changeset(
        plans=tuple(changes),
        conflicts=tuple(
            _conflict(state.submissions[key], cells, *conflict_context[(name, key)])
            for (name, key), cells in conflicts.items()
        ),
        attention=tuple(
            _attention(state.submissions[key], cells) for (_, key), cells in attention.items()
        ),
        orphans=_orphans(desired, state, declared_whole),
        warnings=tuple(state.warnings),
    )


def _conflict(
    record: SubmissionRecord, cells: list[Cell], plan: Plan, params: Mapping[str, JSON]
) -> Conflict:
    dates = sorted(c.date for c in cells)
    changed = sorted(set(record.params) | set(params))
    return Conflict(
        plan=plan.name,
        revision=plan.revision,
        key=record.key,
        cells=len(cells),
        first_date=dates[0],
        last_date=dates[-1],
        changes=tuple(
            FieldChange(name, record.params.get(name), params.get(name))
            for name in changed
            if record.params.get(name) != params.get(name)
        ),
        location=plan.locate("spec"),
    )


def _attention(record: SubmissionRecord, cells: int) -> Attention:
    name = record.request.get("DataBackfillPlanName")
    return Attention(
        plan=record.plan,
        key=record.key,
        status=str(record.status),
        cells=cells,
        remote_name=str(name) if name else "",
    )


def _orphans(
    desired: Sequence[Desired], state: State, declared_whole: set[tuple[str, int, str]]
) -> tuple[Orphan, ...]:
    plans = {item.plan.name: item for item in desired}
    spans_of: dict[str, dict[str, list[tuple[int, int]]]] = {}

    def declared(item: Desired) -> dict[str, list[tuple[int, int]]]:
        # Built only for the few plans that may have undeclared cells.
        if item.plan.name not in spans_of:
            index: dict[str, list[tuple[int, int]]] = defaultdict(list)
            for group in item.groups:
                for target in group.targets:
                    index[target].extend(group.spans)
            spans_of[item.plan.name] = {t: merge_spans(s) for t, s in index.items()}
        return spans_of[item.plan.name]

    orphans: list[Orphan] = []
    for record in state.submissions.values():
        if not record.covers_cells:
            continue
        item = plans.get(record.plan)
        if item is None:
            orphans.append(Orphan(record.plan, record.revision, record.key, record.size, True))
            continue
        if record.revision != item.plan.revision:
            continue  # an earlier revision, superseded on purpose: history, not an orphan
        if all((record.plan, record.revision, t) in declared_whole for t in record.targets):
            continue
        targets = declared(item)
        days = sum(last - first + 1 for first, last in record.spans)
        loose = sum(days - _overlap(record.spans, targets.get(t, [])) for t in record.targets)
        if loose:
            orphans.append(Orphan(record.plan, record.revision, record.key, loose, False))
    return tuple(sorted(orphans, key=lambda o: (o.plan, o.key)))


def _overlap(spans: Sequence[tuple[int, int]], declared: Sequence[tuple[int, int]]) -> int:
    """Days of `spans` inside `declared` (both sorted and disjoint)."""
    return sum(
        max(0, min(last, end) - max(first, start) + 1)
        for first, last in spans
        for start, end in declared
    )
