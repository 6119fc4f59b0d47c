"""`backfill state ...`: read the state, and the two decisions only a person may take about an
unknown outcome: it ran (`import`) or it did not (`forget`)."""

from __future__ import annotations

from pathlib import Path

from reconciler import actor
from reconciler.errors import BackfillError
from reconciler.state import State, SubmissionRecord, SubmissionStatus, open_state

UNRESOLVED = (SubmissionStatus.PENDING, SubmissionStatus.UNKNOWN)


def find(state: State, key: str) -> SubmissionRecord:
    """A submission by its key or an unambiguous prefix of it, as git finds commits."""
    if key in state.submissions:
        return state.submissions[key]
    matches = [k for k in state.submissions if k.startswith(key)] if len(key) >= 4 else []
    if len(matches) == 1:
        return state.submissions[matches[0]]
    if matches:
        raise BackfillError(f"key prefix {key!r} is ambiguous: {', '.join(sorted(matches))}")
    raise BackfillError(f"no submission {key!r} in the state; `backfill state list` shows the keys")


def resolve(
    state_dir: Path, key: str, *, remote_id: str | None, reason: str, lock_timeout: float
) -> SubmissionRecord:
    """Record a person's verdict on an unknown submission: imported (ran) or forgotten (did not)."""
    command = "state import" if remote_id is not None else "state forget"
    with open_state(
        state_dir,
        actor=actor.current(command),
        command=f"backfill {command}",
        lock_timeout=lock_timeout,
    ) as writer:
        record = find(writer.state, key)
        if record.status not in UNRESOLVED:
            raise BackfillError(
                f"submission {record.key} is {record.status}, not unknown: only an unknown "
                "outcome can be imported or forgotten"
            )
        if remote_id is not None:
            writer.append("imported", {"key": record.key, "remote_id": remote_id, "reason": reason})
        else:
            writer.append("forgotten", {"key": record.key, "reason": reason})
        return writer.state.submissions[record.key]
