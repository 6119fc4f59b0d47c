"""ACS3-HMAC-SHA256: our signer agrees byte for byte with the official Alibaba Cloud SDK."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from alibabacloud_dms_enterprise20181101 import models
from alibabacloud_dms_enterprise20181101.client import Client
from alibabacloud_tea_openapi.utils import get_canonical_query_string
from alibabacloud_tea_openapi.utils_models import Config
from harness import credentials_environ

from reconciler.emulator.app import CallLog, Emulator, EmulatorRequest, Settings
from reconciler.emulator.dms import DmsService
from reconciler.emulator.server import EmulatorServer, start_in_thread
from reconciler.providers import acs3
from reconciler.providers.acs3 import ACS3Auth, AliyunCredentials

KEY = AliyunCredentials("LTAI5tExampleKeyId", "example-secret-4d9f")
STS = AliyunCredentials("STS.NTExampleKeyId", "sts-secret-77a1", "CAIS-example-session-token")


@dataclass
class Endpoint:
    app: Emulator
    calls: CallLog
    host: str
    url: str
    credentials: AliyunCredentials

    def sdk(self) -> Any:
        """The official DMS client, pointed at the emulator."""
        c = self.credentials
        config = Config(
            access_key_id=c.access_key_id,
            access_key_secret=c.access_key_secret,
            security_token=c.security_token or None,
            endpoint=self.host,
            protocol="http",
        )
        return Client(config)

    def last_request(self) -> EmulatorRequest:
        return self.app.recent_requests()[-1]


@contextmanager
def _serve(credentials: AliyunCredentials) -> Iterator[Endpoint]:
    calls = CallLog()
    app = Emulator([DmsService(Settings(calls, credentials_environ(aliyun=credentials)))], calls)
    server: EmulatorServer
    server, url = start_in_thread(app)
    try:
        yield Endpoint(app, calls, url.removeprefix("http://"), url, credentials)
    finally:
        server.shutdown()


@pytest.fixture(params=[KEY, STS], ids=["access-key", "sts-token"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    with _serve(request.param) as served:
        yield served


def _full_back_fill() -> Any:
    return models.BackFillRequest(
        tid=3001,
        dag_id=15001,
        start_node_ids=[101, 102],
        filter_node_ids=[103],
        is_trigger_sub_tree=False,
        back_fill_date_begin="2024-01-30",
        back_fill_date_end="2024-02-02",
        interval=24,
        asc=True,
        history_dag_id=16001,
    )


def _epoch(x_acs_date: str) -> float:
    return float(calendar.timegm(time.strptime(x_acs_date, acs3.DATE_FORMAT)))


def _resign(sent: EmulatorRequest, url: str, credentials: AliyunCredentials) -> httpx.Request:
    """The SDK's request rebuilt with httpx and signed by ACS3Auth with the SDK's date and nonce.

    Only what the caller owns is copied over: the query, the action and version, and the headers
    the SDK adds for its own bookkeeping; the signer must add everything else itself.
    """
    caller_headers = {
        name: sent.headers[name]
        for name in (
            "accept",
            "user-agent",
            "x-acs-action",
            "x-acs-version",
            "x-acs-credentials-provider",
        )
    }
    request = httpx.Request("POST", f"{url}/?{sent.query_string}", headers=caller_headers)
    auth = ACS3Auth(
        credentials,
        clock=lambda: _epoch(sent.headers["x-acs-date"]),
        nonce=lambda: sent.headers["x-acs-signature-nonce"],
    )
    return next(auth.auth_flow(request))


def test_the_sdk_signs_backfill_with_acs3_and_the_emulator_accepts_it(endpoint: Endpoint) -> None:
    response = endpoint.sdk().back_fill(_full_back_fill())

    assert response.body.success is True
    sent = endpoint.last_request()
    assert sent.method == "POST"
    assert sent.path == "/"
    assert sent.body == b""
    assert sent.headers["x-acs-action"] == "BackFill"
    assert sent.headers["x-acs-version"] == "2018-11-01"
    assert sent.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=")


def test_our_authorization_header_is_byte_identical_to_the_sdks(endpoint: Endpoint) -> None:
    endpoint.sdk().back_fill(_full_back_fill())
    sent = endpoint.last_request()

    ours = _resign(sent, endpoint.url, endpoint.credentials)

    assert ours.headers["Authorization"] == sent.headers["authorization"]
    sdk_acs = {k: v for k, v in sent.headers.items() if k.startswith("x-acs-")}
    our_acs = {k: v for k, v in ours.headers.items() if k.startswith("x-acs-")}
    assert our_acs == sdk_acs


def test_the_sdk_json_encodes_arrays_and_sends_booleans_as_python_writes_them(
    endpoint: Endpoint,
) -> None:
    endpoint.sdk().back_fill(_full_back_fill())
    sent = dict(acs3.parse_query(endpoint.last_request().query_string))

    assert sent == {
        "Tid": "3001",
        "DagId": "15001",
        "StartNodeIds": "[101,102]",
        "FilterNodeIds": "[103]",
        "IsTriggerSubTree": "False",
        "BackFillDateBegin": "2024-01-30",
        "BackFillDateEnd": "2024-02-02",
        "Interval": "24",
        "Asc": "True",
        "HistoryDagId": "16001",
    }


def test_rpc_params_match_the_sdk_except_booleans_which_follow_the_api_reference(
    endpoint: Endpoint,
) -> None:
    endpoint.sdk().back_fill(_full_back_fill())
    sdk_sent = dict(acs3.parse_query(endpoint.last_request().query_string))

    ours = acs3.rpc_params(
        {
            "Tid": 3001,
            "DagId": 15001,
            "StartNodeIds": [101, 102],
            "FilterNodeIds": [103],
            "IsTriggerSubTree": False,
            "BackFillDate": None,
            "BackFillDateBegin": "2024-01-30",
            "BackFillDateEnd": "2024-02-02",
            "Interval": 24,
            "Asc": True,
            "HistoryDagId": 16001,
        }
    )

    assert ours == {**sdk_sent, "IsTriggerSubTree": "false", "Asc": "true"}


def test_a_request_built_by_rpc_params_and_signed_by_acs3auth_is_accepted_like_the_sdks(
    endpoint: Endpoint,
) -> None:
    endpoint.sdk().back_fill(_full_back_fill())
    params = acs3.rpc_params(
        {
            "Tid": 3001,
            "DagId": 15001,
            "StartNodeIds": [101, 102],
            "FilterNodeIds": [103],
            "IsTriggerSubTree": False,
            "BackFillDateBegin": "2024-01-30",
            "BackFillDateEnd": "2024-02-02",
            "Interval": 24,
            "Asc": True,
            "HistoryDagId": 16001,
        }
    )
    with httpx.Client(auth=ACS3Auth(endpoint.credentials)) as client:
        reply = client.post(
            f"{endpoint.url}/",
            params=params,
            headers={"x-acs-action": "BackFill", "x-acs-version": "2018-11-01"},
        )

    assert reply.status_code == 200
    assert reply.json()["Success"] is True
    by_sdk, by_us = endpoint.calls.all()
    assert by_us["params"] == by_sdk["params"]


def test_canonical_query_percent_encodes_like_the_sdk() -> None:
    values = {
        "Space": "a b",
        "Plus": "1+1",
        "Star": "*",
        "Tilde": "~x",
        "Reserved": "[1,2]:/?#&=",
        "Unicode": "数据 é",
        "Empty": "",
    }
    wire = urlencode(values)  # how the SDK's transport writes the query

    assert acs3.canonical_query(wire) == get_canonical_query_string(values)
    assert acs3.encode_query(values) == get_canonical_query_string(values)


def test_values_with_spaces_plus_signs_and_unicode_survive_the_wire(endpoint: Endpoint) -> None:
    """The emulator decodes the SDK's form-style query and re-encodes it as the SDK signed it:
    the request gets past the signature check to DMS's own validation."""
    request = models.BackFillRequest(dag_id=1, back_fill_date="2024 01+01 数据~*")

    response = endpoint.sdk().back_fill(request)

    assert response.body.success is False
    assert response.body.error_code == "InvalidParameter"


# verify() on its own: every way a request can fail authentication.


def _signed(
    credentials: AliyunCredentials = KEY, *, at: float = 1_700_000_000.0, nonce: str = "n-1"
) -> httpx.Request:
    request = httpx.Request(
        "POST",
        "https://dms-enterprise.cn-hangzhou.aliyuncs.com/",
        params=acs3.rpc_params({"DagId": 7, "BackFillDate": "2024-01-01", "Asc": True}),
        headers={"x-acs-action": "BackFill", "x-acs-version": "2018-11-01"},
    )
    auth = ACS3Auth(credentials, clock=lambda: at, nonce=lambda: nonce)
    return next(auth.auth_flow(request))


def _verify(
    request: httpx.Request,
    *,
    now: float = 1_700_000_000.0,
    known: tuple[AliyunCredentials, ...] = (KEY, STS),
    nonces: acs3.NonceWindow | None = None,
    query: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> str | None:
    sent = {k.lower(): v for k, v in request.headers.items()}
    return acs3.verify(
        request.method,
        request.url.path,
        request.url.query.decode() if query is None else query,
        {**sent, **(headers or {})},
        request.content if body is None else body,
        credentials_by_id={c.access_key_id: c for c in known},
        now=now,
        nonces=nonces,
    )


def test_verify_accepts_what_acs3auth_signed() -> None:
    assert _verify(_signed()) is None
    assert _verify(_signed(STS)) is None


def test_verify_rejects_a_tampered_parameter() -> None:
    request = _signed()
    tampered = request.url.query.decode().replace("DagId=7", "DagId=8")

    assert _verify(request, query=tampered) == "SignatureDoesNotMatch"


def test_verify_rejects_a_tampered_body() -> None:
    assert _verify(_signed(), body=b"DagId=8") == "SignatureDoesNotMatch"


def test_verify_rejects_a_tampered_signed_header() -> None:
    assert _verify(_signed(), headers={"x-acs-action": "DeleteInstance"}) == (
        "SignatureDoesNotMatch"
    )


def test_verify_rejects_the_wrong_secret() -> None:
    forged = AliyunCredentials(KEY.access_key_id, "not-the-secret")

    assert _verify(_signed(forged)) == "SignatureDoesNotMatch"


def test_verify_rejects_an_unknown_access_key() -> None:
    assert _verify(_signed(), known=(STS,)) == "InvalidAccessKeyId.NotFound"


def test_verify_rejects_a_date_more_than_15_minutes_off() -> None:
    request = _signed(at=1_700_000_000.0)

    assert _verify(request, now=1_700_000_000.0 + 15 * 60) is None
    assert _verify(request, now=1_700_000_000.0 + 15 * 60 + 1) == "InvalidTimeStamp.Expired"
    assert _verify(request, now=1_700_000_000.0 - 15 * 60 - 1) == "InvalidTimeStamp.Expired"


def test_verify_rejects_a_malformed_date() -> None:
    request = _signed()

    assert _verify(request, headers={"x-acs-date": "yesterday"}) == "InvalidTimeStamp.Format"


def test_verify_rejects_a_replayed_nonce_within_the_window() -> None:
    nonces = acs3.NonceWindow()
    request = _signed(nonce="same")

    assert _verify(request, nonces=nonces) is None
    assert _verify(request, nonces=nonces) == "SignatureNonceUsed"
    assert _verify(_signed(nonce="other"), nonces=nonces) is None


def test_a_forged_request_does_not_use_up_a_nonce() -> None:
    nonces = acs3.NonceWindow()
    forged = _signed(AliyunCredentials(KEY.access_key_id, "wrong"), nonce="n")

    assert _verify(forged, nonces=nonces) == "SignatureDoesNotMatch"
    assert _verify(_signed(nonce="n"), nonces=nonces) is None


def test_verify_wants_the_sts_token_that_belongs_to_the_key() -> None:
    without_token = AliyunCredentials(STS.access_key_id, STS.access_key_secret)

    assert _verify(_signed(without_token)) == "InvalidSecurityToken.MismatchWithAccessKey"


def test_verify_rejects_a_missing_or_foreign_authorization() -> None:
    request = _signed()

    assert _verify(request, headers={"authorization": ""}) == "IncompleteSignature"
    assert _verify(request, headers={"authorization": "HMAC-SHA1 x"}) == "IncompleteSignature"


def test_verify_rejects_an_acs_header_left_out_of_the_signature() -> None:
    assert _verify(_signed(), headers={"x-acs-extra": "1"}) == "IncompleteSignature"


def test_acs3auth_signs_host_and_every_acs_header_but_not_transport_headers() -> None:
    request = _signed(STS)
    signed = request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]

    assert signed.split(";") == [
        "host",
        "x-acs-accesskey-id",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-security-token",
        "x-acs-signature-nonce",
        "x-acs-version",
    ]
    assert request.headers["x-acs-date"] == "2023-11-14T22:13:20Z"
    assert request.headers["x-acs-content-sha256"] == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# Credentials.


def test_credentials_never_show_their_secret_or_token() -> None:
    shown = repr(STS) + str(STS)

    assert STS.access_key_id in shown
    assert STS.access_key_secret not in shown
    assert STS.security_token not in shown


def test_credentials_come_from_the_standard_environment_variables() -> None:
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "token",
    }

    assert AliyunCredentials.from_env(env) == AliyunCredentials("id", "secret", "token")
    assert AliyunCredentials.from_env({**env, "ALIBABA_CLOUD_SECURITY_TOKEN": ""}) == (
        AliyunCredentials("id", "secret")
    )
    assert AliyunCredentials.from_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "id"}) is None
    assert AliyunCredentials.from_env({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"}) is None
