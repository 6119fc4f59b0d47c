"""What `init` found or made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# Types only: a view that imports this module must not load the stages' dependencies with it.
if TYPE_CHECKING:
    from reconciler.state import State


@dataclass(frozen=True, slots=True)
class Started:
    """`backfill init`: the state as it is now, and whether this run made it."""

    state_dir: Path
    state: State | None
    """None when the state's branch already held one (nothing was done here)."""
    created: bool
    published: str = ""
    """The remote branch the new state was pushed to, or that already held one."""
