"""The stages composed: what `validate`, `plan` and `apply` share, from paths to a changeset."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import InvalidPlans
from reconciler.load import load_paths
from reconciler.validate import Validated, validate

if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.state import State


def validated(paths: Sequence[Path], *, changed: frozenset[Path] = frozenset()) -> Validated:
    """Every problem of every file, or the typed plans.

    The documents of `changed` files (resolved) are checked last, so that a problem between two
    files (a name used twice) is reported on the file a change touched, not the one it left."""
    loaded = load_paths(paths)
    if changed:
        ordered = sorted(loaded.documents, key=lambda d: Path(d.file).resolve() in changed)
        loaded = dataclasses.replace(loaded, documents=tuple(ordered))
    return validate(loaded)


def plans(paths: Sequence[Path], *, changed: frozenset[Path] = frozenset()) -> Validated:
    """Like `validated`, but invalid plans are an error: nothing is planned from them."""
    result = validated(paths, changed=changed)
    if not result.ok:
        raise InvalidPlans(list(result.diagnostics))
    return result


def changeset(result: Validated, state: State) -> Changeset:
    """expand -> diff -> plan submissions: the changeset with the calls that apply would make."""
    # The later stages load here, not with the module: `validate` runs the first two alone
    # (a pre-commit hook), without the diff and the state store behind it.
    from reconciler import planning  # noqa: PLC0415
    from reconciler.diff import diff  # noqa: PLC0415
    from reconciler.expand import expand  # noqa: PLC0415

    return planning.submissions(diff(expand(result.plans), state))
