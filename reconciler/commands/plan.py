"""`backfill plan`: the exact calls an apply would make, from the plan files and the state alone.
Writes nothing but the saved plan (`--out`); looks unknown outcomes up only when asked."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import pipeline
from reconciler.errors import BackfillError
from reconciler.reports.plan import Planned
from reconciler.state import State, load_state

if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.reports.plan import Finding
    from reconciler.reports.refresh import Refreshed


@dataclass(frozen=True, slots=True)
class PlanOptions:
    paths: Sequence[Path]
    state_dir: Path
    endpoints: Mapping[str, str]
    recover: bool = False
    """Look unknown outcomes up first, and plan as if what they found were journaled."""
    refresh: bool = False
    """Ask what became of the submitted cells first, and plan as if it were journaled."""
    out: Path | None = None
    """Save the plan here, for `apply FILE` to make exactly its calls."""
    changed_since: str | None = None
    """A commit (a pull request's base): the plans of files changed since then are this
    change's calls, shown apart from work already pending."""


def run(options: PlanOptions) -> Planned:
    """Raises InvalidPlans with every problem of the plan files: nothing is planned from them."""
    changed = _changed(options.changed_since)
    if options.recover and options.out:
        raise BackfillError(
            "--out cannot be used with --recover: save plans of the journaled state"
        )
    if options.refresh and options.out:
        raise BackfillError(
            "--out cannot be used with --refresh: save plans of the journaled state"
        )

    def loaded() -> State:
        return load_state(options.state_dir, missing_ok=True).indexed()

    if not options.recover and not options.refresh:  # each plan diffed as its file is read
        current, changes = pipeline.changes_while(
            options.paths, loaded, changed=changed or frozenset()
        )
        findings = refreshed = None
    else:
        current, changes, findings, refreshed = _previewed(options, loaded, changed)
    if options.out and not changes.conflicts:
        from reconciler.commands import saved  # noqa: PLC0415 (its models: only --out saves)

        saved.save(options.out, options.paths, changes, current)
    return Planned(
        changes,
        changed=changed,
        findings=findings,
        saved=options.out if options.out and not changes.conflicts else None,
        refreshed=refreshed,
    )


def _changed(since: str | None) -> frozenset[Path] | None:
    """The files changed since `since`, a commit; None without one."""
    if not since:
        return None
    from reconciler import git  # noqa: PLC0415 (a pull request's check asks git, a plan need not)

    return git.changed_files(Path.cwd(), since)


def _previewed(
    options: PlanOptions, loaded: Callable[[], State], changed: frozenset[Path] | None
) -> tuple[State, Changeset, tuple[Finding, ...] | None, Refreshed | None]:
    """The changeset of the state as `--recover` and `--refresh` would make it: asked of the
    platforms once the plans are known valid, so the plans are diffed after; what recovery
    found and what the refresh read."""
    result, current = pipeline.plans_while(options.paths, loaded, changed=changed or frozenset())
    findings = refreshed = None
    if options.recover:
        from reconciler.commands import recover  # noqa: PLC0415 (its state writer and actor)

        findings = tuple(recover.look_up(current, options.endpoints))
        current = recover.preview(current, list(findings))
    if options.refresh:
        from reconciler.commands import refresh  # noqa: PLC0415 - a plan that asks no platform loads no client

        seen = list(refresh.read(current, options.endpoints))
        refreshed = refresh.summary(current, seen)
        current = refresh.preview(current, seen)
    return current, pipeline.changeset(result, current), findings, refreshed


def exit_code(planned: Planned, *, detailed: bool) -> int:
    """1 on conflicts; with `detailed`, 3 when cells need attention (an unknown outcome, or
    cells that failed every attempt), 2 when calls are pending, 0 when there is nothing to do;
    0 otherwise."""
    changes = planned.changes
    if changes.conflicts:
        return 1
    if not detailed:
        return 0
    if changes.attention or changes.exhausted:
        return 3
    return 2 if changes.has_changes else 0
