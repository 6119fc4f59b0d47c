"""Shared fixtures: fake credentials, a clock the tests control, and the emulator, in-process
and served on a loopback port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Repo, Served, credentials_environ
from scenarios import clean_env

from reconciler import validate
from reconciler.contract import BackfillPlan
from reconciler.emulator.app import Emulator, create_app
from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.server import EmulatorServer, start_in_thread
from reconciler.errors import Diagnostic
from reconciler.load import Document
from reconciler.providers import dms
from reconciler.providers.acs3 import AliyunCredentials
from reconciler.providers.tc3 import TencentCredentials


class FakeClock:
    """Real time plus an offset, or frozen: "now" for the emulator (and for our signers).

    The emulator checks signature timestamps against it with five minutes' tolerance: a test
    that moves it further must sign with it too (`TC3Auth(..., clock=emulator_clock)`).
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None

    def __call__(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds

    def freeze(self, at: float | None = None) -> None:
        """Stop time (at `at`, or now) so that only `advance` moves it."""
        self._frozen_at = self() if at is None else at


@pytest.fixture
def tencent_credentials() -> TencentCredentials:
    return TencentCredentials("AKIDEmulatorTest0000000000000001", "emulator-test-secret-key")


@pytest.fixture
def aliyun_credentials() -> AliyunCredentials:
    return AliyunCredentials("LTAIEmulatorTest00000001", "emulator-test-access-key-secret")


@pytest.fixture
def emulator_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(
    tencent_credentials: TencentCredentials,
    aliyun_credentials: AliyunCredentials,
    emulator_clock: FakeClock,
) -> Emulator:
    return create_app(
        environ=credentials_environ(tencent_credentials, aliyun_credentials), clock=emulator_clock
    )


@pytest.fixture
def emulator_url(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The `emulator` served on a free loopback port for the duration of the test."""
    server, url = start_in_thread(emulator)
    yield url
    server.shutdown()


@pytest.fixture
def wedata_sdk_client(
    emulator_url: str, tencent_credentials: TencentCredentials
) -> Callable[..., Any]:
    """Builds the official SDK's `WedataClient` pointed at the served emulator."""
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.wedata.v20250806.wedata_client import WedataClient

    def make(
        *,
        secret_id: str = tencent_credentials.secret_id,
        secret_key: str = tencent_credentials.secret_key,
        token: str | None = None,
        region: str = "ap-guangzhou",
    ) -> Any:
        endpoint = emulator_url.removeprefix("http://")
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=endpoint))
        return WedataClient(credential.Credential(secret_id, secret_key, token), region, profile)

    return make


@pytest.fixture
def credentials_env(
    monkeypatch: pytest.MonkeyPatch,
    tencent_credentials: TencentCredentials,
    aliyun_credentials: AliyunCredentials,
) -> None:
    """The emulator's credentials in the variables the product reads them from."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", tencent_credentials.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", tencent_credentials.secret_key)
    monkeypatch.delenv("TENCENTCLOUD_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", aliyun_credentials.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", aliyun_credentials.access_key_secret)
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)


@pytest.fixture
def repo(tmp_path: Path, emulator: Emulator, credentials_env: None) -> Repo:
    """Plans and state in tmp_path, applied to the in-process emulator."""
    return Repo(tmp_path, emulator)


@pytest.fixture
def serve_emulator(
    tencent_credentials: TencentCredentials,
    aliyun_credentials: AliyunCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., tuple[Emulator, str]]]:
    """Serves `create_app(**options)` (with the test credentials unless given) on a free loopback
    port and returns it with its URL. Every server stops at the end of the test, which also
    releases at once any reply a fault holds back."""
    servers: list[EmulatorServer] = []

    def serve(**options: Any) -> tuple[Emulator, str]:
        options.setdefault("environ", credentials_environ(tencent_credentials, aliyun_credentials))
        app = create_app(**options)
        server, url = start_in_thread(app)
        servers.append(server)
        return app, url

    yield serve
    for server in servers:
        server.shutdown()


@pytest.fixture
def served(
    tmp_path: Path, serve_emulator: Callable[..., tuple[Emulator, str]], cli_env: dict[str, str]
) -> Callable[..., Served]:
    """Makes a `Served` workspace in tmp_path: its emulator (with `faults`) on loopback, DMS
    not rate-limited there and paced at 50 calls/s by the client."""

    def make(faults: FaultConfig | None = None) -> Served:
        emulator, url = serve_emulator(faults=faults or FaultConfig(), rate_limits={dms.NAME: None})
        return Served(tmp_path, emulator, url, {**cli_env, "BACKFILL_ALIYUN_RATE_LIMIT": "50"})

    return make


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request of the tests goes to loopback, never through a proxy; and when this suite
    runs in GitHub Actions, the commands under test must not write annotations, job summaries
    or step outputs into the real run (tests that want them set these variables themselves)."""
    for name in (
        *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"),
        *("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_WORKSPACE"),
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def plan_contract_judged_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every plan document a test judges in this process (every invalid-case fixture of the
    suite, every fuzzed file) is judged by the three that must agree: the contract's models
    (what plan and apply read plans with), the checks compiled from the schema generated from
    them (what `validate` decides with) and that schema's reference validator (what explains a
    rejected document). A disagreement fails the test that met it, naming the document."""
    from contract_answers import answers

    read = validate._read

    def judged(doc: Document, typed: bool) -> tuple[BackfillPlan | None, list[Diagnostic]]:
        verdicts = answers(doc.data)
        assert len(set(verdicts.values())) == 1, (verdicts, doc.location, doc.data)
        return read(doc, typed)

    monkeypatch.setattr(validate, "_read", judged)


@pytest.fixture
def cli_env(
    tencent_credentials: TencentCredentials, aliyun_credentials: AliyunCredentials
) -> dict[str, str]:
    """The environment of `backfill` as a subprocess: the emulator's credentials, nothing else
    of ours."""
    return clean_env(**credentials_environ(tencent_credentials, aliyun_credentials))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The torture tests' figures, after the results, in every run (not only with -s)."""
    from figures import LINES

    if LINES:
        terminalreporter.section("figures")
        for line in LINES:
            terminalreporter.write_line(line)
