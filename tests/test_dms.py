"""DMS BackFill end to end against the emulator: the same guarantees as for WeData."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeClock
from factories import DAGS, dms_plan, submission, wedata_plan, write
from harness import Crash, Repo, cli, credentials_environ

from reconciler import execute
from reconciler.domain import OutcomeKind
from reconciler.emulator.app import Emulator, create_app
from reconciler.emulator.dms import DmsService
from reconciler.emulator.faults import FaultConfig
from reconciler.errors import BackfillError
from reconciler.providers import dms
from reconciler.providers.acs3 import AliyunCredentials
from reconciler.providers.protocol import Connection
from reconciler.state import SubmissionStatus, init_state, load_state, open_state

Serve = Callable[..., tuple[Emulator, str]]
AUGUST = [("2025-08-01", "2025-08-03")]


def dates_of(call: dict[str, Any]) -> tuple[str, str]:
    params = call["params"]
    if "BackFillDate" in params:
        return params["BackFillDate"], params["BackFillDate"]
    return params["BackFillDateBegin"], params["BackFillDateEnd"]


def test_first_apply_makes_one_call_per_dag_and_contiguous_run(repo: Repo) -> None:
    repo.write("dms", dms_plan(dates=[("2025-09-01", "2025-09-03"), ("2025-09-07", "2025-09-07")]))
    assert repo.apply() == 0
    calls = repo.calls()
    assert sorted((c["params"]["DagId"], dates_of(c)) for c in calls) == [
        (15001, ("2025-09-01", "2025-09-03")),
        (15001, ("2025-09-07", "2025-09-07")),
        (15002, ("2025-09-01", "2025-09-03")),
        (15002, ("2025-09-07", "2025-09-07")),
    ]
    single = next(c for c in calls if "BackFillDate" in c["params"])
    assert "BackFillDateBegin" not in single["params"]
    records = load_state(repo.state).submissions.values()
    assert {r.remote_id for r in records} == {c["remote_id"] for c in calls}
    assert all(r.detail["DagInstanceId"] == int(r.remote_id) for r in records)
    assert all(r.request_id for r in records)


def test_a_rerun_makes_zero_calls(repo: Repo) -> None:
    repo.write("dms", dms_plan())
    repo.apply()
    before = len(repo.calls())
    assert repo.apply() == 0
    assert len(repo.calls()) == before


def test_extending_dates_submits_only_the_new_ones(repo: Repo) -> None:
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01", "2025-09-03")]))
    repo.apply()
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-08-30", "2025-09-04")]))
    repo.apply()
    assert sorted(dates_of(c) for c in repo.calls()[1:]) == [
        ("2025-08-30", "2025-08-31"),
        ("2025-09-04", "2025-09-04"),
    ]


def test_every_parameter_reaches_the_api(repo: Repo) -> None:
    repo.write(
        "dms",
        dms_plan(
            dags=[15001],
            tenantId=3000,
            historyDagId=16001,
            startNodeIds=[1, 2],
            filterNodeIds=[3],
            triggerSubTree=False,
            intervalHours=12,
            order="reverse",
            chunk=2,
        ),
    )
    repo.apply()
    first, second = repo.calls()
    assert first["params"] == {
        "DagId": 15001,
        "Tid": 3000,
        "HistoryDagId": 16001,
        "StartNodeIds": [1, 2],
        "FilterNodeIds": [3],
        "IsTriggerSubTree": False,
        "Interval": 12,
        "Asc": False,
        "BackFillDateBegin": "2025-09-01",
        "BackFillDateEnd": "2025-09-02",
    }
    assert dates_of(second) == ("2025-09-03", "2025-09-03")


def test_changing_a_parameter_is_a_conflict(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("dms", dms_plan(intervalHours=24))
    repo.apply()
    repo.write("dms", dms_plan(intervalHours=6))
    capsys.readouterr()
    with pytest.raises(BackfillError, match="conflict"):
        repo.apply()
    out = capsys.readouterr().out
    assert "intervalHours: 24 -> 6" in out
    assert "set `spec.revision` to 2" in out


def test_fields_of_the_other_provider_are_refused_by_name(repo: Repo) -> None:
    repo.write("dms", dms_plan(taskIds=["1"]))
    with pytest.raises(BackfillError) as caught:
        repo.apply()
    problems = [str(d) for d in caught.value.diagnostics]  # type: ignore[attr-defined]
    assert len(problems) == 1
    assert "unknown field 'taskIds': it belongs to provider 'tencent-wedata'" in problems[0]


def test_an_unknown_that_ran_is_resolved_by_lookup_without_a_duplicate(repo: Repo) -> None:
    repo.write("dms", dms_plan(dags=[15001]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    [call] = repo.calls()
    assert repo.apply() == 1  # needs attention: nothing is resubmitted by itself
    assert len(repo.calls()) == 1
    [finding] = repo.recover()
    assert finding.lookup.verdict == "submitted"
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.SUBMITTED
    assert record.remote_id == call["remote_id"]
    assert repo.apply() == 0
    assert len(repo.calls()) == 1


def test_an_unknown_that_never_ran_is_found_missing_once_it_had_time_to_run(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("dms", dms_plan(dags=[15001]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=False))
    assert repo.calls() == []
    # At once, no instance proves nothing: the request may still be running at DMS.
    [finding] = repo.recover()
    assert finding.lookup.verdict == "unclear"
    assert "may still be running at DMS" in finding.lookup.how
    assert repo.apply() == 1
    assert repo.calls() == []
    later = time.time() + dms.SETTLE_SECONDS + 1
    monkeypatch.setattr(dms, "clock", lambda: later)
    [finding] = repo.recover()
    assert finding.lookup.verdict == "missing"
    assert repo.apply() == 0
    [call] = repo.calls()
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.SUBMITTED
    assert record.attempts == 2
    assert record.remote_id == call["remote_id"]


def test_apply_recover_flag_looks_up_before_planning(repo: Repo) -> None:
    repo.write("dms", dms_plan(dags=[15001]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    assert repo.apply(recover=True) == 0
    assert len(repo.calls()) == 1
    [record] = load_state(repo.state).submissions.values()
    assert record.status is SubmissionStatus.SUBMITTED


def test_a_partial_finding_stays_unknown(repo: Repo) -> None:
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01", "2025-09-02")]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=False))
    # Someone ran one of the two dates by hand in the meantime.
    repo.write(
        "manual",
        dms_plan(
            "manual",
            dags=[15001],
            dates=[("2025-09-01", "2025-09-01")],
            takeover=[{"plan": "dms-backfill", "mode": "rerun"}],
        ),
    )
    (repo.plans / "dms.yaml").rename(repo.plans / "dms.yaml.off")
    repo.apply()
    (repo.plans / "dms.yaml.off").rename(repo.plans / "dms.yaml")
    (repo.plans / "manual.yaml").unlink()
    findings = {f.record.plan: f.lookup.verdict for f in repo.recover()}
    assert findings == {"dms-backfill": "unclear"}


def test_a_mixed_repo_plans_and_applies_in_one_command(repo: Repo) -> None:
    repo.write("wedata", wedata_plan("w"))
    repo.write("dms", dms_plan("d", dags=[15001]))
    assert repo.apply() == 0
    assert sorted(c["provider"] for c in repo.calls()) == ["aliyun-dms", "tencent-wedata"]
    assert repo.apply() == 0
    assert len(repo.calls()) == 2


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("Throttling.User", OutcomeKind.RETRYABLE),
        ("InvalidParameter", OutcomeKind.REJECTED),
        ("SignatureDoesNotMatch", OutcomeKind.REJECTED),
        ("InternalError", OutcomeKind.UNKNOWN),
        ("UnknownError", OutcomeKind.UNKNOWN),
        ("SomethingNew", OutcomeKind.UNKNOWN),
    ],
)
def test_error_codes_map_to_outcome_classes(code: str, kind: OutcomeKind) -> None:
    assert dms.classify(code) is kind


def test_throttled_replies_are_retried_not_failed(
    repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
    emulator_clock: Any,
    capsys: pytest.CaptureFixture[str],
    aliyun_credentials: AliyunCredentials,
) -> None:
    repo.emulator = create_app(
        environ=credentials_environ(aliyun=aliyun_credentials),
        clock=emulator_clock,
        rate_limits={dms.NAME: 1.0},
    )
    monkeypatch.setattr("reconciler.execute._backoff", lambda attempt: 0.3)
    # The first call to the endpoint goes alone; the other two then leave at once, over 1/s.
    repo.write("dms", dms_plan(dags=[*DAGS, 15003]))
    assert repo.apply() == 0
    assert len(repo.calls()) == 3
    statuses = {r.status for r in load_state(repo.state).submissions.values()}
    assert statuses == {SubmissionStatus.SUBMITTED}
    assert "(after 2 attempts)" in capsys.readouterr().out  # "[3/3] submitted ... -> ID ..."


# --- the recovery lookup: only runs this request could have made ----------------------------


class Workspace:
    """One plans directory, applied from several state directories through the CLI."""

    def __init__(self, root: Path, url: str, env: dict[str, str]) -> None:
        self.root, self.url, self.env = root, url, env

    def run(self, command: str, state: str, *extra: str) -> Any:
        if not (self.root / state).exists():
            init_state(self.root / state, actor={"user": "test"})  # `backfill init`, once each
        endpoint = ["--endpoint", self.url] if command in ("apply", "recover") else []
        return cli(command, "--state-dir", state, *endpoint, *extra, cwd=self.root, env=self.env)

    def faults(self, **settings: Any) -> None:
        httpx.post(f"{self.url}/_emulator/faults", json=settings).raise_for_status()

    def record(self, state: str) -> Any:
        [record] = load_state(self.root / state).submissions.values()
        return record


@pytest.fixture
def august(tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str]) -> Workspace:
    _emulator, url = serve_emulator()
    write(tmp_path / "plans" / "dms.yaml", dms_plan(dags=[15001], dates=AUGUST))
    return Workspace(tmp_path, url, cli_env)


def test_recover_does_not_take_another_state_directorys_backfill_for_a_call_that_never_ran(
    august: Workspace,
) -> None:
    assert august.run("apply", "first", "--yes").returncode == 0
    august.faults(error_rate=1.0)  # 503 before anything runs
    assert august.run("apply", "second", "--yes").returncode == 1
    assert august.record("second").status is SubmissionStatus.UNKNOWN

    recovered = august.run("recover", "second")
    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout.startswith("still unknown: ")
    assert "may or may not be this request's" in recovered.stdout
    assert august.record("second").status is SubmissionStatus.UNKNOWN
    planned = json.loads(august.run("plan", "second", "--format", "json").stdout)["summary"]
    assert (planned["attention_cells"], planned["in_sync_cells"]) == (3, 0)


def test_a_create_whose_reply_was_lost_is_settled_as_its_own_run_not_an_earlier_one(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str], emulator_clock: FakeClock
) -> None:
    emulator, url = serve_emulator(clock=emulator_clock)
    write(tmp_path / "plans" / "dms.yaml", dms_plan(dags=[15001], dates=AUGUST))
    august = Workspace(tmp_path, url, cli_env)
    emulator_clock.advance(-300)  # an earlier backfill of the same dates, five minutes ago
    assert august.run("apply", "first", "--yes").returncode == 0
    emulator_clock.advance(300)
    august.faults(timeout_after_commit_rate=1.0, hang_ms=5_000)
    assert august.run("apply", "second", "--yes", "--timeout", "1").returncode == 1
    earlier, lost = (call["remote_id"] for call in emulator.calls.all())

    recovered = august.run("recover", "second")
    assert recovered.stdout.startswith(f"ran as {lost}: ")
    record = august.record("second")
    assert (record.status, record.remote_id) == (SubmissionStatus.SUBMITTED, lost)
    assert lost != earlier
    assert august.run("plan", "second", "--detailed-exitcode").returncode == 0


def test_two_runs_of_a_date_since_the_intent_leave_it_unknown(august: Workspace) -> None:
    august.faults(timeout_after_commit_rate=1.0, hang_ms=5_000)
    assert august.run("apply", "first", "--yes", "--timeout", "1").returncode == 1
    august.faults()
    assert august.run("apply", "second", "--yes").returncode == 0  # the same dates, again

    recovered = august.run("recover", "first")
    assert recovered.stdout.startswith("still unknown: ")
    assert "2 instances for 2025-08-01 since the intent" in recovered.stdout
    assert august.record("first").status is SubmissionStatus.UNKNOWN


def test_runs_for_some_dates_only_leave_it_unknown(august: Workspace) -> None:
    august.faults(error_rate=1.0)
    assert august.run("apply", "first", "--yes").returncode == 1
    august.faults()
    write(august.root / "other" / "day.yaml", dms_plan(dags=[15001], dates=[("2025-08-02",) * 2]))
    assert august.run("apply", "second", "--yes", "--plans", "other").returncode == 0

    recovered = august.run("recover", "first")
    assert "instances for 1 of 3 dates only" in recovered.stdout
    assert august.record("first").status is SubmissionStatus.UNKNOWN


def test_a_scheduled_run_of_the_date_is_not_taken_for_the_backfill(
    tmp_path: Path, serve_emulator: Serve, cli_env: dict[str, str]
) -> None:
    emulator, url = serve_emulator(faults=FaultConfig(timeout_after_commit_rate=1.0, hang_ms=5_000))
    write(tmp_path / "plans" / "dms.yaml", dms_plan(dags=[15001], dates=[("2025-08-01",) * 2]))
    day = Workspace(tmp_path, url, cli_env)
    assert day.run("apply", "state", "--yes", "--timeout", "1").returncode == 1
    [service] = [s for s in emulator.services if isinstance(s, DmsService)]
    service.run_on_schedule(15001, date(2025, 8, 1))

    recovered = day.run("recover", "state")
    [call] = emulator.calls.all()
    assert recovered.stdout.startswith(f"ran as {call['remote_id']}: ")


def test_a_run_another_submission_was_settled_with_proves_nothing(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01",) * 2]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=False))
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01",) * 2], revision=2))
    assert repo.apply() == 0  # r2 submitted; r1 (an earlier revision) still unknown
    [r2_run] = repo.calls()

    later = time.time() + dms.SETTLE_SECONDS + 1
    monkeypatch.setattr(dms, "clock", lambda: later)
    [finding] = repo.recover()
    assert finding.record.revision == 1
    assert finding.lookup.verdict == "missing"  # r2's run is r2's
    records = {r.revision: r for r in load_state(repo.state).submissions.values()}
    assert records[2].remote_id == r2_run["remote_id"]


def test_a_run_two_unknown_submissions_could_have_made_settles_neither(repo: Repo) -> None:
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01",) * 2]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=False))
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01",) * 2], revision=2))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    [run] = repo.calls()

    findings = repo.recover()
    assert [f.lookup.verdict for f in findings] == ["unclear", "unclear"]
    assert all(
        f"instance {run['remote_id']} for 2025-09-01 may also be" in f.lookup.how for f in findings
    )


def test_a_run_of_an_earlier_backfill_still_waiting_to_start_proves_nothing(
    repo: Repo, emulator_clock: FakeClock
) -> None:
    repo.emulator = create_app(clock=emulator_clock, faults=FaultConfig(instance_seconds=600))
    repo.write("dms", dms_plan("earlier", dags=[15001], dates=AUGUST))
    assert repo.apply() == 0  # 2025-08-01 runs now; 08-02 and 08-03 wait their turn
    (repo.plans / "dms.yaml").unlink()
    repo.write(
        "day",
        dms_plan(
            "day",
            dags=[15001],
            dates=[("2025-08-02",) * 2],
            takeover=[{"plan": "earlier", "mode": "rerun"}],  # on purpose, again
        ),
    )
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=False))

    [finding] = repo.recover()
    assert finding.lookup.verdict == "unclear"
    assert "has not started yet" in finding.lookup.how


def test_a_run_that_does_not_say_how_it_was_triggered_is_not_ruled_out(
    aliyun_credentials: Any, tmp_path: Path
) -> None:
    # A stand-in for a DMS that leaves TriggerType out: taking the run for a scheduled one
    # would find nothing and, in time, conclude "did not run".
    intent = datetime(2025, 9, 2, 4, 0, 0, tzinfo=UTC)
    started = (intent + timedelta(seconds=2)).astimezone(dms.INSTANCE_TIME_ZONE)

    def respond(request: httpx.Request) -> httpx.Response:
        run = {
            "Id": 470009,
            "BusinessTime": "2025-09-01 00:00:00",
            "startTime": started.strftime(dms.INSTANCE_TIME_FORMAT),
        }
        body = {"Success": True, "TotalCount": 1, "DAGInstanceList": {"DAGInstance": [run]}}
        return httpx.Response(200, json=body)

    sent = submission(dms.PROVIDER)
    init_state(tmp_path, actor={"user": "test"})
    with open_state(tmp_path, actor={"user": "test"}, command="test", clock=lambda: intent) as w:
        w.append("intent", execute.intent(sent, "http://127.0.0.1:9"))
        record = w.state.submissions["k"]
    connection = Connection("http://127.0.0.1:9", transport=httpx.MockTransport(respond))
    client = dms.DmsClient(aliyun_credentials, connection)
    lookup = client.find(record, sent.request, [])
    assert (lookup.verdict, lookup.remote_id) == ("submitted", "470009")
