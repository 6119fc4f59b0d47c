"""Third stage: each plan becomes its desired cells, grouped by parameter fingerprint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler import providers
from reconciler.domain import CellGroup, Plan


@dataclass(frozen=True, slots=True)
class Desired:
    """What one plan asks for: its cells, in groups that share every request parameter."""

    plan: Plan
    groups: tuple[CellGroup, ...]


def cell_groups(plan: Plan) -> tuple[CellGroup, ...]:
    """What one plan asks for, as its provider groups its cells."""
    return tuple(providers.get(plan.provider).cell_groups(plan))


def expand(plans: Sequence[Plan]) -> tuple[Desired, ...]:
    return tuple(Desired(plan, cell_groups(plan)) for plan in plans)
