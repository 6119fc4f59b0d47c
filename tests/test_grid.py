"""`backfill status`: each declared plan's sync and health, and its grid of targets x dates, one
mark per cell, as text, Markdown (within a comment's limit) and JSON (as its schema says)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
from factories import TASKS, dms_plan, wedata_plan, write
from harness import Served, cli, failing

from reconciler import pipeline
from reconciler.commands.status import grid_report
from reconciler.domain import Health
from reconciler.execute import intent
from reconciler.grid import Mark
from reconciler.state import open_state
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
