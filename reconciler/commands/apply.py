"""`backfill apply`: plan under the state lock, ask, then make exactly the missing calls."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click

from reconciler import actor, pipeline, providers
from reconciler.commands import recover, saved
from reconciler.commands.recover import LookUp
from reconciler.diff import Changeset
from reconciler.domain import Submission
from reconciler.errors import BackfillError
from reconciler.execute import Pacer, Result, Route, Tally, execute
from reconciler.providers.protocol import Client, Connection, Provider
from reconciler.state import State, open_state
from reconciler.views import github, text
from reconciler.views import json as json_view
from reconciler.views.progress import Mode, Progress


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    paths: Sequence[Path]
    state_dir: Path
    endpoints: Mapping[str, str]
    yes: bool = False
    parallel: int = 16
    lock_timeout: float = 0.0
    timeout: float = 30.0
    output: str = "text"
    color: bool = False
    progress: Mode = "lines"
    recover: bool = False
    connect: Callable[[Provider, Connection], Client] | None = None
    """How to build a provider client (tests mount the emulator in-process here)."""
    look: LookUp | None = None
    """How to look an unknown outcome up remotely (likewise)."""
    saved: Path | None = None
    """A plan saved by `plan --out`: apply exactly its calls, or refuse."""


def run(options: ApplyOptions) -> int:
    style = text.styler(options.color)
    reviewed = saved.load(options.saved) if options.saved else None
    if reviewed and options.recover:
        raise BackfillError("--recover cannot be used with a saved plan: it would change the state")
    plans = pipeline.plans(reviewed.paths if reviewed else options.paths)
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
            if options.output == "text":
                click.echo(text.findings(found, style, written=True) + "\n")
        changes = pipeline.changeset(plans, writer.state)
        if reviewed:
            saved.check(reviewed, writer.state, changes)
        if options.output == "text":
            click.echo(text.changeset(changes, style))
        if changes.conflicts:
            raise BackfillError(
                f"the plan has {text.plural(len(changes.conflicts), 'conflict')}; nothing was "
                "applied. Resolve them (see above) and run apply again."
            )
        creates = changes.creates
        if not creates:
            if options.output == "json":
                _print_json(changes, [])
            return 1 if changes.attention else 0
        routes = _routes(creates, writer.state, options)
        if not reviewed:  # a saved plan is the approval: it was reviewed as it stands
            _confirm(creates, options)
        progress = (
            Progress(len(creates), mode=options.progress, style=style)
            if options.output == "text"
            else Progress(len(creates), mode="quiet", style=style, stream=sys.stderr)
        )
        stop = threading.Event()
        try:
            with _signals(stop, options.timeout) as received:
                results = execute(
                    creates,
                    route=lambda s: routes[_route_key(s, options)],
                    journal=writer,
                    parallel=options.parallel,
                    on_result=progress.update,
                    stop=stop,
                )
        finally:
            progress.finish()
            for route in routes.values():
                route.client.close()
    if options.output == "json":
        _print_json(changes, results)
    else:
        click.echo(text.apply_summary(results, len(creates), style))
    github.report_apply(results, len(creates), os.environ)
    if received:
        name = signal.Signals(received[0]).name
        click.echo(
            f"Interrupted by {name}: every call in flight finished and was journaled; run apply "
            "again to make the rest.",
            err=True,
        )
        return 128 + received[0]
    done = Tally.of(results, len(creates))
    return 0 if done.all_submitted and not changes.attention else 1


@contextmanager
def _signals(stop: threading.Event, drain: float) -> Iterator[list[int]]:
    """SIGINT/SIGTERM stop the dispatch; calls in flight finish (each within its timeout) and
    are journaled. A second signal exits at once: what was in flight is unknown on next load."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        stop.set()
        click.echo(
            f"\n{signal.Signals(signum).name}: dispatching nothing more; waiting up to "
            f"{drain:.0f}s for the calls in flight. Signal again to exit at once.",
            err=True,
        )

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


def _confirm(creates: Sequence[Submission], options: ApplyOptions) -> None:
    if options.yes:
        return
    if not sys.stdin.isatty():
        raise BackfillError(
            "apply needs approval: run it on a terminal and answer 'yes', or pass --yes "
            "(as CI does after the plan was reviewed)"
        )
    click.echo(
        f"\nDo you want to make these {text.plural(len(creates), 'call')}?\n"
        "  Only 'yes' will be accepted to approve.\n"
    )
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        raise BackfillError("apply cancelled: nothing was submitted")


def _print_json(changes: Changeset, results: Sequence[Result]) -> None:
    payload = {
        "plan": json_view.changeset(changes),
        "apply": json_view.results(results, len(changes.creates)),
    }
    click.echo(json.dumps(payload, indent=2))
