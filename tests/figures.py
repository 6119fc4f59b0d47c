"""Figures that tests measure (trials, creates, duplicates, lost records...), shown at the end
of every pytest run by the hook in conftest.py, so that `make test` and CI print them."""

from __future__ import annotations

LINES: list[str] = []


def report(line: str) -> None:
    LINES.append(line)
    print(line)
