"""`backfill apply`: plan under the state lock, ask, then make exactly the missing calls."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler import actor, pipeline, providers
from reconciler.commands import recover
from reconciler.commands.recover import LookUp
from reconciler.diff import Changeset
from reconciler.domain import Submission
from reconciler.errors import BackfillError
from reconciler.execute import RateLimiter, Result, Route, execute
from reconciler.providers.protocol import Client, Connection, Provider
from reconciler.state import State, open_state
from reconciler.views import json as json_view
from reconciler.views import text


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    paths: Sequence[Path]
    state_dir: Path
    endpoints: Mapping[str, str]
    yes: bool = False
    parallel: int = 4
    lock_timeout: float = 0.0
    timeout: float = 30.0
    output: str = "text"
    color: bool = False
    recover: bool = False
    connect: Callable[[Provider, Connection], Client] | None = None
    """How to build a provider client (tests mount the emulator in-process here)."""
    look: LookUp | None = None
    """How to look an unknown outcome up remotely (likewise)."""


def run(options: ApplyOptions) -> int:
    style = text.styler(options.color)
    plans = pipeline.plans(options.paths)
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
        _confirm(creates, options)
        total = len(creates)
        done: list[Result] = []

        def progress(result: Result) -> None:
            done.append(result)
            if options.output == "text":
                click.echo(text.result_line(result, len(done), total, style))

        try:
            results = execute(
                creates,
                route=lambda s: routes[_route_key(s, options)],
                journal=writer,
                parallel=options.parallel,
                on_result=progress,
            )
        finally:
            for route in routes.values():
                route.client.close()
    if options.output == "json":
        _print_json(changes, results)
    else:
        click.echo(text.apply_summary(results, total, style))
    failed = any(r.outcome.kind.value != "submitted" for r in results)
    return 1 if failed or changes.attention else 0


def _route_key(submission: Submission, options: ApplyOptions) -> tuple[str, str]:
    provider = providers.get(submission.provider)
    return provider.name, providers.endpoint(provider, submission.region, options.endpoints)


def _routes(
    creates: Sequence[Submission], state: State, options: ApplyOptions
) -> dict[tuple[str, str], Route]:
    """One client per provider endpoint and one pace per provider, built before anything is
    sent, so that missing credentials or a wrong endpoint fail the run before the first call."""
    limiters: dict[str, RateLimiter] = {}
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
        limiter = limiters.setdefault(name, RateLimiter(provider.rate_limit))
        client = connect(provider, Connection(endpoint=url, timeout=options.timeout))
        routes[(name, url)] = Route(client, limiter, url)
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
