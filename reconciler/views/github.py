"""GitHub Actions: annotations, job summary and step outputs for `validate`, `plan` and `apply`.

Pure functions render; the `report_*` writers at the end do the I/O, and only inside Actions.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import remedies
from reconciler.errors import BackfillError
from reconciler.views import Deferred
from reconciler.vocabulary import JSON, OutcomeKind

if TYPE_CHECKING:  # the module itself, checked as such
    from reconciler.views import markdown
else:
    markdown = Deferred("markdown")  # for a job summary; `validate` writes none

if TYPE_CHECKING:
    from reconciler.diff import Changeset, Conflict
    from reconciler.errors import Diagnostic, Location
    from reconciler.execute import Result
    from reconciler.reports.apply import Applied

# --- workflow commands ------------------------------------------------------------------------


def escape_data(value: str) -> str:
    """A command's message: the runner decodes these three, so each is written encoded."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A property value: also `:` and `,`, which would end the value or the property list."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, properties: Mapping[str, str | int]) -> str:
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def workspace_path(file: str, cwd: Path, workspace: Path | None) -> str:
    """The path GitHub attaches annotations by, relative to the checkout; as given otherwise."""
    if workspace is None:
        return file
    full = Path(os.path.normpath(cwd / file))
    try:
        return full.relative_to(workspace).as_posix()
    except ValueError:
        return file


def _where(location: Location, cwd: Path, workspace: Path | None) -> dict[str, str | int]:
    where: dict[str, str | int] = {"file": workspace_path(location.file, cwd, workspace)}
    if location.line:
        where["line"] = location.line
    if location.col:  # 0 means unknown: leave it to GitHub
        where["col"] = location.col
    return where


def diagnostic_annotations(
    items: Sequence[Diagnostic], cwd: Path, workspace: Path | None = None
) -> list[str]:
    return [
        command(
            "error",
            item.message,
            {
                **_where(item.location, cwd, workspace),
                "title": "Invalid backfill plan" + (f": {item.field}" if item.field else ""),
            },
        )
        for item in items
    ]


def _shown(value: JSON) -> str:
    if value is None:
        return "(unset)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def conflict_message(conflict: Conflict) -> str:
    return remedies.conflict(conflict, value=_shown)


def changeset_annotations(
    changes: Changeset, cwd: Path, workspace: Path | None = None
) -> list[str]:
    """Conflicts as errors where the plan's spec starts; cells needing attention as warnings."""
    lines = [
        command(
            "error",
            conflict_message(c),
            {
                **_where(c.location, cwd, workspace),
                "title": f"Backfill conflict: {c.plan} r{c.revision}",
            },
        )
        for c in changes.conflicts
    ]
    locations = {p.plan.name: p.plan.location for p in changes.plans}
    for item in changes.attention:
        lines.append(
            command(
                "warning",
                remedies.attention(
                    plan=item.plan,
                    key=item.key,
                    cells=item.cells,
                    provider=item.provider,
                    remote_name=item.remote_name,
                ),
                {
                    **_where(locations[item.plan], cwd, workspace),
                    "title": f"Backfill needs attention: {item.plan}",
                },
            )
        )
    return lines


# --- step outputs -----------------------------------------------------------------------------


def outputs(changes: Changeset) -> dict[str, str]:
    return {
        "changes": "true" if changes.has_changes else "false",
        "creates": str(len(changes.creates)),
        "conflicts": str(len(changes.conflicts)),
        "attention": str(changes.count("attention_cells")),
        "orphans": str(sum(o.cells for o in changes.orphans)),
    }


def _delimiter() -> str:
    return f"ghadelimiter_{uuid.uuid4()}"


def output_lines(values: Mapping[str, str], delimiter: Callable[[], str] = _delimiter) -> str:
    """`name=value` lines for $GITHUB_OUTPUT; a multi-line value as a heredoc whose random
    delimiter cannot be forged by the value."""
    lines = []
    for name, value in values.items():
        if "\n" not in value and "\r" not in value:
            lines.append(f"{name}={value}")
            continue
        mark = delimiter()
        if mark in value:
            raise ValueError(f"output {name!r}: the value contains its delimiter {mark!r}")
        lines += [f"{name}<<{mark}", value, mark]
    return "".join(line + "\n" for line in lines)


# --- writers ----------------------------------------------------------------------------------


def active(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def _workspace(env: Mapping[str, str]) -> Path | None:
    return Path(env["GITHUB_WORKSPACE"]) if env.get("GITHUB_WORKSPACE") else None


def _annotate(lines: Sequence[str]) -> None:
    # stderr: the runner reads commands from both streams, and stdout may be the JSON or the
    # Markdown a workflow captures.
    for line in lines:
        click.echo(line, err=True)


def _append(env: Mapping[str, str], variable: str, text: str) -> None:
    path = env.get(variable)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(text)
    except OSError as error:
        raise BackfillError(f"cannot append to ${variable} ({path}): {error.strerror}") from error


def _summary(env: Mapping[str, str], text: str) -> None:
    path = env.get("GITHUB_STEP_SUMMARY")
    # A blank line apart from what an earlier command of the step wrote.
    gap = "\n" if path and os.path.exists(path) and os.path.getsize(path) else ""
    _append(env, "GITHUB_STEP_SUMMARY", gap + text)


def report_validation(items: Sequence[Diagnostic], env: Mapping[str, str]) -> None:
    if active(env):
        _annotate(diagnostic_annotations(items, Path.cwd(), _workspace(env)))


def report_invalid(items: Sequence[Diagnostic], env: Mapping[str, str]) -> None:
    """Invalid plan files stopped `plan` or `apply`: annotations and the job summary."""
    if active(env):
        _annotate(diagnostic_annotations(items, Path.cwd(), _workspace(env)))
        _summary(env, markdown.invalid(items, markdown.SUMMARY_BUDGET))


def report_plan(
    changes: Changeset, env: Mapping[str, str], *, changed: frozenset[Path] | None = None
) -> None:
    if active(env):
        _annotate(changeset_annotations(changes, Path.cwd(), _workspace(env)))
        _summary(env, markdown.changeset(changes, markdown.SUMMARY_BUDGET, changed=changed))
        _append(env, "GITHUB_OUTPUT", output_lines(outputs(changes)))


def report_apply(applied: Applied, env: Mapping[str, str]) -> None:
    """After an apply that planned calls or failed: a warning or error per call that did not
    succeed, the results and why the run failed beyond its calls (its reasons) in the job
    summary, and outputs `submitted`, `not_created`, `unknown`, `not_sent`, `not_attempted`;
    with its plans' actors (naming their pull requests), also `pull-requests`: a JSON file of
    what to post on each pull request."""
    if not active(env) or not (applied.planned or applied.reasons):
        return
    results, planned, reasons = applied.results, applied.planned, applied.reasons
    lines = []
    for result in results:
        outcome = result.outcome
        if outcome.kind is OutcomeKind.SUBMITTED:
            continue
        name = "warning" if outcome.kind is OutcomeKind.UNKNOWN else "error"
        title = f"{outcome.kind} {result.submission.key} ({result.submission.plan})"
        lines.append(command(name, f"{outcome.code}: {outcome.message}", {"title": title}))
        if result.stopped:
            lines.append(command("error", result.stopped, {"title": "calls not attempted"}))
    lines += [command("error", reason, {"title": "Apply failed"}) for reason in reasons]
    _annotate(lines)
    _summary(
        env, markdown.apply_results(results, planned, markdown.SUMMARY_BUDGET, reasons=reasons)
    )
    tally = applied.tally
    values = {name: str(value) for name, value in asdict(tally).items()}
    comments = _pull_request_comments(results, applied.actors or {}, env)
    if comments and env.get("RUNNER_TEMP"):
        path = Path(env["RUNNER_TEMP"]) / "backfill-pull-requests.json"
        try:
            path.write_text(json.dumps(comments, indent=2), encoding="utf-8")
        except OSError as error:
            raise BackfillError(f"cannot write {path}: {error.strerror}") from error
        values["pull-requests"] = str(path)
    _append(env, "GITHUB_OUTPUT", output_lines(values))


def _pull_request_comments(
    results: Sequence[Result], actors: Mapping[str, Mapping[str, JSON]], env: Mapping[str, str]
) -> dict[str, str]:
    """Pull request number -> the comment on what became of the calls of its plans."""
    mine: dict[int, list[Result]] = {}
    for result in results:
        number = actors.get(result.submission.plan, {}).get("pr")
        if isinstance(number, int):
            mine.setdefault(number, []).append(result)
    run_url = (
        f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}"
        f"/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
    )
    return {str(n): markdown.applied(found, run_url) for n, found in sorted(mine.items())}
