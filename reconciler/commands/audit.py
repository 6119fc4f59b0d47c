"""`backfill audit log`: the submission attempts the state's journal holds, of one plan or
since a time. (`audit verify` is the state's own verdict, `state.verify`.)"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from reconciler.state import AuditLog, audit_log


def log(directory: Path, *, plan: str | None = None, since: datetime | None = None) -> AuditLog:
    """The attempts of one plan and/or whose intent was journaled at or after `since` (UTC)."""
    found = audit_log(directory)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    chosen = tuple(
        attempt
        for attempt in found.attempts
        if (plan is None or attempt.record.plan == plan)
        and (since is None or datetime.fromisoformat(attempt.intent.time) >= since)
    )
    return dataclasses.replace(found, attempts=chosen)
