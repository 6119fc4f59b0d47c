"""`backfill apply`: plan under the state lock, ask, then make exactly the missing calls.

It prints nothing itself: what a person sees as it goes (the plan, the approval prompt, each
call's outcome, a signal) goes through the `Hooks` its caller gives, and what the run came to is
returned, for a view to render.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from reconciler import actor, pipeline, providers
from reconciler.commands import recover, refresh, saved
from reconciler.commands.branch import StateBranch, Unpublished
from reconciler.commands.recover import LookUp
from reconciler.diff import Changeset
from reconciler.domain import JSON, Submission
from reconciler.errors import BackfillError
from reconciler.execute import Pacer, Result, Route, execute, intent, interleave
from reconciler.providers.protocol import Client, Connection, Provider
from reconciler.remedies import plural
from reconciler.reports.apply import Applied
from reconciler.reports.plan import Finding
from reconciler.reports.refresh import Refreshed
from reconciler.state import State, StateWriter, open_state


class Progress(Protocol):
    """Told of each call's result as it comes, and when the last has come."""

    def update(self, result: Result) -> None: ...

    def finish(self) -> None: ...


class Hooks(Protocol):
    """What an apply tells a person while it runs, and what it asks."""

    def recovered(self, findings: Sequence[Finding]) -> None:
        """`--recover`: the lookups, journaled."""
        ...

    def refreshed(self, result: Refreshed) -> None:
        """`--refresh`: what the platforms said, journaled."""
        ...

    def planned(self, changes: Changeset) -> None:
        """The plan, before anything is asked or sent."""
        ...

    @property
    def can_ask(self) -> bool:
        """A person is there to approve (a terminal)."""
        ...

    def approve(self, creates: Sequence[Submission]) -> bool:
        """Asks a person to approve these calls: True if they did."""
        ...

    def progress(self, total: int) -> Progress: ...

    def stopping(self, signum: int, drain: float) -> None:
        """A signal stopped the dispatch; the calls in flight get up to `drain` seconds."""
        ...


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    paths: Sequence[Path]
    state_dir: Path
    endpoints: Mapping[str, str]
    yes: bool = False
    parallel: int = 16
    lock_timeout: float = 0.0
    timeout: float = 30.0
    recover: bool = False
    connect: Callable[[Provider, Connection], Client] | None = None
    """How to build a provider client (tests mount the emulator in-process here)."""
    look: LookUp | None = None
    """How to look an unknown outcome up remotely (likewise)."""
    saved: Path | None = None
    """A plan saved by `plan --out`: apply exactly its calls, or refuse."""
    branch: StateBranch | None = None
    """The state's branch on a git remote: plan only from its newest commit, and publish each
    batch's intents there before sending them (the write-ahead of the GitHub flow)."""
    batch: int = 20
    """Calls per published batch: the most a runner that dies mid-batch leaves unknown."""
    refresh: bool = False
    """First ask the platforms what became of the submitted cells, and journal it."""


def run(options: ApplyOptions, hooks: Hooks) -> Applied:
    """Raises BackfillError, having sent nothing, on invalid plans, conflicts, a refused
    approval, a saved plan that no longer holds, or a state it cannot lock or trust."""
    reviewed = saved.load(options.saved) if options.saved else None
    if reviewed and options.recover:
        raise BackfillError("--recover cannot be used with a saved plan: it would change the state")
    plans = pipeline.plans(reviewed.paths if reviewed else options.paths)
    if options.branch:
        options.branch.require_newest()
    with open_state(
        options.state_dir,
        actor=actor.current("apply"),
        command="backfill apply",
        lock_timeout=options.lock_timeout,
    ) as writer:
        if options.recover:
            found = recover.look_up(
                writer.state, options.endpoints, timeout=options.timeout, look=options.look
            )
            recover.journal(writer, found)
            hooks.recovered(found)
        if options.refresh:
            hooks.refreshed(refresh.refresh(writer, options.endpoints, timeout=options.timeout))
        changes = pipeline.changeset(plans, writer.state)
        if reviewed:
            _check_saved(reviewed, writer.state, changes, options)
        hooks.planned(changes)
        if changes.conflicts:
            raise BackfillError(
                f"the plan has {plural(len(changes.conflicts), 'conflict')}; nothing was "
                "applied. Resolve them (see above) and run apply again."
            )
        creates = changes.creates
        if not creates:
            if options.branch and options.recover:
                options.branch.publish(
                    _message("outcomes of lookups", writer.actor), journal_only=False
                )
            return Applied(changes, reasons=tuple(_attention(changes)))
        if not reviewed and not options.yes:  # a saved plan was reviewed as it stands
            _approve(creates, hooks)
        sources = actor.for_plans(writer.actor, [p.plan for p in changes.plans if p.submissions])
        results, failure, received = _send(creates, _Sourced(writer, sources), options, hooks)
    reasons = [str(failure)] if failure else []
    reasons += _attention(changes)
    return Applied(
        changes,
        results=tuple(results),
        reasons=tuple(reasons),
        actors=sources,
        signal=received[0] if received else 0,
    )


def exit_code(applied: Applied) -> int:
    """128 + the signal that stopped it; 0 when every planned call was submitted and nothing
    else failed; 1 otherwise."""
    if applied.signal:
        return 128 + applied.signal
    return 0 if applied.tally.all_submitted and not applied.reasons else 1


@dataclass(frozen=True, slots=True)
class _Sending:
    """What the calls of one apply go through."""

    routes: Mapping[tuple[str, str], Route]
    journal: _Sourced
    progress: Progress
    stop: threading.Event
    options: ApplyOptions

    def route(self, submission: Submission) -> Route:
        return self.routes[_route_key(submission, self.options)]

    def execute(self, submissions: Sequence[Submission], *, journaled: bool) -> list[Result]:
        return execute(
            submissions,
            route=self.route,
            journal=self.journal,
            parallel=self.options.parallel,
            on_result=self.progress.update,
            stop=self.stop,
            journaled=journaled,
        )


def _send(
    creates: Sequence[Submission], journal: _Sourced, options: ApplyOptions, hooks: Hooks
) -> tuple[list[Result], BackfillError | None, list[int]]:
    """Makes the calls: the results, why the run stopped short (if it did), signals received."""
    routes = _routes(creates, journal.writer.state, options)
    progress = hooks.progress(len(creates))
    sending = _Sending(routes, journal, progress, threading.Event(), options)
    try:
        with _signals(sending.stop, options.timeout, hooks) as received:
            if options.branch:
                results, failure = _write_ahead(creates, sending, options.branch)
            else:
                results, failure = sending.execute(creates, journaled=False), None
    finally:
        progress.finish()
        for route in routes.values():
            route.client.close()
    return results, failure, received


def _check_saved(
    reviewed: saved.SavedPlan, state: State, changes: Changeset, options: ApplyOptions
) -> None:
    try:
        saved.check(reviewed, state, changes)
    except BackfillError as error:
        if options.branch:
            error.hint = (
                "in GitHub, re-run all jobs of the run (not only the failed ones) or run the"
                " workflow again: its plan job then plans from the newest state"
            )
        raise


def _attention(changes: Changeset) -> list[str]:
    """Why the run needs a person even when every call it made was submitted."""
    reasons = []
    if changes.attention:
        reasons.append(
            f"{plural(changes.count('attention_cells'), 'cell')} of earlier submissions"
            " still need attention: their outcome is unknown, so they are never resubmitted by"
            " themselves. Settle them (`backfill recover`, `backfill state import` or `backfill"
            " state forget`; in GitHub, the workflow's settle operations)"
        )
    if changes.exhausted:
        reasons.append(
            f"{plural(changes.count('exhausted_cells'), 'cell')} failed in every attempt"
            " spec.maxAttempts allows and are never sent again by themselves (see above)"
        )
    return reasons


class _Sourced:
    """The writer, with each intent journaled under the actor of its plan (the commit and pull
    request that last changed it)."""

    def __init__(self, writer: StateWriter, actors: Mapping[str, Mapping[str, JSON]]) -> None:
        self.writer, self.actors = writer, actors

    def append(self, type: str, data: dict[str, Any]) -> Any:
        mine = self.actors.get(data["plan"]) if type == "intent" else None
        return self.writer.append(type, data, actor=mine)


def _message(what: str, who: Mapping[str, JSON]) -> str:
    run = who.get("run_url")
    return f"backfill: {what}" + (f"\n\nRun: {run}" if run else "")


def _write_ahead(
    creates: Sequence[Submission], sending: _Sending, branch: StateBranch
) -> tuple[list[Result], BackfillError | None]:
    """Batch by batch: journal the intents, publish them, and only then send them. A refused
    publish sends nothing of its batch; a runner that dies mid-batch leaves the batch's intents
    on the branch, where the next run sees them as unknown and never sends them again. The
    outcomes of a batch are published with the next batch's intents, and at the end."""
    ordered = interleave(creates)
    size = sending.options.batch
    writer = sending.journal.writer
    results: list[Result] = []
    last: list[Result] = []
    for first in range(0, len(ordered), size):
        if sending.stop.is_set():
            break
        batch = ordered[first : first + size]
        span = f"calls {first + 1}-{first + len(batch)} of {len(ordered)}"
        for submission in batch:
            sending.journal.append("intent", intent(submission, sending.route(submission).endpoint))
        try:
            branch.publish(_message(f"intents of {span}", writer.actor))
        except Unpublished as error:
            _not_sent(writer, batch, "its intent could not be published, so it was never sent")
            return results, _unpublished(error, branch, last, span)
        last = sending.execute(batch, journaled=True)
        made = {r.submission.key for r in last}
        _not_sent(writer, [s for s in batch if s.key not in made], "stopped before it was sent")
        results += last
    writer.checkpoint()
    try:
        branch.publish(_message("outcomes", writer.actor), journal_only=False)
    except Unpublished as error:
        return results, _unpublished(error, branch, last, "")
    return results, None


def _not_sent(writer: StateWriter, submissions: Sequence[Submission], why: str) -> None:
    """Intents journaled (and maybe published) whose requests never left: `unsent`, so that
    their cells are missing again, not unknown."""
    for submission in submissions:
        writer.append("unsent", {"key": submission.key, "code": "NotSent", "message": why})


def _unpublished(
    error: Unpublished, branch: StateBranch, sent: Sequence[Result], held: str
) -> BackfillError:
    """What a person must know after a publish failed: what was not sent, and which outcomes
    the branch does not have."""
    said = [f"the state could not be published: {error.message}."]
    if held:
        said.append(f"Nothing of {held} was sent.")
    if sent:
        keys = ", ".join(r.submission.key for r in sent)
        said.append(
            f"The outcomes of the {plural(len(sent), 'call')} sent before ({keys}) are"
            f" only in this run's journal: on {branch.where} they show as unknown and are"
            " never sent again; settle them with the remote ids shown above"
        )
    return BackfillError(" ".join(said), hint=error.hint)


@contextmanager
def _signals(stop: threading.Event, drain: float, hooks: Hooks) -> Iterator[list[int]]:
    """SIGINT/SIGTERM stop the dispatch; calls in flight finish (each within its timeout) and
    are journaled. A second signal exits at once: what was in flight is unknown on next load."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        stop.set()
        hooks.stopping(signum, drain)

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _route_key(submission: Submission, options: ApplyOptions) -> tuple[str, str]:
    provider = providers.get(submission.provider)
    return provider.name, providers.endpoint(provider, submission.region, options.endpoints)


def _routes(
    creates: Sequence[Submission], state: State, options: ApplyOptions
) -> dict[tuple[str, str], Route]:
    """One client per provider endpoint and one pace per provider, action and credential, built
    before anything is sent, so that missing credentials or a wrong endpoint fail the run before
    the first call."""
    pacers: dict[tuple[str, str, str], Pacer] = {}
    routes: dict[tuple[str, str], Route] = {}
    connect = options.connect or (lambda provider, connection: provider.client(connection))
    for submission in creates:
        name, url = _route_key(submission, options)
        if (name, url) in routes:
            continue
        if state.emulator and not providers.is_loopback(url):
            raise BackfillError(
                f"{options.state_dir} holds submissions made against the built-in emulator, so "
                f"a real run to {url} would take emulated backfills as done; use a fresh "
                "--state-dir for real runs"
            )
        provider = providers.get(name)
        client = connect(provider, Connection(endpoint=url, timeout=options.timeout))
        pace = (name, provider.action, client.credential_id)
        pacer = pacers.setdefault(pace, Pacer(provider.rate_limit))
        routes[(name, url)] = Route(client, pacer, url)
    return routes


def _approve(creates: Sequence[Submission], hooks: Hooks) -> None:
    if not hooks.can_ask:
        raise BackfillError(
            "apply needs approval: run it on a terminal and answer 'yes', or pass --yes "
            "(as CI does after the plan was reviewed)"
        )
    if not hooks.approve(creates):
        raise BackfillError("apply cancelled: nothing was submitted")
