"""What `refresh` and `--wait` show: a refresh's summary, the progress of a long one and of each
waiting round (a live line on a terminal, plain lines in a log, nothing with --quiet), and the
cells that did not succeed. The progress printers keep a little state (when they last spoke)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import click

from reconciler.domain import FINAL_HEALTH, Health
from reconciler.errors import WAIT_INTERRUPTED, WAIT_TIMED_OUT
from reconciler.views import json, text

if TYPE_CHECKING:
    from reconciler.reports.refresh import Refreshed
    from reconciler.reports.wait import CellHealth, Followed
    from reconciler.views.progress import Mode

_ORDER: tuple[Health | None, ...] = (
    Health.FAILED,
    Health.STOPPED,
    Health.RUNNING,
    Health.WAITING,
    Health.UNKNOWN,
    None,
)


def refresh_text(result: Refreshed, style: text.Style) -> str:
    lines = [text.refreshed(result)]
    for seen in result.errors:
        lines.append(
            style(f"  could not read {seen.record.key} ({seen.record.plan}): ", fg="yellow")
            + seen.error
        )
    return "\n".join(lines)


def refresh_json(result: Refreshed) -> dict[str, Any]:
    return {
        **json.refreshed(result),
        "changed": len(result.observed),
        "observed": [
            {"key": o.key, "plan": o.plan, "cells": [list(run) for run in o.cells]}
            for o in result.observed
        ],
    }


def plan_counts(result: Followed, separator: str = "; ") -> str:
    """`orders 4/6 succeeded, 1 failed, 1 running; events 2/2 succeeded`."""
    parts = []
    for plan, counts in sorted(result.per_plan().items()):
        total = sum(counts.values())
        words = [f"{counts[Health.SUCCEEDED]}/{total} succeeded"]
        words += [f"{counts[h]} {h or 'not observed'}" for h in _ORDER if counts[h]]
        parts.append(f"{plan} {', '.join(words)}")
    return separator.join(parts) or "no submitted cells"


def failed_lines(cells: tuple[CellHealth, ...]) -> list[str]:
    return [
        f"  {c.plan}  target {c.target}  {c.date}  {c.health}" + (f" ({c.raw})" if c.raw else "")
        for c in cells
    ]


def wait_text(result: Followed, style: text.Style) -> str:
    code = result.exit_code
    lines = [plan_counts(result, "\n")]
    if result.failed:
        lines.append(style(f"{text.plural(len(result.failed), 'cell')} did not succeed:", fg="red"))
        lines += failed_lines(result.failed)
    if code == WAIT_TIMED_OUT:
        open_cells = sum(1 for c in result.cells if c.health not in FINAL_HEALTH)
        lines.append(
            style(
                f"Timed out with {text.plural(open_cells, 'cell')} not final (exit "
                f"{WAIT_TIMED_OUT}); the backfills go on: `backfill status --wait` follows them "
                "again.",
                fg="yellow",
            )
        )
    elif code == WAIT_INTERRUPTED:
        lines.append("Stopped waiting; the backfills go on. The state keeps what was read.")
    elif code == 0:
        lines.append(style("Every cell succeeded.", fg="green"))
    return "\n".join(lines)


def wait_json(result: Followed) -> dict[str, Any]:
    return {
        "exit_code": result.exit_code,
        "final": result.final,
        "plans": {
            plan: {str(h) if h else "not_observed": n for h, n in counts.items()}
            for plan, counts in sorted(result.per_plan().items())
        },
        "failed": [
            {
                "plan": c.plan,
                "target": c.target,
                "date": c.date,
                "health": str(c.health),
                "raw": c.raw,
                "key": c.key,
            }
            for c in result.failed
        ],
        "errors": list(result.errors),
    }


class Rounds:
    """The progress of a wait: one line per round (`lines`), one live line (`tty`), or nothing
    (`quiet`); with an ETA from how fast cells became final."""

    def __init__(
        self,
        mode: Mode,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode, self.stream, self.clock = mode, stream, clock
        self.started = clock()
        self.first_final: int | None = None
        self._live = False

    def __call__(self, result: Followed) -> None:
        if self.mode == "quiet":
            return
        final = sum(1 for c in result.cells if c.health in FINAL_HEALTH)
        if self.first_final is None:
            self.first_final = final
        elapsed = self.clock() - self.started
        eta = self._eta(final, len(result.cells), elapsed)
        line = f"[{elapsed:.0f}s] {plan_counts(result)}  ETA {eta}"
        for error in result.errors:
            self._clear()
            click.echo(f"warning: {error}", self.stream, err=True)
        if self.mode == "tty":
            click.echo("\r\x1b[2K" + line, self.stream, nl=False, err=True)
            self._live = True
        else:
            click.echo(line, self.stream, err=True)

    def _eta(self, final: int, total: int, elapsed: float) -> str:
        gained = final - (self.first_final or 0)
        if final >= total:
            return "-"
        if gained <= 0 or elapsed <= 0:
            return "?"
        return f"{(total - final) * elapsed / gained:.0f}s"

    def finish(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._live:
            click.echo("\r\x1b[2K", self.stream, nl=False, err=True)
            self._live = False


class Asked:
    """The progress of a long refresh on stderr: a live count on a terminal, a line every few
    seconds in a log, nothing with --quiet."""

    def __init__(
        self, mode: Mode, *, every: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.mode, self.every, self.clock = mode, every, clock
        self.last = clock()
        self._live = False

    def __call__(self, done: int, total: int) -> None:
        if self.mode == "quiet":
            return
        line = f"refresh: {done}/{total} backfills asked"
        if self.mode == "tty":
            click.echo("\r" + line, nl=False, err=True)
            self._live = True
        elif self.clock() - self.last >= self.every and done < total:
            click.echo(line, err=True)
            self.last = self.clock()

    def finish(self) -> None:
        if self._live:
            click.echo("\r\x1b[2K", nl=False, err=True)
            self._live = False
