"""Fifth stage: make the calls of a changeset, journaling each intent before its request leaves
the process and each outcome as soon as it is known.

Only what proves nothing was executed (throttling, no connection) is retried; an outcome that
may have executed is journaled `unknown` and never sent again by this code. An endpoint that
cannot be reached, or that refuses the credentials, gets no more calls in the run.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.domain import JSON, Outcome, OutcomeKind, Submission
from reconciler.providers.protocol import Client

MAX_ATTEMPTS = 6
"""Attempts of a throttled call before the run gives up on it."""
UNSENT_PAUSES = (0.25, 0.5, 1.0, 2.0)
"""Pauses between the attempts of a call that found no connection: a server restarting gets a
few seconds, a wrong endpoint costs no more (five attempts, under 4 s)."""


class Journal(Protocol):
    """What this stage needs of the state store."""

    def append(self, type: str, data: dict[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Result:
    submission: Submission
    outcome: Outcome
    attempts: int
    retried: tuple[str, ...] = ()
    """The codes of the replies that were retried (throttling, refused connections)."""
    stopped: str = ""
    """Set on the call after which the run sent its endpoint nothing more: which endpoint, why,
    and what to fix."""


class Pacer:
    """Keeps one API's calls under its rate limit, adapting to what the server says.

    Calls leave one every 1/rate seconds, never in a burst, so that no one-second window at the
    server sees more than the limit; the pace runs a little under the limit (`headroom`) because
    requests do not arrive exactly as they leave. A throttled reply cuts the pace (multiplicative
    decrease); each success wins a little of it back (additive increase), up to the limit.
    """

    def __init__(
        self,
        limit: float,
        *,
        headroom: float = 0.97,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit * headroom
        self.rate = self.limit
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + 1.0 / self.rate
        if slot > now:
            self._sleep(slot - now)

    def throttled(self) -> None:
        with self._lock:
            self.rate = max(self.limit / 20, self.rate * 0.5)

    def succeeded(self) -> None:
        with self._lock:
            self.rate = min(self.limit, self.rate + self.limit / 50)


def intent(submission: Submission, endpoint: str) -> dict[str, JSON]:
    """The intent's data; a retry's names the attempts it replaces (first attempts' intents
    have no `replaces`, as before retries existed)."""
    data: dict[str, JSON] = {
        "key": submission.key,
        "plan": submission.plan,
        "revision": submission.revision,
        "provider": submission.provider,
        "action": submission.action,
        "region": submission.region,
        "endpoint": endpoint,
        "targets": list(submission.targets),
        "dates": list(submission.dates),
        "fingerprint": submission.fingerprint,
        "params": dict(submission.params),
        "request": dict(submission.request),
    }
    if submission.replaces:
        data["replaces"] = list(submission.replaces)
    return data


def outcome_event(submission: Submission, outcome: Outcome) -> tuple[str, dict[str, JSON]]:
    if outcome.kind is OutcomeKind.SUBMITTED:
        return "submitted", {
            "key": submission.key,
            "remote_id": outcome.remote_id,
            "request_id": outcome.request_id,
            "detail": dict(outcome.detail),
            "emulator": outcome.emulator,
        }
    if outcome.kind is OutcomeKind.UNKNOWN:
        return "unknown", {"key": submission.key, "code": outcome.code, "message": outcome.message}
    if outcome.kind is OutcomeKind.UNSENT:
        return "unsent", {"key": submission.key, "code": outcome.code, "message": outcome.message}
    # REJECTED, or RETRYABLE after the last attempt: either way nothing was created.
    return "rejected", {
        "key": submission.key,
        "code": outcome.code,
        "message": outcome.message,
        "request_id": outcome.request_id,
    }


class Gate:
    """Lets calls through to one endpoint. The first goes alone, and the others wait until
    something answers there: a wrong endpoint or refused credentials then cost one journaled
    call, not one per call. Once an outcome says that no call can fare better (`halt`), the gate
    stays shut for the rest of the run."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._answered = False
        self._probing = False
        self.shut = False

    def enter(self, stop: threading.Event) -> bool:
        """Wait for a turn; False once the gate is shut or the run stops."""
        with self._changed:
            while True:
                if self.shut or stop.is_set():
                    return False
                if self._answered:
                    return True
                if not self._probing:
                    self._probing = True  # this call goes first, alone
                    return True
                # A signal handler sets `stop` without notifying anyone: look again now and then.
                self._changed.wait(0.1)

    def leave(self, outcome: Outcome | None) -> bool:
        """What became of a call that entered (None: it was never made). True when its outcome
        shut the gate, so that one result, not every call in flight, says why."""
        with self._changed:
            shuts = outcome is not None and bool(outcome.halt) and not self.shut
            if shuts:
                self.shut = True
            elif outcome is not None and outcome.kind is not OutcomeKind.UNSENT:
                self._answered = True
            self._probing = False
            self._changed.notify_all()
            return shuts


@dataclass(frozen=True, slots=True)
class Route:
    """Where one submission goes: the client for its endpoint, the pace it must keep, and the
    gate that stops calls to an endpoint that cannot take them."""

    client: Client
    pacer: Pacer
    endpoint: str
    gate: Gate = field(default_factory=Gate)


def execute(
    submissions: Iterable[Submission],
    *,
    route: Callable[[Submission], Route],
    journal: Journal,
    parallel: int = 16,
    on_result: Callable[[Result], None] = lambda result: None,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    journaled: bool = False,
) -> list[Result]:
    """Run every submission; returns their results in completion order.

    `journaled`: the caller has journaled (and published) every intent already, as the write-ahead
    of the GitHub flow does, so only outcomes are journaled here.

    Setting `stop` dispatches nothing more: calls in flight finish and are journaled, the rest
    are not attempted (and not in the results). Likewise the rest of an endpoint's calls once
    an outcome of one of them says that none can fare better (`Outcome.halt`).
    """
    lock = threading.Lock()
    results: list[Result] = []
    stop = stop or threading.Event()

    def call(way: Route, submission: Submission) -> Result | None:
        # The pace slot first, then the intent, then the request: a run killed while calls wait
        # for their turn leaves them unjournaled (never sent), not unknown.
        way.pacer.acquire()
        if stop.is_set():
            return None
        if not journaled:
            with lock:
                journal.append("intent", intent(submission, way.endpoint))
        outcome, attempts, retried = _attempts(way, submission, stop, sleep)
        return Result(submission, outcome, attempts, retried)

    def run(submission: Submission) -> None:
        if stop.is_set():
            return
        way = route(submission)
        if not way.gate.enter(stop):
            return
        made: Result | None = None
        try:
            made = call(way, submission)
        finally:
            shut = way.gate.leave(made.outcome if made else None)
        if made is None:
            return
        if shut:
            made = dataclasses.replace(
                made,
                stopped=f"stopped sending to {way.endpoint} ({submission.provider}): "
                f"{made.outcome.halt}",
            )
        event, data = outcome_event(submission, made.outcome)
        with lock:
            journal.append(event, data)
            results.append(made)
            on_result(made)

    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    futures = [pool.submit(run, s) for s in interleave(submissions)]
    try:
        for future in futures:
            future.result()
    except BaseException:
        # Interrupted or failed: dispatch nothing more, let calls in flight finish and journal.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def _attempts(
    way: Route, submission: Submission, stop: threading.Event, sleep: Callable[[float], None]
) -> tuple[Outcome, int, tuple[str, ...]]:
    """Send until an outcome proves something or the retries run out: a throttled call backs
    off up to MAX_ATTEMPTS times, one that found no connection briefly (UNSENT_PAUSES)."""
    attempts = unsent = 0
    retried: list[str] = []
    while True:
        attempts += 1
        if attempts > 1:
            way.pacer.acquire()
        outcome = way.client.submit(submission)
        if outcome.kind is OutcomeKind.RETRYABLE:
            way.pacer.throttled()
            pause = _backoff(attempts) if attempts < MAX_ATTEMPTS else None
        elif outcome.kind is OutcomeKind.UNSENT:
            unsent += 1
            pause = UNSENT_PAUSES[unsent - 1] if unsent <= len(UNSENT_PAUSES) else None
        else:
            way.pacer.succeeded()
            return outcome, attempts, tuple(retried)
        if pause is None or stop.is_set():
            break
        retried.append(outcome.code)
        sleep(pause)
    why = "stopped before trying again" if stop.is_set() else f"{attempts} attempts"
    message = f"{outcome.message} ({why}); nothing was created: the next apply tries again"
    return dataclasses.replace(outcome, message=message), attempts, tuple(retried)


def read_paced(
    pacer: Pacer, read: Callable[[], Outcome], sleep: Callable[[float], None] = time.sleep
) -> Outcome:
    """One read at `pacer`'s pace. A read changes nothing, so one the platform throttled is
    simply asked again after a backoff (up to MAX_ATTEMPTS times), and slows the pace as a
    throttled create does; the last outcome is returned whatever it is."""
    attempt = 0
    while True:
        attempt += 1
        pacer.acquire()
        outcome = read()
        if outcome.kind is not OutcomeKind.RETRYABLE:
            pacer.succeeded()
            return outcome
        pacer.throttled()
        if attempt >= MAX_ATTEMPTS:
            return outcome
        sleep(_backoff(attempt))


def interleave(submissions: Iterable[Submission]) -> list[Submission]:
    """Round-robin over providers, so that workers waiting for one API's pace never hold back
    another's calls (each keeps its own order)."""
    queues: dict[str, list[Submission]] = {}
    for submission in submissions:
        queues.setdefault(submission.provider, []).append(submission)
    ordered: list[Submission] = []
    for batch in itertools.zip_longest(*queues.values()):
        ordered.extend(s for s in batch if s is not None)
    return ordered


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped: 0.5 s, 1 s, 2 s ... up to 8 s."""
    return random.uniform(0, min(8.0, 0.5 * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto
