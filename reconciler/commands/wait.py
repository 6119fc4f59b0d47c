"""`apply --wait` and `status --wait`: refresh, paced, until every followed cell is final or the
time is up. Ctrl-C (SIGINT) stops the waiting, never the backfills: what was journaled stays.

Exit codes: 0 every cell succeeded, 1 some failed or stopped, TIMED_OUT when the time was up
first, 130 when interrupted."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import click

from reconciler import actor
from reconciler.commands import refresh
from reconciler.domain import FINAL_HEALTH, Health
from reconciler.state import State, SubmissionStatus, open_state
from reconciler.views.progress import Mode

TIMED_OUT = 4
"""The exit code when --wait-timeout passed before every cell was final."""
INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class CellHealth:
    """One followed cell, as its latest submitted attempt was last observed (None: never)."""

    plan: str
    target: str
    date: str
    health: Health | None
    raw: str
    key: str


@dataclass(frozen=True, slots=True)
class Followed:
    """The followed cells after one round, and what the round could not read."""

    cells: tuple[CellHealth, ...]
    errors: tuple[str, ...] = ()

    @property
    def final(self) -> bool:
        return all(c.health in FINAL_HEALTH for c in self.cells)

    @property
    def failed(self) -> tuple[CellHealth, ...]:
        """Final without having succeeded (failed, or stopped on the platform)."""
        return tuple(
            c for c in self.cells if c.health in FINAL_HEALTH and c.health is not Health.SUCCEEDED
        )

    def per_plan(self) -> dict[str, Counter[Health | None]]:
        counts: dict[str, Counter[Health | None]] = {}
        for cell in self.cells:
            counts.setdefault(cell.plan, Counter())[cell.health] += 1
        return counts


def followed(state: State, plans: Collection[str] | None) -> Followed:
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
    return Followed(tuple(latest[k] for k in sorted(latest)))


def exit_code(result: Followed, *, interrupted: bool) -> int:
    if interrupted:
        return INTERRUPTED
    if result.failed:
        return 1
    return 0 if result.final else TIMED_OUT


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


def follow(options: WaitOptions, on_round: Callable[[Followed], None]) -> tuple[Followed, bool]:
    """Refresh until every followed cell is final or the time is up; `on_round` sees each
    round. The lock is held only while a round journals. Returns the last round and whether
    Ctrl-C stopped it."""
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
            result = followed(state, options.plans)
            result = Followed(result.cells, tuple(s.error for s in done.errors))
            on_round(result)
            left = options.timeout - (options.clock() - start)
            if result.final or stop.is_set() or left <= 0:
                return result, stop.is_set()
            if stop.wait(min(options.interval, left)):
                return result, True


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


def run(options: WaitOptions, *, mode: Mode, output: str, color: bool) -> int:
    """Follow, showing each round as `mode` says, then the outcome as `output` says; the exit
    code (see the module)."""
    from reconciler.views import health, text  # noqa: PLC0415 - the views import this module

    rounds = health.Rounds("quiet" if output == "json" else mode)
    try:
        result, interrupted = follow(options, rounds)
    finally:
        rounds.finish()
    code = exit_code(result, interrupted=interrupted)
    if output == "json":
        click.echo(json.dumps(health.wait_json(result, code), indent=2, sort_keys=True))
    else:
        click.echo(health.wait_text(result, code, text.styler(color)))
    return code
