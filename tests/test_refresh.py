"""`backfill refresh` and `--wait`: what the platforms say became of each submitted cell,
journaled; final cells never asked again; a kill loses and duplicates nothing; `apply --wait`
names exactly the cells that failed. All through the CLI against the emulator on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from conftest import FakeClock
from factories import TASKS, dms_plan, wedata_plan, write
from harness import Served, cli
from jsonschema import Draft202012Validator

from reconciler.domain import FINAL_HEALTH, Health, day, days
from reconciler.emulator.app import Emulator, RateLimit
from reconciler.emulator.dms import DmsService
from reconciler.emulator.faults import FaultConfig, Latency
from reconciler.emulator.wedata import WeDataService
from reconciler.state import EventType, load_state

Serve = Callable[..., tuple[Emulator, str]]
DATES = ("2025-09-01", "2025-09-06")


def conforms(output: str, schema: str) -> dict[str, Any]:
    """`output` parsed, checked against the schema the package ships."""
    document = json.loads(resources.files("reconciler.schemas").joinpath(schema).read_text())
    Draft202012Validator.check_schema(document)
    parsed: dict[str, Any] = json.loads(output)
    Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        parsed
    )
    return parsed


def emulated_failures(emulator: Emulator) -> set[tuple[str, str]]:
    """(target, date) of every run the emulator made that fails: its own view, not ours."""
    failed: set[tuple[str, str]] = set()
    for service in emulator.services:
        if isinstance(service, WeDataService):
            for plan in service._plans.values():
                failed |= {(i.task_id, i.data_time[:10]) for i in plan.instances if i.fails}
        elif isinstance(service, DmsService):
            failed |= {
                (str(i.dag_id), i.business_date.isoformat()) for i in service._instances if i.fails
            }
    return failed


def reads(url: str) -> int:
    """API requests the emulator answered that were not creates."""
    stats = httpx.get(f"{url}/_emulator/stats").json()
    return int(stats["requests"]) - int(stats["creates"])


def two_platforms(root: Path) -> None:
    write(root / "plans" / "orders.yaml", wedata_plan("orders", dates=[DATES]))
    write(root / "plans" / "flows.yaml", dms_plan("flows", dates=[DATES]))


def applied(root: Path, url: str, env: dict[str, str]) -> None:
    assert cli("init", cwd=root, env=env).returncode == 0
    done = cli("apply", "--yes", "--endpoint", url, cwd=root, env=env)
    assert done.returncode == 0, done.stderr


def orders_applied(
    root: Path, serve: Serve, env: dict[str, str], clock: FakeClock, seconds: float
) -> str:
    """A WeData plan applied to an emulator whose clock stands still (runs of `seconds` each);
    the emulator's URL."""
    clock.freeze()
    _, url = serve(clock=clock, faults=FaultConfig(instance_seconds=seconds))
    write(root / "plans" / "orders.yaml", wedata_plan("orders", dates=[DATES]))
    applied(root, url, env)
    return url


def test_refresh_journals_what_became_of_each_cell_and_never_asks_again_about_final_ones(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    faults = FaultConfig(instance_failure_rate=0.4, instance_seconds=1.0, seed=7)
    emulator, url = serve_emulator(clock=emulator_clock, faults=faults)
    two_platforms(tmp_path)
    applied(tmp_path, url, cli_env)
    emulator_clock.advance(200)  # every run has ended (signatures allow 5 minutes)

    first = cli("refresh", "--endpoint", url, "--format", "json", cwd=tmp_path, env=cli_env)
    assert first.returncode == 0, first.stderr
    assert conforms(first.stdout, "refresh-output.schema.json")["asked"] > 0
    state = load_state(tmp_path / "state")
    records = list(state.submissions.values())
    assert all(r.final for r in records)
    journaled_failures = {
        (target, date)
        for r in records
        for target, first, last, health, _ in r.health
        if health is Health.FAILED
        for date in days(day(first), day(last))
    }
    assert journaled_failures == emulated_failures(emulator)
    assert journaled_failures  # the seed makes some fail

    before = reads(url)
    second = cli("refresh", "--endpoint", url, "--format", "json", cwd=tmp_path, env=cli_env)
    assert second.returncode == 0, second.stderr
    assert conforms(second.stdout, "refresh-output.schema.json") | {"final": 0} == {
        "asked": 0,
        "changed": 0,
        "final": 0,
        "cells": 0,
        "changed_cells": 0,
        "observed": [],
        "errors": [],
    }
    assert reads(url) == before
    assert load_state(tmp_path / "state").seq == state.seq


def test_reads_the_platform_throttles_are_asked_again_and_every_answer_is_journaled(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str]
) -> None:
    emulator, url = serve_emulator(faults=FaultConfig(instance_seconds=0))
    write(tmp_path / "plans" / "orders.yaml", wedata_plan("orders", dates=[DATES], chunk=1))
    applied(tmp_path, url, cli_env)
    # WeData now takes fewer reads than the 20/s the tool paces them at: a burst is throttled.
    for service in emulator.services:
        if isinstance(service, WeDataService):
            service.limit = RateLimit(3, service.clock)

    done = cli("refresh", "--endpoint", url, "--format", "json", cwd=tmp_path, env=cli_env)

    assert done.returncode == 0, done.stderr
    report = conforms(done.stdout, "refresh-output.schema.json")
    assert (report["asked"], report["errors"]) == (6, [])
    assert emulator.stats()["actions"]["GetDataBackfillPlan"]["throttled"] > 0
    records = load_state(tmp_path / "state").submissions.values()
    assert all(r.final for r in records)


def test_a_refresh_journals_only_what_changed(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    url = orders_applied(tmp_path, serve_emulator, cli_env, emulator_clock, 10.0)

    def observed() -> int:
        return sum(
            1
            for line in (tmp_path / "state" / "journal.jsonl").read_text().splitlines()
            if json.loads(line)["type"] == EventType.OBSERVED
        )

    assert cli("refresh", "--endpoint", url, cwd=tmp_path, env=cli_env).returncode == 0
    assert observed() == 1
    assert cli("refresh", "--endpoint", url, cwd=tmp_path, env=cli_env).returncode == 0
    assert observed() == 1  # the same words again: nothing journaled
    emulator_clock.advance(15)
    assert cli("refresh", "--endpoint", url, cwd=tmp_path, env=cli_env).returncode == 0
    assert observed() == 2
    [record] = load_state(tmp_path / "state").submissions.values()
    assert record.health_of(record.targets[0], DATES[0]) == (Health.SUCCEEDED, "COMPLETED")
    assert record.health_of(record.targets[1], DATES[0]) == (Health.RUNNING, "RUNNING")


def test_plan_refresh_writes_nothing_and_apply_refresh_journals_first(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    url = orders_applied(tmp_path, serve_emulator, cli_env, emulator_clock, 1.0)
    emulator_clock.advance(200)
    journal = tmp_path / "state" / "journal.jsonl"
    before = journal.read_bytes()

    planned = cli("plan", "--refresh", "--endpoint", url, cwd=tmp_path, env=cli_env)
    assert planned.returncode == 0, planned.stderr
    assert journal.read_bytes() == before

    done = cli("apply", "--yes", "--refresh", "--endpoint", url, cwd=tmp_path, env=cli_env)
    assert done.returncode == 0, done.stderr
    [record] = load_state(tmp_path / "state").submissions.values()
    assert record.final


def test_plan_and_apply_refresh_say_what_the_refresh_read(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    url = orders_applied(tmp_path, serve_emulator, cli_env, emulator_clock, 1.0)
    emulator_clock.advance(200)  # every run succeeded
    cells = len(TASKS) * len(days(*DATES))
    refresh = ("--refresh", "--endpoint", url)

    text = cli("plan", *refresh, cwd=tmp_path, env=cli_env)
    assert text.returncode == 0, text.stderr
    assert f"Refreshed 1 backfill ({cells} cells): {cells} cells changed health" in text.stdout
    planned = cli("plan", *refresh, "--format", "json", cwd=tmp_path, env=cli_env)
    assert conforms(planned.stdout, "plan-output.schema.json")["refresh"] == {
        "asked": 1,
        "final": 0,
        "cells": cells,
        "changed_cells": cells,
        "errors": [],
    }
    unrefreshed = cli("plan", "--format", "json", cwd=tmp_path, env=cli_env)
    assert "refresh" not in conforms(unrefreshed.stdout, "plan-output.schema.json")

    applied = cli("apply", "--yes", *refresh, "--format", "json", cwd=tmp_path, env=cli_env)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["plan"]["refresh"]["changed_cells"] == cells
    # journaled: the next refresh reads nothing, and says so
    again = cli("apply", "--yes", *refresh, cwd=tmp_path, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert "Refreshed 0 backfills (0 cells): 0 cells changed health, 1 already final" in (
        again.stdout
    )


def killed_after(events: int, root: Path, env: dict[str, str], *args: str) -> None:
    """`backfill ARGS` killed with -9 once it has journaled `events` more events."""
    journal = root / "state" / "journal.jsonl"
    size = len(journal.read_text().splitlines())
    running = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # until it has journaled that much (however busy the machine), or it ended
    while len(journal.read_text().splitlines()) < size + events and running.poll() is None:
        time.sleep(0.02)
    os.kill(running.pid, signal.SIGKILL)
    running.wait()


def test_a_refresh_killed_halfway_loses_nothing_and_the_next_asks_only_what_is_open(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    dags = list(range(15001, 15013))
    faults = FaultConfig(latency=Latency(150, 150), instance_seconds=1.0)
    _, url = serve_emulator(clock=emulator_clock, faults=faults)
    write(tmp_path / "plans" / "flows.yaml", dms_plan("flows", dags=dags, dates=[DATES]))
    applied(tmp_path, url, cli_env)
    emulator_clock.advance(200)
    journal = tmp_path / "state" / "journal.jsonl"

    killed_after(3, tmp_path, cli_env, "refresh", "--parallel", "1", "--endpoint", url)
    kept = load_state(tmp_path / "state")
    done_before = {k for k, r in kept.submissions.items() if r.final}
    assert 3 <= len(done_before) < len(dags)

    before = reads(url)
    again = cli("refresh", "--endpoint", url, "--format", "json", cwd=tmp_path, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["asked"] == len(dags) - len(done_before)
    assert reads(url) - before == len(dags) - len(done_before)  # one listing each
    assert cli("audit", "verify", cwd=tmp_path, env=cli_env).returncode == 0
    state = load_state(tmp_path / "state")
    assert all(r.final for r in state.submissions.values())
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    observed_keys = [e["data"]["key"] for e in events if e["type"] == EventType.OBSERVED]
    assert sorted(observed_keys) == sorted(state.submissions)  # each once: nothing twice


def test_a_wait_killed_mid_round_loses_nothing_and_the_next_wait_ends_it(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    dags = list(range(15001, 15033))  # four rounds of reads in flight (8 at a time)
    faults = FaultConfig(latency=Latency(200, 200), instance_seconds=1.0, seed=5)
    emulator, url = serve_emulator(clock=emulator_clock, faults=faults)
    write(tmp_path / "plans" / "flows.yaml", dms_plan("flows", dags=dags, dates=[DATES]))
    applied(tmp_path, url, cli_env)
    emulator_clock.advance(200)
    journal = tmp_path / "state" / "journal.jsonl"
    wait = ("status", "--wait", "--wait-interval", "0.1", "--endpoint", url)

    killed_after(2, tmp_path, cli_env, *wait)
    final = sum(r.final for r in load_state(tmp_path / "state").submissions.values())
    assert 2 <= final < len(dags)

    done = cli(*wait, "--wait-timeout", "60", cwd=tmp_path, env=cli_env)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert cli("audit", "verify", cwd=tmp_path, env=cli_env).returncode == 0
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    observed = [e["data"]["key"] for e in events if e["type"] == EventType.OBSERVED]
    state = load_state(tmp_path / "state")
    assert sorted(observed) == sorted(state.submissions)  # each once, none lost
    assert all(r.final for r in state.submissions.values())
    assert len(emulator.calls.all()) == len(dags)  # the creates of the apply: nothing sent again


def failed_cells(stdout: str) -> set[tuple[str, str, str]]:
    """(plan, target, date) of the lines `--wait` lists as not succeeded."""
    found = re.findall(r"^\s+(\S+)\s+target (\S+)\s+(\d{4}-\d\d-\d\d)\s+failed", stdout, re.M)
    return set(found)


def test_apply_wait_exits_1_naming_exactly_the_cells_that_failed(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str]
) -> None:
    faults = FaultConfig(instance_failure_rate=0.3, instance_seconds=0.05, seed=11)
    emulator, url = serve_emulator(faults=faults)
    two_platforms(tmp_path)
    assert cli("init", cwd=tmp_path, env=cli_env).returncode == 0

    done = cli(
        "apply", "--yes", "--endpoint", url, "--wait", "--wait-interval", "0.2",
        "--wait-timeout", "100", cwd=tmp_path, env=cli_env,
    )  # fmt: skip

    failures = emulated_failures(emulator)
    assert failures
    plan_of = {t: "orders" for t in wedata_plan()["spec"]["taskIds"]} | {
        str(d): "flows" for d in dms_plan()["spec"]["dagIds"]
    }
    assert done.returncode == 1, done.stdout + done.stderr
    assert failed_cells(done.stdout) == {(plan_of[t], t, d) for t, d in failures}
    assert "Traceback" not in done.stderr

    again = cli(
        "status", "--wait", "--format", "json", "--endpoint", url, cwd=tmp_path, env=cli_env
    )
    assert again.returncode == 1
    report = conforms(again.stdout, "wait-output.schema.json")
    assert {(c["plan"], c["target"], c["date"]) for c in report["failed"]} == failed_cells(
        done.stdout
    )


def test_status_wait_exits_0_when_every_cell_succeeded_and_its_own_code_on_timeout(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    url = orders_applied(tmp_path, serve_emulator, cli_env, emulator_clock, 5.0)
    wait = ("status", "--wait", "--wait-interval", "0.1", "--endpoint", url)

    timed_out = cli(*wait, "--wait-timeout", "0.5", cwd=tmp_path, env=cli_env)
    assert timed_out.returncode == 4, timed_out.stdout + timed_out.stderr
    assert "Timed out" in timed_out.stdout

    emulator_clock.advance(200)
    done = cli(*wait, "--wait-timeout", "30", "--format", "json", cwd=tmp_path, env=cli_env)
    assert done.returncode == 0, done.stderr
    report = conforms(done.stdout, "wait-output.schema.json")
    cells = len(wedata_plan()["spec"]["taskIds"]) * len(days(*DATES))
    assert report["plans"] == {"orders": {"succeeded": cells}}
    assert report["failed"] == []


def test_ctrl_c_stops_the_wait_not_the_backfills_and_keeps_the_state(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    url = orders_applied(tmp_path, serve_emulator, cli_env, emulator_clock, 5.0)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "status", "--wait", "--wait-interval", "0.1",
         "--endpoint", url],
        cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    journal = tmp_path / "state" / "journal.jsonl"
    deadline = time.monotonic() + 60  # its output is piped: a wait without end could fill it
    while EventType.OBSERVED not in journal.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 130, out + err
    assert "backfills go on" in out
    assert "Traceback" not in err
    assert cli("audit", "verify", cwd=tmp_path, env=cli_env).returncode == 0
    [record] = load_state(tmp_path / "state").submissions.values()
    assert record.health
    assert not record.final
    assert all(h not in FINAL_HEALTH for _, _, _, h, _ in record.health)


def test_backfills_made_on_the_emulator_are_not_asked_of_a_real_endpoint(
    served: Callable[..., Served],
) -> None:
    """Their remote ids mean nothing to the platform: `refresh` and `status --live` name the
    emulator they were sent to and ask nothing, rather than journal a platform's "not found"."""
    ws = served()
    ws.plan(wedata_plan(tasks=TASKS, dates=[DATES]))
    assert ws.apply().returncode == 0
    journal = (ws.state / "journal.jsonl").read_bytes()
    requests = ws.emulator.stats()["requests"]

    for command in (["refresh"], ["status", "--live"]):
        done = ws.run(*command, "--endpoint", "https://wedata.example.invalid")
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"submitted to the built-in emulator at {ws.url}" in done.stdout + done.stderr

    assert ws.emulator.stats()["requests"] == requests
    assert (ws.state / "journal.jsonl").read_bytes() == journal
