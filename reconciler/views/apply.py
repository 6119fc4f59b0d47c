"""What `backfill apply` shows while it runs and once it is done, one class per `--format`.

While it runs: the lookups and the plan (text only), the approval prompt, each call's outcome
as it comes (`views.progress`), and a signal that stops it. Once done: the summary (text) or
the plan and the results (JSON) on standard output, and why the run failed on standard error.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from reconciler.remedies import plural
from reconciler.views import health, json, text
from reconciler.views.progress import Mode, Progress

if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.domain import Submission
    from reconciler.reports.apply import Applied
    from reconciler.reports.plan import Finding
    from reconciler.reports.refresh import Refreshed


class TextApply:
    def __init__(self, style: text.Style, progress: Mode) -> None:
        self.style, self.mode = style, progress

    def recovered(self, findings: Sequence[Finding]) -> None:
        click.echo(text.findings(findings, self.style, written=True) + "\n")

    def refreshed(self, result: Refreshed) -> None:
        click.echo(health.refresh_text(result, self.style) + "\n")

    def planned(self, changes: Changeset) -> None:
        click.echo(text.changeset(changes, self.style))

    @property
    def can_ask(self) -> bool:
        return sys.stdin.isatty()

    def approve(self, creates: Sequence[Submission]) -> bool:
        return _approve(creates)

    def progress(self, total: int) -> Progress:
        return Progress(total, mode=self.mode, style=self.style)

    def stopping(self, signum: int, drain: float) -> None:
        _stopping(signum, drain)

    def done(self, applied: Applied) -> None:
        if applied.planned:  # with nothing to make, the plan above said it all
            click.echo(text.apply_summary(applied.results, applied.planned, self.style))
        _problems(applied)


class JsonApply:
    """One JSON document on standard output, the plan and the results; outcomes that are no
    success still show on standard error as they come."""

    def __init__(self, style: text.Style, progress: Mode) -> None:
        self.style = style
        self._refreshed: Refreshed | None = None

    def recovered(self, findings: Sequence[Finding]) -> None:
        """In the document: the state it plans from has them."""

    def refreshed(self, result: Refreshed) -> None:
        """In the document (the plan's `refresh`); journaled, so that `backfill status --format
        json` shows where the cells are."""
        self._refreshed = result

    def planned(self, changes: Changeset) -> None:
        """In the document, at the end."""

    @property
    def can_ask(self) -> bool:
        return sys.stdin.isatty()

    def approve(self, creates: Sequence[Submission]) -> bool:
        return _approve(creates)

    def progress(self, total: int) -> Progress:
        return Progress(total, mode="quiet", style=self.style, stream=sys.stderr)

    def stopping(self, signum: int, drain: float) -> None:
        _stopping(signum, drain)

    def done(self, applied: Applied) -> None:
        click.echo(json.dumps(json.applied(applied, self._refreshed)))
        _problems(applied)


def _approve(creates: Sequence[Submission]) -> bool:
    click.echo(
        f"\nDo you want to make these {plural(len(creates), 'call')}?\n"
        "  Only 'yes' will be accepted to approve.\n"
    )
    answer: str = click.prompt("  Enter a value", default="", show_default=False)
    return answer.strip() == "yes"


def _stopping(signum: int, drain: float) -> None:
    click.echo(
        f"\n{signal.Signals(signum).name}: dispatching nothing more; waiting up to "
        f"{drain:.0f}s for the calls in flight. Signal again to exit at once.",
        err=True,
    )


def _problems(applied: Applied) -> None:
    for reason in applied.reasons:
        click.echo(f"error: {reason}", err=True)
    if applied.signal:
        click.echo(
            f"Interrupted by {signal.Signals(applied.signal).name}: every call in flight finished"
            " and was journaled; run apply again to make the rest.",
            err=True,
        )
