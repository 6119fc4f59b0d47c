"""The emulator's WSGI app: one emulated API per registered provider (`create_app`), each
request routed to the service whose API it names an action of, and the plumbing every service
shares (the record of accepted creates, the rate limit, the reset).

`/_emulator/...` is the admin surface for tests (what was accepted, faults, stats, reset).
"""

from __future__ import annotations

import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import parse_qs

from reconciler import providers
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

    create_action: str
    """The action that creates a backfill: the one faults apply to."""

    def action(self, request: EmulatorRequest) -> str | None:
        """The action `request` names if it is a request of this API (known or not), else None."""
        ...

    def handle(self, request: EmulatorRequest) -> EmulatorResponse: ...

    def throttled(self, request: EmulatorRequest) -> EmulatorResponse:
        """The reply the API gives a request over its rate limit: same status, headers, fields."""
        ...

    def reset(self) -> None:
        """Forget every backfill and every request counted against the rate limit."""
        ...

    def refused(self) -> Mapping[str, int]:
        """How many requests of each action it refused over its rate limit since the start or
        the last reset."""
        ...


@dataclass(frozen=True, slots=True)
class Settings:
    """What every emulated API is made with (see `create_app`)."""

    calls: CallLog
    """Where the creates it accepts are recorded (one log for every API)."""
    environ: Mapping[str, str]
    """Where its credentials are read from, under the names the product reads them from."""
    clock: Clock = time.time
    rate_limits: Mapping[str, float | None] = field(default_factory=dict)
    """Requests per second of each action, by provider name (None: no limit); an API not
    named keeps its own."""
    faults: FaultInjector = field(default_factory=FaultInjector)
    """The emulator's faults: how long the runs of a backfill take and which of them fail."""


ServiceFactory = Callable[[Settings], Service]
"""An emulated API's class: made from the settings alone."""


@dataclass(frozen=True, slots=True)
class Throttled:
    """A request over the rate limit."""

    count: int
    """Requests of its action in the window, itself included."""
    limit: float
    """Requests per second of its action."""
    retry_after: float
    """Seconds until a request of its action would be let through."""


class RateLimit:
    """At most `per_second` requests of each action in any one second by the emulator's clock
    (a limit under one: one request per 1/limit seconds); None is no limit. Thread-safe."""

    def __init__(self, per_second: float | None, clock: Clock) -> None:
        self.per_second = per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = {}
        self.refused: Counter[str] = Counter()
        """Requests of each action it refused."""

    def admit(self, action: str) -> Throttled | None:
        """Count a request of `action`, or say how it is over the limit (then not counted)."""
        if self.per_second is None:
            return None
        window = max(1.0, 1.0 / self.per_second)
        allowed = max(1, int(self.per_second))
        now = self._clock()
        with self._lock:
            recent = self._recent.setdefault(action, deque())
            while recent and recent[0] <= now - window:
                recent.popleft()
            if len(recent) >= allowed:
                self.refused[action] += 1
                return Throttled(len(recent) + 1, self.per_second, recent[0] + window - now)
            recent.append(now)
            return None

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()
            self.refused.clear()


class EmulatedApi(ABC):
    """What the emulated APIs share: the record of accepted creates, the clock their backfills
    progress by, how their runs fare (how long each takes, which fail), and the rate limit of
    their actions. A service adds its credentials and wire (`action`, `handle`, `throttled`)
    and what it keeps (`forget`)."""

    provider: str
    """The provider whose API this is (`spec.provider`), as the call log names it."""
    create_action: str
    default_rate_limit: float | None
    """Requests per second of each action unless the settings say otherwise."""

    def __init__(self, settings: Settings) -> None:
        self.calls = settings.calls
        self.clock = settings.clock
        self.faults = settings.faults
        rate_limit = settings.rate_limits.get(self.provider, self.default_rate_limit)
        self.limit = RateLimit(rate_limit, settings.clock)
        self._lock = threading.Lock()
        """Guards what the service keeps (backfills, instances)."""
        self._runs: Counter[tuple[str, str]] = Counter()
        """How many runs of each target and date the service has made."""

    @property
    def rate_limit(self) -> float | None:
        return self.limit.per_second

    @property
    def instance_seconds(self) -> float:
        """How long a run made now takes, as the faults in force say."""
        return self.faults.config.instance_seconds

    def run_fails(self, target: str, day: str) -> bool:
        """Whether the run of `target` on `day` being made now is to fail (called holding the
        service's lock, once per run made)."""
        attempt = self._runs[target, day]
        self._runs[target, day] += 1
        return self.faults.run_fails(self.provider, target, day, attempt)

    @abstractmethod
    def action(self, request: EmulatorRequest) -> str | None: ...

    @abstractmethod
    def handle(self, request: EmulatorRequest) -> EmulatorResponse: ...

    @abstractmethod
    def throttled(self, request: EmulatorRequest) -> EmulatorResponse: ...

    @abstractmethod
    def forget(self) -> None:
        """Drop every backfill the service keeps (called holding its lock)."""

    def accepted(
        self, params: Mapping[str, Any], *, remote_id: str, request_id: str, time: float
    ) -> None:
        """Record a create the API accepted at `time`, for `/_emulator/calls`."""
        self.calls.record(
            {
                "provider": self.provider,
                "action": self.create_action,
                "params": params,
                "remote_id": remote_id,
                "request_id": request_id,
                "time": time,
            }
        )

    def reset(self) -> None:
        self.limit.reset()
        with self._lock:
            self._runs.clear()
            self.forget()

    def refused(self) -> Mapping[str, int]:
        return dict(self.limit.refused)


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


@dataclass(slots=True)
class _Arrivals:
    """The requests of one action: how many, and when the first and the last one arrived."""

    requests: int = 0
    first: float = 0.0
    last: float = 0.0


class _Traffic:
    """Counts of API requests, in all and per action, for `/_emulator/stats`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.creates = 0
        self.in_flight = 0
        self._actions: dict[str, _Arrivals] = {}

    def arrived(self, action: str, *, create: bool) -> None:
        now = time.time()
        with self._lock:
            self.requests += 1
            self.creates += create
            self.in_flight += 1
            arrivals = self._actions.setdefault(action, _Arrivals(first=now))
            arrivals.requests += 1
            arrivals.last = now

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

    def actions(self) -> dict[str, _Arrivals]:
        with self._lock:
            return {name: replace(a) for name, a in self._actions.items()}

    def reset(self) -> None:
        with self._lock:
            self.requests = self.creates = 0
            self._actions.clear()


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
            action = service.action(request)
            if action is not None:
                return self._serve(service, action, request, connection)
        return EmulatorResponse.json(404, {"error": "no emulated API handles this request"})

    def _serve(
        self,
        service: Service,
        action: str,
        request: EmulatorRequest,
        connection: Connection | None,
    ) -> EmulatorResponse | None:
        closing = connection.closing if connection is not None else None
        create = action == service.create_action
        self._traffic.arrived(action, create=create)
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
        `actions`: per action, the requests that arrived (throttled ones included), how many of
        them the rate limit refused, and when the first and the last arrived (epoch seconds).
        """
        refused: Counter[str] = Counter()
        for service in self.services:
            refused.update(service.refused())
        return {
            **self._traffic.snapshot(),
            "actions": {
                name: {
                    "requests": a.requests,
                    "throttled": refused[name],
                    "first": a.first,
                    "last": a.last,
                }
                for name, a in sorted(self._traffic.actions().items())
            },
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
                service.reset()
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


def create_app(
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = time.time,
    rate_limits: Mapping[str, float | None] | None = None,
    faults: FaultConfig | None = None,
) -> Emulator:
    """The emulator of every registered provider's API, each made by the provider's
    `emulated` factory. A service finds its credentials in `environ` (default: this process's
    environment) as the product does; without them it refuses every request, as a real
    endpoint refuses unknown keys. `rate_limits` overrides an API's own limit (by provider
    name).

    `faults` makes it misbehave (latency, throttling, 5xx, lost replies) and says how the runs
    of its backfills fare (how long each takes, which fail), reproducibly from its seed;
    `POST /_emulator/faults` replaces it while serving.
    """
    settings = Settings(
        calls=CallLog(),
        environ=os.environ if environ is None else environ,
        clock=clock,
        rate_limits=rate_limits or {},
        faults=FaultInjector(faults),
    )
    services = [p.emulated()(settings) for p in providers.registry().values()]
    return Emulator(services, settings.calls, faults=settings.faults)


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
