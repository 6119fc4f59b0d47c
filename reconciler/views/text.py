"""Human-readable text for terminals and CI logs. Pure functions: data in, text out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

from reconciler import remedies
from reconciler.vocabulary import (
    JSON,
    NOT_OBSERVED,
    Health,
    OutcomeKind,
    compact_dates,
    contiguous_runs,
)

if TYPE_CHECKING:
    from reconciler.diff import Changeset, Conflict, Exhausted, PlanChanges
    from reconciler.domain import Submission
    from reconciler.errors import Diagnostic
    from reconciler.execute import Result
    from reconciler.reports.init import Started
    from reconciler.reports.plan import Finding, Planned
    from reconciler.reports.refresh import Refreshed
    from reconciler.reports.state import Listing, Verdict
    from reconciler.state import SubmissionRecord
    from reconciler.validate import Validation

Style = Callable[..., str]


def _plain(text: str, **_: object) -> str:
    return text


def styler(color: bool) -> Style:
    return click.style if color else _plain


plural = remedies.plural


def date_span(dates: Sequence[str]) -> str:
    runs = contiguous_runs(sorted(dates))
    parts = [start if start == end else f"{start}..{end}" for start, end in runs]
    shown = ", ".join(parts[:4]) + (f", ... (+{len(parts) - 4} ranges)" if len(parts) > 4 else "")
    return f"{shown} ({plural(len(dates), 'day')})"


def targets_text(targets: Sequence[str]) -> str:
    shown = ", ".join(targets[:5])
    return shown + (f", ... (+{len(targets) - 5})" if len(targets) > 5 else "")


# --- validate ---------------------------------------------------------------------------------


def diagnostics(items: Sequence[Diagnostic], style: Style = _plain) -> str:
    return "\n".join(
        f"{style(str(d.location), bold=True)}: {style('error', fg='red')}: "
        + (f"{d.field}: " if d.field else "")
        + d.message
        for d in items
    )


def validation(result: Validation, style: Style = _plain) -> str:
    if result.ok:
        return style(
            f"OK: {plural(len(result.names), 'plan')} in {plural(result.files, 'file')} valid.",
            fg="green",
        )
    files = len({d.location.file for d in result.diagnostics})
    return (
        diagnostics(result.diagnostics, style)
        + "\n"
        + style(
            f"Found {plural(len(result.diagnostics), 'problem')} in {plural(files, 'file')}; "
            "nothing was planned or applied.",
            fg="red",
        )
    )


# --- init -------------------------------------------------------------------------------------


def started(report: Started) -> str:
    if report.state is None:
        return f"{report.published} already holds a state; nothing changed."
    lines = [f"Published the new state as {report.published}."] if report.published else []
    if report.created:
        lines.append(
            f"Initialized an empty state in {report.state_dir}/ (state id"
            f" {report.state.state_id}). Commit it with the plans; `backfill plan` shows what an"
            " apply would submit."
        )
    else:
        lines.append(
            f"{report.state_dir}/ already holds a state ({report.state.seq} events); nothing"
            " changed."
        )
    return "\n".join(lines)


# --- plan -------------------------------------------------------------------------------------


def planned(report: Planned, style: Style = _plain) -> str:
    """The lookups of `--recover` (as they would be journaled), what `--refresh` read, then
    the plan."""
    found = [] if report.findings is None else [findings(report.findings, style, written=False)]
    read = [] if report.refreshed is None else [refreshed(report.refreshed)]
    return "\n\n".join([*found, *read, changeset(report.changes, style)])


def refreshed(result: Refreshed) -> str:
    """`Refreshed 12 backfills (30 cells): 5 cells changed health, 3 already final (not
    asked).`: what a refresh read, in one line."""
    line = (
        f"Refreshed {plural(result.asked, 'backfill')} ({plural(result.cells, 'cell')}): "
        f"{plural(result.changed_cells, 'cell')} changed health, "
        f"{result.final} already final (not asked)"
    )
    if result.errors:
        line += f", {len(result.errors)} could not be read"
    return line + "."


def submission_lines(submission: Submission, style: Style = _plain) -> list[str]:
    return [
        f"    {style('+', fg='green')} {submission.action} {style(submission.key, bold=True)}"
        f"  ({plural(submission.size, 'cell')})",
        f"        targets: {targets_text(submission.targets)}",
        f"        dates:   {date_span(submission.dates)}",
        *(
            [f"        retries: the failed cells of {', '.join(submission.replaces)}"]
            if submission.replaces
            else []
        ),
    ]


def shown_apart(item: PlanChanges) -> bool:
    """A plan with something to do or to look at, not only counted among those in sync."""
    return bool(
        item.submissions
        or item.conflict_cells
        or item.attention_cells
        or item.exhausted_cells
        or item.health.get(Health.FAILED)
    )


HEALTH_ORDER: tuple[str, ...] = (
    Health.SUCCEEDED,
    Health.FAILED,
    Health.STOPPED,
    Health.RUNNING,
    Health.WAITING,
    Health.UNKNOWN,
    NOT_OBSERVED,
)
"""How counts of health are listed: what is done first, then what is still to come."""


def health_text(counts: Mapping[str, int]) -> str:
    """`20 succeeded, 3 failed, 9 not observed`: cells by what `refresh` last saw of them; empty
    while it has seen none of them."""
    if not any(counts.get(h) for h in HEALTH_ORDER if h != NOT_OBSERVED):
        return ""
    return ", ".join(f"{counts[h]} {h}" for h in HEALTH_ORDER if counts.get(h))


def exhausted_text(item: Exhausted) -> str:
    return remedies.exhausted(
        plan=f"{item.plan} r{item.revision}",
        target=item.target,
        dates=", ".join(compact_dates(item.spans)),
        attempts=item.attempts,
    )


def _plan_block(item: PlanChanges, style: Style) -> list[str]:
    plan = item.plan
    marker = style("+", fg="green") if item.submissions else style("=", dim=True)
    lines = [
        f"{marker} {style(plan.name, bold=True)}  {plan.provider} r{plan.revision}"
        f"  ({plan.location})"
    ]
    for submission in item.submissions:
        lines.extend(submission_lines(submission, style))
    if item.in_sync_cells:
        health = health_text(item.health)
        lines.append(
            f"    = {plural(item.in_sync_cells, 'cell')} in sync"
            + (f" ({health})" if health else "")
        )
    if item.exhausted_cells:
        lines.append(
            style(f"    x {plural(item.exhausted_cells, 'cell')} failed every attempt", fg="red")
        )
    if item.conflict_cells:
        lines.append(style(f"    ! {plural(item.conflict_cells, 'cell')} in conflict", fg="red"))
    if item.attention_cells:
        lines.append(
            style(f"    ? {plural(item.attention_cells, 'cell')} need attention", fg="yellow")
        )
    return lines


def _value(value: JSON) -> str:
    return "(unset)" if value is None else click.unstyle(str(value))


def conflict_text(conflict: Conflict) -> str:
    return (
        f"{conflict.location}: plan {conflict.plan!r} r{conflict.revision}: "
        + remedies.conflict(conflict, value=_value)
    )


def changeset(changes: Changeset, style: Style = _plain) -> str:
    lines: list[str] = []
    for warning in changes.warnings:
        lines.append(style(f"warning: {warning}", fg="yellow"))
    for conflict in changes.conflicts:
        lines.append(style("conflict: ", fg="red", bold=True) + conflict_text(conflict))
    for exhausted in changes.exhausted:
        lines.append(style("exhausted: ", fg="red", bold=True) + exhausted_text(exhausted))
    for attention in changes.attention:
        lines.append(
            style("needs attention: ", fg="yellow", bold=True)
            + remedies.attention(
                plan=attention.plan,
                key=attention.key,
                cells=attention.cells,
                provider=attention.provider,
                remote_name=attention.remote_name,
            )
        )
    if lines:
        lines.append("")
    settled = []
    for item in changes.plans:
        if shown_apart(item):
            lines.extend(_plan_block(item, style))
        else:
            settled.append(item.plan.name)
    if settled:
        # Like Terraform, the plan is about changes: plans fully in sync are only counted.
        shown = ", ".join(settled[:8]) + (
            f", ... (+{len(settled) - 8})" if len(settled) > 8 else ""
        )
        lines.append(style(f"= {plural(len(settled), 'plan')} fully in sync: {shown}", dim=True))
    for orphan in changes.orphans:
        what = "plan no longer declared" if orphan.plan_removed else "cells no longer declared"
        lines.append(
            style("- ", fg="magenta")
            + f"{orphan.plan} r{orphan.revision}: {plural(orphan.cells, 'cell')} of {orphan.key} "
            f"({what}): orphaned, reported only (a backfill that ran cannot be un-run)"
        )
    lines.append("")
    lines.append(summary_line(changes, style))
    return "\n".join(lines)


def summary_line(changes: Changeset, style: Style = _plain) -> str:
    creates = changes.creates
    if not creates and not changes.conflicts:
        head = style("No changes.", fg="green", bold=True) + " Every declared cell is submitted."
        if changes.attention:
            head = style("No calls to make,", bold=True) + " but some cells need attention."
    else:
        head = style("Plan:", bold=True) + (
            f" {plural(len(creates), 'call')} to make"
            f" ({plural(sum(s.size for s in creates), 'cell')})."
        )
    counts = (
        f" {plural(changes.count('in_sync_cells'), 'cell')} in sync,"
        f" {plural(len(changes.conflicts), 'conflict')},"
        f" {plural(changes.count('attention_cells'), 'cell')} needing attention,"
        f" {plural(sum(o.cells for o in changes.orphans), 'orphaned cell')}."
    )
    exhausted = changes.count("exhausted_cells")
    if exhausted:
        counts += f" {plural(exhausted, 'cell')} failed every attempt."
    return head + counts


# --- apply ------------------------------------------------------------------------------------


_MARKS = {
    OutcomeKind.SUBMITTED: ("submitted", "green"),
    OutcomeKind.REJECTED: ("rejected", "red"),
    OutcomeKind.RETRYABLE: ("throttled", "red"),
    OutcomeKind.UNKNOWN: ("UNKNOWN", "yellow"),
    OutcomeKind.UNSENT: ("not sent", "red"),
}
_COUNTED_IN_MESSAGE = frozenset({OutcomeKind.RETRYABLE, OutcomeKind.UNSENT})
"""Outcomes whose message already says how many attempts were made (it is ours, not the API's)."""


def result_line(result: Result, done: int, total: int, style: Style = _plain) -> str:
    word, color = _MARKS[result.outcome.kind]
    sub, outcome = result.submission, result.outcome
    head = f"[{done}/{total}] {style(word, fg=color, bold=True)} {sub.key} {sub.plan}"
    if outcome.kind is OutcomeKind.SUBMITTED:
        tail = f"-> {outcome.remote_id} (RequestId {outcome.request_id or '-'})"
    else:
        tail = f"{outcome.code}: {outcome.message}"
    counted = result.attempts > 1 and outcome.kind not in _COUNTED_IN_MESSAGE
    return f"{head} {tail}" + (f" (after {result.attempts} attempts)" if counted else "")


def apply_summary(results: Sequence[Result], planned: int, style: Style = _plain) -> str:
    from reconciler.reports.apply import Tally  # noqa: PLC0415 (apply's: validate loads no reports)

    tally = Tally.of(results, planned)
    failed = not tally.all_submitted
    head = "Apply complete:" if not failed else "Apply finished with problems:"
    text = "".join(f"{r.stopped[:1].upper()}{r.stopped[1:]}.\n" for r in results if r.stopped)
    text += (
        f"{head} {tally.submitted} submitted, {tally.not_created} not created, "
        f"{tally.unknown} unknown"
    )
    if tally.not_sent:
        text += f", {tally.not_sent} not sent"
    if tally.not_attempted:
        text += f"; {tally.not_attempted} of {planned} not attempted (the next apply makes them)"
    text += "."
    if tally.unknown:
        text += "\n" + remedies.unknown_outcomes(tally.unknown)
    return style(text, fg="green" if not failed else "red", bold=True)


# --- state ------------------------------------------------------------------------------------


def listing(report: Listing, style: Style = _plain) -> str:
    records = report.records
    if not records:
        return "No submissions." if not report.total else "No submissions match."
    header = ("KEY", "PLAN", "REV", "STATUS", "CELLS", "DATES", "REMOTE ID", "UPDATED")
    rows = [
        (
            r.key,
            r.plan,
            str(r.revision),
            str(r.shown_status),
            str(len(r.targets) * len(r.dates)),
            ", ".join(a if a == b else f"{a}..{b}" for a, b in contiguous_runs(r.dates)) or "-",
            r.remote_id or "-",
            r.updated_time,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in (header, *rows)
    )


# --- recover ----------------------------------------------------------------------------------

_VERDICTS = {
    "submitted": ("ran", "green"),
    "missing": ("did not run", "cyan"),
    "unclear": ("still unknown", "yellow"),
}


def findings(items: Sequence[Finding], style: Style = _plain, *, written: bool) -> str:
    if not items:
        return "No submission has an unknown outcome."
    lines = []
    for item in items:
        word, color = _VERDICTS[item.lookup.verdict]
        remote = f" as {item.lookup.remote_id}" if item.lookup.remote_id else ""
        lines.append(
            f"{style(word, fg=color, bold=True)}{remote}: {item.record.key} "
            f"{item.record.plan} r{item.record.revision} - {item.lookup.how}"
        )
    settled = sum(1 for i in items if i.lookup.verdict != "unclear")
    left = len(items) - settled
    verb = "settled and journaled" if written else "would be settled (plan writes nothing)"
    lines.append(f"{plural(settled, 'unknown outcome')} {verb}; {left} left for a person.")
    for item in items:
        if item.lookup.verdict == "unclear":
            lines.append(f"{item.record.key}: {remedies.settle(item.record.key)}.")
    return "\n".join(lines)


# --- state import / forget ----------------------------------------------------------------


def imported(settled: Sequence[tuple[SubmissionRecord, Verdict]]) -> str:
    return "\n".join(
        f"{record.key}: imported as submitted ({verdict.remote_id})." for record, verdict in settled
    )


def forgotten(settled: Sequence[tuple[SubmissionRecord, Verdict]]) -> str:
    return "\n".join(
        f"{record.key}: forgotten; the next apply submits its cells again." for record, _ in settled
    )
