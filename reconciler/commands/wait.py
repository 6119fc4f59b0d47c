"""`apply --wait` and `status --wait`: refresh, paced, until every followed cell is final or the
time is up. Ctrl-C (SIGINT) stops the waiting, never the backfills: what was journaled stays.

What it comes to, and its exit code, is `reports.wait.Followed`."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from reconciler import actor
from reconciler.commands import refresh
from reconciler.reports.wait import CellHealth, Followed
from reconciler.state import State, SubmissionStatus, open_state


def followed(state: State, plans: Collection[str] | None, errors: tuple[str, ...] = ()) -> Followed:
    """Every cell of a submitted backfill (of `plans`), each from its latest attempt."""
    latest: dict[tuple[str, str, str], CellHealth] = {}
    records = sorted(
        (
            r
            for r in state.submissions.values()
            if r.status is SubmissionStatus.SUBMITTED and (plans is None or r.plan in plans)
        ),
        key=lambda r: r.intent_seq,
    )
    for record in records:
        for target in record.targets:
            for date in record.dates:
                seen = record.health_of(target, date)
                health, raw = seen if seen else (None, "")
                latest[(record.plan, target, date)] = CellHealth(
                    record.plan, target, date, health, raw, record.key
                )
    return Followed(tuple(latest[k] for k in sorted(latest)), errors)


@dataclass(frozen=True, slots=True)
class WaitOptions:
    state_dir: Path
    endpoints: Mapping[str, str]
    timeout: float
    """--wait-timeout: seconds in all."""
    interval: float = 15.0
    """Seconds between the starts of two refreshes."""
    plans: Collection[str] | None = None
    """Follow only these plans' cells (apply: the plans it applied)."""
    request_timeout: float = 30.0
    lock_timeout: float = 0.0
    look: refresh.Observe | None = None
    clock: Callable[[], float] = field(default=time.monotonic)


def follow(options: WaitOptions, on_round: Callable[[Followed], None]) -> Followed:
    """Refresh until every followed cell is final or the time is up; `on_round` sees each
    round. The lock is held only while a round journals. Returns the last round (and whether
    Ctrl-C stopped it)."""
    start = options.clock()
    stop = threading.Event()
    with _interruptible(stop):
        while True:
            with open_state(
                options.state_dir,
                actor=actor.current("refresh"),
                command="backfill wait",
                lock_timeout=options.lock_timeout,
            ) as writer:
                done = refresh.refresh(
                    writer,
                    options.endpoints,
                    plans=options.plans,
                    timeout=options.request_timeout,
                    look=options.look,
                    stop=stop,
                )
                state = writer.state
            result = followed(state, options.plans, tuple(s.error for s in done.errors))
            on_round(result)
            left = options.timeout - (options.clock() - start)
            if result.final or left <= 0 or stop.wait(min(options.interval, left)):
                return dataclasses.replace(result, interrupted=stop.is_set())


@contextmanager
def _interruptible(stop: threading.Event) -> Iterator[None]:
    """SIGINT sets `stop` (the round in progress journals what it read, then the wait ends); a
    second one interrupts at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
