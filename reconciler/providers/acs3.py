"""Alibaba Cloud request signing, ACS3-HMAC-SHA256 (signature V3), as an `httpx.Auth`.

Its pure pieces (canonical request, string to sign, signature, `verify`) serve the emulator too.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_plus

import httpx

ALGORITHM = "ACS3-HMAC-SHA256"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_SKEW_SECONDS = 15 * 60
"""The gateway rejects an `x-acs-date` further than this from its own clock."""

_ALWAYS_SIGNED = frozenset({"host", "content-type", "accept", "user-agent"})
"""Besides every `x-acs-*` header. The official SDK signs every header it sets itself, which are
these; headers the transport adds later (content-length, accept-encoding, connection) are not."""

_REQUIRED = ("host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256")

# Error codes of the API gateway for requests it cannot authenticate, with HTTP status and message.
INCOMPLETE_SIGNATURE = "IncompleteSignature"
ACCESS_KEY_NOT_FOUND = "InvalidAccessKeyId.NotFound"
TIMESTAMP_FORMAT = "InvalidTimeStamp.Format"
TIMESTAMP_EXPIRED = "InvalidTimeStamp.Expired"
NONCE_USED = "SignatureNonceUsed"
SIGNATURE_MISMATCH = "SignatureDoesNotMatch"
STS_KEY_MISMATCH = "InvalidSecurityToken.MismatchWithAccessKey"

AUTH_ERRORS: Mapping[str, tuple[int, str]] = {
    INCOMPLETE_SIGNATURE: (400, "The request signature does not conform to Aliyun standards."),
    ACCESS_KEY_NOT_FOUND: (404, "Specified access key is not found."),
    TIMESTAMP_FORMAT: (400, "Specified time stamp or date value is not well formatted."),
    TIMESTAMP_EXPIRED: (400, "Specified time stamp or date value is expired."),
    NONCE_USED: (400, "Specified signature nonce was used already."),
    SIGNATURE_MISMATCH: (400, "Specified signature is not matched with our calculation."),
    STS_KEY_MISMATCH: (400, "Specified SecurityToken mismatch with the AccessKey."),
}


@dataclass(frozen=True)
class AliyunCredentials:
    """An AccessKey pair, optionally with an STS token. The secret parts never appear in a repr."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AliyunCredentials | None:
        """The credentials in `ALIBABA_CLOUD_*` variables, or None if the id or secret is unset."""
        env = os.environ if env is None else env
        key_id = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID", "")
        secret = env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "")
        if not key_id or not secret:
            return None
        return cls(key_id, secret, env.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""))


def _encode(text: str) -> str:
    """RFC 3986 percent-encoding: only A-Z a-z 0-9 - _ . ~ stay as they are (space is %20)."""
    return quote(text, safe="~")


def rpc_params(params: Mapping[str, object]) -> dict[str, str]:
    """An RPC action's parameters as the strings that go into its query, the way the SDK sends them.

    None is left out; arrays and objects are JSON-encoded compactly (the SDK's "json" shrink style,
    e.g. `StartNodeIds=[1,2]`); booleans are `true`/`false` as the API reference writes them (the
    Python SDK sends `str(bool)`, `True`, which the service also accepts); numbers as decimal text.
    """
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list | tuple | dict):
            out[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            out[name] = str(value)
    return out


def encode_query(params: Mapping[str, str]) -> str:
    """A query string in canonical form: names sorted, names and values RFC 3986 encoded."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))


def parse_query(query_string: str) -> list[tuple[str, str]]:
    """Decode a query string as sent on the wire (`+` is a space, as form encoding writes it)."""
    pairs: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def canonical_query(query_string: str) -> str:
    """The query string of a request as it enters the canonical request."""
    pairs = sorted(parse_query(query_string))
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in pairs)


def canonical_headers(headers: Mapping[str, str], signed: Iterable[str]) -> str:
    return "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)


def canonical_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    *,
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """`headers` with lower-case names; `signed_headers` lower-case and sorted."""
    signed = list(signed_headers)
    return "\n".join(
        [
            method.upper(),
            quote(path or "/", safe="/~"),
            canonical_query(query_string),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        ]
    )


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(access_key_id: str, signed_headers: Iterable[str], sig: str) -> str:
    signed = ";".join(signed_headers)
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={sig}"


def format_date(epoch: float) -> str:
    return time.strftime(DATE_FORMAT, time.gmtime(epoch))


def _random_nonce() -> str:
    return uuid.uuid4().hex


class ACS3Auth(httpx.Auth):
    """Signs each request: adds `x-acs-date`, `x-acs-signature-nonce`, `x-acs-content-sha256`, the
    STS headers when there is a token, and `Authorization`.

    The caller sets `x-acs-action` and `x-acs-version` (the API's facts, not the signer's); they are
    signed like every `x-acs-*` header.
    """

    requires_request_body = True

    def __init__(
        self,
        credentials: AliyunCredentials,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _random_nonce,
    ) -> None:
        self.credentials = credentials
        self.clock = clock
        self.nonce = nonce

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        creds = self.credentials
        payload_hash = hashlib.sha256(request.content).hexdigest()
        request.headers["x-acs-date"] = format_date(self.clock())
        request.headers["x-acs-signature-nonce"] = self.nonce()
        request.headers["x-acs-content-sha256"] = payload_hash
        if creds.security_token:
            request.headers["x-acs-accesskey-id"] = creds.access_key_id
            request.headers["x-acs-security-token"] = creds.security_token
        headers = {
            name: ",".join(sorted(v.strip() for v in request.headers.get_list(name)))
            for name in {key.lower() for key in request.headers}
        }
        signed = sorted(name for name in headers if _is_signed(name))
        canonical = canonical_request(
            request.method,
            request.url.path,
            request.url.query.decode("ascii"),
            headers,
            signed_headers=signed,
            payload_hash=payload_hash,
        )
        sig = signature(creds.access_key_secret, string_to_sign(canonical))
        request.headers["Authorization"] = authorization(creds.access_key_id, signed, sig)


def _is_signed(name: str) -> bool:
    return name in _ALWAYS_SIGNED or name.startswith("x-acs-")


@dataclass
class NonceWindow:
    """The signature nonces seen within the replay window; thread-safe."""

    window: float = 2 * MAX_SKEW_SECONDS
    _seen: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def first_use(self, nonce: str, now: float) -> bool:
        """Record `nonce`; False if it was already used within the window."""
        with self._lock:
            for old, at in list(self._seen.items()):
                if now - at > self.window:
                    del self._seen[old]
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


def _parse_authorization(value: str) -> dict[str, str] | None:
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts = dict(item.strip().partition("=")[::2] for item in rest.split(","))
    if not all(parts.get(key) for key in ("Credential", "SignedHeaders", "Signature")):
        return None
    return parts


def _parse_date(value: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(value, DATE_FORMAT)))
    except ValueError:
        return None


def verify(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials_by_id: Mapping[str, AliyunCredentials],
    now: float,
    nonces: NonceWindow | None = None,
) -> str | None:
    """Check a received request's ACS3 signature as the gateway does.

    `headers` has lower-case names. Returns None if the request is authentic, else the gateway's
    error code (a key of `AUTH_ERRORS`). The nonce is consumed only by an authentic request.
    """
    parts = _parse_authorization(headers.get("authorization", ""))
    if parts is None:
        return INCOMPLETE_SIGNATURE
    signed = parts["SignedHeaders"].split(";")
    must_sign = {name for name in headers if name.startswith("x-acs-")} | set(_REQUIRED)
    if not must_sign <= set(signed) or any(name not in headers for name in signed):
        return INCOMPLETE_SIGNATURE
    creds = credentials_by_id.get(parts["Credential"])
    if creds is None:
        return ACCESS_KEY_NOT_FOUND
    sent_at = _parse_date(headers["x-acs-date"])
    if sent_at is None:
        return TIMESTAMP_FORMAT
    if abs(now - sent_at) > MAX_SKEW_SECONDS:
        return TIMESTAMP_EXPIRED
    if headers.get("x-acs-security-token", "") != creds.security_token:
        return STS_KEY_MISMATCH
    # The payload line is the hash of the body received, so a header that lies about it fails too.
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical = canonical_request(
        method, path, query_string, headers, signed_headers=signed, payload_hash=payload_hash
    )
    expected = signature(creds.access_key_secret, string_to_sign(canonical))
    if not hmac.compare_digest(expected, parts["Signature"]):
        return SIGNATURE_MISMATCH
    if nonces is not None and not nonces.first_use(headers["x-acs-signature-nonce"], now):
        return NONCE_USED
    return None
