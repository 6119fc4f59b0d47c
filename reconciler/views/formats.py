"""One table per command: each `--format` name and the renderer of what the command found.

`--format` offers exactly a table's names, the first being the default. A renderer takes the
command's report and a text style (colours on a terminal) and returns the whole output as it
is printed, ending with a newline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from reconciler.views import Deferred, json, text

if TYPE_CHECKING:  # the modules themselves, checked as such
    from reconciler.views import apply, audit, audit_report, grid, health, markdown, status
    from reconciler.views.apply import JsonApply, TextApply
    from reconciler.views.progress import Mode
else:
    apply, audit, audit_report, grid, health, markdown, status = map(
        Deferred, ("apply", "audit", "audit_report", "grid", "health", "markdown", "status")
    )

if TYPE_CHECKING:
    from reconciler.reports.audit_report import Ran
    from reconciler.reports.plan import Planned
    from reconciler.reports.refresh import Refreshed
    from reconciler.reports.state import Listing
    from reconciler.reports.status import Grids, StatusReport
    from reconciler.reports.wait import Followed
    from reconciler.state import AuditLog, Verification
    from reconciler.validate import Validation

T = TypeVar("T")
Renderer = Callable[[T, text.Style], str]
Table = dict[str, Renderer[T]]

VALIDATE: Table[Validation] = {
    "text": lambda result, style: text.validation(result, style) + "\n",
    "json": lambda result, _: json.dumps(json.validation(result)) + "\n",
}

PLAN: Table[Planned] = {
    "text": lambda report, style: text.planned(report, style) + "\n",
    "json": lambda report, _: json.dumps(json.changeset(report.changes, report.refreshed)) + "\n",
    "markdown": lambda report, _: markdown.planned(report),
}

APPLY: dict[str, Callable[[text.Style, Mode], TextApply | JsonApply]] = {
    "text": lambda style, progress: apply.TextApply(style, progress),  # noqa: PLW0108 (loads it)
    "json": lambda style, progress: apply.JsonApply(style, progress),  # noqa: PLW0108
}
"""Apply's views also show what happens while it runs (see `views.apply`)."""

STATUS: Table[StatusReport] = {
    "text": lambda report, style: status.text(report, style) + "\n",
    "json": lambda report, _: json.dumps(status.json_report(report)) + "\n",
    "markdown": lambda report, _: status.markdown(report),
}

REFRESH: Table[Refreshed] = {
    "text": lambda result, style: health.refresh_text(result, style) + "\n",
    "json": lambda result, _: json.dumps(health.refresh_json(result)) + "\n",
}

WAIT: Table[Followed] = {
    "text": lambda result, style: health.wait_text(result, style) + "\n",
    "json": lambda result, _: json.dumps(health.wait_json(result)) + "\n",
}
"""`--wait`'s outcome; its rounds show as they come (`health.Rounds`)."""

STATE_LIST: Table[Listing] = {
    "text": lambda report, style: text.listing(report, style) + "\n",
    "json": lambda report, _: json.dumps(json.listing(report)) + "\n",
}

AUDIT_LOG: Table[AuditLog] = {
    "table": lambda log, style: audit.table(log, style) + "\n",
    "json": lambda log, _: json.dumps(audit.json_log(log)) + "\n",
    "csv": lambda log, _: audit.csv_log(log),
    "markdown": lambda log, _: audit.markdown_log(log),
}

AUDIT_VERIFY: Table[Verification] = {
    "text": lambda result, style: audit.verdict(result, style) + "\n",
    "json": lambda result, _: json.dumps(audit.json_verdict(result)) + "\n",
}

GRID: Table[Grids] = {
    "text": lambda report, style: grid.text(report, style) + "\n",
    "json": lambda report, _: json.dumps(grid.json_report(report)) + "\n",
    "markdown": lambda report, _: grid.markdown(report),
}
"""`backfill status`: each plan's sync, health and grid of targets x dates."""

AUDIT_REPORT: Table[Ran] = {
    "text": lambda ran, style: audit_report.text(ran, style) + "\n",
    "json": lambda ran, _: json.dumps(audit_report.json_report(ran)) + "\n",
    "markdown": lambda ran, _: audit_report.markdown(ran),
}
