"""The emulator's WSGI app: routes each request to the service that speaks its API.

WeData requests carry `X-TC-Action`; DMS requests are RPC style with `Action` in the query.
`/_emulator/...` is the admin surface for tests (what was accepted, reset).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from reconciler import __version__

Clock = Callable[[], float]

EMULATOR_HEADER = "X-Backfill-Emulator"
"""Every reply carries it, so a client can record that it talked to the emulator."""


@dataclass(frozen=True, slots=True)
class EmulatorRequest:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes

    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query_string, keep_blank_values=True).items()}


@dataclass(frozen=True, slots=True)
class EmulatorResponse:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, value: Any) -> EmulatorResponse:
        return cls(status, json.dumps(value).encode(), (("Content-Type", "application/json"),))


class Service(Protocol):
    """One emulated API."""

    def handles(self, request: EmulatorRequest) -> bool: ...

    def handle(self, request: EmulatorRequest) -> EmulatorResponse: ...


@dataclass
class CallLog:
    """Every create an emulated API accepted, in order; thread-safe."""

    _calls: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(call)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


_STATUS_TEXT = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class Emulator:
    """The WSGI callable. Services are tried in order; the first that handles a request wins.

    The last `keep_requests` raw requests stay in memory (never on an endpoint: they carry
    session tokens) so that tests can compare what a client put on the wire.
    """

    def __init__(
        self, services: Iterable[Service], calls: CallLog, *, keep_requests: int = 100
    ) -> None:
        self.services = list(services)
        self.calls = calls
        self._recent: deque[EmulatorRequest] = deque(maxlen=keep_requests)
        self._recent_lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read(environ)
        with self._recent_lock:
            self._recent.append(request)
        response = self.dispatch(request)
        headers = [*response.headers, (EMULATOR_HEADER, __version__)]
        headers.append(("Content-Length", str(len(response.body))))
        status = f"{response.status} {_STATUS_TEXT.get(response.status, 'Status')}"
        start_response(status, headers)
        return [response.body]

    def recent_requests(self) -> list[EmulatorRequest]:
        """The raw requests received, oldest first (admin requests included)."""
        with self._recent_lock:
            return list(self._recent)

    def dispatch(self, request: EmulatorRequest) -> EmulatorResponse:
        if request.path.startswith("/_emulator/"):
            return self._admin(request)
        for service in self.services:
            if service.handles(request):
                return service.handle(request)
        return EmulatorResponse.json(404, {"error": "no emulated API handles this request"})

    def _admin(self, request: EmulatorRequest) -> EmulatorResponse:
        if request.path == "/_emulator/calls" and request.method == "GET":
            return EmulatorResponse.json(200, {"calls": self.calls.all()})
        if request.path == "/_emulator/reset" and request.method == "POST":
            self.calls.clear()
            with self._recent_lock:
                self._recent.clear()
            for service in self.services:
                reset = getattr(service, "reset", None)
                if callable(reset):
                    reset()
            return EmulatorResponse.json(200, {"reset": True})
        if request.path == "/_emulator/health":
            return EmulatorResponse.json(200, {"ok": True, "version": __version__})
        return EmulatorResponse.json(404, {"error": f"unknown admin endpoint {request.path}"})


def _read(environ: dict[str, Any]) -> EmulatorRequest:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return EmulatorRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", "/") or "/",
        query_string=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
    )
