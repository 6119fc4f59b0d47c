"""TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0: an `httpx.Auth` that signs,
and `verify`, which checks a received request the way the real gateway does (for the emulator).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = ("content-type", "host")
"""What the official SDKs sign; the gateway accepts more, but never fewer."""
MAX_CLOCK_SKEW = 300.0
"""Seconds a request's timestamp may differ from the server's clock (documented: five minutes)."""
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

AUTH_INVALID = "AuthFailure.InvalidAuthorization"
AUTH_SECRET_ID_NOT_FOUND = "AuthFailure.SecretIdNotFound"  # noqa: S105 (an error code)
AUTH_SIGNATURE_EXPIRE = "AuthFailure.SignatureExpire"
AUTH_SIGNATURE_FAILURE = "AuthFailure.SignatureFailure"
AUTH_TOKEN_FAILURE = "AuthFailure.TokenFailure"  # noqa: S105 (an error code)
MISSING_PARAMETER = "MissingParameter"


@dataclass(frozen=True)
class TencentCredentials:
    """A Tencent Cloud API key; only the id is ever shown."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str = field(default="", repr=False)
    """Session token of temporary credentials (STS); empty for a permanent key."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TencentCredentials | None:
        env = os.environ if env is None else env
        secret_id = env.get("TENCENTCLOUD_SECRET_ID", "")
        secret_key = env.get("TENCENTCLOUD_SECRET_KEY", "")
        if not secret_id or not secret_key:
            return None
        return cls(secret_id, secret_key, env.get("TENCENTCLOUD_SESSION_TOKEN", ""))


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the gateway refuses a request: the API 3.0 error code and its message."""

    code: str
    message: str


def credential_date(timestamp: int) -> str:
    """The date of the credential scope. It must be the UTC date of the timestamp: a local date
    signs fine by day and fails around midnight."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def payload_hash(body: bytes, headers: Mapping[str, str]) -> str:
    """`headers` has lower-case names."""
    if headers.get("x-tc-content-sha256") == UNSIGNED_PAYLOAD:
        return hashlib.sha256(UNSIGNED_PAYLOAD.encode()).hexdigest()
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    signed_headers: Sequence[str],
    hashed_payload: str,
) -> str:
    """`headers` has lower-case names and holds every name in `signed_headers` (sorted, lower)."""
    # The documented rule lower-cases values too; the SDK does not, which only matters for
    # values that are not already lower case (a mixed-case host), never for ours.
    canonical_headers = "".join(
        f"{name}:{headers[name].strip().lower()}\n" for name in signed_headers
    )
    return "\n".join(
        [method.upper(), path, query, canonical_headers, ";".join(signed_headers), hashed_payload]
    )


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(secret_key: str, timestamp: int, service: str, to_sign: str) -> str:
    key = _hmac(f"TC3{secret_key}".encode(), credential_date(timestamp))
    key = _hmac(key, service)
    key = _hmac(key, "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str, timestamp: int, service: str, signed_headers: Sequence[str], sig: str
) -> str:
    scope = f"{credential_date(timestamp)}/{service}/tc3_request"
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={';'.join(signed_headers)}, Signature={sig}"
    )


def sign(
    credentials: TencentCredentials,
    *,
    service: str,
    timestamp: int,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The `Authorization` header value for a request (`headers` with lower-case names)."""
    canonical = canonical_request(
        method,
        path,
        query,
        headers,
        signed_headers=SIGNED_HEADERS,
        hashed_payload=payload_hash(body, headers),
    )
    to_sign = string_to_sign(timestamp, service, canonical)
    sig = signature(credentials.secret_key, timestamp, service, to_sign)
    return authorization(credentials.secret_id, timestamp, service, SIGNED_HEADERS, sig)


class TC3Auth(httpx.Auth):
    """Signs each request for one Tencent Cloud service (`wedata`, ...)."""

    requires_request_body = True

    def __init__(
        self,
        credentials: TencentCredentials,
        *,
        service: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._service = service
        self._clock = clock

    def __repr__(self) -> str:
        return f"TC3Auth({self._credentials!r}, service={self._service!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "X-TC-Timestamp" not in request.headers:
            request.headers["X-TC-Timestamp"] = str(int(self._clock()))
        if self._credentials.token:
            request.headers["X-TC-Token"] = self._credentials.token
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers.setdefault("content-type", "")
        request.headers["Authorization"] = sign(
            self._credentials,
            service=self._service,
            timestamp=int(request.headers["X-TC-Timestamp"]),
            method=request.method,
            path=request.url.path,
            query=request.url.query.decode("ascii"),
            headers=headers,
            body=request.content,
        )
        yield request


_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})"
    r"/(?P<service>[^/,\s]+)/tc3_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials_by_id: Callable[[str], TencentCredentials | None],
    now: float,
    service: str,
) -> Rejection | None:
    """None if the request is signed by a known key for `service` at about `now`, else why not.

    `headers` has lower-case names. Checked in the order the gateway reports problems: the
    header's form, the key, the clock, the session token, then the signature itself.
    """
    match = _AUTHORIZATION.match(headers.get("authorization", "").strip())
    if match is None:
        return Rejection(
            AUTH_INVALID,
            "The Authorization header is missing or not in the TC3-HMAC-SHA256 format "
            "`TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, "
            "SignedHeaders=<names>, Signature=<hex>`.",
        )
    signed = match["signed"].split(";")
    if signed != sorted(signed) or not set(SIGNED_HEADERS) <= set(signed):
        return Rejection(
            AUTH_INVALID,
            "SignedHeaders must be sorted and include content-type and host.",
        )
    missing = [name for name in signed if name not in headers]
    if missing:
        return Rejection(AUTH_INVALID, f"Signed header `{missing[0]}` is not in the request.")
    raw_timestamp = headers.get("x-tc-timestamp", "")
    if not raw_timestamp.isdigit():
        return Rejection(
            MISSING_PARAMETER, "The request is missing a valid `X-TC-Timestamp` header."
        )
    credentials = credentials_by_id(match["id"])
    if credentials is None:
        return Rejection(
            AUTH_SECRET_ID_NOT_FOUND, f"The SecretId {match['id']} is not found, please check it."
        )
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        return Rejection(
            AUTH_SIGNATURE_EXPIRE,
            f"Signature expired. Timestamp {timestamp} and server time {int(now)} differ by more "
            "than five minutes; check the local clock.",
        )
    if not hmac.compare_digest(headers.get("x-tc-token", ""), credentials.token):
        return Rejection(AUTH_TOKEN_FAILURE, "The provided session token is invalid.")
    canonical = canonical_request(
        method,
        path,
        query,
        headers,
        signed_headers=signed,
        hashed_payload=payload_hash(body, headers),
    )
    expected = signature(
        credentials.secret_key, timestamp, service, string_to_sign(timestamp, service, canonical)
    )
    scope_ok = match["date"] == credential_date(timestamp) and match["service"] == service
    if not scope_ok or not hmac.compare_digest(expected, match["sig"]):
        return Rejection(
            AUTH_SIGNATURE_FAILURE,
            "The provided credentials could not be validated. Please check your signature is "
            "correct.",
        )
    return None


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
