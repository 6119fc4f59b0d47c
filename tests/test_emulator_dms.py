"""The emulated DMS Enterprise API, driven by the official Alibaba Cloud SDK over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from alibabacloud_dms_enterprise20181101 import models
from alibabacloud_dms_enterprise20181101.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException
from alibabacloud_tea_openapi.utils_models import Config
from harness import credentials_environ

from reconciler.emulator.app import CallLog, Emulator, Settings
from reconciler.emulator.dms import PROVIDER, DmsService
from reconciler.emulator.faults import FaultConfig, FaultInjector
from reconciler.emulator.server import start_in_thread
from reconciler.providers.acs3 import ACS3Auth, AliyunCredentials

KEY = AliyunCredentials("LTAI5tExampleKeyId", "example-secret-4d9f")
RUN_SECONDS = 60.0
RUNS = FaultConfig(instance_seconds=RUN_SECONDS)
"""Runs that take a minute, none of which fails."""
WAITING, RUNNING, FAILED, SUCCEEDED = 0, 1, 3, 4
SCHEDULED, MANUAL = 0, 1
"""ListTaskFlowInstance `TriggerType` as the SDK documents it."""


class FakeClock:
    """Starts at the real time (the SDK stamps requests with it) and moves only when told."""

    def __init__(self) -> None:
        self.now = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@dataclass
class Dms:
    service: DmsService
    clock: FakeClock
    host: str
    url: str

    def client(self, credentials: AliyunCredentials = KEY) -> Any:
        config = Config(
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.access_key_secret,
            endpoint=self.host,
            protocol="http",
        )
        return Client(config)

    def calls(self) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/_emulator/calls")
        reply.raise_for_status()
        calls: list[dict[str, Any]] = reply.json()["calls"]
        return calls

    def instances(self, dag_id: int, **filters: Any) -> Any:
        request = models.ListTaskFlowInstanceRequest(
            dag_id=dag_id, page_index=1, page_size=100, **filters
        )
        return self.client().list_task_flow_instance(request).body


@contextmanager
def _serve(
    credentials: AliyunCredentials | None = KEY,
    rate_limit: float | None = None,
    faults: FaultConfig = RUNS,
) -> Iterator[Dms]:
    clock = FakeClock()
    calls = CallLog()
    service = DmsService(
        Settings(
            calls,
            credentials_environ(aliyun=credentials),
            clock=clock,
            rate_limits={PROVIDER: rate_limit},
            faults=FaultInjector(faults),
        )
    )
    server, url = start_in_thread(Emulator([service], calls))
    try:
        yield Dms(service, clock, url.removeprefix("http://"), url)
    finally:
        server.shutdown()


@pytest.fixture
def dms() -> Iterator[Dms]:
    with _serve() as served:
        yield served


def _by_date(body: Any) -> dict[str, Any]:
    return {item.business_time[:10]: item for item in body.daginstance_list.daginstance}


# BackFill


def test_a_single_date_backfill_returns_a_dag_instance_id_and_is_logged(dms: Dms) -> None:
    response = dms.client().back_fill(
        models.BackFillRequest(
            dag_id=15001,
            back_fill_date="2024-03-01",
            start_node_ids=[7, 8],
            is_trigger_sub_tree=True,
        )
    )

    body = response.body
    assert response.status_code == 200
    assert body.success is True
    assert isinstance(body.dag_instance_id, int)
    assert body.node_id == 7
    [call] = dms.calls()
    assert call["provider"] == "aliyun-dms"
    assert call["action"] == "BackFill"
    assert call["remote_id"] == str(body.dag_instance_id)
    assert call["request_id"] == body.request_id
    assert call["params"] == {
        "DagId": 15001,
        "BackFillDate": "2024-03-01",
        "StartNodeIds": [7, 8],
        "IsTriggerSubTree": True,
    }
    assert call["time"] == pytest.approx(dms.clock.now)


def test_a_range_backfill_creates_one_instance_per_business_date(dms: Dms) -> None:
    dms.client().back_fill(
        models.BackFillRequest(
            dag_id=15001, back_fill_date_begin="2024-02-28", back_fill_date_end="2024-03-02"
        )
    )

    body = dms.instances(15001)
    assert body.success is True
    assert body.total_count == 4
    assert sorted(_by_date(body)) == ["2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]
    assert {item.dag_id for item in body.daginstance_list.daginstance} == {"15001"}


def test_each_backfill_gets_its_own_instances_and_ids(dms: Dms) -> None:
    first = dms.client().back_fill(models.BackFillRequest(dag_id=1, back_fill_date="2024-01-01"))
    second = dms.client().back_fill(models.BackFillRequest(dag_id=1, back_fill_date="2024-01-01"))

    assert first.body.dag_instance_id != second.body.dag_instance_id
    assert dms.instances(1).total_count == 2
    assert [c["remote_id"] for c in dms.calls()] == [
        str(first.body.dag_instance_id),
        str(second.body.dag_instance_id),
    ]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"back_fill_date": "2024-01-01", "back_fill_date_begin": "2024-01-01"}, "either"),
        ({"back_fill_date_begin": "2024-01-01"}, "both"),
        ({}, "Specify BackFillDate"),
        ({"back_fill_date_begin": "2024-01-05", "back_fill_date_end": "2024-01-04"}, "after"),
        ({"back_fill_date": "2024-02-30"}, "yyyy-MM-dd"),
        ({"back_fill_date": "20240101"}, "yyyy-MM-dd"),
        ({"back_fill_date": "2024-01-01", "interval": 0}, "Interval"),
    ],
    ids=[
        "both-styles",
        "begin-only",
        "no-date",
        "begin-after-end",
        "no-such-day",
        "format",
        "int0",
    ],
)
def test_dms_refuses_an_invalid_backfill_with_success_false_and_the_sdk_does_not_raise(
    dms: Dms, fields: dict[str, Any], problem: str
) -> None:
    response = dms.client().back_fill(models.BackFillRequest(dag_id=1, **fields))

    assert response.status_code == 200
    assert response.body.success is False
    assert response.body.error_code == "InvalidParameter"
    assert problem in response.body.error_message
    assert response.body.dag_instance_id is None
    assert dms.calls() == []
    assert dms.instances(1).total_count == 0


def test_the_gateway_refuses_a_backfill_without_dag_id_and_the_sdk_raises(dms: Dms) -> None:
    with pytest.raises(ClientException) as raised:
        dms.client().back_fill(models.BackFillRequest(back_fill_date="2024-01-01"))

    assert raised.value.status_code == 400
    assert raised.value.code == "MissingDagId"
    assert raised.value.data["Message"] == "DagId is mandatory for this action."
    assert dms.calls() == []


def test_the_gateway_refuses_a_parameter_of_the_wrong_type(dms: Dms) -> None:
    with pytest.raises(ClientException) as raised:
        dms.client().back_fill(
            models.BackFillRequest(dag_id="fifteen", back_fill_date="2024-01-01")
        )

    assert raised.value.code == "InvalidDagId"


def test_asc_false_runs_the_latest_date_first(dms: Dms) -> None:
    dms.client().back_fill(
        models.BackFillRequest(
            dag_id=3, back_fill_date_begin="2024-01-01", back_fill_date_end="2024-01-03", asc=False
        )
    )

    status = {day: item.status for day, item in _by_date(dms.instances(3)).items()}
    assert status == {"2024-01-03": RUNNING, "2024-01-02": WAITING, "2024-01-01": WAITING}


# Authentication, versions, actions, throttling


def test_a_wrong_secret_is_a_signature_error(dms: Dms) -> None:
    forged = AliyunCredentials(KEY.access_key_id, "not-the-secret")

    with pytest.raises(ClientException) as raised:
        dms.client(forged).back_fill(models.BackFillRequest(dag_id=1, back_fill_date="2024-01-01"))

    assert raised.value.status_code == 400
    assert raised.value.code == "SignatureDoesNotMatch"
    assert raised.value.data["HostId"] == dms.host
    assert dms.calls() == []


def test_an_unknown_access_key_is_not_found(dms: Dms) -> None:
    stranger = AliyunCredentials("LTAIsomeoneelse", KEY.access_key_secret)

    with pytest.raises(ClientException) as raised:
        dms.client(stranger).back_fill(
            models.BackFillRequest(dag_id=1, back_fill_date="2024-01-01")
        )

    assert raised.value.status_code == 404
    assert raised.value.code == "InvalidAccessKeyId.NotFound"


def test_without_credentials_the_emulator_refuses_everyone() -> None:
    with _serve(credentials=None) as dms:
        with pytest.raises(ClientException) as raised:
            dms.client().back_fill(models.BackFillRequest(dag_id=1, back_fill_date="2024-01-01"))

        assert raised.value.code == "InvalidAccessKeyId.NotFound"


def _signed_post(dms: Dms, action: str, version: str) -> httpx.Response:
    with httpx.Client(auth=ACS3Auth(KEY, clock=dms.clock)) as client:
        return client.post(
            f"{dms.url}/",
            params={"DagId": "1", "BackFillDate": "2024-01-01"},
            headers={"x-acs-action": action, "x-acs-version": version},
        )


def test_an_unknown_action_is_not_found(dms: Dms) -> None:
    reply = _signed_post(dms, "BackFillEverything", "2018-11-01")

    assert reply.status_code == 404
    assert reply.json()["Code"] == "InvalidApi.NotFound"


def test_another_api_version_is_refused(dms: Dms) -> None:
    reply = _signed_post(dms, "BackFill", "2019-01-01")

    assert reply.status_code == 400
    assert reply.json()["Code"] == "InvalidVersion"
    assert dms.calls() == []


def test_over_the_rate_limit_the_sdk_gets_a_throttling_error_with_retry_after() -> None:
    with _serve(rate_limit=1.0) as dms:
        client = dms.client()
        request = models.BackFillRequest(dag_id=1, back_fill_date="2024-01-01")
        assert client.back_fill(request).body.success is True

        with pytest.raises(ThrottlingException) as raised:
            client.back_fill(request)

        assert raised.value.status_code == 400
        assert raised.value.code == "Throttling.User"
        assert raised.value.retry_after == 1000
        assert len(dms.calls()) == 1
        dms.clock.advance(1.0)
        assert client.back_fill(request).body.success is True


# ListTaskFlowInstance


def test_instance_status_advances_with_time_one_date_after_another(dms: Dms) -> None:
    dms.client().back_fill(
        models.BackFillRequest(
            dag_id=9, back_fill_date_begin="2024-01-01", back_fill_date_end="2024-01-03"
        )
    )

    def status() -> dict[str, int]:
        return {day: item.status for day, item in _by_date(dms.instances(9)).items()}

    assert status() == {"2024-01-01": RUNNING, "2024-01-02": WAITING, "2024-01-03": WAITING}
    dms.clock.advance(RUN_SECONDS)
    assert status() == {"2024-01-01": SUCCEEDED, "2024-01-02": RUNNING, "2024-01-03": WAITING}
    dms.clock.advance(2 * RUN_SECONDS)
    assert status() == {"2024-01-01": SUCCEEDED, "2024-01-02": SUCCEEDED, "2024-01-03": SUCCEEDED}


def test_a_failure_rate_fails_the_seeds_share_of_runs() -> None:
    def statuses(seed: int) -> dict[str, Any]:
        faults = FaultConfig(instance_seconds=1, instance_failure_rate=0.5, seed=seed)
        with _serve(faults=faults) as dms:
            dms.client().back_fill(
                models.BackFillRequest(
                    dag_id=9, back_fill_date_begin="2024-01-01", back_fill_date_end="2024-01-20"
                )
            )
            running = {day: item.status for day, item in _by_date(dms.instances(9)).items()}
            dms.clock.advance(20)
            ended = _by_date(dms.instances(9))
        assert set(running.values()) == {RUNNING, WAITING}  # a run fails at its end
        assert {item.status for item in ended.values()} == {SUCCEEDED, FAILED}
        assert all(item.end_time for item in ended.values())
        assert {bool(item.message) for item in ended.values() if item.status == FAILED} == {True}
        return {day: item.status for day, item in ended.items()}

    first = statuses(seed=3)

    assert statuses(seed=3) == first  # the same seed fails the same runs
    assert statuses(seed=4) != first


def test_an_instance_shows_start_and_end_times_once_it_has_them(dms: Dms) -> None:
    dms.client().back_fill(
        models.BackFillRequest(dag_id=9, back_fill_date="2024-01-01", history_dag_id=90)
    )

    [item] = dms.instances(9).daginstance_list.daginstance
    assert item.business_time == "2024-01-01 00:00:00"
    assert item.trigger_type == 1
    assert item.history_dag_id == 90
    assert item.start_time is not None
    assert item.end_time is None
    dms.clock.advance(RUN_SECONDS)
    [item] = dms.instances(9).daginstance_list.daginstance
    assert item.end_time is not None


def test_instance_times_are_written_in_utc_plus_8_as_dms_states_them(dms: Dms) -> None:
    dms.client().back_fill(models.BackFillRequest(dag_id=9, back_fill_date="2024-01-01"))
    started = datetime.fromtimestamp(dms.clock(), timezone(timedelta(hours=8)))
    dms.clock.advance(RUN_SECONDS)

    [item] = dms.instances(9).daginstance_list.daginstance
    assert item.start_time == started.strftime("%Y-%m-%d %H:%M:%S")
    ended = started + timedelta(seconds=RUN_SECONDS)
    assert item.end_time == ended.strftime("%Y-%m-%d %H:%M:%S")


def test_a_backfill_run_is_manual_and_a_scheduled_one_is_not(dms: Dms) -> None:
    dms.client().back_fill(models.BackFillRequest(dag_id=9, back_fill_date="2024-01-01"))
    scheduled = dms.service.run_on_schedule(9, date(2024, 1, 1))

    listed = dms.instances(9).daginstance_list.daginstance
    assert {item.id: item.trigger_type for item in listed} == {
        scheduled: SCHEDULED,
        scheduled - 1: MANUAL,
    }
    [manual] = dms.instances(9, trigger_type=MANUAL).daginstance_list.daginstance
    assert manual.id == scheduled - 1
    [periodic] = dms.instances(9, trigger_type=SCHEDULED).daginstance_list.daginstance
    assert periodic.id == scheduled


def test_instances_are_paged_newest_first_with_the_total_count(dms: Dms) -> None:
    dms.client().back_fill(
        models.BackFillRequest(
            dag_id=5, back_fill_date_begin="2024-01-01", back_fill_date_end="2024-01-05"
        )
    )
    client = dms.client()

    pages = [
        client.list_task_flow_instance(
            models.ListTaskFlowInstanceRequest(dag_id=5, page_index=index, page_size=2)
        ).body
        for index in (1, 2, 3, 4)
    ]

    assert [page.total_count for page in pages] == [5, 5, 5, 5]
    ids = [[item.id for item in page.daginstance_list.daginstance] for page in pages]
    assert [len(page) for page in ids] == [2, 2, 1, 0]
    flat = [i for page in ids for i in page]
    assert flat == sorted(flat, reverse=True)
    assert len(set(flat)) == 5


def test_instances_are_listed_per_dag_and_filtered_by_status_and_business_date(dms: Dms) -> None:
    client = dms.client()
    client.back_fill(
        models.BackFillRequest(
            dag_id=5, back_fill_date_begin="2024-01-01", back_fill_date_end="2024-01-03"
        )
    )
    client.back_fill(models.BackFillRequest(dag_id=6, back_fill_date="2024-01-01"))

    assert dms.instances(5).total_count == 3
    assert dms.instances(6).total_count == 1
    assert dms.instances(5, status=WAITING).total_count == 2
    assert dms.instances(5, status=SUCCEEDED).total_count == 0
    by_business_date = dms.instances(
        5, use_biz_date=True, start_time_begin="2024-01-02", start_time_end="2024-01-03"
    )
    assert sorted(_by_date(by_business_date)) == ["2024-01-02", "2024-01-03"]


def test_listing_without_paging_parameters_is_refused_by_the_gateway(dms: Dms) -> None:
    with pytest.raises(ClientException) as raised:
        dms.client().list_task_flow_instance(models.ListTaskFlowInstanceRequest(dag_id=5))

    assert raised.value.code == "MissingPageIndex"


def test_reset_forgets_every_instance(dms: Dms) -> None:
    dms.client().back_fill(models.BackFillRequest(dag_id=5, back_fill_date="2024-01-01"))

    httpx.post(f"{dms.url}/_emulator/reset").raise_for_status()

    assert dms.calls() == []
    assert dms.instances(5).total_count == 0
