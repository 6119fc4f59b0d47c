"""The stages composed: what `validate`, `plan` and `apply` share, from paths to a changeset.

Each plan file is loaded, checked and expanded without looking at any other, so the files of a
big repo are shared with forked helpers, one per spare core (`parallel`); what spans files
(unique names, overlapping plans, the diff against the state) takes each part as it comes back,
in the files' order, and keeps of it only what the rules across files need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reconciler.bulk import bulk
from reconciler.errors import Diagnostic, InvalidPlans
from reconciler.load import discover, load_file
from reconciler.parallel import Shared
from reconciler.validate import Checked, Repo, Validated, Validation, check_document

if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.domain import CellGroup
    from reconciler.expand import Desired
    from reconciler.state import State

T = TypeVar("T")

FILES_PER_PROCESS = 400
"""Fewer files than this per process, and forking a helper costs more than it saves."""


@dataclass(frozen=True, slots=True)
class Planned(Validated):
    """Valid plans with what each asks for, expanded where its file was read."""

    desired: tuple[Desired, ...]


@dataclass(frozen=True, slots=True)
class _File:
    """One file as it was read: its problems and its documents, each checked on its own; for
    `plan`, the cell groups of each document that is a plan."""

    problems: list[Diagnostic]
    checked: list[Checked]
    groups: list[tuple[CellGroup, ...]]


def _read(files: Sequence[str], expanding: bool, typed: bool) -> list[_File]:
    read = []
    for file in files:
        documents, problems = load_file(Path(file))
        checked = [check_document(document, typed=typed) for document in documents]
        groups = [_groups(item) if expanding else () for item in checked]
        read.append(_File(problems, checked, groups))
    return read


def _groups(item: Checked) -> tuple[CellGroup, ...]:
    """The cell groups of a valid plan; those of all its targets hold its footprint's tuple of
    them, not an equal one: both are kept to the end of a big repo's `plan` (the diff keeps the
    targets whose days are all declared)."""
    from reconciler.expand import cell_groups  # noqa: PLC0415 (`plan`'s: `validate` expands nothing)

    if item.plan is None or item.footprint is None:
        return ()
    targets = item.footprint.targets
    return tuple(
        replace(group, targets=targets) if group.targets == targets else group
        for group in cell_groups(item.plan)
    )


def _discovered(paths: Sequence[Path]) -> tuple[list[str], list[Diagnostic]]:
    """The plan files by name: a path object weighs five times its name, and a big repo's list
    is held until each file is read, here and (in the pages it shares) in each helper."""
    files, found = discover(paths)
    return [str(file) for file in files], found


def _reading(
    files: Sequence[str], *, expanding: bool, typed: bool = True
) -> Shared[str, list[_File]]:
    return Shared(
        partial(_read, expanding=expanding, typed=typed), files, per_process=FILES_PER_PROCESS
    )


def _checked_repo(
    files: int,
    found: list[Diagnostic],
    reading: Shared[str, list[_File]],
    changed: frozenset[Path],
    each: Callable[[Desired], object] | None = None,
) -> Validated:
    """The repo checked as its files are read, in their order; `each` is given every plan
    that is valid so far, with its cell groups, at once (a problem across plans, found at the
    end, may still make the repo invalid), so that neither has to be held until the end: the
    result then names the valid plans, and `each` is what holds them."""
    repo = Repo(found, keep_plans=each is None)
    later: list[tuple[Checked, tuple[CellGroup, ...]]] = []
    if each is not None:
        from reconciler.expand import Desired  # noqa: PLC0415 (`validate` expands nothing)

    def add(item: Checked, groups: tuple[CellGroup, ...]) -> None:
        plan = repo.add(item)
        if plan is not None and each is not None:
            each(Desired(plan, groups))

    for chunk in reading.each():
        for file in chunk:
            repo.load_problems(file.problems)
            for item, groups in zip(file.checked, file.groups, strict=True):
                # a problem between two files (a name used twice) goes to the one changed
                if changed and Path(item.document.file).resolve() in changed:
                    later.append((item, groups))
                else:
                    add(item, groups)
    for item, groups in later:
        add(item, groups)
    return repo.result(files)


def validated(paths: Sequence[Path], *, changed: frozenset[Path] = frozenset()) -> Validated:
    """Every problem of every file, or the typed plans.

    The documents of `changed` files (resolved) are checked last, so that a problem between two
    files (a name used twice) is reported on the file a change touched, not the one it left."""
    with bulk():
        files, found = _discovered(paths)
        count, reading = len(files), _reading(files, expanding=False)
        del files  # the chunks hold them, each let go once read
        try:
            return _checked_repo(count, found, reading, changed)
        finally:
            reading.close()


def validation(paths: Sequence[Path]) -> Validation:
    """Like `validated`, without typing the plans: what `validate` reports, which needs only the
    plan schema, not the contract's models."""
    with bulk():
        files, found = _discovered(paths)
        count, reading = len(files), _reading(files, expanding=False, typed=False)
        del files  # the chunks hold them, each let go once read
        try:
            return _checked_repo(count, found, reading, frozenset())
        finally:
            reading.close()


def _valid_while(
    paths: Sequence[Path],
    meanwhile: Callable[[], T],
    taking: Callable[[T], Callable[[Desired], object]],
    changed: frozenset[Path],
) -> tuple[Validated, T]:
    """The repo checked, and what `meanwhile` returns, run while helpers read the files; the
    plans valid so far go, with their cell groups, to what `taking` makes of that. Its errors
    count only if the plans are valid, as if it ran after (and then nothing takes the plans)."""
    files, found = _discovered(paths)
    count, reading = len(files), _reading(files, expanding=True)
    del files  # the chunks hold them, each let go once read
    try:
        try:
            other = meanwhile()
            each: Callable[[Desired], object] | None = taking(other)
            failure: Exception | None = None
        except Exception as error:  # news only if the plans are valid, as if it ran after
            each, failure = None, error
        result = _checked_repo(count, found, reading, changed, each)
    finally:
        reading.close()
    if not result.ok:
        raise InvalidPlans(list(result.diagnostics))
    if failure is not None:
        raise failure
    return result, other


def plans_while(
    paths: Sequence[Path], meanwhile: Callable[[], T], *, changed: frozenset[Path] = frozenset()
) -> tuple[Planned, T]:
    """Like `plans`, and what `meanwhile` returns, run while helpers read the files. Its errors
    count only if the plans are valid, as if it ran after."""
    desired: list[Desired] = []
    with bulk():
        result, other = _valid_while(paths, meanwhile, lambda _: desired.append, changed)
        planned = Planned(
            names=result.names,
            plans=tuple(item.plan for item in desired),
            diagnostics=result.diagnostics,
            files=result.files,
            documents=result.documents,
            desired=tuple(desired),
        )
        return planned, other


def plans(paths: Sequence[Path], *, changed: frozenset[Path] = frozenset()) -> Planned:
    """Like `validated`, but invalid plans are an error: nothing is planned from them."""
    return plans_while(paths, lambda: None, changed=changed)[0]


def changes_while(
    paths: Sequence[Path], state: Callable[[], State], *, changed: frozenset[Path] = frozenset()
) -> tuple[State, Changeset]:
    """The state `state` loads, while helpers read the files, and the changeset of the plans
    against it, each plan diffed as it is read: its cells are let go at once, so a big repo's
    cells are never all held (`plan`, on the state as journaled). Invalid plans are an error,
    and then so is the state's."""
    from reconciler import planning  # noqa: PLC0415 (see `changeset`)
    from reconciler.diff import Diff  # noqa: PLC0415

    diffs: list[Diff] = []

    def taking(current: State) -> Callable[[Desired], object]:
        diffs.append(Diff(current))
        return diffs[0].add

    with bulk():
        current = _valid_while(paths, state, taking, changed)[1]
        return current, planning.submissions(diffs[0].changeset())


def changeset(result: Validated, state: State) -> Changeset:
    """expand -> diff -> plan submissions: the changeset with the calls that apply would make."""
    # The later stages load here, not with the module: `validate` runs the first two alone
    # (a pre-commit hook), without the diff and the state store behind it.
    from reconciler import planning  # noqa: PLC0415
    from reconciler.diff import diff  # noqa: PLC0415
    from reconciler.expand import expand  # noqa: PLC0415

    with bulk():
        desired = result.desired if isinstance(result, Planned) else expand(result.plans)
        return planning.submissions(diff(desired, state))
