"""The stages composed: what `validate`, `plan` and `apply` share, from paths to a changeset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.diff import Changeset, diff
from reconciler.errors import InvalidPlans
from reconciler.expand import expand
from reconciler.load import load_paths
from reconciler.state import State
from reconciler.validate import Validated, validate


def validated(paths: Sequence[Path]) -> Validated:
    """Every problem of every file, or the typed plans."""
    return validate(load_paths(paths))


def plans(paths: Sequence[Path]) -> Validated:
    """Like `validated`, but invalid plans are an error: nothing is planned from them."""
    result = validated(paths)
    if not result.ok:
        raise InvalidPlans(list(result.diagnostics))
    return result


def changeset(result: Validated, state: State) -> Changeset:
    return diff(expand(result.plans), state)
