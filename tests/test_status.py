"""`backfill status`: the emulator's progress of submitted backfills, for both platforms, read
without writing anything or creating anything remotely."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import FakeClock
from factories import TASKS, dms_plan, wedata_plan, write
from harness import LOOPBACK, Repo, cli

from reconciler.commands.status import report
from reconciler.domain import JSON
from reconciler.emulator.app import Emulator
from reconciler.providers import ALL
from reconciler.providers.protocol import Connection, Progress, Provider
from reconciler.reports.status import StatusReport
from reconciler.state import SubmissionRecord, load_state, open_state
from reconciler.views import status as view

SECONDS_PER_INSTANCE = 2.0
"""The emulator's default: each instance runs this long, one after another."""


def progress_of(repo: Repo, plan: str | None = None) -> StatusReport:
    return report(load_state(repo.state), {ALL: LOOPBACK}, plan=plan, ask=repo.progress)


def test_wedata_progress_advances_from_running_to_succeeded(
    repo: Repo, emulator_clock: FakeClock
) -> None:
    emulator_clock.freeze()
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-03")]))
    assert repo.apply() == 0
    calls_before = len(repo.calls())

    [started] = progress_of(repo).tracked
    assert started.progress.phase == "running"
    assert started.progress.complete_percent == 0
    assert len(started.progress.instances) == 6
    assert {(i.target, i.date) for i in started.progress.instances} == {
        (task, day) for task in TASKS for day in ("2025-09-01", "2025-09-02", "2025-09-03")
    }
    assert [i.state for i in started.progress.instances].count("RUNNING") == 1
    assert view.instances_text(started) == "0/6 succeeded, 1 running, 5 waiting"

    emulator_clock.advance(3 * SECONDS_PER_INSTANCE)
    [halfway] = progress_of(repo).tracked
    assert (halfway.progress.phase, halfway.progress.complete_percent) == ("running", 50)
    assert halfway.progress.success_percent == 50

    emulator_clock.advance(60)
    [done] = progress_of(repo).tracked
    assert done.progress.phase == "succeeded"
    assert (done.progress.complete_percent, done.progress.success_percent) == (100, 100)
    assert {i.state for i in done.progress.instances} == {"COMPLETED"}
    # reading progress creates nothing
    assert len(repo.calls()) == calls_before


def test_dms_progress_follows_the_dag_instances_by_business_date(
    repo: Repo, emulator_clock: FakeClock
) -> None:
    emulator_clock.freeze()
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01", "2025-09-04")]))
    assert repo.apply() == 0

    [started] = progress_of(repo).tracked
    assert started.progress.phase == "running"
    assert [(i.date, i.state) for i in started.progress.instances] == [
        ("2025-09-01", "RUNNING(1)"),
        ("2025-09-02", "WAITING(0)"),
        ("2025-09-03", "WAITING(0)"),
        ("2025-09-04", "WAITING(0)"),
    ]
    assert started.progress.complete_percent == 0

    emulator_clock.advance(2 * SECONDS_PER_INSTANCE)
    [halfway] = progress_of(repo).tracked
    assert view.instances_text(halfway) == "2/4 succeeded, 1 running, 1 waiting"
    assert halfway.progress.complete_percent == 50

    emulator_clock.advance(60)
    [done] = progress_of(repo).tracked
    assert (done.progress.phase, done.progress.success_percent) == ("succeeded", 100)


def test_dms_progress_is_of_this_backfill_not_an_earlier_one_of_the_same_dates(
    repo: Repo, emulator_clock: FakeClock
) -> None:
    emulator_clock.freeze()
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01", "2025-09-02")]))
    assert repo.apply() == 0
    emulator_clock.advance(60)
    # a new revision re-runs the same dates: its own instances start from scratch
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01", "2025-09-02")], revision=2))
    assert repo.apply() == 0
    first, second = progress_of(repo).tracked
    assert first.progress.phase == "succeeded"
    assert second.progress.phase == "running"
    assert int(second.record.remote_id) > int(first.record.remote_id)


def test_a_plan_name_selects_its_backfills(repo: Repo) -> None:
    repo.write("orders", wedata_plan())
    repo.write("dms", dms_plan(dags=[15001]))
    assert repo.apply() == 0
    assert {t.record.plan for t in progress_of(repo).tracked} == {"orders-backfill", "dms-backfill"}
    assert {t.record.plan for t in progress_of(repo, plan="dms-backfill").tracked} == {
        "dms-backfill"
    }


def test_an_unknown_plan_name_is_an_error(repo: Repo) -> None:
    from reconciler.errors import BackfillError

    repo.write("orders", wedata_plan())
    assert repo.apply() == 0
    with pytest.raises(BackfillError, match="no submission of plan 'ordres'"):
        progress_of(repo, plan="ordres")


def test_emulator_submissions_are_not_looked_up_at_a_real_endpoint(repo: Repo) -> None:
    repo.write("orders", wedata_plan())
    assert repo.apply() == 0

    def refuse(
        provider: Provider,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
    ) -> Progress:
        raise AssertionError(f"asked {connection.endpoint}")

    found = report(load_state(repo.state), {}, ask=refuse)
    [item] = found.tracked
    assert item.progress.phase == "unknown"
    assert "submitted to the built-in emulator" in item.progress.error
    assert not found.ok
    assert f"{item.record.key}: could not read its progress:" in view.text(found)


def test_unknown_outcomes_are_listed_apart_with_what_to_do(repo: Repo) -> None:
    with open_state(repo.state, actor={"user": "ci"}, command="test") as writer:
        writer.append(
            "intent",
            {
                "key": "k-unknown",
                "plan": "orders",
                "revision": 1,
                "provider": "aliyun-dms",
                "action": "BackFill",
                "region": "cn-hangzhou",
                "endpoint": LOOPBACK,
                "targets": ["15001"],
                "dates": ["2025-09-01"],
                "fingerprint": "f",
                "params": {},
                "request": {"DagId": 15001, "BackFillDate": "2025-09-01"},
            },
        )
        writer.append("unknown", {"key": "k-unknown", "code": "ReadTimeout", "message": "-"})
    found = progress_of(repo)
    assert found.tracked == ()
    assert [r.key for r in found.unsettled] == ["k-unknown"]
    assert "Not shown (k-unknown): 1 outcome may have run" in view.text(found)
    assert "`backfill recover`" in view.markdown(found)


def test_the_status_command_over_loopback_in_every_format(
    tmp_path: Path,
    emulator: Emulator,
    emulator_url: str,
    emulator_clock: FakeClock,
    cli_env: dict[str, str],
) -> None:
    env = cli_env
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    write(tmp_path / "plans" / "dms.yaml", dms_plan(dags=[15001]))
    assert cli("init", cwd=tmp_path, env=env).returncode == 0
    applied = cli("apply", "--endpoint", emulator_url, "--yes", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    journal = (tmp_path / "state" / "journal.jsonl").read_bytes()

    running = cli(
        "status", "--live", "--endpoint", emulator_url, "--format", "json", cwd=tmp_path, env=env
    )
    assert running.returncode == 0, running.stderr
    document = json.loads(running.stdout)
    assert {b["provider"]: b["phase"] for b in document["backfills"]} == {
        "tencent-wedata": "running",
        "aliyun-dms": "running",
    }

    emulator_clock.advance(60)
    done = cli(
        "status", "--live", "--endpoint", emulator_url, "--format", "json", cwd=tmp_path, env=env
    )
    backfills = json.loads(done.stdout)["backfills"]
    assert {b["phase"] for b in backfills} == {"succeeded"}
    assert {b["complete_percent"] for b in backfills} == {100}

    shown = cli(
        "status", "orders-backfill", "--live", "--endpoint", emulator_url, cwd=tmp_path, env=env
    )
    assert shown.returncode == 0, shown.stderr
    header, row, _blank, summary = shown.stdout.splitlines()
    assert header.split()[:3] == ["KEY", "PLAN", "REV"]
    assert "succeeded" in row
    assert "6/6 succeeded" in row
    assert summary == "1 submitted backfill: 1 succeeded."

    table = cli(
        "status",
        "--live",
        "--endpoint",
        emulator_url,
        "--format",
        "markdown",
        cwd=tmp_path,
        env=env,
    )
    rows = [line for line in table.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 3  # the header and one row per backfill
    assert all("**succeeded**" in r for r in rows[1:])

    # status is read-only
    assert (tmp_path / "state" / "journal.jsonl").read_bytes() == journal
    assert len(emulator.calls.all()) == 2


def test_status_without_credentials_says_which_to_set(
    tmp_path: Path, emulator_url: str, repo: Repo
) -> None:
    repo.write("orders", wedata_plan())
    assert repo.apply() == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    done = cli("status", "--live", "--endpoint", emulator_url, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "no Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID" in done.stderr
