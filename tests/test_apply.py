"""Plan and apply against the emulator: only the missing calls, exactly once."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from factories import TASKS, dms_plan, wedata_plan, write
from harness import Crash, Repo, cli

from reconciler.emulator.app import Emulator
from reconciler.errors import BackfillError
from reconciler.providers import ALL
from reconciler.providers.tc3 import TencentCredentials
from reconciler.state import SubmissionStatus, init_state, load_state


def ranges(call: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["StartDate"], r["EndDate"]) for r in call["params"]["DataBackfillRangeList"]]


def test_first_apply_creates_everything_in_one_call_per_task_group(repo: Repo) -> None:
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-03")]))
    assert repo.apply() == 0
    [call] = repo.calls()
    assert call["params"]["TaskIds"] == TASKS
    assert ranges(call) == [("2025-09-01", "2025-09-03")]
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.SUBMITTED
    assert record.remote_id == call["remote_id"]


def test_a_rerun_makes_zero_calls(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("orders", wedata_plan())
    assert repo.apply() == 0
    before = len(repo.calls())
    capsys.readouterr()
    assert repo.apply() == 0
    assert len(repo.calls()) == before
    assert "No changes." in capsys.readouterr().out
    assert not repo.changes().has_changes


def test_extending_a_range_submits_only_the_new_dates(repo: Repo) -> None:
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-03")]))
    repo.apply()
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-05")]))
    repo.apply()
    _first, second = repo.calls()
    assert ranges(second) == [("2025-09-04", "2025-09-05")]
    assert second["params"]["TaskIds"] == TASKS


def test_adding_a_task_submits_only_that_task(repo: Repo) -> None:
    repo.write("orders", wedata_plan(tasks=TASKS[:1]))
    repo.apply()
    repo.write("orders", wedata_plan(tasks=TASKS))
    repo.apply()
    second = repo.calls()[1]
    assert second["params"]["TaskIds"] == TASKS[1:]
    assert ranges(second) == [("2025-09-01", "2025-09-03")]


def test_tasks_missing_different_dates_get_separate_calls_and_gaps_become_ranges(
    repo: Repo,
) -> None:
    dates = [("2025-09-01", "2025-09-02"), ("2025-09-05", "2025-09-05")]
    repo.write("orders", wedata_plan(tasks=TASKS[:1], dates=dates))
    repo.apply()
    repo.write("orders", wedata_plan(tasks=TASKS, dates=[*dates, ("2025-09-07", "2025-09-07")]))
    repo.apply()
    calls = repo.calls()[1:]
    by_tasks = {tuple(c["params"]["TaskIds"]): ranges(c) for c in calls}
    assert by_tasks == {
        (TASKS[0],): [("2025-09-07", "2025-09-07")],
        (TASKS[1],): [
            ("2025-09-01", "2025-09-02"),
            ("2025-09-05", "2025-09-05"),
            ("2025-09-07", "2025-09-07"),
        ],
    }


def test_chunk_caps_the_days_per_call(repo: Repo) -> None:
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-10")], chunk=4))
    repo.apply()
    assert sorted(ranges(c) for c in repo.calls()) == [
        [("2025-09-01", "2025-09-04")],
        [("2025-09-05", "2025-09-08")],
        [("2025-09-09", "2025-09-10")],
    ]


def test_every_parameter_reaches_the_api_and_an_unset_name_is_traceable(repo: Repo) -> None:
    repo.write(
        "orders",
        wedata_plan(
            "orders-fix",
            executionWindow={"start": "01:00", "end": "06:00"},
            timeZone="UTC+0",
            checkParents="in-plan",
            skipEventListening=False,
            selfDependency=True,
            parallelism=3,
            schedulerResourceGroupId="rg-1",
            integrationResourceGroupId="rg-2",
            parameters={"mode": "repair", "limit": 5},
            order="reverse",
            instanceCycle="monthly",
            computeConfigMappings=[
                {"taskTypeId": 32, "item": "COMPUTE_ENGINE", "sourceValue": "a", "targetValue": "b"}
            ],
        ),
    )
    repo.apply()
    [call] = repo.calls()
    params = call["params"]
    key = next(iter(load_state(repo.state).submissions))
    assert params["DataBackfillPlanName"] == f"orders-fix-r1-{key[:10]}"
    assert params["DataBackfillRangeList"][0]["ExecutionStartTime"] == "01:00"
    assert params["DataBackfillRangeList"][0]["ExecutionEndTime"] == "06:00"
    assert {
        k: params[k]
        for k in (
            "TimeZone",
            "CheckParentType",
            "SkipEventListening",
            "RedefineSelfWorkflowDependency",
            "RedefineParallelNum",
            "SchedulerResourceGroupId",
            "IntegrationResourceGroupId",
            "RedefineParamList",
            "DataTimeOrder",
            "RedefineCycleType",
            "ComputeConfigMappings",
        )
    } == {
        "TimeZone": "UTC+0",
        "CheckParentType": "MAKE_SCOPE",
        "SkipEventListening": False,
        "RedefineSelfWorkflowDependency": "yes",
        "RedefineParallelNum": 3,
        "SchedulerResourceGroupId": "rg-1",
        "IntegrationResourceGroupId": "rg-2",
        "RedefineParamList": [{"K": "mode", "V": "repair"}, {"K": "limit", "V": "5"}],
        "DataTimeOrder": "REVERSE",
        "RedefineCycleType": "MONTH_CYCLE",
        "ComputeConfigMappings": [
            {
                "TaskTypeId": 32,
                "ComputeConfigItem": "COMPUTE_ENGINE",
                "SourceValue": "a",
                "TargetValue": "b",
            }
        ],
    }


def test_writing_a_documented_default_explicitly_is_not_an_edit(repo: Repo) -> None:
    repo.write("orders", wedata_plan())
    repo.apply()
    repo.write(
        "orders", wedata_plan(skipEventListening=True, checkParents="none", timeZone="UTC+8")
    )
    changes = repo.changes()
    assert not changes.has_changes
    assert not changes.conflicts


def test_changing_a_parameter_of_submitted_dates_is_a_conflict_naming_the_fix(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("orders", wedata_plan(parallelism=2))
    repo.apply()
    repo.write("orders", wedata_plan(parallelism=4))
    capsys.readouterr()
    with pytest.raises(BackfillError, match="conflict"):
        repo.apply()
    out = capsys.readouterr().out
    assert "plan 'orders-backfill' r1" in out
    assert "parallelism: 2 -> 4" in out
    assert "set `spec.revision` to 2" in out
    assert len(repo.calls()) == 1
    # Bumping the revision re-runs the dates deliberately, with the new parameters.
    repo.write("orders", wedata_plan(parallelism=4, revision=2))
    assert repo.apply() == 0
    second = repo.calls()[1]
    assert second["params"]["RedefineParallelNum"] == 4
    assert second["params"]["TaskIds"] == TASKS


def test_removing_a_plan_is_reported_as_orphaned_and_submits_nothing(repo: Repo) -> None:
    path = repo.write("orders", wedata_plan())
    repo.write("other", wedata_plan("other", tasks=["1"]))
    repo.apply()
    path.unlink()
    changes = repo.changes()
    assert not changes.has_changes
    [orphan] = changes.orphans
    assert orphan.plan == "orders-backfill"
    assert orphan.plan_removed
    assert orphan.cells == 6
    assert repo.apply() == 0
    assert len(repo.calls()) == 2


def test_keys_are_deterministic(repo: Repo) -> None:
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-30")], chunk=7))
    first = [s.key for s in repo.changes().creates]
    second = [s.key for s in repo.changes().creates]
    assert first == second
    assert len(set(first)) == 5


def test_a_crash_between_intent_and_outcome_is_unknown_and_never_resubmitted(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("orders", wedata_plan())
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    assert len(repo.calls()) == 1
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.PENDING
    assert record.needs_attention
    capsys.readouterr()
    assert repo.apply() == 1  # needs attention: not done, and not resubmitted
    assert len(repo.calls()) == 1
    out = capsys.readouterr().out
    assert "needs attention" in out
    assert f"backfill state import {record.key}" in out


def test_the_cli_end_to_end_over_loopback(
    tmp_path: Path,
    emulator: Emulator,
    emulator_url: str,
    cli_env: dict[str, str],
    tencent_credentials: TencentCredentials,
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    planned = cli("plan", "--detailed-exitcode", cwd=tmp_path, env=cli_env)
    assert planned.returncode == 2, planned.stderr
    assert "Plan: 1 call to make (6 cells)" in planned.stdout
    assert "state does not exist" in planned.stdout  # and `apply` refuses until `init`
    refused = cli("apply", "--endpoint", emulator_url, "--yes", cwd=tmp_path, env=cli_env)
    assert refused.returncode == 1
    assert "run `backfill init --state-dir state`" in refused.stderr
    assert emulator.calls.all() == []

    started = cli("init", cwd=tmp_path, env=cli_env)
    assert started.returncode == 0, started.stderr
    assert "Initialized an empty state in state/" in started.stdout
    no_yes = cli("apply", "--endpoint", emulator_url, cwd=tmp_path, env=cli_env)
    assert no_yes.returncode == 1
    assert "apply needs approval" in no_yes.stderr
    assert emulator.calls.all() == []

    applied = cli("apply", "--endpoint", emulator_url, "--yes", cwd=tmp_path, env=cli_env)
    assert applied.returncode == 0, applied.stderr
    assert "[1/1] submitted" in applied.stdout
    assert "Apply complete: 1 submitted" in applied.stdout
    assert len(emulator.calls.all()) == 1

    again = cli("plan", "--detailed-exitcode", "--format", "json", cwd=tmp_path, env=cli_env)
    assert again.returncode == 0
    assert json.loads(again.stdout)["summary"]["changes"] is False

    listed = cli("state", "list", cwd=tmp_path, env=cli_env)
    assert "submitted" in listed.stdout
    key = listed.stdout.splitlines()[1].split()[0]
    shown = json.loads(cli("state", "show", key[:6], cwd=tmp_path, env=cli_env).stdout)
    assert shown["remote_id"] == emulator.calls.all()[0]["remote_id"]

    # Secrets never reach the state, the journal or the output.
    everything = "".join(p.read_text() for p in (tmp_path / "state").iterdir() if p.is_file())
    everything += applied.stdout + applied.stderr + listed.stdout
    assert tencent_credentials.secret_key not in everything


def test_apply_without_credentials_fails_before_any_call(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    assert cli("init", cwd=tmp_path, env=cli_env).returncode == 0
    journal = (tmp_path / "state" / "journal.jsonl").read_bytes()
    env = {k: v for k, v in cli_env.items() if not k.startswith("TENCENTCLOUD_")}
    done = cli("apply", "--endpoint", emulator_url, "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "no Tencent Cloud credentials" in done.stderr
    assert "Traceback" not in done.stderr
    assert emulator.calls.all() == []
    assert (tmp_path / "state" / "journal.jsonl").read_bytes() == journal


def test_wrong_credentials_are_rejected_and_the_cells_stay_missing(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, tencent_credentials: TencentCredentials
) -> None:
    repo.write("orders", wedata_plan())
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "not-the-key")
    assert repo.apply() == 1
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.REJECTED
    assert record.code == "AuthFailure.SignatureFailure"
    assert repo.calls() == []
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", tencent_credentials.secret_key)
    assert repo.apply() == 0
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.SUBMITTED
    assert record.attempts == 2


def test_a_state_written_against_the_emulator_refuses_a_real_endpoint(repo: Repo) -> None:
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-01")]))
    repo.apply()
    repo.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-02")]))
    with pytest.raises(BackfillError, match="built-in emulator"):
        repo.apply(endpoints={ALL: "https://wedata.intl.tencentcloudapi.com"})
    assert len(repo.calls()) == 1


def test_a_state_loaded_fresh_sees_every_submitted_cell_in_sync(repo: Repo) -> None:
    repo.write("orders", wedata_plan(tasks=TASKS, dates=[("2025-09-01", "2025-09-03")], chunk=1))
    repo.write("other", wedata_plan("other", tasks=["1"]))
    repo.apply(parallel=1)  # in order: the last submission is another plan's
    changes = repo.changes()  # a new State: its coverage index is built on this first lookup
    assert not changes.has_changes
    assert changes.count("in_sync_cells") == 9


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_with_nothing_listening_one_call_is_journaled_unsent_and_the_rest_not_attempted(
    tmp_path: Path, serve_emulator: Callable[..., tuple[Emulator, str]], cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan(chunk=1))  # 3 calls
    init_state(tmp_path / "state", actor={"user": "test"})
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = cli("apply", "--yes", "--endpoint", nowhere, cwd=tmp_path, env=cli_env)
    assert done.returncode == 1
    assert f"Stopped sending to {nowhere} (tencent-wedata): no connection could be made" in (
        done.stdout
    )
    assert "0 submitted, 0 not created, 0 unknown, 1 not sent; 2 of 3 not attempted" in done.stdout
    [line] = [x for x in done.stdout.splitlines() if x.startswith("[1/3]")]
    assert line.startswith("[1/3] not sent ")
    assert line.endswith("(5 attempts); nothing was created: the next apply tries again")

    listed = json.loads(cli("state", "list", "--format", "json", cwd=tmp_path, env=cli_env).stdout)
    assert [r["status"] for r in listed["submissions"]] == ["unsent"]
    logged = json.loads(cli("audit", "log", "--format", "json", cwd=tmp_path, env=cli_env).stdout)
    assert [a["outcome"] for a in logged["attempts"]] == ["unsent"]
    planned = cli("plan", "--detailed-exitcode", cwd=tmp_path, env=cli_env)
    assert planned.returncode == 2
    assert "Plan: 3 calls to make" in planned.stdout

    emulator, url = serve_emulator()
    again = cli("apply", "--yes", "--endpoint", url, cwd=tmp_path, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert len(emulator.calls.all()) == 3
    records = load_state(tmp_path / "state").submissions.values()
    assert sorted(r.status for r in records) == ["submitted"] * 3
    assert cli("plan", "--detailed-exitcode", cwd=tmp_path, env=cli_env).returncode == 0


def test_apply_json_says_which_call_was_not_sent_and_why_the_rest_were_not_attempted(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan(chunk=1))
    init_state(tmp_path / "state", actor={"user": "test"})
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = cli(
        "apply", "--yes", "--format", "json", "--endpoint", nowhere, cwd=tmp_path, env=cli_env
    )
    assert done.returncode == 1
    [result] = json.loads(done.stdout)["apply"]["results"]
    assert result["outcome"] == "unsent"
    assert result["stopped"].startswith(f"stopped sending to {nowhere} (tencent-wedata)")


def test_refused_credentials_stop_that_provider_after_one_call_and_not_the_other(
    tmp_path: Path, serve_emulator: Callable[..., tuple[Emulator, str]], cli_env: dict[str, str]
) -> None:
    emulator, url = serve_emulator()
    write(tmp_path / "plans" / "orders.yaml", wedata_plan(chunk=1))  # 3 calls
    write(tmp_path / "plans" / "dms.yaml", dms_plan(dags=[15001, 15002]))  # 2 calls
    init_state(tmp_path / "state", actor={"user": "test"})
    env = {**cli_env, "TENCENTCLOUD_SECRET_KEY": "not-the-key"}
    done = cli("apply", "--yes", "--endpoint", url, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert f"Stopped sending to {url} (tencent-wedata): the credentials were refused" in (
        done.stdout
    )
    assert "TENCENTCLOUD_SECRET_KEY" in done.stdout
    assert "2 submitted, 1 not created, 0 unknown; 2 of 5 not attempted" in done.stdout
    assert emulator.stats()["requests"] == 3  # one WeData call, both DMS calls
    assert sorted(c["provider"] for c in emulator.calls.all()) == ["aliyun-dms"] * 2
    statuses = sorted(
        (r.provider, r.status) for r in load_state(tmp_path / "state").submissions.values()
    )
    assert statuses == [("aliyun-dms", "submitted")] * 2 + [("tencent-wedata", "rejected")]


def test_backfill_tencent_rate_limit_sets_the_pace_of_wedata_calls(
    tmp_path: Path, serve_emulator: Callable[..., tuple[Emulator, str]], cli_env: dict[str, str]
) -> None:
    # A WeData account that allows 4 calls/s (the emulator enforces it), half of them left to
    # the tool: apply keeps to that pace, where its documented 20/s would be throttled.
    emulator, url = serve_emulator(rate_limits={"tencent-wedata": 4})
    write(tmp_path / "plans" / "orders.yaml", wedata_plan(chunk=1, tasks=TASKS[:1]))
    write(
        tmp_path / "plans" / "later.yaml",
        wedata_plan("later", chunk=1, tasks=TASKS[1:2], dates=[("2025-10-01", "2025-10-05")]),
    )
    assert cli("init", cwd=tmp_path, env=cli_env).returncode == 0
    env = {**cli_env, "BACKFILL_TENCENT_RATE_LIMIT": "2"}
    done = cli("apply", "--endpoint", url, "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    creates = emulator.stats()["actions"]["CreateDataBackfillPlan"]
    assert (creates["requests"], creates["throttled"]) == (8, 0)


@pytest.mark.parametrize("value", ["fast", "0", "-3"])
def test_a_rate_limit_that_is_no_positive_number_is_refused_before_any_call(
    value: str, tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    assert cli("init", cwd=tmp_path, env=cli_env).returncode == 0
    env = {**cli_env, "BACKFILL_TENCENT_RATE_LIMIT": value}
    done = cli("apply", "--endpoint", emulator_url, "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "BACKFILL_TENCENT_RATE_LIMIT" in done.stderr
    assert "Traceback" not in done.stderr
    assert emulator.calls.all() == []
