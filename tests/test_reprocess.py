"""`spec.reprocess: failed`: the cells the platform said failed are sent again, once, as a new
attempt linked to the one it replaces, at most `spec.maxAttempts` times in all. Through the CLI
against the emulator served on loopback, counting the creates it accepted.

The health of the cells is journaled as `refresh` does it: `observed` events, written through
the state's writer under the lock (`StateWriter.record_observed`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import httpx
from factories import TASKS, wedata_plan
from harness import Served, failing

from reconciler.domain import Health
from reconciler.emulator.faults import FaultConfig
from reconciler.state import intent_details, load_state


def replaced(ws: Served) -> dict[str, tuple[str, ...]]:
    """Each submission's key -> the attempts its latest intent replaces (none for a first)."""
    state = load_state(ws.state)
    sent = intent_details(state, state.submissions.values())
    return {key: details.replaces for key, details in sent.items()}


SEPTEMBER = [("2025-09-01", "2025-09-05")]


FAILED = {(TASKS[0], "2025-09-02"), (TASKS[0], "2025-09-03"), (TASKS[1], "2025-09-05")}


def test_apply_sends_exactly_the_failed_cells_once_and_a_rerun_sends_nothing(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER, reprocess="failed"))
    assert ws.apply().returncode == 0
    assert len(ws.creates()) == 10
    ws.observe(failing(FAILED))

    planned = ws.run("plan", "--detailed-exitcode", "--format", "json")
    assert planned.returncode == 2
    shown = json.loads(planned.stdout)
    [plan] = shown["plans"]
    assert plan["retry_cells"] == plan["create_cells"] == 3
    assert plan["health"] == {"succeeded": 7}
    first_key = next(iter(load_state(ws.state).submissions))
    assert {k for s in plan["submissions"] for k in s["replaces"]} == {first_key}

    text = ws.run("plan").stdout
    assert f"retries: the failed cells of {first_key}" in text
    assert "7 cells in sync (7 succeeded)" in text
    review = ws.run("plan", "--format", "markdown").stdout
    assert "3 failed cells sent again" in review
    assert "7 cells in sync (7 succeeded)" in review

    assert ws.apply().returncode == 0
    retried = Counter(ws.creates()[10:])
    assert retried == Counter(FAILED)  # each failed cell once, nothing else
    # grouped like any create: task 0's two days in one call, task 1's day in another
    assert len(ws.emulator.calls.all()) == 3
    assert set(replaced(ws).values()) == {(), (first_key,)}

    assert ws.apply().returncode == 0
    assert ws.run("plan", "--detailed-exitcode").returncode == 0
    assert len(ws.creates()) == 13


def test_running_waiting_and_unknown_cells_are_never_sent_again(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER, reprocess="failed"))
    ws.apply()
    said = [Health.RUNNING, Health.WAITING, Health.UNKNOWN, Health.STOPPED, Health.SUCCEEDED]
    ws.observe(lambda target, date: said[int(date[-1]) % len(said)])
    assert ws.run("plan", "--detailed-exitcode").returncode == 0
    assert ws.apply().returncode == 0
    assert len(ws.creates()) == 10


def test_without_reprocess_failed_cells_are_shown_failed_and_left_alone(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER))
    ws.apply()
    ws.observe(failing(FAILED))
    planned = ws.run("plan", "--detailed-exitcode")
    assert planned.returncode == 0
    assert "3 failed" in planned.stdout
    assert ws.apply().returncode == 0
    assert len(ws.creates()) == 10


def test_max_attempts_stops_the_loop_and_asks_for_attention(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER, reprocess="failed", maxAttempts=2))
    ws.apply()
    always = failing([(TASKS[1], "2025-09-05")])
    ws.observe(always)
    assert ws.apply().returncode == 0  # the second attempt
    assert Counter(ws.creates())[(TASKS[1], "2025-09-05")] == 2
    ws.observe(always)  # fails again: two attempts of two

    planned = ws.run("plan", "--detailed-exitcode", "--format", "json")
    assert planned.returncode == 3
    [exhausted] = json.loads(planned.stdout)["exhausted"]
    assert exhausted == {
        "plan": "orders-backfill",
        "revision": 1,
        "target": TASKS[1],
        "dates": ["2025-09-05"],
        "attempts": 2,
    }
    applied = ws.apply()
    assert applied.returncode == 1
    assert "maxAttempts" in applied.stderr + applied.stdout
    assert Counter(ws.creates())[(TASKS[1], "2025-09-05")] == 2

    # Raising the bound is how a person asks for one more try.
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER, reprocess="failed", maxAttempts=3))
    assert ws.apply().returncode == 0
    assert Counter(ws.creates())[(TASKS[1], "2025-09-05")] == 3


def test_a_bound_outside_the_contract_is_refused_at_its_line(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(reprocess="failed", maxAttempts=0))
    done = ws.run("validate", "plans")
    assert done.returncode == 1
    assert "plans/plan.yaml:" in done.stderr
    assert "maxAttempts" in done.stderr


MANY = [str(20250827115253740 + n) for n in range(6)]


def settle(ws: Served) -> None:
    """What a person does about the unknown outcomes a kill left: with the emulator's call log
    as the console to check (WeData's plan name carries the submission key), import or forget."""
    created = {c["params"]["DataBackfillPlanName"]: c for c in ws.emulator.calls.all()}
    state = load_state(ws.state)
    unsettled = [r for r in state.submissions.values() if r.needs_attention]
    sent = intent_details(state, unsettled)
    for record in unsettled:
        call = created.get(str(sent[record.key].request["DataBackfillPlanName"]))
        if call is not None:
            done = ws.run(
                "state",
                "import",
                record.key,
                "--remote-id",
                call["remote_id"],
                "--reason",
                "the console lists it",
            )
        else:
            done = ws.run("state", "forget", record.key, "--reason", "the console has no such plan")
        assert done.returncode == 0, done.stderr


def test_kill_9_during_an_apply_of_retries_loses_nothing_and_duplicates_nothing(
    served: Callable[..., Served],
) -> None:
    ws = served()
    ws.plan(wedata_plan(tasks=MANY, dates=[("2025-09-01", "2025-09-06")], reprocess="failed"))
    assert ws.apply().returncode == 0
    first = len(ws.emulator.calls.all())
    # each task fails on its own day: six retries, one call each
    bad = {(task, f"2025-09-0{n + 1}") for n, task in enumerate(MANY)}
    ws.observe(failing(bad))
    # every create now takes a while at the server, so that the kill finds calls in flight
    slow = {"slow_rate": 1.0, "slow_ms": 400, "seed": 7}
    httpx.post(f"{ws.url}/_emulator/faults", json=slow).raise_for_status()

    running = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--yes", "--quiet", "--parallel", "2"],
        cwd=ws.root,
        env={**ws.env, "BACKFILL_ENDPOINT": ws.url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while ws.emulator.stats()["requests"] < first + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    running.kill()  # SIGKILL: calls in flight are journaled as intents only
    running.wait()
    while ws.emulator.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    killed = load_state(ws.state)
    assert any(r.needs_attention for r in killed.submissions.values()), "nothing was in flight"
    assert len(ws.emulator.calls.all()) < first + len(bad), "the kill came after the last call"

    httpx.post(f"{ws.url}/_emulator/faults", json={"seed": 7}).raise_for_status()
    assert ws.apply().returncode == 1  # the unknown outcomes are never sent again by themselves
    settle(ws)
    assert ws.apply().returncode == 0
    assert ws.apply().returncode == 0
    assert ws.run("plan", "--detailed-exitcode").returncode == 0

    creates = Counter(ws.creates())
    assert {cell: n for cell, n in creates.items() if n != 1} == dict.fromkeys(bad, 2)
    assert len(creates) == len(MANY) * 6
    state = load_state(ws.state)
    retries = [key for key, replaces in replaced(ws).items() if replaces]
    assert len([key for key in retries if state.submissions[key].covers_cells]) == len(bad)


# --- the whole loop, as the scheduled workflow runs it: apply --wait, refresh, apply again ---


def _failed_runs(ws: Served) -> Counter[tuple[str, str]]:
    """(target, date) -> how many of its runs failed, in the emulator's own records."""
    failed: Counter[tuple[str, str]] = Counter()
    for service in ws.emulator.services:
        for plan in getattr(service, "_plans", {}).values():
            failed.update((i.task_id, i.data_time[:10]) for i in plan.instances if i.fails)
    return failed


def _apply_wait(ws: Served) -> subprocess.CompletedProcess[str]:
    return ws.run(
        "apply", "--yes", "--wait", "--wait-interval", "0.1", "--wait-timeout", "100"
    )  # fmt: skip


def test_the_failed_cells_refresh_finds_are_sent_again_exactly_once_until_all_succeed(
    served: Callable[..., Served],
) -> None:
    """No observed event is made by hand here: `apply --wait` follows the runs through the
    platform's read API, and the next apply sends exactly the cells the platform failed."""
    ws = served(FaultConfig(instance_failure_rate=0.5, instance_seconds=0.05, seed=3))
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER, reprocess="failed"))

    first = _apply_wait(ws)
    failed = set(_failed_runs(ws))
    assert failed, "the seed makes some of the first runs fail"
    assert first.returncode == 1, first.stdout + first.stderr
    assert len(ws.creates()) == 10

    httpx.post(f"{ws.url}/_emulator/faults", json={"instance_seconds": 0.05}).raise_for_status()
    second = _apply_wait(ws)
    assert second.returncode == 0, second.stdout + second.stderr
    assert Counter(ws.creates()[10:]) == Counter(failed)  # each failed cell once, nothing else

    assert ws.apply().returncode == 0
    assert len(ws.creates()) == 10 + len(failed)
    assert ws.run("plan", "--detailed-exitcode").returncode == 0


def test_a_cell_that_keeps_failing_gets_max_attempts_runs_and_then_a_person(
    served: Callable[..., Served],
) -> None:
    ws = served(FaultConfig(instance_failure_rate=1.0, instance_seconds=0.05))
    ws.plan(wedata_plan(tasks=TASKS, dates=SEPTEMBER, reprocess="failed", maxAttempts=2))

    assert _apply_wait(ws).returncode == 1
    assert _apply_wait(ws).returncode == 1
    assert Counter(ws.creates()) == dict.fromkeys(ws.creates(), 2)
    sent = len(ws.creates())

    third = _apply_wait(ws)
    assert third.returncode == 1
    assert len(ws.creates()) == sent  # exhausted: never sent a third time
    assert "exhausted" in (third.stdout + third.stderr).lower()
    assert ws.run("plan", "--detailed-exitcode").returncode == 3


def test_a_plan_renamed_by_takeover_keeps_counting_the_attempts_of_its_old_name(
    served: Callable[..., Served],
) -> None:
    ws = served(FaultConfig(instance_failure_rate=1.0, instance_seconds=0.05))
    day = [("2025-09-01", "2025-09-01")]
    ws.plan(wedata_plan("orders", tasks=TASKS[:1], dates=day, reprocess="failed", maxAttempts=2))
    assert _apply_wait(ws).returncode == 1  # the first attempt, failed
    assert len(ws.creates()) == 1

    takeover = [{"plan": "orders", "mode": "rename"}]
    ws.plan(
        wedata_plan(
            "orders-daily",
            tasks=TASKS[:1],
            dates=day,
            reprocess="failed",
            maxAttempts=2,
            takeover=takeover,
        )
    )
    assert _apply_wait(ws).returncode == 1  # the second attempt, under the new name
    assert len(ws.creates()) == 2
    third = _apply_wait(ws)
    assert third.returncode == 1
    assert len(ws.creates()) == 2  # two attempts of two: never a third
    assert ws.run("plan", "--detailed-exitcode").returncode == 3
