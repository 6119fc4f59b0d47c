"""The stages composed: what `validate`, `plan` and `apply` share, from paths to a changeset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler import planning
from reconciler.diff import Changeset, diff
from reconciler.errors import InvalidPlans
from reconciler.expand import expand
from reconciler.load import load_paths
from reconciler.state import State
from reconciler.validate import Validated, check_document, check_repo


def validated(paths: Sequence[Path], *, changed: frozenset[Path] = frozenset()) -> Validated:
    """Every problem of every file, or the typed plans.

    The documents of `changed` files (resolved) are checked last, so that a problem between two
    files (a name used twice) is reported on the file a change touched, not the one it left."""
    loaded = load_paths(paths)
    checked = [check_document(document) for document in loaded.documents]
    if changed:
        checked.sort(key=lambda item: Path(item.document.file).resolve() in changed)
    return check_repo(checked, loaded.diagnostics, loaded.files)


def plans(paths: Sequence[Path], *, changed: frozenset[Path] = frozenset()) -> Validated:
    """Like `validated`, but invalid plans are an error: nothing is planned from them."""
    result = validated(paths, changed=changed)
    if not result.ok:
        raise InvalidPlans(list(result.diagnostics))
    return result


def changeset(result: Validated, state: State) -> Changeset:
    """expand -> diff -> plan submissions: the changeset with the calls that apply would make."""
    return planning.submissions(diff(expand(result.plans), state))
