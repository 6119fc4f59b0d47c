"""`backfill refresh`, and `plan`/`apply --refresh`: ask each platform what became of the cells
of every submitted backfill that is not final yet, and journal what changed (`observed`).

Read-only towards the platforms. Each read action keeps its own pace (a `Pacer` per provider
and action, as apply paces creates); reads run side by side, and each answer is journaled as
it comes, so that a refresh killed halfway keeps what it journaled and the next one asks only
what is still open.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Protocol

from reconciler import providers
from reconciler.commands import recover
from reconciler.commands.branch import StateBranch, writing
from reconciler.domain import JSON, Outcome, ordinal
from reconciler.execute import Pacer, read_paced
from reconciler.providers.protocol import Claim, Connection, Observation, Pace, Provider
from reconciler.reports.refresh import Observed, Refreshed, Seen
from reconciler.state import (
    State,
    StateWriter,
    SubmissionRecord,
    SubmissionStatus,
    intent_details,
)
from reconciler.state.records import observe


class Observe(Protocol):
    """How to ask a platform about a submission (`Provider.observe`; tests mount the emulator
    here)."""

    def __call__(
        self,
        provider: Provider,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
        *,
        pace: Pace,
    ) -> Observation: ...


def _default(
    provider: Provider,
    record: SubmissionRecord,
    request: Mapping[str, JSON],
    connection: Connection,
    others: Sequence[Claim],
    *,
    pace: Pace,
) -> Observation:
    return provider.observe(record, request, connection, others, pace=pace)


def open_records(state: State, plans: Collection[str] | None = None) -> list[SubmissionRecord]:
    """The submitted backfills (of `plans`, if given) not final yet, oldest first."""
    return sorted(
        (
            r
            for r in state.submissions.values()
            if r.status is SubmissionStatus.SUBMITTED
            and not r.final
            and (plans is None or r.plan in plans)
        ),
        key=lambda r: r.intent_seq,
    )


class _Pace:
    """One Pacer per provider and read action, made on first use at the action's own limit; a
    throttled read is asked again (`read_paced`)."""

    def __init__(self) -> None:
        self._pacers: dict[tuple[str, str], Pacer] = {}
        self._lock = threading.Lock()

    def of(self, provider: Provider) -> Pace:
        def pace(action: str, read: Callable[[], Outcome]) -> Outcome:
            with self._lock:
                pacer = self._pacers.get((provider.name, action))
                if pacer is None:
                    pacer = Pacer(provider.read_limits[action])
                    self._pacers[(provider.name, action)] = pacer
            return read_paced(pacer, read)

        return pace


def read(
    state: State,
    endpoints: Mapping[str, str],
    *,
    plans: Collection[str] | None = None,
    timeout: float = 30.0,
    parallel: int = 8,
    look: Observe | None = None,
) -> Iterator[Seen]:
    """Ask about every open submission (of `plans`), at most `parallel` at a time, each read
    action at its own pace; yield what each said as it comes. Writes nothing."""
    look = look or _default
    every = recover.claims(state)
    paces = _Pace()
    asked = open_records(state, plans)
    sent = intent_details(state, asked)

    def ask(record: SubmissionRecord) -> Seen:
        provider = providers.get(record.provider)
        url = providers.endpoint(provider, record.region, endpoints)
        refusal = providers.emulator_only(record.emulator, url, sent[record.key].endpoint)
        if refusal:
            return Seen(record, error=refusal)
        others = [c for c in every.get(record.provider, []) if c.key != record.key]
        connection = Connection(url, timeout=timeout)
        request = sent[record.key].request
        read = look(provider, record, request, connection, others, pace=paces.of(provider))
        return Seen(record, read.cells, read.error)

    records = iter(asked)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="refresh") as pool:
        running: set[Future[Seen]] = set()
        try:
            while True:
                for record in records:
                    running.add(pool.submit(ask, record))
                    if len(running) >= parallel:
                        break
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in running:
                future.cancel()


def refresh(
    writer: StateWriter,
    endpoints: Mapping[str, str],
    *,
    plans: Collection[str] | None = None,
    timeout: float = 30.0,
    parallel: int = 8,
    look: Observe | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> Refreshed:
    """Read every open submission and journal each answer as it comes; `progress` is told how
    many of how many were asked so far. Once `stop` is set nothing more is asked (the reads in
    flight finish, unjournaled)."""
    state = writer.state
    total = len(open_records(state, plans))
    observed: list[Observed] = []
    seen_all: list[Seen] = []
    answers = read(state, endpoints, plans=plans, timeout=timeout, parallel=parallel, look=look)
    for asked, seen in enumerate(answers, start=1):
        seen_all.append(seen)
        if not seen.error:
            cells = [(c.target, c.date, c.phase, c.state) for c in seen.cells]
            event = writer.record_observed(seen.record.key, cells)
            if event is not None:
                journaled = event["data"]["cells"]
                observed.append(
                    Observed(seen.record.key, seen.record.plan, tuple(map(tuple, journaled)))
                )
        if progress:
            progress(asked, total)
        if stop is not None and stop.is_set():
            break
    return dataclasses.replace(
        summary(state, seen_all, plans), asked=total, observed=tuple(observed)
    )


def summary(state: State, seen: Sequence[Seen], plans: Collection[str] | None = None) -> Refreshed:
    """What the reads `seen` of the open submissions of `state` (of `plans`) came to, counted
    against what the state said: backfills and cells read, cells whose health changed (or was
    seen for the first time), and the backfills that could not be read."""
    read = [s for s in seen if not s.error]
    return Refreshed(
        asked=len(seen),
        final=sum(
            1
            for r in state.submissions.values()
            if r.status is SubmissionStatus.SUBMITTED
            and r.final
            and (plans is None or r.plan in plans)
        ),
        errors=tuple(s for s in seen if s.error),
        cells=sum(len(s.cells) for s in read),
        changed_cells=sum(
            1
            for s in read
            for c in s.cells
            if (before := s.record.health_of(c.target, c.date)) is None or before[0] != c.phase
        ),
    )


def preview(state: State, seen: Sequence[Seen]) -> State:
    """The state as it would be after `refresh` journaled what was `seen`, for a `plan` that
    must not write."""
    updated = {
        s.record.key: dataclasses.replace(
            s.record,
            health=observe(
                s.record.health,
                [(c.target, ordinal(c.date), ordinal(c.date), c.phase, c.state) for c in s.cells],
            ),
        )
        for s in seen
        if s.cells
    }
    return state.amended(updated)


def run(
    state_dir: Path,
    endpoints: Mapping[str, str],
    *,
    timeout: float = 30.0,
    parallel: int = 8,
    lock_timeout: float = 0.0,
    branch: StateBranch | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Refreshed:
    """`backfill refresh`: under the state lock (on the newest commit of the state's branch,
    and published there after, when given one)."""
    with writing(state_dir, "refresh", lock_timeout=lock_timeout, branch=branch) as writer:
        result = refresh(writer, endpoints, timeout=timeout, parallel=parallel, progress=progress)
    if branch and result.observed:
        branch.publish("backfill: what the platforms said (refresh)", journal_only=False)
    return result
