"""What `state list` chose; a person's verdict that `state import` and `state forget` journal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.state import IntentDetails, SubmissionRecord


@dataclass(frozen=True, slots=True)
class Listing:
    """`backfill state list`: the submissions chosen, oldest intent first."""

    records: tuple[SubmissionRecord, ...]
    total: int
    """Submissions in the state, chosen or not."""
    seq: int
    details: Mapping[str, IntentDetails] | None = None
    """What each chosen record's intent journaled, when the view shows it."""
    warnings: tuple[str, ...] = ()
    """About the state's files (a torn last line, a snapshot ignored)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A person's word on one submission: it ran as `remote_id`, or (None) it did not run."""

    key: str
    remote_id: str | None
