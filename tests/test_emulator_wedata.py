"""The emulated WeData API, driven by the official SDK over loopback (and by our signer
in-process): what it accepts, what it refuses with which code, and how plans progress."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from reconciler.emulator import server as server_module
from reconciler.emulator.app import Emulator, create_app
from reconciler.emulator.server import EmulatorServer, serve_forever, start_in_thread
from reconciler.providers.tc3 import TC3Auth, TencentCredentials

if TYPE_CHECKING:
    from conftest import FakeClock

PROJECT = "1460947878944567296"
CREATE = "CreateDataBackfillPlan"


TASKS = ["20250827115253729", "20250827115253730"]


def _plan(**overrides: Any) -> dict[str, Any]:
    """A valid CreateDataBackfillPlan request: two tasks, three dates."""
    return {
        "ProjectId": PROJECT,
        "TaskIds": TASKS,
        "DataBackfillRangeList": [{"StartDate": "2025-09-01", "EndDate": "2025-09-03"}],
    } | overrides


def _headers(action: str, **overrides: str) -> dict[str, str]:
    """The common parameters of API 3.0 for our own signed requests."""
    return {
        "X-TC-Action": action,
        "X-TC-Version": "2025-08-06",
        "X-TC-Region": "ap-guangzhou",
    } | overrides


def _error_code(call: Callable[[], Any]) -> str:
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    with pytest.raises(TencentCloudSDKException) as raised:
        call()
    return str(raised.value.code)


@pytest.fixture
def sdk(wedata_sdk_client: Callable[..., Any]) -> Any:
    return wedata_sdk_client()


@pytest.fixture
def frozen(emulator_clock: FakeClock) -> FakeClock:
    emulator_clock.freeze()
    return emulator_clock


def _create(sdk: Any, **overrides: Any) -> str:
    return str(sdk.call_json(CREATE, _plan(**overrides))["Response"]["Data"]["DataBackfillPlanId"])


def _get(sdk: Any, plan_id: str) -> dict[str, Any]:
    reply = sdk.call_json(
        "GetDataBackfillPlan", {"ProjectId": PROJECT, "DataBackfillPlanId": plan_id}
    )
    data: dict[str, Any] = reply["Response"]["Data"]
    return data


def _instances(sdk: Any, plan_id: str, task: str = TASKS[0], **paging: Any) -> dict[str, Any]:
    reply = sdk.call_json(
        "ListDataBackfillInstances",
        {"ProjectId": PROJECT, "DataBackfillPlanId": plan_id, "TaskId": task} | paging,
    )
    data: dict[str, Any] = reply["Response"]["Data"]
    return data


def _states(sdk: Any, plan_id: str) -> dict[tuple[str, str], str]:
    """(task, date) -> State of every instance of the plan."""
    return {
        (item["TaskId"], item["CurRunDate"][:10]): item["State"]
        for task in TASKS
        for item in _instances(sdk, plan_id, task, PageSize=100)["Items"]
    }


def test_create_returns_a_plan_id_and_the_call_is_logged(sdk: Any, emulator_url: str) -> None:
    from tencentcloud.wedata.v20250806 import models

    request = models.CreateDataBackfillPlanRequest()
    request.ProjectId = PROJECT
    request.TaskIds = ["t1"]
    backfill_range = models.DataBackfillRange()
    backfill_range.StartDate = backfill_range.EndDate = "2025-09-02"
    request.DataBackfillRangeList = [backfill_range]
    request.SkipEventListening = True

    reply = sdk.CreateDataBackfillPlan(request)

    plan_id = reply.Data.DataBackfillPlanId
    assert len(plan_id) == 36
    calls = httpx.get(f"{emulator_url}/_emulator/calls").json()["calls"]
    assert [(c["provider"], c["action"], c["remote_id"]) for c in calls] == [
        ("tencent-wedata", CREATE, plan_id)
    ]
    assert calls[0]["request_id"] == reply.RequestId
    assert calls[0]["params"] == {
        "ProjectId": PROJECT,
        "TaskIds": ["t1"],
        "DataBackfillRangeList": [{"StartDate": "2025-09-02", "EndDate": "2025-09-02"}],
        "SkipEventListening": True,
    }


def test_every_documented_parameter_is_accepted_and_echoed(sdk: Any) -> None:
    full = _plan(
        DataBackfillRangeList=[
            {
                "StartDate": "2025-09-01",
                "EndDate": "2025-09-02",
                "ExecutionStartTime": "08:00",
                "ExecutionEndTime": "20:30",
            }
        ],
        TimeZone="UTC+8",
        DataBackfillPlanName="orders-backfill",
        CheckParentType="MAKE_SCOPE",
        SkipEventListening=False,
        RedefineSelfWorkflowDependency="no",
        RedefineParallelNum=4,
        SchedulerResourceGroupId="rg-scheduler",
        IntegrationResourceGroupId="rg-integration",
        RedefineParamList=[{"K": "bizdate", "V": "${yyyyMMdd}"}],
        DataTimeOrder="ORDER",
        RedefineCycleType="MONTH_CYCLE",
        ComputeConfigMappings=[
            {
                "TaskTypeId": 32,
                "ComputeConfigItem": "COMPUTE_ENGINE",
                "TaskIds": ["20250827115253729"],
                "SourceValue": "engine-a",
                "TargetValue": "engine-b",
            }
        ],
    )

    plan_id = str(sdk.call_json(CREATE, full)["Response"]["Data"]["DataBackfillPlanId"])
    plan = _get(sdk, plan_id)

    assert plan["DataBackfillPlanName"] == "orders-backfill"
    assert plan["CheckParentType"] == "MAKE_SCOPE"
    assert plan["SkipEventListening"] is False
    assert plan["RedefineParallelNum"] == 4
    assert plan["RedefineParamList"] == [{"K": "bizdate", "V": "${yyyyMMdd}"}]
    assert plan["DataTimeOrder"] == "ORDER"
    assert plan["RedefineCycleType"] == "MONTH_CYCLE"
    assert plan["DataBackfillRangeList"] == full["DataBackfillRangeList"]
    items = _instances(sdk, plan_id)["Items"]
    assert items[0]["CurRunDate"] == "2025-09-01 08:00:00"


def test_the_plan_progresses_as_the_emulator_clock_advances(sdk: Any, frozen: FakeClock) -> None:
    from tencentcloud.wedata.v20250806 import models

    plan_id = _create(sdk)  # 2 tasks x 3 dates = 6 instances of 2 s, one after another
    request = models.GetDataBackfillPlanRequest()
    request.ProjectId = PROJECT
    request.DataBackfillPlanId = plan_id

    progress = []
    for step in (0.0, 1.0, 4.0, 7.0):
        frozen.advance(step)
        plan = sdk.GetDataBackfillPlan(request).Data
        progress.append((plan.CompletePercent, plan.SuccessPercent, plan.EndTime))

    assert progress == [(0, 0, None), (0, 0, None), (33, 33, None), (100, 100, progress[3][2])]
    assert progress[3][2] is not None
    assert plan.TaskIds == _plan()["TaskIds"]
    assert plan.CreateUserUin


def test_a_tasks_instances_are_listed_one_per_date_over_pages(sdk: Any, frozen: FakeClock) -> None:
    from tencentcloud.wedata.v20250806 import models

    plan_id = _create(
        sdk, DataBackfillRangeList=[{"StartDate": "2025-09-01", "EndDate": "2025-09-10"}]
    )

    def page(number: int) -> Any:
        request = models.ListDataBackfillInstancesRequest()
        request.ProjectId = PROJECT
        request.DataBackfillPlanId = plan_id
        request.TaskId = TASKS[1]
        request.PageNumber = number
        request.PageSize = 4
        return sdk.ListDataBackfillInstances(request).Data

    pages = [page(number) for number in (1, 2, 3, 4)]

    assert [(p.PageNumber, p.PageSize, p.TotalCount, p.TotalPageNumber) for p in pages] == [
        (number, 4, 10, 3) for number in (1, 2, 3, 4)
    ]
    assert [len(p.Items) for p in pages] == [4, 4, 2, 0]
    items = [item for p in pages for item in p.Items]
    assert {item.TaskId for item in items} == {TASKS[1]}
    assert [item.CurRunDate for item in items] == [
        f"2025-09-{day:02} 00:00:00" for day in range(1, 11)
    ]


def test_instances_are_listed_task_by_task_only(sdk: Any) -> None:
    plan_id = _create(sdk)
    every = {"ProjectId": PROJECT, "DataBackfillPlanId": plan_id}

    code = _error_code(lambda: sdk.call_json("ListDataBackfillInstances", every))

    assert code == "MissingParameter"


def test_instances_wait_then_run_then_complete(sdk: Any, frozen: FakeClock) -> None:
    plan_id = _create(sdk)

    frozen.advance(3.0)
    early = _states(sdk, plan_id)
    frozen.advance(60.0)
    finished = [_instances(sdk, plan_id, task, PageSize=10)["Items"] for task in TASKS]

    # one after another: each date's tasks in turn, 2 s each
    assert early == {
        (TASKS[0], "2025-09-01"): "COMPLETED",
        (TASKS[1], "2025-09-01"): "RUNNING",
        (TASKS[0], "2025-09-02"): "WAIT_RUN",
        (TASKS[1], "2025-09-02"): "WAIT_RUN",
        (TASKS[0], "2025-09-03"): "WAIT_RUN",
        (TASKS[1], "2025-09-03"): "WAIT_RUN",
    }
    items = [item for listed in finished for item in listed]
    assert {i["State"] for i in items} == {"COMPLETED"}
    assert all(i["StartTime"] and i["EndTime"] and i["CostTime"] for i in items)


def test_reverse_order_runs_the_latest_date_first(sdk: Any, frozen: FakeClock) -> None:
    plan_id = _create(sdk, DataTimeOrder="REVERSE")

    items = _instances(sdk, plan_id, PageSize=10)["Items"]

    assert [i["CurRunDate"][:10] for i in items] == ["2025-09-03", "2025-09-02", "2025-09-01"]
    assert [i["State"] for i in items] == ["RUNNING", "WAIT_RUN", "WAIT_RUN"]


def test_a_failure_rate_fails_the_seeds_share_of_runs(
    sdk: Any, frozen: FakeClock, emulator_url: str
) -> None:
    def failed(seed: int) -> set[tuple[str, str]]:
        faults = {"instance_failure_rate": 0.5, "instance_seconds": 1, "seed": seed}
        httpx.post(f"{emulator_url}/_emulator/reset").raise_for_status()
        httpx.post(f"{emulator_url}/_emulator/faults", json=faults).raise_for_status()
        plan_id = _create(
            sdk, DataBackfillRangeList=[{"StartDate": "2025-09-01", "EndDate": "2025-09-10"}]
        )
        running = _states(sdk, plan_id)
        frozen.advance(20.0)
        ended = _states(sdk, plan_id)
        plan = _get(sdk, plan_id)
        assert set(running.values()) == {"RUNNING", "WAIT_RUN"}  # a run fails at its end
        assert set(ended.values()) == {"COMPLETED", "EXPIRED"}
        completed = list(ended.values()).count("COMPLETED")
        assert (plan["CompletePercent"], plan["SuccessPercent"]) == (100, 100 * completed // 20)
        assert plan["EndTime"] is not None
        return {cell for cell, state in ended.items() if state == "EXPIRED"}

    first = failed(seed=11)

    assert 0 < len(first) < 20
    assert failed(seed=11) == first  # the same seed fails the same runs
    assert failed(seed=12) != first


def test_a_run_of_a_cell_that_failed_has_its_own_chance(
    sdk: Any, frozen: FakeClock, emulator_url: str
) -> None:
    faults = {"instance_failure_rate": 0.5, "instance_seconds": 1, "seed": 5}
    httpx.post(f"{emulator_url}/_emulator/faults", json=faults).raise_for_status()
    one_task = {"TaskIds": [TASKS[0]]}
    dates = {"DataBackfillRangeList": [{"StartDate": "2025-09-01", "EndDate": "2025-09-30"}]}
    plans = [_create(sdk, **one_task, **dates) for _ in range(2)]
    frozen.advance(60.0)

    first, again = (_states(sdk, plan_id) for plan_id in plans)

    assert first != again  # each re-run of a (task, date) is drawn anew


def test_delete_removes_the_plan(sdk: Any) -> None:
    plan_id = _create(sdk)

    reply = sdk.call_json(
        "DeleteDataBackfillPlanAsync", {"ProjectId": PROJECT, "DataBackfillPlanId": plan_id}
    )

    assert reply["Response"]["Data"]["AsyncId"]
    assert _error_code(lambda: _get(sdk, plan_id)) == "ResourceNotFound"


def test_an_unknown_plan_is_not_found(sdk: Any) -> None:
    plan_id = _create(sdk)

    assert _error_code(lambda: _get(sdk, "no-such-plan")) == "ResourceNotFound"
    other_project = {"ProjectId": "another", "DataBackfillPlanId": plan_id}
    code = _error_code(lambda: sdk.call_json("GetDataBackfillPlan", other_project))
    assert code == "ResourceNotFound"


def test_a_wrong_secret_key_fails_the_signature(wedata_sdk_client: Callable[..., Any]) -> None:
    sdk = wedata_sdk_client(secret_key="not-the-key")

    assert _error_code(lambda: _create(sdk)) == "AuthFailure.SignatureFailure"


def test_an_unknown_secret_id_is_not_found(wedata_sdk_client: Callable[..., Any]) -> None:
    sdk = wedata_sdk_client(secret_id="AKIDsomeoneelse")

    assert _error_code(lambda: _create(sdk)) == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"CheckParentType": "SOME"}, "InvalidParameterValue", "CheckParentType"),
        ({"DataTimeOrder": "RANDOM"}, "InvalidParameterValue", "DataTimeOrder"),
        ({"RedefineSelfWorkflowDependency": "YES"}, "InvalidParameterValue", "Dependency"),
        ({"RedefineCycleType": "WEEK_CYCLE"}, "InvalidParameterValue", "RedefineCycleType"),
        (
            {"DataBackfillRangeList": [{"StartDate": "2025-02-30", "EndDate": "2025-03-01"}]},
            "InvalidParameterValue",
            "DataBackfillRangeList.0.StartDate",
        ),
        (
            {"DataBackfillRangeList": [{"StartDate": "2025/09/01", "EndDate": "2025-09-01"}]},
            "InvalidParameterValue",
            "DataBackfillRangeList.0.StartDate",
        ),
        (
            {"DataBackfillRangeList": [{"StartDate": "2025-09-03", "EndDate": "2025-09-01"}]},
            "InvalidParameterValue",
            "DataBackfillRangeList.0.EndDate",
        ),
        (
            {
                "DataBackfillRangeList": [
                    {
                        "StartDate": "2025-09-01",
                        "EndDate": "2025-09-01",
                        "ExecutionStartTime": "25:00",
                    }
                ]
            },
            "InvalidParameterValue",
            "ExecutionStartTime",
        ),
        ({"DataBackfillRangeList": []}, "InvalidParameterValue", "DataBackfillRangeList"),
        ({"TaskIds": None}, "MissingParameter", "TaskIds"),
        ({"TaskIds": []}, "InvalidParameterValue", "TaskIds"),
        ({"TaskIds": "20250827115253729"}, "InvalidParameter", "TaskIds"),
        ({"TaskIds": ["t1", "t1"]}, "InvalidParameterValue", "TaskIds"),
        ({"ProjectId": None}, "MissingParameter", "ProjectId"),
        ({"SkipEventListening": "true"}, "InvalidParameter", "SkipEventListening"),
        ({"RedefineParallelNum": 0}, "InvalidParameterValue", "RedefineParallelNum"),
        ({"RedefineParallelNum": True}, "InvalidParameter", "RedefineParallelNum"),
        ({"TimeZone": "Mars/Olympus"}, "InvalidParameterValue", "TimeZone"),
        ({"RedefineParamList": [{"Key": "a", "Value": "b"}]}, "UnknownParameter", "Key"),
        ({"RedefineParamList": [{"V": "b"}]}, "MissingParameter", "RedefineParamList.0.K"),
        (
            {"ComputeConfigMappings": [{"ComputeConfigItem": "GPU"}]},
            "InvalidParameterValue",
            "Item",
        ),
        ({"Tasks": ["t1"]}, "UnknownParameter", "Tasks"),
        (
            {
                "DataBackfillRangeList": [
                    {"StartDate": "2025-09-01", "EndDate": "2025-09-01", "X": 1}
                ]
            },
            "UnknownParameter",
            "DataBackfillRangeList.0.X",
        ),
    ],
)
def test_invalid_parameters_are_refused_with_the_real_codes(
    overrides: dict[str, Any], code: str, field: str, sdk: Any, emulator: Emulator
) -> None:
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    params = {k: v for k, v in _plan(**overrides).items() if v is not None}

    with pytest.raises(TencentCloudSDKException) as raised:
        sdk.call_json(CREATE, params)

    assert raised.value.code == code
    assert field in raised.value.message
    assert emulator.calls.all() == []


def test_more_than_twenty_creates_a_second_are_throttled(
    sdk: Any, frozen: FakeClock, emulator: Emulator
) -> None:
    for _ in range(20):
        _create(sdk)

    assert _error_code(lambda: _create(sdk)) == "RequestLimitExceeded"
    assert len(emulator.calls.all()) == 20
    assert _error_code(lambda: _get(sdk, "no-such-plan")) == "ResourceNotFound"  # per action
    frozen.advance(0.999)
    assert _error_code(lambda: _create(sdk)) == "RequestLimitExceeded"
    frozen.advance(0.001)
    _create(sdk)


def test_the_limit_holds_under_concurrent_requests(
    emulator_url: str, tencent_credentials: TencentCredentials, frozen: FakeClock
) -> None:
    auth = TC3Auth(tencent_credentials, service="wedata")
    codes: list[str] = []
    lock = threading.Lock()

    def submit() -> None:
        reply = httpx.post(emulator_url, json=_plan(), headers=_headers(CREATE), auth=auth)
        error = reply.json()["Response"].get("Error", {})
        with lock:
            codes.append(error.get("Code", "ok"))

    threads = [threading.Thread(target=submit) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(codes) == ["RequestLimitExceeded"] * 10 + ["ok"] * 20


@pytest.fixture
def in_process(
    emulator: Emulator, tencent_credentials: TencentCredentials
) -> Iterator[httpx.Client]:
    """Our own signer against the emulator mounted in-process, as the product's tests use it."""
    transport = httpx.WSGITransport(app=emulator)
    auth = TC3Auth(tencent_credentials, service="wedata")
    with httpx.Client(
        transport=transport, base_url="https://wedata.tencentcloudapi.com", auth=auth
    ) as client:
        yield client


def _reply(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    reply: dict[str, Any] = response.json()["Response"]
    assert reply["RequestId"]
    return reply


def test_our_signer_creates_a_plan_in_process(in_process: httpx.Client) -> None:
    reply = _reply(in_process.post("/", json=_plan(), headers=_headers(CREATE)))

    calls = in_process.get("/_emulator/calls").json()["calls"]
    assert [call["remote_id"] for call in calls] == [reply["Data"]["DataBackfillPlanId"]]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (_headers(CREATE, **{"X-TC-Version": "2018-11-01"}), "NoSuchVersion"),
        (_headers(CREATE, **{"X-TC-Version": ""}), "MissingParameter"),
        (_headers("CreateBackfill"), "InvalidAction"),
        (_headers(CREATE, **{"X-TC-Region": ""}), "MissingParameter"),
    ],
)
def test_common_parameters_are_checked(
    headers: dict[str, str], code: str, in_process: httpx.Client
) -> None:
    reply = _reply(in_process.post("/", json=_plan(), headers=headers))

    assert reply["Error"]["Code"] == code


def test_a_body_that_is_not_json_is_refused(in_process: httpx.Client) -> None:
    headers = _headers(CREATE) | {"Content-Type": "application/json"}

    reply = _reply(in_process.post("/", content=b"{not json", headers=headers))

    assert reply["Error"]["Code"] == "InvalidParameter"


def test_an_unsigned_request_is_refused(emulator: Emulator) -> None:
    with httpx.Client(transport=httpx.WSGITransport(app=emulator), base_url="http://e") as client:
        reply = _reply(client.post("/", json=_plan(), headers=_headers(CREATE)))

    assert reply["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


def test_without_credentials_every_request_is_refused(
    tencent_credentials: TencentCredentials,
) -> None:
    emulator = create_app(environ={})
    auth = TC3Auth(tencent_credentials, service="wedata")
    with httpx.Client(transport=httpx.WSGITransport(app=emulator), base_url="http://e") as client:
        reply = _reply(client.post("/", json=_plan(), headers=_headers(CREATE), auth=auth))

    assert reply["Error"]["Code"] == "AuthFailure.SecretIdNotFound"


def test_credentials_default_to_the_environment(
    tencent_credentials: TencentCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", tencent_credentials.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", tencent_credentials.secret_key)
    monkeypatch.delenv("TENCENTCLOUD_SESSION_TOKEN", raising=False)
    emulator = create_app()
    auth = TC3Auth(tencent_credentials, service="wedata")
    with httpx.Client(transport=httpx.WSGITransport(app=emulator), base_url="http://e") as client:
        reply = _reply(client.post("/", json=_plan(), headers=_headers(CREATE), auth=auth))

    assert "Data" in reply


def test_reset_forgets_plans_and_calls(in_process: httpx.Client) -> None:
    plan_id = _reply(in_process.post("/", json=_plan(), headers=_headers(CREATE)))["Data"][
        "DataBackfillPlanId"
    ]

    assert in_process.post("/_emulator/reset").json() == {"reset": True}

    get = {"ProjectId": PROJECT, "DataBackfillPlanId": plan_id}
    reply = _reply(in_process.post("/", json=get, headers=_headers("GetDataBackfillPlan")))
    assert reply["Error"]["Code"] == "ResourceNotFound"
    assert in_process.get("/_emulator/calls").json() == {"calls": []}


def test_the_served_emulator_is_quiet_and_releases_its_port(
    emulator: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    server, url = start_in_thread(emulator)
    assert httpx.get(f"{url}/_emulator/health").json()["ok"] is True
    server.shutdown()

    assert capfd.readouterr().err == ""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_emulator/health")


def test_serve_forever_announces_its_url_once_it_serves(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server it makes, to stop it at the end: a server left running in a thread would keep
    # the rest of the suite from forking (see reconciler.parallel).
    servers: list[EmulatorServer] = []
    made = server_module.serve

    def serve(*args: Any, **options: Any) -> EmulatorServer:
        servers.append(made(*args, **options))
        return servers[-1]

    monkeypatch.setattr(server_module, "serve", serve)
    ready: list[str] = []
    thread = threading.Thread(
        target=serve_forever, kwargs={"app": emulator, "on_ready": ready.append}, daemon=True
    )
    thread.start()
    try:
        for _ in range(100):
            if ready:
                break
            threading.Event().wait(0.01)

        assert ready
        assert ready[0].startswith("http://127.0.0.1:")
        assert httpx.get(f"{ready[0]}/_emulator/health").status_code == 200
    finally:
        for server in servers:
            server.shutdown()
        thread.join(timeout=30)
    assert not thread.is_alive()
