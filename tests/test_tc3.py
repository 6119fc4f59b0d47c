"""TC3-HMAC-SHA256: our signer matches the official SDK byte for byte, and the verifier refuses
what the real gateway refuses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from reconciler.emulator.app import Emulator, EmulatorRequest
from reconciler.providers import tc3
from reconciler.providers.tc3 import TC3Auth, TencentCredentials

if TYPE_CHECKING:
    from conftest import FakeClock

LATE_EVENING_UTC = 1756769400
"""2025-09-01 23:30 UTC, already 2025-09-02 in UTC+8: the scope must use the UTC date."""
NOON_UTC = 1757160000
"""2025-09-06 12:00 UTC."""


@pytest.fixture
def east_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time in UTC+8, where a local date in the scope would show, whatever the host's zone."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _last_wedata_request(emulator: Emulator) -> EmulatorRequest:
    return [r for r in emulator.recent_requests() if "x-tc-action" in r.headers][-1]


@pytest.mark.parametrize("timestamp", [LATE_EVENING_UTC, NOON_UTC])
@pytest.mark.parametrize(
    "tencent_credentials",
    [
        TencentCredentials("AKIDPermanentKey00000000000000001", "permanent-secret-key"),
        TencentCredentials("AKIDTemporaryKey00000000000000001", "temporary-key", "session-token"),
    ],
    ids=["permanent-key", "session-token"],
)
def test_authorization_is_byte_identical_to_the_official_sdk(
    timestamp: int,
    tencent_credentials: TencentCredentials,
    emulator: Emulator,
    emulator_url: str,
    emulator_clock: FakeClock,
    wedata_sdk_client: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    east_of_utc: None,
) -> None:
    from tencentcloud.common import abstract_client

    credentials = tencent_credentials
    emulator_clock.freeze(timestamp)
    # The SDK reads the time only to stamp the request: pin it to sign at a chosen moment.
    monkeypatch.setattr(abstract_client, "time", SimpleNamespace(time=lambda: timestamp))
    sdk = wedata_sdk_client(token=credentials.token or None)

    sdk.call_json(
        "CreateDataBackfillPlan",
        {
            "ProjectId": "1460947878944567296",
            "TaskIds": ["20250827115253729"],
            "DataBackfillRangeList": [{"StartDate": "2025-09-02", "EndDate": "2025-09-02"}],
            "DataBackfillPlanName": "回填-demo",
            "SkipEventListening": True,
        },
    )
    sent_by_sdk = _last_wedata_request(emulator)

    with httpx.Client(
        base_url=emulator_url, auth=TC3Auth(credentials, service="wedata", clock=lambda: timestamp)
    ) as client:
        reply = client.post(
            "/",
            content=sent_by_sdk.body,
            headers={
                "Content-Type": "application/json",
                "X-TC-Action": "CreateDataBackfillPlan",
                "X-TC-Version": "2025-08-06",
                "X-TC-Region": "ap-guangzhou",
            },
        )
    sent_by_us = _last_wedata_request(emulator)

    assert "Error" not in reply.json()["Response"]
    assert sent_by_us.body == sent_by_sdk.body
    assert sent_by_us.headers["host"] == sent_by_sdk.headers["host"]
    assert sent_by_us.headers["x-tc-timestamp"] == sent_by_sdk.headers["x-tc-timestamp"]
    assert sent_by_us.headers.get("x-tc-token") == sent_by_sdk.headers.get("x-tc-token")
    assert sent_by_us.headers["authorization"] == sent_by_sdk.headers["authorization"]
    scope = f"{tc3.credential_date(timestamp)}/wedata/tc3_request"
    assert f"Credential={credentials.secret_id}/{scope}" in sent_by_sdk.headers["authorization"]
    assert "SignedHeaders=content-type;host," in sent_by_sdk.headers["authorization"]


def test_the_credential_scope_uses_the_utc_date(east_of_utc: None) -> None:
    assert tc3.credential_date(LATE_EVENING_UTC) == "2025-09-01"


def _signed(
    credentials: TencentCredentials,
    body: bytes = b'{"ProjectId": "p"}',
    *,
    timestamp: int = NOON_UTC,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    """What a server receives from TC3Auth: lower-case headers and the body."""
    request = httpx.Request(
        "POST",
        "https://wedata.tencentcloudapi.com/",
        content=body,
        headers={"Content-Type": "application/json", "X-TC-Action": "GetDataBackfillPlan"}
        | (headers or {}),
    )
    auth = TC3Auth(credentials, service="wedata", clock=lambda: timestamp)
    signed = next(auth.sync_auth_flow(request))
    return {name.lower(): value for name, value in signed.headers.items()}, signed.content


def _verify(
    headers: dict[str, str],
    body: bytes,
    known: TencentCredentials,
    *,
    now: float = NOON_UTC,
    service: str = "wedata",
) -> str | None:
    rejection = tc3.verify(
        "POST",
        "/",
        "",
        headers,
        body,
        credentials_by_id=lambda secret_id: known if secret_id == known.secret_id else None,
        now=now,
        service=service,
    )
    return None if rejection is None else rejection.code


def test_verify_accepts_what_tc3auth_signs(tencent_credentials: TencentCredentials) -> None:
    headers, body = _signed(tencent_credentials)

    assert _verify(headers, body, tencent_credentials) is None
    assert _verify(headers, body, tencent_credentials, now=NOON_UTC + 299) is None


def test_verify_rejects_a_tampered_body(tencent_credentials: TencentCredentials) -> None:
    headers, _ = _signed(tencent_credentials, b'{"ProjectId": "p"}')

    code = _verify(headers, b'{"ProjectId": "q"}', tencent_credentials)

    assert code == "AuthFailure.SignatureFailure"


def test_verify_rejects_a_wrong_secret_key(tencent_credentials: TencentCredentials) -> None:
    impostor = TencentCredentials(tencent_credentials.secret_id, "not-the-key")
    headers, body = _signed(impostor)

    assert _verify(headers, body, tencent_credentials) == "AuthFailure.SignatureFailure"


def test_verify_rejects_an_unknown_secret_id(tencent_credentials: TencentCredentials) -> None:
    headers, body = _signed(TencentCredentials("AKIDsomeoneelse", "key"))

    assert _verify(headers, body, tencent_credentials) == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize("skew", [301, -301, 86400])
def test_verify_rejects_a_timestamp_more_than_five_minutes_off(
    skew: int, tencent_credentials: TencentCredentials
) -> None:
    headers, body = _signed(tencent_credentials)

    code = _verify(headers, body, tencent_credentials, now=NOON_UTC + skew)

    assert code == "AuthFailure.SignatureExpire"


def test_verify_rejects_another_service(tencent_credentials: TencentCredentials) -> None:
    headers, body = _signed(tencent_credentials)

    code = _verify(headers, body, tencent_credentials, service="cvm")

    assert code == "AuthFailure.SignatureFailure"


def test_verify_rejects_a_scope_dated_in_local_time(
    tencent_credentials: TencentCredentials,
) -> None:
    headers, body = _signed(tencent_credentials, timestamp=LATE_EVENING_UTC)
    local_date = headers["authorization"].replace("/2025-09-01/", "/2025-09-02/")

    code = _verify(
        headers | {"authorization": local_date}, body, tencent_credentials, now=LATE_EVENING_UTC
    )

    assert code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer abc",
        "TC3-HMAC-SHA256 Credential=AKID/2025-09-06/wedata/tc3_request, Signature=abc",
        "TC3-HMAC-SHA256 Credential=AKID/2025-09-06/wedata/tc3_request, "
        "SignedHeaders=content-type, Signature=" + "0" * 64,
    ],
)
def test_verify_rejects_a_malformed_authorization(
    authorization: str, tencent_credentials: TencentCredentials
) -> None:
    headers, body = _signed(tencent_credentials)

    code = _verify(headers | {"authorization": authorization}, body, tencent_credentials)

    assert code == "AuthFailure.InvalidAuthorization"


def test_verify_checks_the_session_token(tencent_credentials: TencentCredentials) -> None:
    temporary = TencentCredentials("AKIDtemporary", "temporary-key", "the-token")
    headers, body = _signed(temporary)

    assert headers["x-tc-token"] == "the-token"
    assert _verify(headers, body, temporary) is None
    assert _verify(headers | {"x-tc-token": "stolen"}, body, temporary) == (
        "AuthFailure.TokenFailure"
    )
    without_token = {name: value for name, value in headers.items() if name != "x-tc-token"}
    assert _verify(without_token, body, temporary) == "AuthFailure.TokenFailure"


def test_verify_accepts_more_signed_headers_with_lower_cased_values(
    tencent_credentials: TencentCredentials,
) -> None:
    # The documented example signs x-tc-action as well, its value lower-cased.
    body = json.dumps({"ProjectId": "p"}).encode()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "host": "wedata.tencentcloudapi.com",
        "x-tc-action": "GetDataBackfillPlan",
        "x-tc-timestamp": str(NOON_UTC),
    }
    signed = ("content-type", "host", "x-tc-action")
    canonical = tc3.canonical_request(
        "POST",
        "/",
        "",
        headers,
        signed_headers=signed,
        hashed_payload=tc3.payload_hash(body, headers),
    )
    assert "\nx-tc-action:getdatabackfillplan\n" in canonical
    to_sign = tc3.string_to_sign(NOON_UTC, "wedata", canonical)
    signature = tc3.signature(tencent_credentials.secret_key, NOON_UTC, "wedata", to_sign)
    headers["authorization"] = tc3.authorization(
        tencent_credentials.secret_id, NOON_UTC, "wedata", signed, signature
    )

    assert _verify(headers, body, tencent_credentials) is None


def test_tc3auth_keeps_a_timestamp_the_request_already_has(
    tencent_credentials: TencentCredentials,
) -> None:
    headers, _ = _signed(tencent_credentials, headers={"X-TC-Timestamp": str(NOON_UTC - 60)})

    assert headers["x-tc-timestamp"] == str(NOON_UTC - 60)
    assert "x-tc-token" not in headers


def test_credentials_never_show_their_secrets() -> None:
    credentials = TencentCredentials("AKIDvisible", "hidden-key", "hidden-token")
    auth = TC3Auth(credentials, service="wedata")

    for text in (repr(credentials), str(credentials), repr(auth)):
        assert "AKIDvisible" in text
        assert "hidden" not in text


def test_credentials_come_from_the_environment() -> None:
    env = {
        "TENCENTCLOUD_SECRET_ID": "AKIDenv",
        "TENCENTCLOUD_SECRET_KEY": "env-key",
        "TENCENTCLOUD_SESSION_TOKEN": "env-token",
    }

    assert TencentCredentials.from_env(env) == TencentCredentials("AKIDenv", "env-key", "env-token")
    assert TencentCredentials.from_env({"TENCENTCLOUD_SECRET_ID": "AKIDenv"}) is None
    assert TencentCredentials.from_env({"TENCENTCLOUD_SECRET_KEY": "env-key"}) is None
    without_token = {k: v for k, v in env.items() if k != "TENCENTCLOUD_SESSION_TOKEN"}
    assert TencentCredentials.from_env(without_token) == TencentCredentials("AKIDenv", "env-key")
