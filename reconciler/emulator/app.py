"""The emulator's WSGI app: routes each request to the service that speaks its API.

WeData requests carry `X-TC-Action`; DMS requests are RPC style with `Action` in the query.
`/_emulator/...` is the admin surface for tests (what was accepted, faults, stats, reset).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from reconciler.emulator.faults import Fault, FaultConfig, FaultInjector
from reconciler.providers.protocol import EMULATOR_HEADER
from reconciler.version import VERSION

Clock = Callable[[], float]


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

    def creates(self, request: EmulatorRequest) -> bool:
        """The request is the API's create action (the one faults apply to)."""
        ...

    def throttled(self, request: EmulatorRequest) -> EmulatorResponse:
        """The reply the API gives a request over its rate limit: same status, headers, fields."""
        ...


CONNECTION = "backfill.emulator.connection"
"""The environ key under which the loopback server offers the request's `Connection`."""


class Connection(Protocol):
    """What the server lets the app do with the TCP connection of the current request."""

    @property
    def closing(self) -> threading.Event:
        """Set when the server shuts down: a held-back reply stops waiting."""
        ...

    def reset(self) -> None:
        """Close the connection with a TCP reset, without a reply."""
        ...


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


_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _gateway_page(status: int) -> EmulatorResponse:
    """What a load balancer in front of either API answers: HTML, not the API's own JSON."""
    title = f"{status} {_STATUS_TEXT[status]}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return EmulatorResponse(status, page.encode(), (("Content-Type", "text/html"),))


class _Traffic:
    """Counts of API requests, for `/_emulator/stats`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.creates = 0
        self.in_flight = 0

    def arrived(self, *, create: bool) -> None:
        with self._lock:
            self.requests += 1
            self.creates += create
            self.in_flight += 1

    def handled(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "creates": self.creates,
                "in_flight": self.in_flight,
            }

    def reset(self) -> None:
        with self._lock:
            self.requests = self.creates = 0


class Emulator:
    """The WSGI callable. Services are tried in order; the first that handles a request wins.

    The last `keep_requests` raw requests stay in memory (never on an endpoint: they carry
    session tokens) so that tests can compare what a client put on the wire.

    `faults` decides latency and faults (see `faults.FaultConfig`). Losing a reply after commit
    needs the loopback server (it owns the socket); mounted in-process (`httpx.WSGITransport`)
    there is no connection to drop, so such a reply becomes an immediate HTTP 504 instead.
    """

    def __init__(
        self,
        services: Iterable[Service],
        calls: CallLog,
        *,
        faults: FaultInjector | None = None,
        keep_requests: int = 100,
    ) -> None:
        self.services = list(services)
        self.calls = calls
        self.faults = faults or FaultInjector()
        self._traffic = _Traffic()
        self._recent: deque[EmulatorRequest] = deque(maxlen=keep_requests)
        self._recent_lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read(environ)
        with self._recent_lock:
            self._recent.append(request)
        response = self.dispatch(request, environ.get(CONNECTION))
        if response is None:
            # The connection is already reset: wsgiref takes this as the client having gone
            # and writes nothing.
            raise ConnectionAbortedError("the emulator dropped this connection on purpose")
        headers = [*response.headers, (EMULATOR_HEADER, VERSION)]
        headers.append(("Content-Length", str(len(response.body))))
        status = f"{response.status} {_STATUS_TEXT.get(response.status, 'Status')}"
        start_response(status, headers)
        return [response.body]

    def recent_requests(self) -> list[EmulatorRequest]:
        """The raw requests received, oldest first (admin requests included)."""
        with self._recent_lock:
            return list(self._recent)

    def dispatch(
        self, request: EmulatorRequest, connection: Connection | None = None
    ) -> EmulatorResponse | None:
        """The reply to `request`, or None when the connection was reset instead."""
        if request.path.startswith("/_emulator/"):
            return self._admin(request)
        for service in self.services:
            if service.handles(request):
                return self._serve(service, request, connection)
        return EmulatorResponse.json(404, {"error": "no emulated API handles this request"})

    def _serve(
        self, service: Service, request: EmulatorRequest, connection: Connection | None
    ) -> EmulatorResponse | None:
        closing = connection.closing if connection is not None else None
        create = service.creates(request)
        self._traffic.arrived(create=create)
        try:
            fault, response = self._answer(service, request, closing, create=create)
        finally:
            # Past this point nothing more is recorded: only the fate of the reply is left.
            self._traffic.handled()
        if fault not in (Fault.TIMEOUT_AFTER_COMMIT, Fault.RESET_AFTER_COMMIT):
            return response
        if connection is None:
            return _gateway_page(504)
        if fault is Fault.TIMEOUT_AFTER_COMMIT:
            # Held back until the client has surely given up, then never sent.
            _pause(self.faults.config.hang_ms / 1000, closing)
        connection.reset()
        return None

    def _answer(
        self,
        service: Service,
        request: EmulatorRequest,
        closing: threading.Event | None,
        *,
        create: bool,
    ) -> tuple[Fault | None, EmulatorResponse]:
        _pause(self.faults.latency(), closing)
        fault = self.faults.draw() if create else None
        if fault is Fault.THROTTLE:
            return fault, service.throttled(request)
        if fault is Fault.ERROR:
            return fault, _gateway_page(503)
        if fault is Fault.SLOW:
            _pause(self.faults.config.slow_ms / 1000, closing)
        return fault, service.handle(request)

    def stats(self) -> dict[str, Any]:
        """Traffic and injected faults since the start or the last reset.

        `in_flight` counts API requests not yet answered: until it is 0, a create among them may
        still be recorded, so a test must not take `/_emulator/calls` as complete before that.
        """
        return {
            **self._traffic.snapshot(),
            "accepted_creates": len(self.calls.all()),
            "faults": self.faults.injected(),
            "seed": self.faults.config.seed,
        }

    def _admin(self, request: EmulatorRequest) -> EmulatorResponse:
        if request.path == "/_emulator/calls" and request.method == "GET":
            return EmulatorResponse.json(200, {"calls": self.calls.all()})
        if request.path == "/_emulator/stats" and request.method == "GET":
            return EmulatorResponse.json(200, self.stats())
        if request.path == "/_emulator/faults":
            return self._faults_endpoint(request)
        if request.path == "/_emulator/reset" and request.method == "POST":
            self.calls.clear()
            self.faults.reset()
            self._traffic.reset()
            with self._recent_lock:
                self._recent.clear()
            for service in self.services:
                reset = getattr(service, "reset", None)
                if callable(reset):
                    reset()
            return EmulatorResponse.json(200, {"reset": True})
        if request.path == "/_emulator/health":
            return EmulatorResponse.json(200, {"ok": True, "version": VERSION})
        return EmulatorResponse.json(404, {"error": f"unknown admin endpoint {request.path}"})

    def _faults_endpoint(self, request: EmulatorRequest) -> EmulatorResponse:
        """GET: the config in force (with its seed). POST: replace it with the JSON body."""
        if request.method == "POST":
            try:
                config = FaultConfig.from_json(json.loads(request.body or b"{}"))
            except ValueError as error:  # a JSONDecodeError is one too
                return EmulatorResponse.json(400, {"error": str(error)})
            self.faults.configure(config)
        elif request.method != "GET":
            return EmulatorResponse.json(405, {"error": "use GET or POST"})
        return EmulatorResponse.json(200, self.faults.config.to_json())


def _pause(seconds: float, closing: threading.Event | None) -> None:
    """Sleep, but stop at once when the server shuts down, so that tests end quickly."""
    if seconds <= 0:
        return
    if closing is None:
        time.sleep(seconds)
    else:
        closing.wait(seconds)


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
