"""DMS BackFill end to end against the emulator: the same guarantees as for WeData."""

from __future__ import annotations

import time
from typing import Any

import pytest
from factories import DAGS, dms_plan, wedata_plan
from harness import Crash, Repo

from reconciler.domain import OutcomeKind
from reconciler.errors import BackfillError
from reconciler.providers import dms
from reconciler.state import SubmissionStatus, load_state


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
) -> None:
    from reconciler.emulator import create_app

    repo.emulator = create_app(
        tencent=None, aliyun=_aliyun(), clock=emulator_clock, aliyun_rate_limit=1.0
    )
    monkeypatch.setattr("reconciler.execute._backoff", lambda attempt: 0.3)
    repo.write("dms", dms_plan(dags=DAGS))
    assert repo.apply() == 0
    assert len(repo.calls()) == 2
    statuses = {r.status for r in load_state(repo.state).submissions.values()}
    assert statuses == {SubmissionStatus.SUBMITTED}
    assert "attempts" in capsys.readouterr().out  # "[2/2] submitted ... after N attempts"


def _aliyun() -> Any:
    from reconciler.providers.acs3 import AliyunCredentials

    return AliyunCredentials.from_env()
