"""`backfill audit report`: per plan, target and date, the attempt that succeeded (remote id,
when it was seen finished, who submitted it, commit, PR), and the dates that never succeeded."""

from __future__ import annotations

import json
from collections.abc import Callable

from factories import TASKS, dms_plan, wedata_plan, write
from harness import Served

from reconciler.domain import Health
from reconciler.state import load_state


def github(user: str, pr: int, sha: str) -> dict[str, str]:
    """The variables an apply in GitHub Actions reads its actor from."""
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": user,
        "GITHUB_SHA": sha,
        "GITHUB_REF": f"refs/pull/{pr}/merge",
        "GITHUB_REPOSITORY": "acme/backfills",
    }


def test_the_report_names_the_attempt_that_succeeded_and_the_dates_that_never_did(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=[("2025-09-01", "2025-09-05")], reprocess="failed"))
    base = ws.env
    ws.env = {**base, **github("alice", 42, "a" * 40)}
    assert ws.apply().returncode == 0
    [first] = load_state(ws.state).submissions

    said = {(TASKS[0], "2025-09-03"): Health.FAILED, (TASKS[1], "2025-09-05"): Health.RUNNING}
    ws.observe(lambda target, date: said.get((target, date), Health.SUCCEEDED))
    ws.env = {**base, **github("bob", 43, "b" * 40)}
    assert ws.apply().returncode == 0  # the failed cell, again
    [retry] = set(load_state(ws.state).submissions) - {first}
    retried = {(TASKS[0], "2025-09-03"): Health.SUCCEEDED, (TASKS[1], "2025-09-05"): Health.RUNNING}
    ws.observe(lambda target, date: retried.get((target, date), Health.SUCCEEDED))

    done = ws.run("audit", "report", "--format", "json")
    assert done.returncode == 0, done.stderr
    [plan] = json.loads(done.stdout)["plans"]
    assert plan["plan"] == "orders-backfill"
    by = {(s["target"], tuple(s["dates"])): s for s in plan["succeeded"]}
    again = by[(TASKS[0], ("2025-09-03",))]
    assert (again["key"], again["user"], again["pr"], again["commit"]) == (
        retry,
        "bob",
        "43",
        "b" * 40,
    )
    assert again["replaces"] == [first]
    assert again["remote_id"]
    assert again["finished"]
    once = by[(TASKS[0], ("2025-09-01..2025-09-02", "2025-09-04..2025-09-05"))]
    assert (once["key"], once["user"], once["pr"]) == (first, "alice", "42")
    assert by[(TASKS[1], ("2025-09-01..2025-09-04",))]["key"] == first
    assert plan["never_succeeded"] == [
        {"target": TASKS[1], "dates": ["2025-09-05"], "last_attempt": "running", "attempts": 1}
    ]

    shown = ws.run("audit", "report")
    assert shown.returncode == 0
    assert "never succeeded:" in shown.stdout
    assert "#43" in shown.stdout
    table = ws.run("audit", "report", "--format", "markdown").stdout
    assert "**Never succeeded**" in table
    assert f"| {TASKS[1]} | 2025-09-05 | running | 1 |" in table


def test_one_plan_and_an_untouched_journal(served: Callable[..., Served]) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS))
    write(ws.root / "plans" / "dms.yaml", dms_plan("other", dags=[15001]))
    ws.apply()
    only = json.loads(ws.run("audit", "report", "--plan", "other", "--format", "json").stdout)
    [plan] = only["plans"]
    assert plan["plan"] == "other"
    assert plan["succeeded"] == []  # never refreshed: nothing is known to have succeeded
    assert plan["never_succeeded"][0]["last_attempt"] == "submitted"

    journal = ws.state / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    number = next(n for n, line in enumerate(lines) if '"type":"intent"' in line)
    lines[number] = lines[number].replace('"revision":1', '"revision":2')
    journal.write_text("".join(lines))
    damaged = ws.run("audit", "report")
    assert damaged.returncode == 1
    assert f"journal.jsonl:{number + 1}" in damaged.stderr
