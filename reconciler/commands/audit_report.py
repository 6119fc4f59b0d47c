"""`backfill audit report`: for each plan, target and date, the attempt that succeeded (remote
id, when `refresh` saw it finished, who submitted it, from which commit and pull request), and
the dates that never succeeded, with what became of their last attempt. The answer an auditor
asks for, read from the journal through the state's reader (`History`), the chain checked."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.domain import JSON, Health, SubmissionStatus, day, merge_spans
from reconciler.reports.audit_report import NeverSucceeded, PlanRan, Ran, Succeeded
from reconciler.state import EventType, History, SubmissionRecord
from reconciler.state.records import health_from_json

CellKey = tuple[str, str, int]
"""(plan, target, day ordinal)."""


def _last_word(record: SubmissionRecord, target: str, date: str) -> str:
    if record.status is not SubmissionStatus.SUBMITTED:
        return str(record.shown_status)
    seen = record.health_of(target, date)
    return str(seen[0]) if seen else "submitted"


def report(directory: Path, *, plan: str | None = None) -> Ran:
    """Every cell any intent named (of `plan`, if given), read from line 1 of the journal.

    Raises StateError naming the first damaged line (see `backfill audit verify`)."""
    events = History(directory)
    records: dict[str, SubmissionRecord] = {}
    sent: dict[str, tuple[Mapping[str, JSON], tuple[str, ...]]] = {}
    """Key -> who journaled its latest intent, and the attempts it replaces."""
    first_success: dict[tuple[str, str, int], str] = {}
    """(key, target, day) -> when an observation first said it succeeded."""
    for event, record in events:
        if record is None or (plan is not None and record.plan != plan):
            continue
        records[record.key] = record
        if event["type"] == EventType.INTENT:
            sent[record.key] = (event["actor"], tuple(event["data"].get("replaces", ())))
        elif event["type"] == EventType.OBSERVED:
            for target, first, last, health, _ in health_from_json(event["data"]["cells"]):
                if health is Health.SUCCEEDED:
                    for number in range(first, last + 1):
                        first_success.setdefault((record.key, target, number), event["time"])
    winner: dict[CellKey, tuple[SubmissionRecord, str]] = {}
    latest: dict[CellKey, SubmissionRecord] = {}
    tries: dict[CellKey, int] = {}
    for record in sorted(records.values(), key=lambda r: r.intent_seq):
        for target in record.targets:
            for first, last in record.spans:
                for number in range(first, last + 1):
                    cell = (record.plan, target, number)
                    latest[cell] = record
                    tries[cell] = tries.get(cell, 0) + int(record.covers_cells)
                    seen = record.health_of(target, day(number))
                    if seen and seen[0] is Health.SUCCEEDED:
                        finished = first_success.get((record.key, target, number), "")
                        winner[cell] = (record, finished or record.observed_time)
    return Ran(
        events.path,
        _by_plan(records, sent, winner, latest, tries),
        events.seq,
        events.head_hash,
        events.warnings,
    )


def _by_plan(
    records: Mapping[str, SubmissionRecord],
    sent: Mapping[str, tuple[Mapping[str, JSON], tuple[str, ...]]],
    winner: Mapping[CellKey, tuple[SubmissionRecord, str]],
    latest: Mapping[CellKey, SubmissionRecord],
    tries: Mapping[CellKey, int],
) -> tuple[PlanRan, ...]:
    """Cells folded into runs of days per plan and target that share everything shown."""
    succeeded: dict[tuple[str, str, str, str], list[int]] = {}
    never: dict[tuple[str, str, str, int], list[int]] = {}
    for cell in sorted(latest):
        name, target, number = cell
        if cell in winner:
            record, finished = winner[cell]
            succeeded.setdefault((name, target, record.key, finished), []).append(number)
        else:
            word = _last_word(latest[cell], target, day(number))
            never.setdefault((name, target, word, tries[cell]), []).append(number)
    plans: dict[str, tuple[list[Succeeded], list[NeverSucceeded]]] = {}
    for (name, target, key, finished), numbers in succeeded.items():
        record = records[key]
        plans.setdefault(name, ([], []))[0].append(
            Succeeded(
                target,
                tuple(merge_spans((n, n) for n in numbers)),
                key,
                record.revision,
                record.remote_id,
                finished,
                *sent[key],
            )
        )
    for (name, target, word, attempts), numbers in never.items():
        plans.setdefault(name, ([], []))[1].append(
            NeverSucceeded(target, tuple(merge_spans((n, n) for n in numbers)), word, attempts)
        )
    return tuple(
        PlanRan(
            name,
            tuple(sorted(done, key=lambda s: (s.target, s.spans))),
            tuple(sorted(left, key=lambda s: (s.target, s.spans))),
        )
        for name, (done, left) in sorted(plans.items())
    )
