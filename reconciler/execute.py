"""Fifth stage: make the calls of a changeset, journaling each intent before its request leaves
the process and each outcome as soon as it is known.

Only replies that prove nothing was executed (throttling, connection refused) are retried; an
outcome that may have executed is journaled `unknown` and never sent again by this code.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.domain import JSON, Outcome, OutcomeKind, Submission
from reconciler.providers.protocol import Client

MAX_ATTEMPTS = 6


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


@dataclass(frozen=True, slots=True)
class Tally:
    """What a run's calls came to, as every report of an apply counts them."""

    submitted: int
    not_created: int
    """Rejected, or still throttled after the last attempt: nothing was created."""
    unknown: int
    not_attempted: int

    @classmethod
    def of(cls, results: Sequence[Result], planned: int) -> Tally:
        kinds = [r.outcome.kind for r in results]
        return cls(
            submitted=kinds.count(OutcomeKind.SUBMITTED),
            not_created=kinds.count(OutcomeKind.REJECTED) + kinds.count(OutcomeKind.RETRYABLE),
            unknown=kinds.count(OutcomeKind.UNKNOWN),
            not_attempted=planned - len(results),
        )

    @property
    def all_submitted(self) -> bool:
        return not (self.not_created or self.unknown)


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
    return {
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
    # REJECTED, or RETRYABLE after the last attempt: either way nothing was created.
    return "rejected", {
        "key": submission.key,
        "code": outcome.code,
        "message": outcome.message,
        "request_id": outcome.request_id,
    }


@dataclass(frozen=True, slots=True)
class Route:
    """Where one submission goes: the client for its endpoint and the pace it must keep."""

    client: Client
    pacer: Pacer
    endpoint: str


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
    are not attempted (and not in the results).
    """
    lock = threading.Lock()
    results: list[Result] = []
    stop = stop or threading.Event()

    def run(submission: Submission) -> None:
        if stop.is_set():
            return
        way = route(submission)
        # The pace slot first, then the intent, then the request: a run killed while calls wait
        # for their turn leaves them unjournaled (never sent), not unknown.
        way.pacer.acquire()
        if stop.is_set():
            return
        if not journaled:
            with lock:
                journal.append("intent", intent(submission, way.endpoint))
        attempts = 0
        retried: list[str] = []
        while True:
            attempts += 1
            if attempts > 1:
                way.pacer.acquire()
            outcome = way.client.submit(submission)
            if outcome.kind is not OutcomeKind.RETRYABLE:
                way.pacer.succeeded()
                break
            way.pacer.throttled()
            if attempts >= MAX_ATTEMPTS or stop.is_set():
                break
            retried.append(outcome.code)
            sleep(_backoff(attempts))
        if outcome.kind is OutcomeKind.RETRYABLE:
            why = "stopped" if stop.is_set() else f"gave up after {attempts} attempts"
            outcome = Outcome(
                OutcomeKind.RETRYABLE,
                request_id=outcome.request_id,
                code=outcome.code,
                message=f"{why} ({outcome.message}); nothing was created, the next apply "
                "tries these cells again",
                emulator=outcome.emulator,
            )
        event, data = outcome_event(submission, outcome)
        result = Result(submission, outcome, attempts, tuple(retried))
        with lock:
            journal.append(event, data)
            results.append(result)
            on_result(result)

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
