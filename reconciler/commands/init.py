"""`backfill init`: start a state, once; with a state branch, as that branch's first commit."""

from __future__ import annotations

from pathlib import Path

from reconciler import actor
from reconciler.commands.branch import StateBranch
from reconciler.reports.init import Started
from reconciler.state import init_state


def run(state_dir: Path, branch: StateBranch | None = None) -> Started:
    """The state in `state_dir`, made now unless there was one; with `branch`, nothing is made
    when the branch already holds a state, and a new one is pushed as its first commit."""
    if branch and not branch.require_none():
        return Started(state_dir, None, created=False, published=branch.where)
    state, created = init_state(state_dir, actor=actor.current("init"))
    if branch:
        branch.publish("backfill: start the state", journal_only=False)
    return Started(state_dir, state, created, published=branch.where if branch else "")
