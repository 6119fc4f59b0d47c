"""What `apply`'s calls came to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.domain import OutcomeKind

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.domain import JSON
    from reconciler.execute import Result


@dataclass(frozen=True, slots=True)
class Tally:
    """What a run's calls came to, as every report of an apply counts them."""

    submitted: int
    not_created: int
    """Rejected, or still throttled after the last attempt: nothing was created."""
    unknown: int
    not_sent: int
    """Journaled, but no connection could be made: nothing was created."""
    not_attempted: int
    """Not journaled: the run stopped, or their endpoint took no more calls."""

    @classmethod
    def of(cls, results: Sequence[Result], planned: int) -> Tally:
        kinds = [r.outcome.kind for r in results]
        return cls(
            submitted=kinds.count(OutcomeKind.SUBMITTED),
            not_created=kinds.count(OutcomeKind.REJECTED) + kinds.count(OutcomeKind.RETRYABLE),
            unknown=kinds.count(OutcomeKind.UNKNOWN),
            not_sent=kinds.count(OutcomeKind.UNSENT),
            not_attempted=planned - len(results),
        )

    @property
    def all_submitted(self) -> bool:
        return not (self.not_created or self.unknown or self.not_sent)


@dataclass(frozen=True, slots=True)
class Applied:
    """`backfill apply`: what its calls came to, and why the run failed beyond them."""

    changes: Changeset
    results: tuple[Result, ...] = ()
    reasons: tuple[str, ...] = ()
    """Why the run failed beyond its calls: a publish that failed, cells needing attention."""
    actors: Mapping[str, Mapping[str, JSON]] | None = None
    """Each plan's actor (its commit and pull request), for the pull request comments."""
    signal: int = 0
    """The signal that stopped the run after its calls in flight (0: none)."""

    @property
    def planned(self) -> int:
        return len(self.changes.creates)

    @property
    def tally(self) -> Tally:
        return Tally.of(self.results, self.planned)
