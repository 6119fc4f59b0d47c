"""Each fault of the emulator, seen through the product's own clients over loopback: what the
client concludes (retryable or unknown) and what the emulator really created."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from reconciler.domain import Outcome, OutcomeKind, Submission
from reconciler.emulator.app import Emulator
from reconciler.emulator.faults import Fault, FaultConfig, Latency
from reconciler.providers import dms, wedata
from reconciler.providers.acs3 import ACS3Auth, AliyunCredentials
from reconciler.providers.protocol import Client, Connection
from reconciler.providers.tc3 import TC3Auth, TencentCredentials

if TYPE_CHECKING:
    from conftest import FakeClock

Serve = Callable[..., tuple[Emulator, str]]

WEDATA_REQUEST = {
    "ProjectId": "1460947878944567296",
    "TaskIds": ["20250827115253729"],
    "DataBackfillRangeList": [{"StartDate": "2025-09-01", "EndDate": "2025-09-02"}],
    "DataBackfillPlanName": "faults-r1-0123456789",
}
DMS_REQUEST = {"DagId": 15001, "BackFillDateBegin": "2025-09-01", "BackFillDateEnd": "2025-09-02"}


def submission(provider: str) -> Submission:
    is_wedata = provider == wedata.NAME
    return Submission(
        key="0123456789abcdef",
        plan="faults",
        revision=1,
        provider=provider,
        action=wedata.ACTION if is_wedata else dms.ACTION,
        region="ap-guangzhou" if is_wedata else "cn-hangzhou",
        targets=("20250827115253729",) if is_wedata else ("15001",),
        dates=("2025-09-01", "2025-09-02"),
        fingerprint="f",
        params={},
        request=WEDATA_REQUEST if is_wedata else DMS_REQUEST,
    )


@pytest.fixture(params=[wedata.NAME, dms.NAME])
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def connect(
    tencent_credentials: TencentCredentials, aliyun_credentials: AliyunCredentials
) -> Iterator[Callable[[str, str, float], Client]]:
    """The product's client of a provider, pointed at a URL with a read timeout."""
    clients: list[Client] = []

    def make(provider: str, url: str, timeout: float = 5.0) -> Client:
        connection = Connection(url, timeout=timeout)
        client: Client
        if provider == wedata.NAME:
            client = wedata.WeDataClient(tencent_credentials, connection)
        else:
            client = dms.DmsClient(aliyun_credentials, connection)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def create(client: Client, provider: str) -> Outcome:
    return client.submit(submission(provider))


# --- each fault, as the client sees it -----------------------------------------------------


def test_a_throttled_create_is_retryable_and_creates_nothing(
    serve_emulator: Serve, connect: Callable[..., Client], provider: str
) -> None:
    app, url = serve_emulator(faults=FaultConfig(throttle_rate=1.0))
    outcome = create(connect(provider, url), provider)
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.code in ("RequestLimitExceeded", "Throttling.User")
    assert app.calls.all() == []
    assert app.stats()["faults"]["throttle"] == 1


def test_a_5xx_before_commit_is_unknown_though_nothing_was_created(
    serve_emulator: Serve, connect: Callable[..., Client], provider: str
) -> None:
    app, url = serve_emulator(faults=FaultConfig(error_rate=1.0))
    outcome = create(connect(provider, url), provider)
    # The client cannot tell a 503 before commit from one after: it must not resubmit.
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.code == "HTTP503"
    assert app.calls.all() == []


def test_a_timeout_after_commit_is_unknown_and_the_create_is_recorded(
    serve_emulator: Serve, connect: Callable[..., Client], provider: str
) -> None:
    app, url = serve_emulator(faults=FaultConfig(timeout_after_commit_rate=1.0, hang_ms=30_000))
    outcome = create(connect(provider, url, 0.3), provider)
    # The client's own read timeout ended the call (the reply was held for 30 s): ReadTimeout.
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.code == "ReadTimeout"
    [call] = app.calls.all()
    assert call["provider"] == provider


def test_a_reset_after_commit_is_unknown_and_the_create_is_recorded(
    serve_emulator: Serve, connect: Callable[..., Client], provider: str
) -> None:
    app, url = serve_emulator(faults=FaultConfig(reset_after_commit_rate=1.0))
    outcome = create(connect(provider, url), provider)
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.code in ("ReadError", "RemoteProtocolError")
    assert len(app.calls.all()) == 1


def test_a_slow_reply_is_late_but_submitted(
    serve_emulator: Serve, connect: Callable[..., Client], provider: str
) -> None:
    app, url = serve_emulator(faults=FaultConfig(slow_rate=1.0, slow_ms=300))
    started = time.monotonic()
    outcome = create(connect(provider, url), provider)
    assert time.monotonic() - started >= 0.3
    assert outcome.kind is OutcomeKind.SUBMITTED
    assert outcome.remote_id == app.calls.all()[0]["remote_id"]


def test_latency_delays_every_api_request_within_its_range(
    serve_emulator: Serve, connect: Callable[..., Client]
) -> None:
    _app, url = serve_emulator(faults=FaultConfig(latency=Latency(100, 150)))
    client = connect(wedata.NAME, url, 10.0)  # a latency in seconds, not ms, would time out
    for _ in range(3):
        started = time.monotonic()
        assert create(client, wedata.NAME).kind is OutcomeKind.SUBMITTED
        assert time.monotonic() - started >= 0.1
    # The admin surface stays prompt: with a minute of latency on every API request, an admin
    # request is still answered well within it.
    httpx.post(f"{url}/_emulator/faults", json={"latency": 60_000}).raise_for_status()
    httpx.get(f"{url}/_emulator/calls", timeout=20).raise_for_status()


def test_reads_are_never_faulted(
    serve_emulator: Serve, tencent_credentials: TencentCredentials, connect: Callable[..., Client]
) -> None:
    app, url = serve_emulator(faults=FaultConfig(slow_rate=1.0, slow_ms=0))
    plan = create(connect(wedata.NAME, url), wedata.NAME)
    assert plan.kind is OutcomeKind.SUBMITTED
    dms_client = connect(dms.NAME, url)
    assert isinstance(dms_client, dms.DmsClient)
    assert create(dms_client, dms.NAME).kind is OutcomeKind.SUBMITTED
    httpx.post(f"{url}/_emulator/faults", json={"error_rate": 1.0}).raise_for_status()

    wedata_client = connect(wedata.NAME, url)
    assert isinstance(wedata_client, wedata.WeDataClient)
    got = wedata_client.call(
        "GetDataBackfillPlan",
        "ap-guangzhou",
        {"ProjectId": WEDATA_REQUEST["ProjectId"], "DataBackfillPlanId": plan.remote_id},
    )
    assert got.kind is OutcomeKind.SUBMITTED
    listed = dms_client.call(
        "ListTaskFlowInstance", {"DagId": 15001, "PageIndex": 1, "PageSize": 10}
    )
    assert listed.kind is OutcomeKind.SUBMITTED
    assert listed.detail["TotalCount"] == 2
    assert app.stats()["faults"]["error"] == 0


# --- throttling is the API's own --------------------------------------------------------------


def _shape(value: Any) -> Any:
    """The keys of a JSON value, recursively: what a client's parser depends on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_injected_throttling_is_each_apis_own_throttling_reply(
    serve_emulator: Serve,
    tencent_credentials: TencentCredentials,
    aliyun_credentials: AliyunCredentials,
    emulator_clock: FakeClock,
) -> None:
    # With its clock stopped, the limited emulator lets one request of each API through and
    # throttles every other, however long the machine takes between them.
    emulator_clock.freeze()
    _limited, limited_url = serve_emulator(
        rate_limits={wedata.NAME: 1, dms.NAME: 1.0}, clock=emulator_clock
    )
    _faulty, faulty_url = serve_emulator(faults=FaultConfig(throttle_rate=1.0))
    tc3 = TC3Auth(tencent_credentials, service="wedata")
    headers = {
        "X-TC-Action": wedata.ACTION,
        "X-TC-Version": wedata.VERSION,
        "X-TC-Region": "ap-guangzhou",
    }

    def wedata_reply(url: str) -> httpx.Response:
        return httpx.post(url, json=WEDATA_REQUEST, headers=headers, auth=tc3)

    def dms_reply(url: str) -> httpx.Response:
        # A fresh signer each time: every ACS3 request needs its own nonce.
        query = "&".join(f"{k}={v}" for k, v in DMS_REQUEST.items())
        acs = {"x-acs-action": dms.ACTION, "x-acs-version": dms.VERSION}
        return httpx.post(f"{url}/?{query}", headers=acs, auth=ACS3Auth(aliyun_credentials))

    for reply in (wedata_reply, dms_reply):
        assert reply(limited_url).is_success
        natural, injected = reply(limited_url), reply(faulty_url)
        assert natural.status_code == injected.status_code
        assert _shape(natural.json()) == _shape(injected.json())
        assert set(natural.headers) == set(injected.headers)
    natural_error = wedata_reply(limited_url).json()["Response"]["Error"]
    assert wedata_reply(faulty_url).json()["Response"]["Error"]["Code"] == natural_error["Code"]
    natural_gateway = dms_reply(limited_url).json()
    injected_gateway = dms_reply(faulty_url).json()
    assert injected_gateway["Code"] == natural_gateway["Code"] == "Throttling.User"
    assert injected_gateway["Message"] == natural_gateway["Message"]


def test_the_official_sdks_see_injected_throttling_as_throttling(
    serve_emulator: Serve,
    tencent_credentials: TencentCredentials,
    aliyun_credentials: AliyunCredentials,
) -> None:
    from alibabacloud_dms_enterprise20181101 import models
    from alibabacloud_dms_enterprise20181101.client import Client as DmsSdk
    from alibabacloud_tea_openapi.exceptions import ThrottlingException
    from alibabacloud_tea_openapi.utils_models import Config
    from tencentcloud.common import credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.wedata.v20250806 import models as wedata_models
    from tencentcloud.wedata.v20250806.wedata_client import WedataClient

    app, url = serve_emulator(faults=FaultConfig(throttle_rate=1.0))
    host = url.removeprefix("http://")
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=host))
    tencent = WedataClient(
        credential.Credential(tencent_credentials.secret_id, tencent_credentials.secret_key),
        "ap-guangzhou",
        profile,
    )
    request = wedata_models.CreateDataBackfillPlanRequest()
    request.from_json_string(httpx.Request("POST", url, json=WEDATA_REQUEST).content.decode())
    with pytest.raises(TencentCloudSDKException) as tencent_raised:
        tencent.CreateDataBackfillPlan(request)
    assert tencent_raised.value.code == "RequestLimitExceeded"

    aliyun = DmsSdk(
        Config(
            access_key_id=aliyun_credentials.access_key_id,
            access_key_secret=aliyun_credentials.access_key_secret,
            endpoint=host,
            protocol="http",
        )
    )
    with pytest.raises(ThrottlingException) as aliyun_raised:
        aliyun.back_fill(models.BackFillRequest(dag_id=15001, back_fill_date="2025-09-01"))
    assert aliyun_raised.value.code == "Throttling.User"
    assert app.calls.all() == []


# --- reproducible, and configurable while serving ----------------------------------------------

MIXED = FaultConfig(
    throttle_rate=0.2,
    error_rate=0.15,
    timeout_after_commit_rate=0.1,
    reset_after_commit_rate=0.1,
    slow_rate=0.1,
    slow_ms=1,
    hang_ms=0,
    seed=20251107,
)
"""Every fault, none slow: a reply held back 0 ms is reset at once, so no test waits for it."""


def _sequence(
    serve: Serve, connect: Callable[..., Client], config: FaultConfig
) -> tuple[list[str], dict[str, int]]:
    # The API's own rate limit depends on timing: off, so that only the seed decides.
    app, url = serve(faults=config, rate_limits={wedata.NAME: 1000})
    client = connect(wedata.NAME, url)
    codes = [create(client, wedata.NAME).code or "ok" for _ in range(40)]
    lost = sum(code in ("ReadError", "RemoteProtocolError") for code in codes)
    assert len(app.calls.all()) == codes.count("ok") + lost
    faults: dict[str, int] = app.stats()["faults"]
    return codes, faults


def test_the_same_seed_gives_the_same_faults_in_the_same_order(
    serve_emulator: Serve, connect: Callable[..., Client]
) -> None:
    first = _sequence(serve_emulator, connect, MIXED)
    again = _sequence(serve_emulator, connect, MIXED)
    other = _sequence(serve_emulator, connect, FaultConfig(**{**MIXED.to_json(), "seed": 7}))
    assert first == again
    assert first != other
    codes, faults = first
    assert {"ok", "RequestLimitExceeded", "HTTP503", "ReadError"} <= set(codes)
    assert all(faults.values())


def test_faults_can_be_read_and_replaced_on_a_running_server(
    serve_emulator: Serve, connect: Callable[..., Client]
) -> None:
    _app, url = serve_emulator()
    client = connect(dms.NAME, url)
    config = httpx.get(f"{url}/_emulator/faults").json()
    assert config["throttle_rate"] == 0.0
    assert isinstance(config["seed"], int)  # chosen when none is given, so a run can be repeated

    replaced = httpx.post(
        f"{url}/_emulator/faults", json={"throttle_rate": 1, "latency": "5-10", "seed": 3}
    )
    assert replaced.json() == {
        **FaultConfig().to_json(),
        "throttle_rate": 1.0,
        "latency": "5-10",
        "seed": 3,
    }
    assert httpx.get(f"{url}/_emulator/faults").json() == replaced.json()
    assert create(client, dms.NAME).kind is OutcomeKind.RETRYABLE

    httpx.post(f"{url}/_emulator/faults", json={"seed": 3}).raise_for_status()
    assert create(client, dms.NAME).kind is OutcomeKind.SUBMITTED
    stats = httpx.get(f"{url}/_emulator/stats").json()
    assert stats["creates"] == 2
    assert stats["accepted_creates"] == 1
    assert stats["in_flight"] == 0
    assert stats["faults"] == {str(f): int(f is Fault.THROTTLE) for f in Fault}

    for body, problem in [
        ({"throttle_rate": 0.7, "error_rate": 0.5}, "add up to 1.2"),
        ({"throttle_rate": 2}, "between 0 and 1"),
        ({"throtle_rate": 0.1}, "unknown fault setting throtle_rate"),
        ({"latency": "fast"}, "latency 'fast'"),
        ({"seed": "x"}, "seed 'x'"),
        ([1], "JSON object"),
    ]:
        refused = httpx.post(f"{url}/_emulator/faults", json=body)
        assert refused.status_code == 400
        assert problem in refused.json()["error"]
    assert httpx.get(f"{url}/_emulator/faults").json()["seed"] == 3  # unchanged


def test_reset_starts_the_seed_over_and_clears_the_counts(
    serve_emulator: Serve, connect: Callable[..., Client]
) -> None:
    app, url = serve_emulator(faults=MIXED, rate_limits={wedata.NAME: 1000})
    client = connect(wedata.NAME, url)
    first = [create(client, wedata.NAME).code for _ in range(10)]
    httpx.post(f"{url}/_emulator/reset").raise_for_status()
    assert app.stats()["creates"] == 0
    assert sum(app.stats()["faults"].values()) == 0
    assert [create(client, wedata.NAME).code for _ in range(10)] == first


def test_in_flight_counts_requests_whose_create_may_still_be_recorded(
    serve_emulator: Serve, connect: Callable[..., Client]
) -> None:
    app, url = serve_emulator(faults=FaultConfig(slow_rate=1.0, slow_ms=400))
    worker = threading.Thread(target=create, args=(connect(dms.NAME, url), dms.NAME))
    worker.start()
    deadline = time.monotonic() + 2
    while app.stats()["in_flight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.stats()["in_flight"] == 1
    assert app.calls.all() == []
    worker.join(timeout=5)
    assert app.stats()["in_flight"] == 0
    assert len(app.calls.all()) == 1


def test_shutting_the_server_down_releases_a_held_back_reply_at_once(
    serve_emulator: Serve, connect: Callable[..., Client]
) -> None:
    from reconciler.emulator.server import start_in_thread

    app, _url = serve_emulator(faults=FaultConfig(timeout_after_commit_rate=1.0, hang_ms=600_000))
    server, url = start_in_thread(app)
    timer = threading.Timer(0.3, server.shutdown)
    timer.start()
    outcome = create(connect(wedata.NAME, url, 300.0), wedata.NAME)
    timer.join()
    # Released by the shutdown, not by the client giving up (its read timeout would say so).
    assert outcome.code != "ReadTimeout", outcome
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert len(app.calls.all()) == 1


def test_in_process_a_reply_lost_after_commit_is_a_504(
    emulator: Emulator, tencent_credentials: TencentCredentials
) -> None:
    emulator.faults.configure(FaultConfig(reset_after_commit_rate=1.0))
    transport = httpx.WSGITransport(app=emulator)
    connection = Connection("http://127.0.0.1:9", transport=transport)
    outcome = wedata.WeDataClient(tencent_credentials, connection).submit(submission(wedata.NAME))
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.code == "HTTP504"
    assert len(emulator.calls.all()) == 1


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "latency"),
    [("200", Latency(200, 200)), ("50-400", Latency(50, 400)), (" 0.5 - 2 ", Latency(0.5, 2))],
)
def test_latency_is_milliseconds_or_a_range(text: str, latency: Latency) -> None:
    assert Latency.parse(text) == latency
    assert Latency.parse(str(latency)) == latency


@pytest.mark.parametrize("text", ["", "fast", "-5", "400-50", "1-2-3"])
def test_a_latency_that_is_not_milliseconds_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="latency"):
        Latency.parse(text)


def test_a_runs_failure_rate_is_not_one_of_the_create_faults_that_exclude_each_other() -> None:
    config = FaultConfig(throttle_rate=1.0, instance_failure_rate=1.0)

    assert sum(config.rates().values()) == 1.0


def test_the_config_round_trips_through_json() -> None:
    assert FaultConfig.from_json(MIXED.to_json()) == MIXED
    assert FaultConfig.from_json({"latency": [10, 20]}).latency == Latency(10, 20)
    assert FaultConfig.from_json({"latency": 30}).latency == Latency(30, 30)


# --- the command ------------------------------------------------------------------------------


def _emulator_command(*flags: str, ready: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "emulator",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_emulator_command_takes_the_faults_as_flags(tmp_path: Path) -> None:
    ready = tmp_path / "url"
    process = _emulator_command(
        "--latency",
        "10-20",
        "--throttle-rate",
        "0.2",
        "--error-rate",
        "0.1",
        "--timeout-after-commit-rate",
        "0.05",
        "--reset-after-commit-rate",
        "0.05",
        "--slow-rate",
        "0.1",
        "--slow-ms",
        "300",
        "--hang-ms",
        "1000",
        "--instance-seconds",
        "30",
        "--instance-failure-rate",
        "0.25",
        "--seed",
        "42",
        ready=ready,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        url = ready.read_text().strip()
        assert httpx.get(f"{url}/_emulator/faults").json() == {
            "latency": "10-20",
            "throttle_rate": 0.2,
            "error_rate": 0.1,
            "timeout_after_commit_rate": 0.05,
            "reset_after_commit_rate": 0.05,
            "slow_rate": 0.1,
            "slow_ms": 300.0,
            "hang_ms": 1000.0,
            "instance_seconds": 30.0,
            "instance_failure_rate": 0.25,
            "seed": 42,
        }
    finally:
        process.terminate()
        out, _err = process.communicate(timeout=10)
    assert "seed=42" in out


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--throttle-rate", "0.7", "--error-rate", "0.5"], "add up to 1.2"),
        (["--latency", "soon"], "latency 'soon'"),
        (["--slow-rate", "2"], "--slow-rate"),
        (["--instance-failure-rate", "1.5"], "--instance-failure-rate"),
        (["--instance-seconds", "-1"], "--instance-seconds"),
    ],
)
def test_the_emulator_command_refuses_impossible_faults(
    tmp_path: Path, flags: list[str], problem: str
) -> None:
    process = _emulator_command(*flags, ready=tmp_path / "url")
    _out, err = process.communicate(timeout=20)
    assert process.returncode != 0
    assert problem in err
    assert "Traceback" not in err
    assert not (tmp_path / "url").exists()
