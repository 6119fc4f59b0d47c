"""`backfill status`: per plan, its sync and health, and a grid of targets x dates with one mark
per cell, as terminal text, Markdown (a PR comment, a job summary) or JSON
(`schemas/status-output.schema.json`). Pure functions: data in, text out.

A plan of up to two months is drawn day by day, as Airflow's grid view draws runs, so that a
month reads at a glance; a longer one a month a line, a run of months whose days are all alike
in one line ("2025-02..2025-11 every day succeeded"); targets whose rows are the same share them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.domain import day, span_text
from reconciler.grid import MARKS, Mark, PlanGrid, Row, Run
from reconciler.views.markdown import BUDGET, escape
from reconciler.views.text import Style, plural, styler

if TYPE_CHECKING:
    from reconciler.diff import PlanChanges
    from reconciler.reports.status import Grids

FORMAT_VERSION = 1

DAY_BY_DAY = 62
"""The longest plan (in days) drawn one column a day: two months fit a terminal. A longer one
is drawn a month a line, months whose days are all alike merged into one."""
MARKDOWN_DAY_BY_DAY = 31
"""Markdown draws a column per day up to a month: a table wider than that wraps on GitHub."""
ROWS_SHOWN = 100
"""Targets drawn per plan; the rest are counted (the JSON has them all)."""

_PLAIN = styler(False)

GLYPHS: Mapping[Mark, str] = {
    Mark.SUCCEEDED: "#",
    Mark.FAILED: "X",
    Mark.RUNNING: ">",
    Mark.WAITING: ".",
    Mark.STOPPED: "S",
    Mark.UNKNOWN: "?",
    Mark.SUBMITTED: "o",
    Mark.OUTCOME_UNKNOWN: "!",
    Mark.NOT_SUBMITTED: "-",
}
"""One character per mark on a terminal, and in CI logs without colours."""

EMOJI: Mapping[Mark, str] = {
    Mark.SUCCEEDED: "🟩",
    Mark.FAILED: "🟥",
    Mark.RUNNING: "🟦",
    Mark.WAITING: "⬜",
    Mark.STOPPED: "🟫",
    Mark.UNKNOWN: "🟨",
    Mark.SUBMITTED: "🔲",
    Mark.OUTCOME_UNKNOWN: "❓",
    Mark.NOT_SUBMITTED: "⚪",
}
"""One square per mark in Markdown: GitHub shows them in colour in a comment and a summary."""

_COLORS: Mapping[Mark, str] = {
    Mark.SUCCEEDED: "green",
    Mark.FAILED: "red",
    Mark.RUNNING: "cyan",
    Mark.WAITING: "cyan",
    Mark.STOPPED: "yellow",
    Mark.UNKNOWN: "yellow",
    Mark.OUTCOME_UNKNOWN: "yellow",
}


def counts_text(counts: Mapping[Mark, int]) -> str:
    """`7 succeeded, 3 failed`: a plan's cells by mark."""
    return ", ".join(f"{n} {mark}" for mark, n in counts.items()) or "no cells"


def sync_text(item: PlanChanges) -> str:
    """A plan's sync as `plan` counts it."""
    parts = [f"{item.in_sync_cells} in sync"]
    parts += [f"{item.create_cells} to create"] if item.create_cells else []
    parts += [f"{item.retry_cells} of them failed cells sent again"] if item.retry_cells else []
    parts += [f"{item.conflict_cells} in conflict"] if item.conflict_cells else []
    parts += [f"{item.attention_cells} need attention"] if item.attention_cells else []
    parts += [f"{item.exhausted_cells} failed every attempt"] if item.exhausted_cells else []
    return ", ".join(parts)


def _groups(rows: Sequence[Row]) -> list[tuple[list[str], tuple[Run, ...]]]:
    """Targets whose rows are the same, together, in the order they first appear."""
    groups: dict[tuple[Run, ...], list[str]] = {}
    for row in rows:
        groups.setdefault(row.runs, []).append(row.target)
    return [(targets, runs) for runs, targets in groups.items()]


Month = tuple[str, str, list[Mark | None]]
"""A line of a long plan's grid: its first and last month (`2025-01`), and one mark per day of
the month, or the one mark of every day of the months when they are all the same."""


def _months(grid: PlanGrid, row: Row) -> list[Month]:
    """A long plan's row a month a line, months whose days all have one mark merged."""
    cells = _cells(grid, row)
    by_month: dict[str, list[Mark | None]] = {}
    for index, mark in enumerate(cells):
        by_month.setdefault(day(grid.first + index)[:7], []).append(mark)
    lines: list[Month] = []
    for month, marks in by_month.items():
        uniform = len(set(marks)) == 1
        if uniform and lines and len(lines[-1][2]) == 1 and lines[-1][2][0] == marks[0]:
            lines[-1] = (lines[-1][0], month, lines[-1][2])
        else:
            lines.append((month, month, [marks[0]] if uniform else marks))
    return lines


def _month_span(first: str, last: str) -> str:
    return first if first == last else f"{first}..{last}"


def _cells(grid: PlanGrid, row: Row) -> list[Mark | None]:
    """One mark per day from the plan's first to its last (None where it declares none)."""
    line: list[Mark | None] = [None] * grid.days
    for first, last, mark in row.runs:
        for number in range(first, last + 1):
            line[number - grid.first] = mark
    return line


# --- text -------------------------------------------------------------------------------------


def _ruler(grid: PlanGrid, indent: int) -> list[str]:
    """Two lines over the day columns: each month where it starts, then the day of the month."""
    months = [" "] * grid.days
    digits = []
    for index in range(grid.days):
        date = day(grid.first + index)
        if index == 0 or date.endswith("-01"):
            label = date[:7]
            months[index : index + len(label)] = label
        digits.append(date[-1])
    pad = " " * indent
    # a month label longer than the plan's days runs on past them rather than be cut
    return [pad + "".join(months).rstrip(), pad + "".join(digits)]


def _glyph(mark: Mark | None, style: Style) -> str:
    return style(GLYPHS[mark], fg=_COLORS.get(mark)) if mark else " "


def _legend(style: Style) -> str:
    return "  ".join(style(GLYPHS[mark], fg=_COLORS.get(mark)) + f" {mark}" for mark in MARKS)


def _text_plan(grid: PlanGrid, sync: PlanChanges, style: Style) -> list[str]:
    plan = grid.plan
    lines = [
        f"{style(plan.name, bold=True)}  {plan.provider} r{plan.revision}"
        f"  {span_text(grid.first, grid.last)}  ({plan.location})",
    ]
    lines.append(f"  sync:   {sync_text(sync)}")
    lines.append(f"  health: {counts_text(grid.counts)}")
    shown = grid.rows[:ROWS_SHOWN]
    width = max(len(row.target) for row in shown) + 4
    if grid.days <= DAY_BY_DAY:
        lines += _ruler(grid, width)
        for row in shown:
            cells = "".join(_glyph(mark, style) for mark in _cells(grid, row))
            lines.append(f"  {row.target.ljust(width - 2)}{cells}")
    else:
        for targets, runs in _groups(shown):
            lines.append(f"  {', '.join(targets)}:")
            for first, last, marks in _months(grid, Row(targets[0], runs)):
                if len(marks) == 1:
                    what = f"every day {marks[0]}" if marks[0] else "no day declared"
                    glyphs = _glyph(marks[0], style) + f"  {what}"
                else:
                    glyphs = "".join(_glyph(mark, style) for mark in marks)
                lines.append(f"    {_month_span(first, last).ljust(16)} {glyphs}")
    if len(grid.rows) > ROWS_SHOWN:
        lines.append(f"  ... {plural(len(grid.rows) - ROWS_SHOWN, 'more target')} (--format json)")
    return lines


def text(report: Grids, style: Style = _PLAIN) -> str:
    if not report.grids:
        return "No plans declared."
    lines = [_legend(style), ""]
    for grid in report.grids:
        lines += [*_text_plan(grid, report.sync(grid.plan.name), style), ""]
    totals = report.totals
    lines.append(
        f"{plural(len(report.grids), 'plan')}, {plural(sum(totals.values()), 'cell')}: "
        + counts_text(totals)
        + "."
    )
    return "\n".join(lines)


# --- Markdown ---------------------------------------------------------------------------------


def _markdown_plan(grid: PlanGrid, sync: PlanChanges) -> list[str]:
    plan = grid.plan
    lines = [
        f"#### `{plan.name}` r{plan.revision} · {plan.provider}"
        f" · {span_text(grid.first, grid.last)}",
        "",
    ]
    lines += [f"Sync: {sync_text(sync)}.  ", f"Health: {counts_text(grid.counts)}.", ""]
    shown = grid.rows[:ROWS_SHOWN]
    if grid.days <= MARKDOWN_DAY_BY_DAY:
        numbers = [day(grid.first + i)[-2:] for i in range(grid.days)]
        lines.append("| Target | " + " | ".join(numbers) + " |")
        lines.append("|---|" + "---|" * grid.days)
        for row in shown:
            cells = [EMOJI[mark] if mark else " " for mark in _cells(grid, row)]
            lines.append(f"| `{row.target}` | " + " | ".join(cells) + " |")
    else:
        lines += ["| Targets | Month | Days |", "|---|---|---|"]
        for targets, runs in _groups(shown):
            named = ", ".join(f"`{t}`" for t in targets)
            for first, last, marks in _months(grid, Row(targets[0], runs)):
                if len(marks) == 1:
                    squares = f"{EMOJI[marks[0]]} every day" if marks[0] else "no day declared"
                else:
                    squares = "".join(EMOJI[mark] if mark else "▫️" for mark in marks)
                lines.append(f"| {named} | {_month_span(first, last)} | {squares} |")
                named = ""
    if len(grid.rows) > ROWS_SHOWN:
        lines += ["", f"… {plural(len(grid.rows) - ROWS_SHOWN, 'more target')} not shown."]
    return lines


def markdown(report: Grids, limit: int = BUDGET) -> str:
    """The grid for a pull request comment or a job summary: plans are left out from the end,
    with a note saying how many, when the whole would pass `limit` characters."""
    head = ["## Backfill status", ""]
    if not report.grids:
        return "\n".join([*head, "No plans declared."]) + "\n"
    totals = report.totals
    head += [
        f"**{plural(len(report.grids), 'plan')}, {plural(sum(totals.values()), 'cell')}:** "
        + escape(counts_text(totals))
        + ".",
        "",
        "Legend: " + " ".join(f"{EMOJI[mark]} {mark}" for mark in MARKS),
    ]
    body: list[str] = []
    size = sum(len(line) + 1 for line in head) + 200  # room for the note
    shown = 0
    for grid in report.grids:
        section = ["", *_markdown_plan(grid, report.sync(grid.plan.name))]
        cost = sum(len(line) + 1 for line in section)
        if size + cost > limit:
            break
        body += section
        size += cost
        shown += 1
    if shown < len(report.grids):
        left = len(report.grids) - shown
        body += [
            "",
            f"> [!NOTE]\n> {plural(left, 'more plan')} not shown: a comment holds at most"
            f" {limit:,} characters. `backfill status --format text` or `--format json` shows"
            " them all.",
        ]
    return "\n".join([*head, *body]) + "\n"


# --- JSON -------------------------------------------------------------------------------------


def _runs(runs: Sequence[Run]) -> Iterator[dict[str, Any]]:
    for first, last, mark in runs:
        yield {"dates": span_text(first, last), "days": last - first + 1, "mark": str(mark)}


def json_report(report: Grids) -> dict[str, Any]:
    """What `schemas/status-output.schema.json` documents."""
    plans = []
    for grid in report.grids:
        plan = grid.plan
        sync = report.sync(plan.name)
        plans.append(
            {
                "name": plan.name,
                "revision": plan.revision,
                "provider": plan.provider,
                "file": plan.location.file,
                "first_date": day(grid.first),
                "last_date": day(grid.last),
                "sync": {
                    "in_sync_cells": sync.in_sync_cells,
                    "create_cells": sync.create_cells,
                    "retry_cells": sync.retry_cells,
                    "conflict_cells": sync.conflict_cells,
                    "attention_cells": sync.attention_cells,
                    "exhausted_cells": sync.exhausted_cells,
                },
                "health": {str(mark): n for mark, n in grid.counts.items()},
                "targets": [
                    {"target": row.target, "runs": list(_runs(row.runs))} for row in grid.rows
                ],
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "seq": report.seq,
        "marks": [str(mark) for mark in MARKS],
        "totals": {str(mark): n for mark, n in report.totals.items()},
        "plans": plans,
        "warnings": list(report.warnings),
    }
