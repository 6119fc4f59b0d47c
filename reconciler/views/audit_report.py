"""`backfill audit report` as a terminal table, Markdown or JSON. Pure functions: data in, text
out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.domain import JSON, compact_dates
from reconciler.views.audit import FORMAT_VERSION, approvers
from reconciler.views.markdown import escape
from reconciler.views.text import Style, plural, styler

if TYPE_CHECKING:
    from reconciler.reports.audit_report import NeverSucceeded, PlanRan, Ran, Succeeded

_PLAIN = styler(False)


def _who(actor: Mapping[str, JSON]) -> dict[str, str]:
    return {
        "user": str(actor.get("user", "")),
        "commit": str(actor.get("commit", "")),
        "pr": str(actor.get("pr", "")),
        "run_url": str(actor.get("run_url", "")),
        "approved_by": approvers(actor),
    }


RUNS_SHOWN = 4
"""Runs of days a row of the text and Markdown reports spells out (the JSON has them all)."""


def _dates(spans: tuple[tuple[int, int], ...]) -> str:
    parts = compact_dates(spans)
    more = len(parts) - RUNS_SHOWN
    return ",".join(parts[:RUNS_SHOWN]) + (f" (+{more} more runs)" if more > 0 else "")


def _succeeded_row(item: Succeeded) -> tuple[str, ...]:
    who = _who(item.actor)
    return (
        item.target,
        _dates(item.spans),
        f"r{item.revision}",
        item.key,
        item.remote_id,
        item.finished or "-",
        who["user"] or "-",
        who["commit"][:12] or "-",
        f"#{who['pr']}" if who["pr"] else "-",
    )


def _never_row(item: NeverSucceeded) -> tuple[str, ...]:
    return (
        item.target,
        _dates(item.spans),
        item.last,
        str(item.attempts),
    )


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], style: Style) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "    " + style("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    ]
    lines += [
        "    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines


SUCCEEDED_HEADER = ("TARGET", "DATES", "REV", "KEY", "REMOTE ID", "FINISHED", "BY", "COMMIT", "PR")
NEVER_HEADER = ("TARGET", "DATES", "LAST ATTEMPT", "ATTEMPTS")


def _days(items: tuple[Succeeded, ...] | tuple[NeverSucceeded, ...]) -> int:
    return sum(last - first + 1 for item in items for first, last in item.spans)


def text(ran: Ran, style: Style = _PLAIN) -> str:
    if not ran.plans:
        return "No attempts in the journal."
    lines: list[str] = []
    for plan in ran.plans:
        lines.append(
            f"{style(plan.plan, bold=True)}: {plural(_days(plan.succeeded), 'cell')} succeeded,"
            f" {plural(_days(plan.never), 'cell')} never did"
        )
        if plan.succeeded:
            lines.append("  succeeded:")
            lines += _table(SUCCEEDED_HEADER, [_succeeded_row(s) for s in plan.succeeded], style)
        if plan.never:
            lines.append(style("  never succeeded:", fg="red"))
            lines += _table(NEVER_HEADER, [_never_row(n) for n in plan.never], style)
        lines.append("")
    lines.append(
        f"Read {plural(ran.seq, 'event')} of {ran.journal}, the hash chain checked (head"
        f" {ran.head_hash[:12]}). FINISHED is when `backfill refresh` first saw it succeeded."
    )
    return "\n".join(lines)


def _markdown_plan(plan: PlanRan) -> list[str]:
    lines = [
        f"### `{plan.plan}`",
        "",
        f"{plural(_days(plan.succeeded), 'cell')} succeeded,"
        f" {plural(_days(plan.never), 'cell')} never did.",
    ]
    if plan.succeeded:
        lines += [
            "",
            "| Target | Dates | Rev | Key | Remote id | Finished | By | Commit | PR |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            "| " + " | ".join(escape(cell) for cell in _succeeded_row(s)) + " |"
            for s in plan.succeeded
        ]
    if plan.never:
        lines += [
            "",
            "**Never succeeded**",
            "",
            "| Target | Dates | Last attempt | Attempts |",
            "|---|---|---|--:|",
        ]
        lines += [
            "| " + " | ".join(escape(cell) for cell in _never_row(n)) + " |" for n in plan.never
        ]
    return lines


def markdown(ran: Ran) -> str:
    lines = ["## Backfill audit report", ""]
    if not ran.plans:
        lines.append("No attempts in the journal.")
    for plan in ran.plans:
        lines += [*_markdown_plan(plan), ""]
    lines.append(
        f"Read {plural(ran.seq, 'event')} of the journal, the hash chain checked (head"
        f" `{ran.head_hash[:12]}`). *Finished* is when `backfill refresh` first saw it succeeded."
    )
    return "\n".join(lines) + "\n"


def json_report(ran: Ran) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "seq": ran.seq,
        "head_hash": ran.head_hash,
        "plans": [
            {
                "plan": plan.plan,
                "succeeded": [
                    {
                        "target": s.target,
                        "dates": compact_dates(s.spans),
                        "revision": s.revision,
                        "key": s.key,
                        "remote_id": s.remote_id,
                        "finished": s.finished,
                        **_who(s.actor),
                        "replaces": list(s.replaces),
                    }
                    for s in plan.succeeded
                ],
                "never_succeeded": [
                    {
                        "target": n.target,
                        "dates": compact_dates(n.spans),
                        "last_attempt": n.last,
                        "attempts": n.attempts,
                    }
                    for n in plan.never
                ],
            }
            for plan in ran.plans
        ],
        "warnings": list(ran.warnings),
    }
