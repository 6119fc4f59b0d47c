"""What `audit report` found each plan ran, and what never succeeded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.domain import JSON


@dataclass(frozen=True, slots=True)
class Succeeded:
    """Consecutive dates of one target that one attempt ran to success."""

    target: str
    spans: tuple[tuple[int, int], ...]
    key: str
    revision: int
    remote_id: str
    finished: str
    """When `refresh` first journaled them succeeded (the platform's time is not journaled)."""
    actor: Mapping[str, JSON]
    """Who journaled the attempt's intent: user, commit, pull request, workflow run."""
    replaces: tuple[str, ...]
    """A retry's: the attempts whose failed cells it ran again."""


@dataclass(frozen=True, slots=True)
class NeverSucceeded:
    """Consecutive dates of one target that no attempt ran to success, and why not, as the
    last attempt at them stands."""

    target: str
    spans: tuple[tuple[int, int], ...]
    last: str
    """`failed`, `running`, `submitted` (not observed), `rejected`, `unknown`, ..."""
    attempts: int
    """Attempts at these cells that may have run (rejected, unsent or forgotten did not)."""


@dataclass(frozen=True, slots=True)
class PlanRan:
    plan: str
    succeeded: tuple[Succeeded, ...]
    never: tuple[NeverSucceeded, ...]


@dataclass(frozen=True, slots=True)
class Ran:
    journal: Path
    plans: tuple[PlanRan, ...]
    seq: int
    head_hash: str
    warnings: tuple[str, ...] = ()
