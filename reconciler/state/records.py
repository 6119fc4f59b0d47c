"""What the journal folds into: one record per submission, and the immutable state they make up.

A record's JSON form is what `snapshot.json` stores; `record_from_json` checks it on the way in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from enum import StrEnum
from itertools import chain, compress, islice, repeat
from operator import attrgetter, gt, is_, itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from reconciler.domain import (
    FINAL_HEALTH,
    JSON,
    Cell,
    Health,
    SubmissionStatus,
    compact_dates,
    day,
    merge_spans,
    ordinal,
)

ZERO_HASH = "0" * 64
"""The `prev` of the first event, and the hash of an empty journal."""


class EventType(StrEnum):
    INITIALIZED = "initialized"
    """The first event of every state `backfill init` made: a state exists only after it."""
    TORN = "torn"
    """A writer found the line before it cut short by a crash or a full disk and left it in
    place: the audit trail keeps the bytes, the chain goes on from the event before them."""
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
    UNSENT = "unsent"
    """The request never left the process (no connection could be made)."""
    OBSERVED = "observed"
    """What the platform said became of some cells of a submitted backfill (`refresh`)."""


COVERING = frozenset(
    {SubmissionStatus.PENDING, SubmissionStatus.SUBMITTED, SubmissionStatus.UNKNOWN}
)
"""A submission in one of these states may have run, so its cells must not be submitted again."""

_INTENT_SEQ = attrgetter("intent_seq")


HealthRun = tuple[str, int, int, Health, str]
"""(target, first day, last day, health, the platform's own word): observed cells of a
submission, as a run of days (ordinals) of one target that the platform said the same of."""


def observe(runs: tuple[HealthRun, ...], cells: Iterable[HealthRun]) -> tuple[HealthRun, ...]:
    """`runs` with newer observations laid over them: where both say something of a cell, the
    newer word wins. Sorted by target and day, neighbouring runs that say the same merged."""
    by_target: dict[str, list[tuple[int, int, Health, str]]] = {}
    for target, first, last, health, raw in runs:
        by_target.setdefault(target, []).append((first, last, health, raw))
    for target, first, last, health, raw in cells:
        kept: list[tuple[int, int, Health, str]] = []
        for old_first, old_last, old_health, old_raw in by_target.get(target, []):
            if old_last < first or old_first > last:
                kept.append((old_first, old_last, old_health, old_raw))
                continue
            if old_first < first:
                kept.append((old_first, first - 1, old_health, old_raw))
            if old_last > last:
                kept.append((last + 1, old_last, old_health, old_raw))
        kept.append((first, last, health, raw))
        by_target[target] = kept
    merged: list[HealthRun] = []
    for target in sorted(by_target):
        for first, last, health, raw in sorted(by_target[target]):
            previous = merged[-1] if merged else None
            if (
                previous is not None
                and previous[0] == target
                and previous[2] + 1 == first
                and previous[3:] == (health, raw)
            ):
                merged[-1] = (target, previous[1], last, health, raw)
            else:
                merged.append((target, first, last, health, raw))
    return tuple(merged)


def _days_within(spans: list[tuple[int, int]], within: tuple[tuple[int, int], ...]) -> int:
    """Days of `spans` inside `within` (both sorted and disjoint)."""
    return sum(
        max(0, min(last, end) - max(first, start) + 1)
        for first, last in spans
        for start, end in within
    )


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    """One submission key as the journal has it now: its latest intent and what became of it.

    What the intent says beyond this (endpoint, parameters, request, actor) stays in the
    journal: `intent_details` reads it for the commands that show or weigh it."""

    key: str
    plan: str
    revision: int
    provider: str
    action: str
    region: str
    targets: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    """The covered dates as runs of days (first and last ordinal): a repo-scale state covers
    millions of cells, and loading it must not spell every date out."""
    fingerprint: str
    status: SubmissionStatus
    remote_id: str
    request_id: str
    code: str
    message: str
    """The API's error (rejected, unknown), why it was never sent (unsent), or the reason a
    lookup or a person gave (resolved, imported, forgotten)."""
    detail: Mapping[str, JSON]
    emulator: bool
    """The `submitted` reply came from the built-in emulator."""
    attempts: int
    """How many intents this key has had (a retry follows rejected, missing or forgotten)."""
    intent_seq: int
    intent_time: str
    updated_seq: int
    updated_time: str
    health: tuple[HealthRun, ...]
    """What the platform last said of each observed cell, as runs of days (sorted by target,
    then day); a cell never observed has none."""
    observed_time: str
    """When `refresh` last journaled something new of it; empty while never."""

    @property
    def covers_cells(self) -> bool:
        """It may have run: its cells count as covered and are never submitted again by diff."""
        return self.status in COVERING

    @property
    def dates(self) -> tuple[str, ...]:
        return tuple(day(n) for first, last in self.spans for n in range(first, last + 1))

    @property
    def size(self) -> int:
        return len(self.targets) * sum(last - first + 1 for first, last in self.spans)

    def health_of(self, target: str, date: str) -> tuple[Health, str] | None:
        """The health of one of its cells and the platform's own word for it; None when the
        cell was never observed."""
        return self.health_at(target, ordinal(date))

    def health_at(self, target: str, number: int) -> tuple[Health, str] | None:
        """`health_of` the day of this ordinal."""
        for each, first, last, health, raw in self.health:
            if each == target and first <= number <= last:
                return health, raw
        return None

    @property
    def final(self) -> bool:
        """Every one of its cells was observed final (succeeded, failed or stopped): a refresh
        never asks about it again."""
        days = sum(last - first + 1 for first, last in self.spans)
        return all(
            _days_within(
                merge_spans(
                    (f, last)
                    for t, f, last, h, _ in self.health
                    if t == target and h in FINAL_HEALTH
                ),
                self.spans,
            )
            == days
            for target in self.targets
        )

    @property
    def shown_status(self) -> SubmissionStatus:
        """The status as a person reads it: an intent without an outcome is as unknown as one
        whose reply was lost, and is called so everywhere."""
        return SubmissionStatus.UNKNOWN if self.needs_attention else self.status

    @property
    def needs_attention(self) -> bool:
        """It may have run and nobody knows: never resubmitted until a lookup or a person says.

        A `pending` record read back from disk is one whose process died between the intent and
        the outcome, which is as uncertain as `unknown`.
        """
        return self.status in (SubmissionStatus.PENDING, SubmissionStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class State:
    """The journal folded up to `seq`. Immutable: the writer hands out a new one after appends.

    Two states are equal when they are the same fold; `warnings` are about the files, not the state.
    """

    seq: int = 0
    head_hash: str = ZERO_HASH
    """The hash of event `seq`: the next event's `prev`."""
    state_id: str = ""
    """Random, from the `initialized` event: tells one state from another (empty for a state
    made before `backfill init` existed)."""
    emulator: bool = False
    """Some `submitted` outcome came from the emulator: this state is not a record of real runs."""
    submissions: Mapping[str, SubmissionRecord] = field(
        default_factory=lambda: MappingProxyType({})
    )
    warnings: tuple[str, ...] = field(default=(), compare=False)
    journal: Path | None = field(default=None, compare=False, repr=False)
    """The journal it was folded from, where `intent_details` reads what the records leave out
    (None for a state that was never journaled)."""
    _by_target: dict[str, SubmissionRecord | tuple[SubmissionRecord, ...]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """target -> the submissions covering it, of every plan, in intent order: the record
    itself when it is one (nearly always: one plan's target, in one chunk of dates). It is the
    whole index behind `covered` and `coverages`, which make their `DateCoverage` when asked: one
    kept per plan and target would cost a repo-scale state as much as its records."""

    def amended(self, records: Mapping[str, SubmissionRecord]) -> State:
        """This state with `records` in place of those of their keys, as it would be after the
        events that make them (a `plan` that previews what a command would journal)."""
        if not records:
            return self
        return replace(self, submissions=MappingProxyType({**self.submissions, **records}))

    def indexed(self) -> State:
        """This state with the index of `covered` and `coverages` built now rather than on their
        first call (`plan` builds it while its files are read); it is kept."""
        if self._by_target is None:
            covering = [
                record
                for record in self.submissions.values()
                # one with no day covers nothing: a coverage is never empty but for none
                if record.status in COVERING and record.spans
            ]
            covering.sort(key=_INTENT_SEQ)
            # the record itself where it is the one (nearly always), a list where more are
            by_target: dict[str, Any] = {}
            several = False
            for record in covering:
                for each in record.targets:
                    found = by_target.get(each)
                    if found is None:
                        by_target[each] = record
                    elif type(found) is list:
                        found.append(record)
                    else:
                        by_target[each] = [found, record]
                        several = True
            if several:
                for each, found in by_target.items():
                    if type(found) is list:
                        by_target[each] = tuple(found)
            object.__setattr__(self, "_by_target", by_target)
        return self

    def _covering(self, target: str) -> tuple[SubmissionRecord, ...]:
        """The submissions covering `target`, of every plan, in intent order."""
        by_target = self._by_target if self._by_target is not None else self.indexed()._by_target
        assert by_target is not None
        found = by_target.get(target, ())
        return (found,) if isinstance(found, SubmissionRecord) else found

    def covered(self, plan: str, revision: int, target: str) -> DateCoverage:
        """Which dates of one target of one plan revision a pending, submitted or unknown
        submission covers, and which one does (where two do, the later intent wins).

        The index behind it is built on the first call (most readers of a state never ask) and
        kept. It holds submissions by target, not cells: a repo-scale state covers millions of
        cells.
        """
        return self.coverages(plan, revision, "", target)[0]

    def coverages(
        self, plan: str, revision: int, provider: str, target: str
    ) -> tuple[DateCoverage, DateCoverage]:
        """`covered(plan, revision, target)`, and the dates of the target that submissions of
        `provider`'s other plans cover (the later intent wins): work another plan may already
        have done. The diff asks both of every target it declares: one look in the index."""
        found = self._covering(target)
        if len(found) == 1:  # nearly always: this plan's own submission, or another's
            record = found[0]
            if record.plan == plan:
                return (DateCoverage(found) if record.revision == revision else _NOTHING), _NOTHING
            return _NOTHING, (DateCoverage(found) if record.provider == provider else _NOTHING)
        mine = tuple(r for r in found if r.plan == plan and r.revision == revision)
        theirs = tuple(r for r in found if r.provider == provider and r.plan != plan)
        return (DateCoverage(mine) if mine else _NOTHING), (
            DateCoverage(theirs) if theirs else _NOTHING
        )

    def coverage(self) -> dict[Cell, SubmissionRecord]:
        """Every covered cell and the submission that covers it (a convenience that makes one
        object a cell; `covered` is the form that scales)."""
        by_target = self.indexed()._by_target
        assert by_target is not None
        cells: dict[Cell, SubmissionRecord] = {}
        for target in by_target:
            for record in self._covering(target):  # in intent order: the later one wins
                for first, last in record.spans:
                    for number in range(first, last + 1):
                        cells[Cell(record.plan, record.revision, target, day(number))] = record
        return cells


class DateCoverage:
    """The submissions covering one target's dates, as runs of days in intent order.

    Made when asked from the records alone (`State.covered` keeps no coverage): what the
    common case reads (one settled submission, its days counted) is worked out from them
    without spelling out the runs."""

    __slots__ = ("_records", "_runs")

    def __init__(self, records: Sequence[SubmissionRecord] = ()) -> None:
        self._records = records
        """The covering submissions, in intent order, each with some days (its spans)."""
        self._runs: list[tuple[int, int, SubmissionRecord]] | None = None

    @property
    def runs(self) -> list[tuple[int, int, SubmissionRecord]]:
        """(first day, last day, submission), in intent order."""
        if self._runs is None:
            self._runs = [
                (first, last, record) for record in self._records for first, last in record.spans
            ]
        return self._runs

    def get(self, date: str) -> SubmissionRecord | None:
        return self.at(ordinal(date))

    def at(self, number: int) -> SubmissionRecord | None:
        """`get` the day of this ordinal."""
        for first, last, record in reversed(self.runs):  # the later intent wins
            if first <= number <= last:
                return record
        return None

    def attempts(
        self, date: str, of: Callable[[SubmissionRecord], bool] = lambda record: True
    ) -> int:
        """How many covering submissions (those `of` accepts) include `date`: the attempts at
        that cell that may have run (rejected, unsent or forgotten ones did not)."""
        number = ordinal(date)
        return sum(1 for first, last, r in self.runs if first <= number <= last and of(r))

    def __bool__(self) -> bool:
        return bool(self._records)

    def in_sync(
        self, fingerprint: str, spans: tuple[tuple[int, int], ...], days: int
    ) -> tuple[int, int] | None:
        """The common case, counted by runs without walking dates: when every covering
        submission has this fingerprint and a known outcome, and `refresh` observed none of
        their cells (their health is per date), how many days of `spans` (sorted, disjoint:
        `days` of them) some submission covers, hence in sync, and how many days are covered in
        all (more means some covered days are outside `spans`); else None."""
        records = self._records
        if not records or any(
            record.status is not SubmissionStatus.SUBMITTED
            or record.fingerprint != fingerprint
            or record.health
            for record in records
        ):
            return None
        if len(records) == 1 and records[0].spans == spans:  # nearly always: exactly these days
            return days, days
        covered = merge_spans((first, last) for first, last, _ in self.runs)
        total, i = 0, 0
        for first, last in spans:
            while i < len(covered) and covered[i][1] < first:
                i += 1
            j = i
            while j < len(covered) and covered[j][0] <= last:
                total += min(last, covered[j][1]) - max(first, covered[j][0]) + 1
                j += 1
        return total, sum(last - first + 1 for first, last in covered)


_NOTHING = DateCoverage()


def parse_spans(texts: list[str]) -> tuple[tuple[int, int], ...]:
    spans = []
    for text in texts:
        start, _, end = text.partition("..")
        first = ordinal(start)
        last = ordinal(end) if end else first
        if last < first:
            raise ValueError(f"date run {text!r} ends before it starts")
        spans.append((first, last))
    return tuple(spans)


def record_to_json(record: SubmissionRecord) -> dict[str, JSON]:
    """The record as the snapshot keeps it: what the diff and the views of many records read.
    Endpoint, parameters, request and actor stay in the journal, at `intent_seq`."""
    return {
        "key": record.key,
        "plan": record.plan,
        "revision": record.revision,
        "provider": record.provider,
        "action": record.action,
        "region": record.region,
        "targets": list(record.targets),
        "dates": compact_dates(record.spans),
        "fingerprint": record.fingerprint,
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
        "health": health_to_json(record.health),
        "observed_time": record.observed_time,
    }


def health_to_json(runs: tuple[HealthRun, ...]) -> list[list[str]]:
    """`[target, "2025-09-01..2025-09-03", health, raw]` a run: as journaled and snapshotted."""
    return [
        [target, *compact_dates(((first, last),)), str(health), raw]
        for target, first, last, health, raw in runs
    ]


_HEALTH = {str(health): health for health in Health}


def health_from_json(value: Any) -> tuple[HealthRun, ...]:
    """Raises ValueError naming what is wrong when `value` is not a list of health runs."""
    if not isinstance(value, list):
        raise ValueError("`health` is not a list")
    runs: list[HealthRun] = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 4
            or not all(isinstance(part, str) for part in item)
        ):
            raise ValueError(f"health run {item!r} is not [target, dates, health, raw]")
        target, dates, health, raw = item
        if health not in _HEALTH:
            raise ValueError(f"unknown health {health!r}")
        ((first, last),) = parse_spans([dates])
        runs.append((target, first, last, _HEALTH[health], raw))
    return tuple(runs)


_RECORD_TYPES: Mapping[str, type] = {
    "key": str,
    "plan": str,
    "revision": int,
    "provider": str,
    "action": str,
    "region": str,
    "targets": list,
    "dates": list,
    "fingerprint": str,
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
    "health": list,
    "observed_time": str,
}


_STATUSES = {str(status): status for status in SubmissionStatus}
_NAMES = tuple("dates" if f.name == "spans" else f.name for f in fields(SubmissionRecord))
"""The record's JSON fields in the order of the dataclass's fields (spans are `dates` there)."""
_GET = itemgetter(*_NAMES)
_TYPES = tuple(_RECORD_TYPES[name] for name in _NAMES)
_KEY, _TARGETS, _SPANS, _STATUS, _DETAIL, _HEALTH_RUNS = (
    _NAMES.index(name) for name in ("key", "targets", "dates", "status", "detail", "health")
)
_REPEATED = tuple(
    _NAMES.index(name) for name in ("plan", "provider", "action", "region", "fingerprint", "code")
)
"""Fields that many records of a state say alike: a plan's name and fingerprint in each of
its chunks, a few providers, actions, regions and error codes across the whole state."""
NO_DETAIL: Mapping[str, JSON] = {}
"""The detail of every record whose reply had none (most): one empty mapping, not one each."""


class _Unsealed:
    """A `SubmissionRecord` while `_record` fills it: the same slots, writable, so that each is
    set by a plain attribute store rather than through the frozen class's guard."""

    __slots__ = tuple(f.name for f in fields(SubmissionRecord))


def _record_maker() -> Callable[[Sequence[Any]], SubmissionRecord]:
    """`_record`, written out for the record's fields as `dataclasses` writes a `__init__`."""
    names = ", ".join(f"record.{f.name}" for f in fields(SubmissionRecord))
    source = (
        "def _record(values):\n"
        "    record = new(Unsealed)\n"
        f"    {names}, = values\n"
        "    record.__class__ = Record\n"
        "    return record\n"
    )
    scope: dict[str, Any] = {
        "new": object.__new__,
        "Unsealed": _Unsealed,
        "Record": SubmissionRecord,
    }
    exec(source, scope)  # noqa: S102 (the source is the field names above, nothing else)
    made: Callable[[Sequence[Any]], SubmissionRecord] = scope["_record"]
    return made


_record = _record_maker()
"""`SubmissionRecord(*values)` (checked just before) in a sixth of its time: the frozen
dataclass's `__init__`, which sets each slot through `object.__setattr__`, is most of what
loading a record would cost. The record is made an `_Unsealed` one, its slots stored in one
unpacking, then given its class (the two have one layout; Python refuses the switch if they
ever differ). Its `__init__` does nothing else."""


class Sharing:
    """One object for each value that the records of one state repeat (`record_from_json`):
    a repo-scale snapshot spells a plan's name, fingerprint, dates and targets in every chunk
    it was submitted in, and a copy each costs as much as the first. Kept while one state is
    read. A list of dates or targets is checked (and dates parsed) once, when first seen."""

    __slots__ = ("_days", "_spans", "_targets", "strings")

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        """Each string seen, to itself: `strings.setdefault(text, text)` is the one copy."""
        self._spans: dict[tuple[Any, ...], tuple[tuple[int, int], ...]] = {}
        """The spans of each list of dates seen, parsed once."""
        self._targets: dict[tuple[Any, ...], tuple[str, ...]] = {}
        """Each list of targets seen, as one tuple."""
        self._days: dict[int, int] = {}
        """Each day (ordinal) of the spans, to itself, as `strings`."""

    def spans(self, dates: Sequence[list[Any]]) -> list[tuple[tuple[int, int], ...]]:
        """The spans of each list of dates. Raises ValueError like `parse_spans`, or when one
        is not a list of strings."""
        return _each(self._spans, dates, self._spans_of)

    def targets(self, targets: Sequence[list[Any]]) -> list[tuple[str, ...]]:
        """Each list of targets as a tuple. Raises ValueError when one is not a list of
        strings."""
        return _each(self._targets, targets, list)

    def _spans_of(self, lists: list[tuple[str, ...]]) -> list[tuple[tuple[int, int], ...]]:
        """`parse_spans` of each list of dates, all their runs parsed in C loops (`ordinal` is
        `date.fromisoformat`); `parse_spans` itself says what is wrong when one is."""
        texts = list(chain.from_iterable(lists))
        if not texts:
            return [() for _ in lists]
        starts, _, ends = zip(*map(str.partition, texts, repeat("..")), strict=True)
        try:
            firsts = list(map(date.toordinal, map(date.fromisoformat, starts)))
            lasts = list(map(date.toordinal, map(date.fromisoformat, map(_or, ends, starts))))
            wrong = any(map(gt, firsts, lasts))
        except ValueError:
            wrong = True
        if wrong:
            return [parse_spans(list(dates)) for dates in lists]  # raises, saying what is wrong
        days = self._days
        spans = zip(
            map(days.setdefault, firsts, firsts), map(days.setdefault, lasts, lasts), strict=True
        )
        return [tuple(islice(spans, len(dates))) for dates in lists]


_NOT_STRINGS = "`targets` or `dates` is not a list of strings"
_T = TypeVar("_T")


def _each(
    seen: dict[tuple[Any, ...], _T],
    lists: Sequence[list[Any]],
    make: Callable[[list[tuple[str, ...]]], list[_T]],
) -> list[_T]:
    """What `make` makes of each list of strings (given every new one at once, it makes a
    value of each), made once for each distinct one: `seen` keeps them, checked. Every step
    is a C loop over the lists."""
    shapes = list(map(tuple, lists))
    try:
        found: list[_T | None] = list(map(seen.get, shapes))
    except TypeError:  # an unhashable item: no string
        raise ValueError(_NOT_STRINGS) from None
    if None in found:
        new = list(dict.fromkeys(compress(shapes, map(is_, found, repeat(None)))))
        if not set(map(type, chain.from_iterable(new))) <= {str}:
            raise ValueError(_NOT_STRINGS)
        seen.update(zip(new, make(new), strict=True))
        found = list(map(seen.__getitem__, shapes))
    return found  # type: ignore[return-value]  # no None is left


def _or(text: str, otherwise: str) -> str:
    return text or otherwise


def record_from_json(value: Any, shared: Sharing) -> SubmissionRecord:
    """Raises ValueError with a sentence naming the field when `value` is not a record; else the
    record `records_from_json` makes of it. What records repeat is `shared` among them.

    A snapshot is read a batch at a time (`records_from_json`); this runs for the records of a
    batch where some record is wrong, to say which and why, in the order the fields are told.
    """
    if type(value) is not dict or len(value) != len(_NAMES):
        raise ValueError(_shape_problem(value))
    try:
        values = _GET(value)
    except KeyError:  # as many fields, not those
        raise ValueError(_shape_problem(value)) from None
    # exact types, since `json.loads` makes nothing else (and a bool is never a count)
    if tuple(map(type, values)) != _TYPES:
        name = next(n for n, v, k in zip(_NAMES, values, _TYPES, strict=True) if type(v) is not k)
        raise ValueError(f"`{name}` is not a {_RECORD_TYPES[name].__name__}")
    shared.targets([values[_TARGETS]])  # raises when they are not strings
    if values[_STATUS] not in _STATUSES:
        if not all(type(item) is str for item in values[_SPANS]):  # the problem told first
            raise ValueError(_NOT_STRINGS)
        raise ValueError(f"unknown status {value['status']!r}")
    shared.spans([values[_SPANS]])  # raises like `parse_spans`
    if values[_HEALTH_RUNS]:
        health_from_json(values[_HEALTH_RUNS])  # raises naming what is wrong
    made = records_from_json({values[_KEY]: value}, shared)
    assert made is not None  # it checks nothing that was not checked above
    return made[0]


def records_from_json(batch: Mapping[str, Any], shared: Sharing) -> list[SubmissionRecord] | None:
    """The records of a batch of submissions as `json.loads` made it (key -> record), in its
    order; None unless each is a record filed under its own key (then `record_from_json`, one
    at a time, says which is not and why).

    What `record_from_json` checks of a record, this checks of a field of the whole batch at
    once, in C loops (`map`, `set`, `zip`): most of a load is spent here."""
    values = list(batch.values())
    if not values:
        return []
    if set(map(type, values)) != {dict} or set(map(len, values)) != {len(_NAMES)}:
        return None
    try:
        columns: list[Any] = list(zip(*map(_GET, values), strict=True))
    except KeyError:  # as many fields, not those
        return None
    if any(set(map(type, column)) != {kind} for column, kind in zip(columns, _TYPES, strict=True)):
        return None
    keys = tuple(batch)
    statuses = list(map(_STATUSES.get, columns[_STATUS]))
    if columns[_KEY] != keys or None in statuses:
        return None
    try:
        targets = shared.targets(columns[_TARGETS])
        spans = shared.spans(columns[_SPANS])
        health = [health_from_json(runs) if runs else () for runs in columns[_HEALTH_RUNS]]
    except ValueError:
        return None
    columns[_KEY], columns[_STATUS] = keys, statuses
    columns[_TARGETS], columns[_SPANS], columns[_HEALTH_RUNS] = targets, spans, health
    columns[_DETAIL] = [detail or NO_DETAIL for detail in columns[_DETAIL]]
    strings = shared.strings
    for index in _REPEATED:
        columns[index] = map(strings.setdefault, columns[index], columns[index])
    return list(map(_record, zip(*columns, strict=True)))


def _shape_problem(value: Any) -> str:
    if not isinstance(value, dict):
        return "is not a JSON object"
    missing = sorted(_RECORD_TYPES.keys() - value.keys())
    extra = sorted(value.keys() - _RECORD_TYPES.keys())
    what = [f"missing {', '.join(missing)}"] if missing else []
    what += [f"unexpected {', '.join(extra)}"] if extra else []
    return "; ".join(what)
