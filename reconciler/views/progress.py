"""Apply progress: one live status line on a terminal, one plain line per call in a log, or
only the calls that failed (`--quiet`). The only view that keeps state: it counts results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TextIO

import click

from reconciler.domain import OutcomeKind
from reconciler.views import text

if TYPE_CHECKING:
    from reconciler.execute import Result

Mode = Literal["tty", "lines", "quiet"]


class Progress:
    def __init__(
        self,
        total: int,
        *,
        mode: Mode,
        style: text.Style,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.mode, self.style = total, mode, style
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.done = 0
        self.counts = dict.fromkeys(OutcomeKind, 0)
        self._live = False

    def update(self, result: Result) -> None:
        self.done += 1
        self.counts[result.outcome.kind] += 1
        problem = result.outcome.kind is not OutcomeKind.SUBMITTED
        if self.mode == "lines" or problem:
            self._clear()
            click.echo(text.result_line(result, self.done, self.total, self.style), self.stream)
        if self.mode == "tty":
            click.echo("\r" + self.status(), self.stream, nl=False)
            self._live = True

    def status(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 and left else "-"
        failed = sum(
            self.counts[kind]
            for kind in (OutcomeKind.REJECTED, OutcomeKind.RETRYABLE, OutcomeKind.UNSENT)
        )
        return (
            f"[{self.done}/{self.total}] {rate:.1f} calls/s  "
            f"submitted {self.counts[OutcomeKind.SUBMITTED]}  failed {failed}  "
            f"unknown {self.counts[OutcomeKind.UNKNOWN]}  ETA {eta}"
        )

    def finish(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._live:
            click.echo("\r\x1b[2K", self.stream, nl=False)
            self._live = False
