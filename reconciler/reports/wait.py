"""What `--wait` followed: the health of each cell, and the exit code it comes to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reconciler.domain import FINAL_HEALTH, Health
from reconciler.errors import WAIT_INTERRUPTED, WAIT_TIMED_OUT


@dataclass(frozen=True, slots=True)
class CellHealth:
    """One followed cell, as its latest submitted attempt was last observed (None: never)."""

    plan: str
    target: str
    date: str
    health: Health | None
    raw: str
    key: str


@dataclass(frozen=True, slots=True)
class Followed:
    """`--wait`: the followed cells after a round, and what the round could not read."""

    cells: tuple[CellHealth, ...]
    errors: tuple[str, ...] = ()
    interrupted: bool = False
    """Ctrl-C stopped the waiting."""

    @property
    def final(self) -> bool:
        return all(c.health in FINAL_HEALTH for c in self.cells)

    @property
    def failed(self) -> tuple[CellHealth, ...]:
        """Final without having succeeded (failed, or stopped on the platform)."""
        return tuple(
            c for c in self.cells if c.health in FINAL_HEALTH and c.health is not Health.SUCCEEDED
        )

    def per_plan(self) -> dict[str, Counter[Health | None]]:
        counts: dict[str, Counter[Health | None]] = {}
        for cell in self.cells:
            counts.setdefault(cell.plan, Counter())[cell.health] += 1
        return counts

    @property
    def exit_code(self) -> int:
        """WAIT_INTERRUPTED, 1 when a cell did not succeed, 0 when all did, else WAIT_TIMED_OUT."""
        if self.interrupted:
            return WAIT_INTERRUPTED
        if self.failed:
            return 1
        return 0 if self.final else WAIT_TIMED_OUT
