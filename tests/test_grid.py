"""`backfill status`: each declared plan's sync and health, and its grid of targets x dates, one
mark per cell, as text, Markdown (within a comment's limit) and JSON (as its schema says)."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import jsonschema
from factories import TASKS, dms_plan, wedata_plan, write
from harness import Served, cli, failing

from reconciler import pipeline
from reconciler.commands.status import grid_report
from reconciler.domain import Health, Plan, day, merge_spans
from reconciler.execute import intent
from reconciler.grid import Mark, _row
from reconciler.state import State, SubmissionRecord, SubmissionStatus, open_state
from reconciler.state.records import DateCoverage, HealthRun
from reconciler.views import grid as view

REPO = Path(__file__).parents[1]
SCHEMA = json.loads((REPO / "schemas" / "status-output.schema.json").read_text("utf-8"))


def test_status_draws_a_month_day_by_day_with_the_failed_cells_where_they_are(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=[("2025-09-01", "2025-09-30")]))
    ws.apply()
    ws.observe(failing([(TASKS[1], "2025-09-07")]))
    journal = (ws.state / "journal.jsonl").read_bytes()

    shown = ws.run("status")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    [row] = [line for line in lines if line.strip().startswith(TASKS[1])]
    cells = row.split()[-1]
    assert cells == "#" * 6 + "X" + "#" * 23  # one mark per day, the 7th failed
    assert any("sync:   60 in sync" in line for line in lines)
    assert any("health: 59 succeeded, 1 failed" in line for line in lines)
    assert (ws.state / "journal.jsonl").read_bytes() == journal  # read-only
    assert len(ws.emulator.calls.all()) == 1


def test_cells_not_submitted_and_outcomes_unknown_have_their_own_marks(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=[("2025-09-01", "2025-09-03")]))
    with open_state(ws.state, actor={"user": "t"}, command="test") as writer:
        changes = pipeline.changeset(pipeline.plans([ws.root / "plans"]), writer.state)
        [first] = changes.creates
        writer.append("intent", intent(first, ws.url))  # its process died: outcome unknown
    ws.plan(wedata_plan(tasks=TASKS, dates=[("2025-09-01", "2025-09-05")]))
    report = grid_report([ws.root / "plans"], ws.state)
    [grid] = report.grids
    assert grid.counts == {Mark.OUTCOME_UNKNOWN: 6, Mark.NOT_SUBMITTED: 4}
    assert report.sync("orders-backfill").attention_cells == 6


def test_a_long_plan_is_drawn_a_month_a_line_alike_months_merged(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(dms_plan(dags=[15001, 15002], dates=[("2025-01-01", "2025-12-31")]))
    ws.apply()
    ws.observe(failing([("15001", "2025-06-15"), ("15002", "2025-06-15")]))
    shown = ws.run("status").stdout
    assert "15001, 15002:" in shown  # alike targets share their lines
    months = [line.split() for line in shown.splitlines() if line.startswith("    2025-")]
    assert months[0][:2] == ["2025-01..2025-05", "#"]
    assert months[1][0] == "2025-06"
    assert months[1][1] == "#" * 14 + "X" + "#" * 15
    assert months[2][:2] == ["2025-07..2025-12", "#"]

    table = ws.run("status", "--format", "markdown").stdout
    assert "| 2025-07..2025-12 | 🟩 every day |" in table


def test_the_json_output_is_what_its_schema_says(served: Callable[..., Served]) -> None:
    ws = served()
    ws.plan(
        wedata_plan(tasks=TASKS, dates=[("2025-09-01", "2025-09-05")], reprocess="failed"),
    )
    ws.apply()
    said = [Health.SUCCEEDED, Health.FAILED, Health.RUNNING, Health.WAITING, Health.UNKNOWN]
    ws.observe(lambda target, date: said[int(date[-1]) % 5])
    write(ws.root / "plans" / "more.yaml", dms_plan("more", dags=[15001]))
    done = ws.run("status", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["marks"] == [str(m) for m in Mark]
    orders = next(p for p in document["plans"] if p["name"] == "orders-backfill")
    assert orders["sync"]["retry_cells"] == 2
    assert orders["targets"][0]["runs"][0] == {"dates": "2025-09-01", "days": 1, "mark": "failed"}
    more = next(p for p in document["plans"] if p["name"] == "more")
    assert more["health"] == {"not submitted": 3}


def test_markdown_fits_a_comment_and_says_what_it_left_out(served: Callable[..., Served]) -> None:
    ws = served()
    for number in range(40):
        write(
            ws.root / "plans" / f"p{number}.yaml",
            wedata_plan(f"plan-{number}", tasks=[str(7000 + number)]),
        )
    report = grid_report([ws.root / "plans"], ws.state)
    whole = view.markdown(report)
    assert whole.count("#### ") == 40
    short = view.markdown(report, limit=4_000)
    assert len(short) <= 4_000
    shown = short.count("#### ")
    assert 0 < shown < 40
    assert f"{40 - shown} more plans not shown" in short


def test_status_of_one_plan_and_of_a_plan_not_declared(served: Callable[..., Served]) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS))
    one = ws.run("status", "orders-backfill")
    assert one.returncode == 0
    assert "orders-backfill" in one.stdout
    missing = cli("status", "nope", cwd=ws.root, env=ws.env)
    assert missing.returncode == 1
    assert "no plan named 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_row_worked_out_by_stretches_marks_every_day_as_looking_it_up_day_by_day() -> None:
    """`_row` decides a mark once per stretch of days where no covering submission or observed
    health starts or ends; seeded overlapping submissions (later intents win), unknown
    outcomes and health runs of several targets must give each day the mark its own lookup
    gives it."""
    rng = random.Random(7)
    start = date(2025, 1, 1).toordinal()
    for _ in range(200):
        records = []
        for seq in range(rng.randint(0, 5)):
            first = start + rng.randrange(60)
            last = first + rng.randrange(30)
            health: list[HealthRun] = []
            for target in ("t1", "t2"):
                day_ = first
                while day_ <= last:
                    end = min(last, day_ + rng.randrange(8))
                    if rng.random() < 0.6:
                        phase = rng.choice(list(Health))
                        health.append((target, day_, end, phase, phase.value.upper()))
                    day_ = end + 1
            status = rng.choice([SubmissionStatus.SUBMITTED, SubmissionStatus.UNKNOWN])
            records.append(_record(f"k{seq}", first, last, status, tuple(health)))
        coverage = DateCoverage(records)  # in intent order: the later one wins
        spans = merge_spans(
            (a, a + rng.randrange(20)) for a in (start + rng.randrange(90) for _ in range(3))
        )
        row = _row(_PLAN, "t1", spans, cast(State, _Covered(coverage)))
        by_stretch = {n: mark for a, b, mark in row.runs for n in range(a, b + 1)}
        by_day = {}
        for first, last in spans:
            for number in range(first, last + 1):
                record = coverage.get(day(number))
                seen = record.health_of("t1", day(number)) if record else None
                by_day[number] = (
                    Mark.NOT_SUBMITTED
                    if record is None
                    else Mark.OUTCOME_UNKNOWN
                    if record.needs_attention
                    else Mark(seen[0].value)
                    if seen
                    else Mark.SUBMITTED
                )
        assert by_stretch == by_day
        assert all(a <= b for a, b, _ in row.runs)
        assert all(  # runs as long as they can be: neighbours differ or leave a gap
            x[2] is not y[2] or x[1] + 1 < y[0] for x, y in itertools.pairwise(row.runs)
        )


_PLAN = cast(Plan, SimpleNamespace(name="p", revision=1))


class _Covered:
    def __init__(self, coverage: DateCoverage) -> None:
        self.coverage = coverage

    def covered(self, plan: str, revision: int, target: str) -> DateCoverage:
        return self.coverage


def _record(
    key: str, first: int, last: int, status: SubmissionStatus, health: tuple[HealthRun, ...]
) -> SubmissionRecord:
    return SubmissionRecord(
        key=key,
        plan="p",
        revision=1,
        provider="tencent-wedata",
        action="CreateDataBackfillPlan",
        region="ap-guangzhou",
        targets=("t1", "t2"),
        spans=((first, last),),
        fingerprint="f",
        status=status,
        remote_id="",
        request_id="",
        code="",
        message="",
        detail={},
        emulator=True,
        attempts=1,
        intent_seq=1,
        intent_time="",
        updated_seq=1,
        updated_time="",
        health=health,
        observed_time="",
    )


def test_a_plan_of_a_few_days_still_shows_its_month_over_the_days(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=[("2025-10-07", "2025-10-08")]))
    ws.apply()
    lines = ws.run("status").stdout.splitlines()
    [first_row] = [n for n, line in enumerate(lines) if line.strip().startswith(TASKS[0])]
    month, digits = lines[first_row - 2], lines[first_row - 1]
    assert month.split() == ["2025-10"]
    assert month.index("2025-10") == digits.index("78")  # over the first day's column
