"""The `backfill` command: parses options, hands them to the command's module in `commands/`
(or to a stage), and what comes back to the view its `--format` names (`views.formats`).

Exit codes: 0 success (for `plan --detailed-exitcode`: nothing to do), 1 error, 2 calls pending,
3 cells need attention (`plan --detailed-exitcode`), `errors.WAIT_TIMED_OUT` (4) when `--wait`
timed out, `errors.WAIT_INTERRUPTED` (130) when Ctrl-C stopped it.

Each command imports what it uses when it runs, not before: `validate` in a pre-commit hook
loads no HTTP client, no state store and no emulator.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from reconciler.errors import WAIT_INTERRUPTED, WAIT_TIMED_OUT, BackfillError, InvalidPlans
from reconciler.views import formats, github, text
from reconciler.vocabulary import SubmissionStatus

if TYPE_CHECKING:
    from reconciler.commands.apply import ApplyOptions
    from reconciler.commands.branch import StateBranch
    from reconciler.commands.wait import WaitOptions
    from reconciler.views.progress import Mode

F = TypeVar("F", bound=Callable[..., Any])

ENDPOINT_VARIABLE = "BACKFILL_ENDPOINT"
"""One endpoint for every provider (the emulator serves them all)."""
TENCENT_ENDPOINT_VARIABLE = "BACKFILL_TENCENT_ENDPOINT"
ALIYUN_ENDPOINT_VARIABLE = "BACKFILL_ALIYUN_ENDPOINT"
"""The endpoint of one provider (their flags are here: the providers load when a command uses
them, and `validate` loads none)."""


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _show(table: formats.Table[Any], output: str, report: object, *, err: bool = False) -> None:
    click.echo(table[output](report, text.styler(_color())), nl=False, err=err)


# The types of the options most commands take, made once: each `click.Path` looks its name up in
# gettext's catalogs on disk, and a dozen commands take them.
_DIRECTORY = click.Path(path_type=Path, file_okay=False)
_PATH = click.Path(path_type=Path)


def state_option(command: F) -> F:
    return click.option(
        "--state-dir",
        type=_DIRECTORY,
        envvar="BACKFILL_STATE_DIR",
        default=Path("state"),
        show_default=True,
        help="State directory (journal, snapshot, lock). Env: BACKFILL_STATE_DIR.",
    )(command)


def plans_option(command: F) -> F:
    return click.option(
        "--plans",
        "plan_paths",
        multiple=True,
        type=_PATH,
        default=[Path("plans")],
        show_default=True,
        help="Plan file or directory, searched recursively for *.yaml/*.yml. Repeatable.",
    )(command)


def endpoint_options(command: F) -> F:
    command = click.option(
        "--aliyun-endpoint",
        envvar=ALIYUN_ENDPOINT_VARIABLE,
        metavar="URL",
        help="DMS endpoint (default https://dms-enterprise.<region>.aliyuncs.com). "
        "Env: BACKFILL_ALIYUN_ENDPOINT.",
    )(command)
    command = click.option(
        "--tencent-endpoint",
        envvar=TENCENT_ENDPOINT_VARIABLE,
        metavar="URL",
        help="WeData endpoint (default https://wedata.intl.tencentcloudapi.com). "
        "Env: BACKFILL_TENCENT_ENDPOINT.",
    )(command)
    return click.option(
        "--endpoint",
        envvar=ENDPOINT_VARIABLE,
        metavar="URL",
        help="Send every provider's calls to this URL, e.g. the emulator. Env: BACKFILL_ENDPOINT.",
    )(command)


def endpoints(
    endpoint: str | None, tencent_endpoint: str | None, aliyun_endpoint: str | None
) -> dict[str, str]:
    """The endpoint overrides, each checked before any command uses it (BackfillError naming
    the option otherwise)."""
    from reconciler.providers import ALL, check_endpoint, dms, wedata

    chosen = {
        (ALL, f"--endpoint (or {ENDPOINT_VARIABLE})"): endpoint,
        (wedata.NAME, f"--tencent-endpoint (or {TENCENT_ENDPOINT_VARIABLE})"): tencent_endpoint,
        (dms.NAME, f"--aliyun-endpoint (or {ALIYUN_ENDPOINT_VARIABLE})"): aliyun_endpoint,
    }
    return {name: check_endpoint(url, source) for (name, source), url in chosen.items() if url}


def branch_options(command: F) -> F:
    command = click.option(
        "--state-remote",
        envvar="BACKFILL_STATE_REMOTE",
        default="origin",
        show_default=True,
        metavar="REMOTE",
        help="The git remote of --state-branch. Env: BACKFILL_STATE_REMOTE.",
    )(command)
    return click.option(
        "--state-branch",
        envvar="BACKFILL_STATE_BRANCH",
        metavar="BRANCH",
        help="The state is a checkout of this branch of --state-remote: refuse unless it is the "
        "branch's newest commit, and push what is journaled there (fast-forward only) before "
        "acting on it. Env: BACKFILL_STATE_BRANCH.",
    )(command)


def state_branch_of(
    state_dir: Path, state_branch: str | None, state_remote: str
) -> StateBranch | None:
    if not state_branch:
        return None
    from reconciler.commands.branch import StateBranch

    return StateBranch(state_dir, state_branch, state_remote)


def recover_option(command: F) -> F:
    return click.option(
        "--recover",
        is_flag=True,
        help="First look up unknown outcomes remotely where the API allows it (DMS); "
        "needs credentials.",
    )(command)


def format_option(table: Mapping[str, object]) -> Callable[[F], F]:
    """`--format`: a name of the command's table of views, the first by default."""
    choices = tuple(table)
    return click.option(
        "--format",
        "output",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Output format.",
    )


def lock_timeout_option(command: F) -> F:
    return click.option(
        "--lock-timeout",
        type=float,
        default=0.0,
        show_default=True,
        metavar="SECONDS",
        help="Wait this long for another command holding the state lock.",
    )(command)


def parallel_option(default: int, what: str) -> Callable[[F], F]:
    return click.option(
        "--parallel",
        type=click.IntRange(1, 64),
        default=default,
        show_default=True,
        envvar="BACKFILL_PARALLEL",
        help=f"{what} Env: BACKFILL_PARALLEL.",
    )


def timeout_option(what: str) -> Callable[[F], F]:
    return click.option(
        "--timeout",
        type=click.FloatRange(0, min_open=True),
        default=30.0,
        show_default=True,
        metavar="SECONDS",
        envvar="BACKFILL_TIMEOUT",
        help=f"{what} Env: BACKFILL_TIMEOUT.",
    )


def refresh_option(command: F) -> F:
    return click.option(
        "--refresh",
        is_flag=True,
        help="First ask the platforms what became of the submitted cells not final yet "
        "(as `backfill refresh`); needs credentials.",
    )(command)


def wait_options(command: F) -> F:
    command = click.option(
        "--wait-interval",
        type=click.FloatRange(0, min_open=True),
        default=15.0,
        show_default=True,
        metavar="SECONDS",
        envvar="BACKFILL_WAIT_INTERVAL",
        help="With --wait: seconds between two refreshes. Env: BACKFILL_WAIT_INTERVAL.",
    )(command)
    command = click.option(
        "--wait-timeout",
        type=click.FloatRange(0, min_open=True),
        default=3600.0,
        show_default=True,
        metavar="SECONDS",
        envvar="BACKFILL_WAIT_TIMEOUT",
        help=f"With --wait: give up after this long, exit {WAIT_TIMED_OUT}. "
        "Env: BACKFILL_WAIT_TIMEOUT.",
    )(command)
    return click.option(
        "--wait",
        is_flag=True,
        help="Then follow the submitted cells (refreshing) until every one is final: exit 0 "
        f"if all succeeded, 1 if any failed (they are listed), {WAIT_TIMED_OUT} on "
        f"--wait-timeout, {WAIT_INTERRUPTED} on Ctrl-C (the backfills go on).",
    )(command)


def progress_mode(quiet: bool) -> Mode:
    return "quiet" if quiet else ("tty" if sys.stderr.isatty() else "lines")


def run_wait(options: WaitOptions, *, output: str, mode: Mode) -> int:
    """Follow the cells as `--wait` does, each round shown as `mode` says, then the outcome in
    the view `output` names: its exit code."""
    from reconciler.commands import wait as wait_command
    from reconciler.views import health

    rounds = health.Rounds("quiet" if output == "json" else mode)
    try:
        result = wait_command.follow(options, rounds)
    finally:
        rounds.finish()
    _show(formats.WAIT, output, result)
    return result.exit_code


def _version(ctx: click.Context, _: click.Parameter, asked: bool) -> None:
    if not asked or ctx.resilient_parsing:
        return
    from reconciler.version import VERSION

    click.echo(f"backfill, version {VERSION}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks of unexpected errors.")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version and exit.",
)
def cli(debug: bool) -> None:
    """Declarative, reviewable, exactly-once data backfills.

    Plans are YAML files (default: plans/); the state (default: state/) records what was
    submitted. `plan` shows which API calls are missing; `apply` makes exactly those.
    """
    # `main` reads --debug (`_debug`): it decides how an error that escapes the command shows.


@cli.command()
@state_option
@branch_options
def init(state_dir: Path, state_branch: str | None, state_remote: str) -> int:
    """Start a state: create the state directory with its journal, .gitignore and
    .gitattributes. Run once, then commit the directory.

    Every other command that writes the state refuses a directory without one, so that a
    mistyped --state-dir can never look like a state in which nothing was submitted yet.
    Running it again on an existing state changes nothing. With --state-branch, the state
    directory is in a checkout made for that branch, which the remote must not have yet: the
    new state is committed and pushed as the branch's first commit.
    """
    from reconciler.commands import init as init_command

    started = init_command.run(state_dir, state_branch_of(state_dir, state_branch, state_remote))
    click.echo(text.started(started))
    return 0


@cli.command()
@click.argument("paths", nargs=-1, type=_PATH)
@format_option(formats.VALIDATE)
def validate(paths: Sequence[Path], output: str) -> int:
    """Check plan files: YAML safety, the JSON Schema, then dates, ranges and unique names.

    PATHS are plan files or directories (default: plans/). Reports every problem at
    file:line:col and exits 1 if there is any.
    """
    from reconciler import pipeline

    result = pipeline.validation(list(paths) or [Path("plans")])
    _show(formats.VALIDATE, output, result, err=output == "text" and not result.ok)
    github.report_validation(result.diagnostics, os.environ)
    return 0 if result.ok else 1


@cli.command()
@plans_option
@state_option
@format_option(formats.PLAN)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 2 when calls are pending, 3 when cells need "
    "attention (an unknown outcome to settle, or cells that failed every attempt, whether or "
    "not calls are pending), 1 on errors.",
)
@recover_option
@endpoint_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also save the plan here; `backfill apply FILE` then makes exactly these calls.",
)
@click.option(
    "--changed-since",
    metavar="COMMIT",
    help="Show the plans of files changed since COMMIT (a pull request's base) as this "
    "change's calls, apart from work already pending; problems land on the changed files.",
)
@refresh_option
def plan(
    plan_paths: Sequence[Path],
    state_dir: Path,
    output: str,
    detailed_exitcode: bool,
    recover: bool,
    endpoint: str | None,
    tencent_endpoint: str | None,
    aliyun_endpoint: str | None,
    out: Path | None,
    changed_since: str | None,
    refresh: bool,
) -> int:
    """Show exactly which API calls an apply would make. Needs no credentials.

    Reads the plan files and the state only; writes nothing. With --recover it also looks up
    unknown outcomes remotely and plans as if they were settled (apply --recover journals them);
    with --refresh it asks what became of the submitted cells and plans as if it were journaled
    (apply --refresh and `backfill refresh` journal it).
    Inside GitHub Actions it also annotates conflicts, appends the Markdown plan to the job
    summary and sets the step outputs changes, creates, conflicts, attention and orphans.
    """
    from reconciler.commands import plan as plan_command

    options = plan_command.PlanOptions(
        paths=plan_paths,
        state_dir=state_dir,
        endpoints=endpoints(endpoint, tencent_endpoint, aliyun_endpoint),
        recover=recover,
        refresh=refresh,
        out=out,
        changed_since=changed_since,
    )
    try:
        planned = plan_command.run(options)
    except InvalidPlans as error:
        if output == "markdown":  # so a sticky comment never shows a plan older than the files
            from reconciler.views import markdown

            click.echo(markdown.invalid(error.diagnostics), nl=False)
        raise
    _show(formats.PLAN, output, planned)
    github.report_plan(planned.changes, os.environ, changed=planned.changed)
    if planned.saved:
        click.echo(
            f"Saved the plan to {planned.saved}: `backfill apply {planned.saved}` makes exactly"
            " these calls.",
            err=True,
        )
    return plan_command.exit_code(planned, detailed=detailed_exitcode)


@cli.command()
@click.argument(
    "saved_plan", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@plans_option
@state_option
@endpoint_options
@recover_option
@format_option(formats.APPLY)
@click.option(
    "--yes",
    "--auto-approve",
    "yes",
    is_flag=True,
    help="Do not ask for approval (for CI, after the plan was reviewed).",
)
@parallel_option(16, "Calls in flight at once (each API's rate limit still holds).")
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress output; only problems and the summary."
)
@timeout_option("How long to wait for one reply before its outcome counts as unknown.")
@lock_timeout_option
@branch_options
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    envvar="BACKFILL_BATCH",
    help="With --state-branch: calls whose intents are pushed together before any is sent; "
    "the most a runner that dies leaves unknown. Env: BACKFILL_BATCH.",
)
@refresh_option
@wait_options
def apply(
    saved_plan: Path | None,
    plan_paths: Sequence[Path],
    state_dir: Path,
    endpoint: str | None,
    tencent_endpoint: str | None,
    aliyun_endpoint: str | None,
    recover: bool,
    output: str,
    yes: bool,
    parallel: int,
    quiet: bool,
    timeout: float,
    lock_timeout: float,
    state_branch: str | None,
    state_remote: str,
    batch: int,
    refresh: bool,
    wait: bool,
    wait_timeout: float,
    wait_interval: float,
) -> int:
    """Make the missing API calls, journaling each before it is sent.

    With SAVED_PLAN (from `plan --out`), makes exactly the calls saved there without asking,
    or refuses if the plan files or the state changed since. Otherwise shows the plan and asks
    for approval on a terminal. Submissions whose outcome is unknown
    are never resubmitted by themselves. Credentials: TENCENTCLOUD_SECRET_ID,
    TENCENTCLOUD_SECRET_KEY (optional TENCENTCLOUD_SESSION_TOKEN) for WeData;
    ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET (optional
    ALIBABA_CLOUD_SECURITY_TOKEN) for DMS.

    With --state-branch (as in the GitHub flow) it refuses unless the state is the branch's
    newest commit on the remote, and pushes the intents of each --batch of calls there before
    sending them: a refused push sends nothing, and a run that dies leaves at most a batch
    unknown, never a duplicate.

    With --refresh it first journals what became of the submitted cells; with --wait it then
    follows the cells of the plans applied until every one is final (see --wait for the exit
    codes): the backfills go on whatever happens to the wait.
    """
    from reconciler.commands.apply import ApplyOptions
    from reconciler.commands.wait import WaitOptions

    if wait and output == "json":
        raise BackfillError(
            "--wait shows text: drop --format json, or follow with `backfill status --wait "
            "--format json` after the apply"
        )
    urls = endpoints(endpoint, tencent_endpoint, aliyun_endpoint)
    options = ApplyOptions(
        paths=plan_paths,
        state_dir=state_dir,
        endpoints=urls,
        recover=recover,
        refresh=refresh,
        saved=saved_plan,
        yes=yes,
        parallel=parallel,
        lock_timeout=lock_timeout,
        timeout=timeout,
        branch=state_branch_of(state_dir, state_branch, state_remote),
        batch=batch,
    )
    progress: Mode = "quiet" if quiet else ("tty" if sys.stdout.isatty() else "lines")
    following = (
        WaitOptions(
            state_dir,
            urls,
            timeout=wait_timeout,
            interval=wait_interval,
            request_timeout=timeout,
            lock_timeout=lock_timeout,
        )
        if wait
        else None
    )
    return run_apply(options, output=output, color=_color(), progress=progress, wait=following)


def run_apply(
    options: ApplyOptions,
    *,
    output: str = "text",
    color: bool = False,
    progress: Mode = "lines",
    wait: WaitOptions | None = None,
) -> int:
    """An apply shown in the view `output` names, as `backfill apply` runs it: its exit code.
    With `wait`, a successful apply then follows the cells of the plans it applied."""
    from reconciler.commands import apply as apply_command

    view = formats.APPLY[output](text.styler(color), progress)
    applied = apply_command.run(options, view)
    github.report_apply(applied, os.environ)
    view.done(applied)
    code = apply_command.exit_code(applied)
    if code or wait is None:
        return code
    names = frozenset(p.plan.name for p in applied.changes.plans)
    return run_wait(dataclasses.replace(wait, plans=names), output=output, mode=progress)


@cli.command()
@state_option
@endpoint_options
@lock_timeout_option
@branch_options
def recover(
    state_dir: Path,
    endpoint: str | None,
    tencent_endpoint: str | None,
    aliyun_endpoint: str | None,
    lock_timeout: float,
    state_branch: str | None,
    state_remote: str,
) -> int:
    """Settle unknown outcomes: look them up remotely where the API allows it (DMS
    ListTaskFlowInstance) and journal what was found; list the rest with what to check."""
    from reconciler.commands import recover as recover_command

    found = recover_command.run(
        state_dir,
        endpoints(endpoint, tencent_endpoint, aliyun_endpoint),
        lock_timeout=lock_timeout,
        branch=state_branch_of(state_dir, state_branch, state_remote),
    )
    click.echo(text.findings(found, text.styler(_color()), written=True))
    return 0


@cli.command()
@state_option
@endpoint_options
@format_option(formats.REFRESH)
@parallel_option(8, "Reads in flight at once (each read API's rate limit still holds).")
@timeout_option("How long to wait for one reply.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@lock_timeout_option
@branch_options
def refresh(
    state_dir: Path,
    endpoint: str | None,
    tencent_endpoint: str | None,
    aliyun_endpoint: str | None,
    output: str,
    parallel: int,
    timeout: float,
    quiet: bool,
    lock_timeout: float,
    state_branch: str | None,
    state_remote: str,
) -> int:
    """Ask the platforms what became of every submitted cell not final yet, and journal what
    changed (`observed` events).

    Read-only towards the platforms (WeData GetDataBackfillPlan and ListDataBackfillInstances,
    DMS ListTaskFlowInstance), each read API at its own pace. Cells already final (succeeded,
    failed, stopped) are never asked again. Safe to kill and run again. Exits 1 when a platform
    could not be asked about some backfill (the rest is journaled).
    """
    from reconciler.commands import refresh as refresh_command
    from reconciler.views import health

    asked = health.Asked(progress_mode(quiet))
    try:
        result = refresh_command.run(
            state_dir,
            endpoints(endpoint, tencent_endpoint, aliyun_endpoint),
            timeout=timeout,
            parallel=parallel,
            lock_timeout=lock_timeout,
            branch=state_branch_of(state_dir, state_branch, state_remote),
            progress=asked,
        )
    finally:
        asked.finish()
    _show(formats.REFRESH, output, result)
    return 1 if result.errors else 0


@cli.command()
@click.argument("name", required=False)
@plans_option
@state_option
@format_option(formats.GRID)
@click.option(
    "--live",
    is_flag=True,
    help="Ask the platforms now how far each submitted backfill has run (needs credentials), "
    "instead of drawing what the state holds.",
)
@endpoint_options
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="With --live: how long to wait for each reply.",
)
@wait_options
@click.option("--quiet", "-q", is_flag=True, help="With --wait: no progress lines.")
@lock_timeout_option
def status(
    name: str | None,
    plan_paths: Sequence[Path],
    state_dir: Path,
    output: str,
    live: bool,
    endpoint: str | None,
    tencent_endpoint: str | None,
    aliyun_endpoint: str | None,
    timeout: float,
    wait: bool,
    wait_timeout: float,
    wait_interval: float,
    quiet: bool,
    lock_timeout: float,
) -> int:
    """Show each declared plan (all, or plan NAME): its sync and health, and a grid of
    targets x dates with one mark per cell (succeeded, failed, running, waiting, stopped,
    unknown, submitted but not refreshed yet, outcome unknown, not submitted).

    Reads the plan files and the state only: health is what `backfill refresh` last
    journaled. A plan of up to two months is drawn day by day; a longer one a month a line.
    --format markdown fits a pull request comment or a job summary.

    With --live it asks WeData GetDataBackfillPlan and ListDataBackfillInstances, and DMS
    ListTaskFlowInstance, how far each submitted backfill has run; writes nothing. Needs the
    same credentials as apply. Exits 1 when a platform could not be asked.

    With --wait it instead follows the submitted cells, refreshing (and journaling what it
    reads, under the state lock) until every one is final: see --wait for the exit codes.
    """
    from reconciler.commands import status as status_command
    from reconciler.commands.wait import WaitOptions

    urls = endpoints(endpoint, tencent_endpoint, aliyun_endpoint)
    if wait:
        if output not in formats.WAIT:
            raise BackfillError(f"--wait shows {' or '.join(formats.WAIT)}: not --format {output}")
        options = WaitOptions(
            state_dir,
            urls,
            timeout=wait_timeout,
            interval=wait_interval,
            plans={name} if name else None,
            request_timeout=timeout,
            lock_timeout=lock_timeout,
        )
        return run_wait(options, output=output, mode=progress_mode(quiet))
    if not live:
        grids = status_command.grid_report(plan_paths, state_dir, plan=name)
        _warn(grids.warnings)
        _show(formats.GRID, output, grids)
        return 0
    found = status_command.run(state_dir, urls, plan=name, timeout=timeout)
    _warn(found.warnings)
    _show(formats.STATUS, output, found)
    return 0 if found.ok else 1


@cli.group()
def state() -> None:
    """Inspect the state; record a person's verdict on an unknown outcome."""


@state.command("list")
@state_option
@click.option("--plan", "plan_name", help="Only this plan's submissions.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in SubmissionStatus if s is not SubmissionStatus.PENDING]),
    help="Only submissions with this status (`unknown`: every outcome nobody knows, also of an "
    "intent whose run stopped before its outcome was journaled).",
)
@format_option(formats.STATE_LIST)
def state_list(state_dir: Path, plan_name: str | None, status: str | None, output: str) -> int:
    """List the submissions in the state."""
    from reconciler.commands import state as state_command

    # the JSON shows each request and actor, which only the journal has
    found = state_command.listing(
        state_dir, plan=plan_name, status=status, details=output == "json"
    )
    _warn(found.warnings)
    _show(formats.STATE_LIST, output, found)
    return 0


@state.command("show")
@click.argument("key")
@state_option
def state_show(key: str, state_dir: Path) -> int:
    """Show one submission: its request, cells, outcome and who submitted it.

    KEY may be an unambiguous prefix of at least 4 characters.
    """
    from reconciler.commands import state as state_command
    from reconciler.views import json

    record, sent = state_command.show(state_dir, key)
    click.echo(json.dumps(json.record(record, sent)))
    return 0


@state.command("import")
@click.argument("key", required=False)
@click.option("--remote-id", help="The id the platform gave the backfill (with KEY).")
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Settle many: a file of `KEY REMOTE_ID` lines (`-` for standard input).",
)
@click.option("--reason", required=True, help="How you know it ran (kept in the journal).")
@state_option
@lock_timeout_option
@branch_options
def state_import(
    key: str | None,
    remote_id: str | None,
    source: Path | None,
    reason: str,
    state_dir: Path,
    lock_timeout: float,
    state_branch: str | None,
    state_remote: str,
) -> int:
    """Record that submissions with an unknown outcome did run, with their remote ids:
    `KEY --remote-id ID` for one, `--from FILE` for many. All are recorded, or none."""
    from reconciler.commands import state as state_command
    from reconciler.reports.state import Verdict

    if source is not None and (key or remote_id):
        raise click.UsageError("give KEY --remote-id ID, or --from FILE, not both")
    if source is None and not (key and remote_id):
        raise click.UsageError("give KEY and --remote-id ID, or --from FILE")
    verdicts = (
        state_command.read_verdicts(_readable(source), with_ids=True)
        if source is not None
        else [Verdict(str(key), remote_id)]
    )
    settled = state_command.settle(
        state_dir,
        verdicts,
        reason=reason,
        lock_timeout=lock_timeout,
        branch=state_branch_of(state_dir, state_branch, state_remote),
    )
    click.echo(text.imported(settled))
    return 0


@state.command("forget")
@click.argument("keys", nargs=-1)
@click.option("--plan", "plan_name", help="Every submission of this plan with an unknown outcome.")
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Keys from a file, one a line (`-` for standard input).",
)
@click.option("--reason", required=True, help="How you know it did not run (kept in the journal).")
@state_option
@lock_timeout_option
@branch_options
def state_forget(
    keys: Sequence[str],
    plan_name: str | None,
    source: Path | None,
    reason: str,
    state_dir: Path,
    lock_timeout: float,
    state_branch: str | None,
    state_remote: str,
) -> int:
    """Record that submissions with an unknown outcome did not run: their cells become missing
    again, and the next apply submits them. KEY..., --plan NAME or --from FILE; all are
    recorded, or none."""
    from reconciler.commands import state as state_command
    from reconciler.reports.state import Verdict

    if not keys and plan_name is None and source is None:
        raise click.UsageError("name the submissions: KEY..., --plan NAME or --from FILE")
    verdicts = [Verdict(key, None) for key in keys]
    if source is not None:
        verdicts += state_command.read_verdicts(_readable(source), with_ids=False)
    settled = state_command.settle(
        state_dir,
        verdicts,
        plan=plan_name,
        reason=reason,
        lock_timeout=lock_timeout,
        branch=state_branch_of(state_dir, state_branch, state_remote),
    )
    click.echo(text.forgotten(settled))
    return 0


def _warn(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def _readable(source: Path) -> Path:
    """`-` as a file holding standard input."""
    if str(source) != "-":
        return source
    return Path("/dev/stdin")


@state.command("unlock")
@click.argument("lock_id")
@state_option
def state_unlock(lock_id: str, state_dir: Path) -> int:
    """Clear the lock record of a holder that is gone (LOCK_ID as shown in the lock error)."""
    from reconciler.state import force_unlock

    _warn(force_unlock(state_dir, lock_id))
    click.echo(f"Unlocked {state_dir}.")
    return 0


@cli.group()
def audit() -> None:
    """Review the journal: who submitted what, when, from which commit and PR; detect tampering."""


@audit.command("log")
@state_option
@click.option("--plan", "plan_name", help="Only this plan's attempts.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]),
    help="Only attempts journaled at or after this UTC date or time, e.g. 2025-09-01.",
)
@format_option(formats.AUDIT_LOG)
def audit_log(state_dir: Path, plan_name: str | None, since: datetime | None, output: str) -> int:
    """List every submission attempt in the journal: each intent and what became of it, with
    who, when, commit, PR, workflow run, remote id and RequestId.

    A submission retried after a rejection shows both attempts. The hash chain is checked as
    the journal is read; a damaged line stops the listing (see `audit verify`).
    """
    from reconciler.commands import audit as audit_command

    found = audit_command.log(state_dir, plan=plan_name, since=since)
    _warn(found.warnings)
    _show(formats.AUDIT_LOG, output, found)
    return 0


@audit.command("verify")
@state_option
@format_option(formats.AUDIT_VERIFY)
def audit_verify(state_dir: Path, output: str) -> int:
    """Check the whole hash chain from line 1 and that snapshot.json equals the journal folded.

    Exits 0 when the state is intact, 1 naming the first bad line (`journal.jsonl:N`) otherwise.
    """
    from reconciler.state import verify

    result = verify(state_dir)
    _show(formats.AUDIT_VERIFY, output, result, err=output == "text" and not result.intact)
    return 0 if result.intact else 1


@audit.command("report")
@state_option
@click.option("--plan", "plan_name", help="Only this plan.")
@format_option(formats.AUDIT_REPORT)
def audit_report(state_dir: Path, plan_name: str | None, output: str) -> int:
    """For each plan, target and date: the attempt that succeeded (remote id, when `refresh`
    first saw it finished, who submitted it, commit, PR), and the dates that never succeeded,
    with what became of their last attempt.

    Reads the journal from line 1 with the hash chain checked; a damaged line stops the report
    (see `audit verify`). Health comes from `backfill refresh`: a date it has not seen succeed
    is listed as never succeeded.
    """
    from reconciler.commands import audit_report as audit_report_command

    ran = audit_report_command.report(state_dir, plan=plan_name)
    _warn(ran.warnings)
    _show(formats.AUDIT_REPORT, output, ran)
    return 0


class _FaultFlagged(click.Command):
    """The `emulator` command, with one option per field of the emulator's FaultConfig: its flag,
    bounds and help come from the field, so that the flags and `POST /_emulator/faults` take the
    same settings. Made when the command is parsed or shows its help: every other command starts
    without loading the fault model."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not any(isinstance(param, _FaultOption) for param in self.params):
            self.params.extend(_fault_options())
        return super().get_params(ctx)


class _FaultOption(click.Option):
    pass


def _fault_options() -> list[click.Option]:
    from reconciler.emulator.faults import FaultConfig, Latency

    def kind(default: object, bounds: tuple[float, float | None] | None) -> Any:
        if isinstance(default, float):
            return click.FloatRange(*bounds) if bounds else float
        if isinstance(default, Latency):
            return str  # as text: FaultConfig parses it as `POST /_emulator/faults` does
        return int  # the seed

    return [
        _FaultOption(
            ["--" + setting.name.replace("_", "-"), setting.name],
            type=kind(setting.default, setting.metadata["bounds"]),
            default=str(setting.default)
            if isinstance(setting.default, Latency)
            else setting.default,
            show_default=setting.default is not None,
            metavar=setting.metadata["metavar"],
            help=setting.metadata["help"],
        )
        for setting in dataclasses.fields(FaultConfig)
    ]


@cli.command(cls=_FaultFlagged)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the URL here once listening (for scripts).",
)
def emulator(host: str, port: int, ready_file: Path | None, **settings: Any) -> int:
    """Serve the built-in emulator of both APIs (WeData and DMS) on one port.

    It verifies signatures against the TENCENTCLOUD_* and ALIBABA_CLOUD_* credentials in its
    environment, so give it and the client the same (made-up) values. Point the client at it
    with --endpoint URL.

    Faults (on creates: CreateDataBackfillPlan, BackFill) are drawn from --seed, so a run can
    be repeated; their rates exclude each other and add up to at most 1. Admin: GET
    /_emulator/calls lists every create it accepted, GET /_emulator/stats counts requests and
    injected faults, GET/POST /_emulator/faults shows or replaces the fault settings (JSON).
    """
    # Here, not at the top: every other command starts without loading the emulated APIs.
    from reconciler.emulator.app import create_app
    from reconciler.emulator.faults import FaultConfig
    from reconciler.emulator.server import serve_forever

    try:
        faults = FaultConfig.from_json(settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    app = create_app(faults=faults)

    def ready(url: str) -> None:
        click.echo(f"Emulator listening on {url} (Ctrl-C to stop)")
        if faults != FaultConfig(seed=faults.seed):
            shown = app.faults.config.to_json()
            click.echo("Faults: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        if ready_file:
            ready_file.write_text(url + "\n", encoding="utf-8")

    serve_forever(app, host=host, port=port, on_ready=ready)
    return 0


def _debug(args: Sequence[str]) -> bool:
    """Whether `backfill --debug ...` asked for tracebacks, as click parses the options before
    the command (`backfill plan --debug` is a usage error, and a path named `--debug` is a
    path); parsed without acting on any option, since the error it decides about may come
    from the parsing itself."""
    with cli.make_context("backfill", list(args), resilient_parsing=True) as context:
        return bool(context.params["debug"])


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(args)
    try:
        code = cli.main(args=args, prog_name="backfill", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        code = exit_.exit_code
    except click.ClickException as error:
        error.show()
        code = 1
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 1
    except InvalidPlans as error:
        click.echo(text.diagnostics(error.diagnostics), err=True)
        click.echo(f"error: {error}; nothing was planned or applied.", err=True)
        github.report_invalid(error.diagnostics, os.environ)
        code = 1
    except BackfillError as error:
        click.echo(f"error: {error}", err=True)
        code = 1
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    except Exception as error:  # the last line of defence: one clean line, never a traceback
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(
            f"error: unexpected {type(error).__name__}: {error}"
            + ("" if debug else " (run with --debug for the traceback)"),
            err=True,
        )
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
