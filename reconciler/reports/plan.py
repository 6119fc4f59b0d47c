"""What `plan` found: the calls an apply would make; and what a lookup of an unknown outcome
said (`plan --recover`, `apply --recover`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.providers.protocol import Lookup
    from reconciler.reports.refresh import Refreshed
    from reconciler.state import SubmissionRecord


@dataclass(frozen=True, slots=True)
class Finding:
    """What a remote lookup said of a submission whose outcome is unknown."""

    record: SubmissionRecord
    lookup: Lookup


@dataclass(frozen=True, slots=True)
class Planned:
    """`backfill plan`: the calls an apply would make, and what the run found on the way."""

    changes: Changeset
    changed: frozenset[Path] | None = None
    """With --changed-since: the files the change touched (their plans are shown apart)."""
    findings: tuple[Finding, ...] | None = None
    """With --recover: the lookups, as if journaled (plan writes nothing)."""
    saved: Path | None = None
    """With --out: where the plan was saved."""
    refreshed: Refreshed | None = None
    """With --refresh: what the platforms said (as if journaled: plan writes nothing)."""
