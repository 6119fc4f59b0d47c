"""What `refresh` read and journaled (and `plan --refresh`, `apply --refresh`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.providers.protocol import Instance
    from reconciler.state import SubmissionRecord


@dataclass(frozen=True, slots=True)
class Seen:
    """What one refresh read of one submission: the health of its cells not final yet, or why
    it could not be read."""

    record: SubmissionRecord
    cells: tuple[Instance, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class Observed:
    """An `observed` event a refresh journaled: the cells of one submission whose health or
    word changed, as journaled (`[target, dates, health, raw]` runs)."""

    key: str
    plan: str
    cells: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Refreshed:
    """`backfill refresh`: how many submissions it asked about and what it journaled."""

    asked: int
    final: int
    """Submitted backfills already final before it began: not asked."""
    observed: tuple[Observed, ...] = ()
    errors: tuple[Seen, ...] = ()
    """The submissions it could not read (their `error`)."""
    cells: int = 0
    """Cells read (of the submissions read: those not final yet)."""
    changed_cells: int = 0
    """Cells read whose health is not what the state said, or that it had never seen."""
