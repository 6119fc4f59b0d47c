"""Fourth stage: desired cells against the state's coverage give the changeset. It classifies
cells only: which API calls create the missing ones is the planning step's (`planning`).

A cell not covered is created; covered with the same fingerprint it is in sync; covered with
another fingerprint it is a conflict; covered by an unknown outcome it needs attention (never
resubmitted by itself); covered but no longer declared it is orphaned (reported only).

Health is the second dimension: a cell in sync is counted by what `refresh` last saw of it. With
`spec.reprocess: failed`, a cell whose latest attempt failed is missing again (its retry names
the attempt it replaces), until `spec.maxAttempts` attempts have: then it is exhausted, reported
and never sent again. Running, waiting and unknown cells are never sent again.

A cell covered by another plan's submission (the same target and date: a rename, or a second
plan for the same work) is a conflict too, until the plan says what that submission is to it
(`spec.takeover`: `rename`, it counts as this plan's; `rerun`, run the cell again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler import providers
from reconciler.domain import (
    JSON,
    NOT_OBSERVED,
    Cell,
    CellGroup,
    Health,
    Plan,
    PlanHeader,
    Reprocess,
    Submission,
    merge_spans,
    runs,
)
from reconciler.errors import Location
from reconciler.expand import Desired
from reconciler.state import IntentDetails, State, SubmissionRecord, intent_details
from reconciler.state.records import DateCoverage


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
    other_plan: str = ""
    """Set when the submission is another plan's: a takeover not declared, not an edit."""


@dataclass(frozen=True, slots=True)
class Attention:
    """Declared cells covered by a submission whose outcome is unknown."""

    plan: str
    key: str
    status: str
    cells: int
    provider: str
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
class Exhausted:
    """Cells of a plan that failed in every one of their `spec.maxAttempts` attempts: reported,
    never sent again."""

    plan: str
    revision: int
    target: str
    spans: tuple[tuple[int, int], ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class Missing:
    """Declared cells of one cell group that nothing covers: each target's dates to create."""

    group: CellGroup
    dates: Mapping[str, tuple[str, ...]]
    replaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Of those, the cells sent again because their latest attempt failed (`reprocess:
    failed`): target -> date -> the key of the attempt the new one replaces."""

    @property
    def cells(self) -> int:
        return sum(len(dates) for dates in self.dates.values())


@dataclass(frozen=True, slots=True)
class PlanChanges:
    plan: Plan | PlanHeader
    """The plan itself where it has cells to create (the planning step makes their calls from
    its spec); else what the views show of it."""
    create_cells: int = 0
    in_sync_cells: int = 0
    conflict_cells: int = 0
    attention_cells: int = 0
    exhausted_cells: int = 0
    retry_cells: int = 0
    """Of `create_cells`, those sent again because their latest attempt failed."""
    health: Mapping[str, int] = field(default_factory=dict)
    """The cells in sync by what `refresh` last saw of them (a `Health`, or NOT_OBSERVED)."""
    missing: tuple[Missing, ...] = ()
    submissions: tuple[Submission, ...] = ()
    """The calls that create the `missing` cells, once the planning step has made them."""


@dataclass(frozen=True, slots=True)
class Changeset:
    plans: tuple[PlanChanges, ...]
    conflicts: tuple[Conflict, ...] = ()
    attention: tuple[Attention, ...] = ()
    exhausted: tuple[Exhausted, ...] = ()
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


@dataclass(slots=True)
class _Found:
    """What the diff finds beyond creates, keyed by (plan, covering submission)."""

    conflicts: dict[tuple[str, str], list[Cell]] = field(default_factory=lambda: defaultdict(list))
    context: dict[tuple[str, str], tuple[Plan, Mapping[str, JSON]]] = field(default_factory=dict)
    attention: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    exhausted: dict[tuple[str, int, str], tuple[list[str], int]] = field(default_factory=dict)
    """(plan, revision, target) -> its exhausted dates and the most attempts among them."""
    counts: dict[str, int] = field(default_factory=dict)
    health: dict[str, int] = field(default_factory=dict)

    def conflict(self, plan: Plan, group: CellGroup, key: str, target: str, date: str) -> None:
        self.conflicts[(plan.name, key)].append(Cell(plan.name, plan.revision, target, date))
        self.context[(plan.name, key)] = (plan, group.params)
        self.counts["conflict"] += 1

    def exhaust(self, plan: Plan, target: str, date: str, attempts: int) -> None:
        dates, most = self.exhausted.get((plan.name, plan.revision, target), ([], 0))
        dates.append(date)
        self.exhausted[(plan.name, plan.revision, target)] = (dates, max(most, attempts))
        self.counts["exhausted"] += 1


def _missing_dates(
    plan: Plan,
    group: CellGroup,
    *,
    target: str,
    covered: DateCoverage,
    others: DateCoverage,
    found: _Found,
    retries: dict[str, str],
) -> list[str]:
    """One target's dates classified one by one; returns those to create, and adds to
    `retries` those of them sent again (date -> the key of the failed attempt). A date another
    plan's submission covers is this plan's only through `spec.takeover`."""
    missing = []
    for date in group.dates:
        record = covered.get(date)
        if record is None:
            other = others.get(date)
            mode = plan.takeover.get(other.plan) if other else None
            if other is not None and mode is None:
                found.conflict(plan, group, other.key, target, date)
                continue
            if other is not None and mode == "rename":
                record = other if _renamed(plan, other) else None
        if record is None:
            missing.append(date)
        elif record.fingerprint == group.fingerprint and not record.needs_attention:
            seen = record.health_of(target, date)
            health = seen[0] if seen else NOT_OBSERVED
            if health == Health.FAILED and plan.reprocess is Reprocess.FAILED:
                # a renamed plan's attempts under its old name count too
                renamed = others.attempts(date, of=lambda r: _renamed(plan, r))
                attempts = max(1, covered.attempts(date) + renamed)
                if attempts >= plan.max_attempts:
                    found.exhaust(plan, target, date, attempts)
                else:
                    retries[date] = record.key
                    missing.append(date)
                continue
            found.counts["in_sync"] += 1
            found.health[health] = found.health.get(health, 0) + 1
        elif record.needs_attention:
            found.attention[(plan.name, record.key)] += 1
            found.counts["attention"] += 1
        else:
            found.conflict(plan, group, record.key, target, date)
    return missing


def _renamed(plan: Plan, record: SubmissionRecord) -> bool:
    """Whether `record` is one of `plan`'s own submissions under the name it had before a
    `takeover: rename` (at this revision or later)."""
    return plan.takeover.get(record.plan) == "rename" and record.revision >= plan.revision


def diff(desired: Iterable[Desired], state: State) -> Changeset:
    found = Diff(state)
    for item in desired:
        found.add(item)
    return found.changeset()


class Diff:
    """The diff of plans given one at a time (`add`), as they are read: what it keeps of each
    is its changes and, for the orphans, the declared days of the targets whose covered days
    are not all declared (none, for a plan in sync), not its cells."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._changes: list[PlanChanges] = []
        self._found = _Found()
        self._declared: dict[str, _Declared] = {}
        self._healths: dict[tuple[tuple[str, int], ...], Mapping[str, int]] = {}
        """Each different `PlanChanges.health` once: most plans of a big repo are in sync and
        never observed, with one of a few hundred cell counts."""

    def add(self, item: Desired) -> PlanChanges:
        plan, state, found = item.plan, self._state, self._found
        found.counts = counts = {"in_sync": 0, "conflict": 0, "attention": 0, "exhausted": 0}
        health: dict[str, int] = {}
        found.health = health
        whole: set[str] = set()
        """Targets whose every covered day is declared: none of their cells can be orphaned."""
        gaps: list[Missing] = []
        name, revision, provider = plan.name, plan.revision, plan.provider
        one_group = len(item.groups) == 1
        for group in item.groups:
            missing: dict[str, tuple[str, ...]] = {}
            replaces: dict[str, Mapping[str, str]] = {}
            spans, days, fingerprint = group.spans, group.days, group.fingerprint
            for target in group.targets:
                covered, others = state.coverages(name, revision, provider, target)
                if not covered and not others:
                    missing[target] = group.dates
                elif not others and (counted := covered.in_sync(fingerprint, spans, days)):
                    # the common case, counted by runs
                    inside, total = counted
                    if inside == total and one_group:
                        whole.add(target)
                    counts["in_sync"] += inside
                    health[NOT_OBSERVED] = health.get(NOT_OBSERVED, 0) + inside
                    if inside < days:
                        missing[target] = tuple(d for d in group.dates if covered.get(d) is None)
                else:
                    retries: dict[str, str] = {}
                    dates = _missing_dates(
                        plan,
                        group,
                        target=target,
                        covered=covered,
                        others=others,
                        found=found,
                        retries=retries,
                    )
                    if dates:
                        missing[target] = tuple(dates)
                    if retries:
                        replaces[target] = retries
            if missing:
                gaps.append(Missing(group, missing, replaces))
        changes = PlanChanges(
            plan=plan if gaps else plan.header,
            create_cells=sum(gap.cells for gap in gaps),
            in_sync_cells=counts["in_sync"],
            conflict_cells=counts["conflict"],
            attention_cells=counts["attention"],
            exhausted_cells=counts["exhausted"],
            retry_cells=sum(len(r) for gap in gaps for r in gap.replaces.values()),
            health=self._healths.setdefault(tuple(health.items()), health),
            missing=tuple(gaps),
        )
        self._changes.append(changes)
        # A plan that takes another's submissions over by a rename is asked about them by their
        # old name, whose cells are never whole.
        if any(mode == "rename" for mode in plan.takeover.values()):
            kept: tuple[str, ...] = ()
        elif one_group and len(whole) == len(item.groups[0].targets):
            kept = item.groups[0].targets  # every target whole: the plan's tuple, not a copy
        else:
            kept = tuple(whole)
        self._declared[plan.name] = _declared(item, kept)
        return changes

    def changeset(self) -> Changeset:
        """The changes of every plan given, and what spans them."""
        state, found = self._state, self._found
        # What a person must be told of a conflict or an unknown outcome is in the journal: read
        # once, and only when there is one.
        named = {key for _, key in (*found.conflicts, *found.attention)}
        details = intent_details(state, (state.submissions[key] for key in named))
        return Changeset(
            plans=tuple(self._changes),
            conflicts=tuple(
                _conflict(state.submissions[key], details[key], cells, *found.context[(name, key)])
                for (name, key), cells in found.conflicts.items()
            ),
            attention=tuple(
                _attention(state.submissions[key], details[key], cells)
                for (_, key), cells in found.attention.items()
            ),
            exhausted=tuple(
                Exhausted(name, revision, target, tuple(runs(dates)), attempts)
                for (name, revision, target), (dates, attempts) in found.exhausted.items()
            ),
            orphans=_orphans(self._declared, state),
            warnings=tuple(state.warnings),
        )


@dataclass(frozen=True, slots=True)
class _Declared:
    """What the orphans need of a plan: the targets whose covered days are all declared, and
    the declared days of its other targets (none, for a plan in sync): not its cells."""

    name: str
    revision: int
    takeover: Mapping[str, str]
    whole: tuple[str, ...]
    spans: Mapping[str, list[tuple[int, int]]]

    def loose(self, record: SubmissionRecord) -> int:
        """The days of `record`'s cells this plan does not declare."""
        days = sum(last - first + 1 for first, last in record.spans)
        return sum(
            days - _overlap(record.spans, self.spans.get(target, []))
            for target in record.targets
            if record.plan != self.name or target not in self.whole
        )


_NOTHING_DECLARED: Mapping[str, list[tuple[int, int]]] = {}


def _declared(item: Desired, whole: tuple[str, ...]) -> _Declared:
    index: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for group in item.groups:
        for target in group.targets:
            if target not in whole:
                index[target].extend(group.spans)
    spans = {t: merge_spans(s) for t, s in index.items()} if index else _NOTHING_DECLARED
    plan = item.plan
    return _Declared(plan.name, plan.revision, plan.takeover, whole, spans)


def _conflict(
    record: SubmissionRecord,
    sent: IntentDetails,
    cells: list[Cell],
    plan: Plan,
    params: Mapping[str, JSON],
) -> Conflict:
    dates = sorted(c.date for c in cells)
    # Another plan's submission, not taken over: not an edit, so no fields to compare.
    other = record.plan != plan.name and plan.takeover.get(record.plan) != "rename"
    return Conflict(
        plan=plan.name,
        revision=plan.revision,
        key=record.key,
        cells=len(cells),
        first_date=dates[0],
        last_date=dates[-1],
        changes=() if other else _changes(sent.params, params),
        location=plan.locate("spec"),
        other_plan=record.plan if other else "",
    )


def _changes(old: Mapping[str, JSON], new: Mapping[str, JSON]) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(name, old.get(name), new.get(name))
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    )


def _attention(record: SubmissionRecord, sent: IntentDetails, cells: int) -> Attention:
    return Attention(
        plan=record.plan,
        key=record.key,
        status=str(record.shown_status),
        cells=cells,
        provider=record.provider,
        remote_name=providers.get(record.provider).remote_name(sent.request),
    )


def _orphans(declared: Mapping[str, _Declared], state: State) -> tuple[Orphan, ...]:
    adopted = {
        old: name
        for name, item in declared.items()
        for old, mode in item.takeover.items()
        if mode == "rename" and old not in declared
    }
    """Plans renamed: their submissions are the new name's, orphans only where it stops."""
    orphans: list[Orphan] = []
    for record in state.submissions.values():
        if not record.covers_cells:
            continue
        item = declared.get(record.plan)
        if item is None and record.plan in adopted:
            item = declared[adopted[record.plan]]
            if record.revision < item.revision:
                continue  # the renamed plan's earlier revisions: history
        elif item is None:
            orphans.append(Orphan(record.plan, record.revision, record.key, record.size, True))
            continue
        elif record.revision != item.revision:
            continue  # an earlier revision, superseded on purpose: history, not an orphan
        loose = item.loose(record)
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
