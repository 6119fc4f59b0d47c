"""`backfill status`: per declared plan, its sync and the health `refresh` journaled, as a grid
of targets x dates (`grids`); with `--live`, what the platforms say now of the backfills the
state records as submitted (`report`). Read-only: nothing is written and nothing is created
remotely."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler import pipeline, providers
from reconciler.diff import Changeset, PlanChanges
from reconciler.errors import BackfillError
from reconciler.expand import expand
from reconciler.grid import MARKS, Mark, PlanGrid, grids
from reconciler.providers.protocol import Connection, Progress, Provider
from reconciler.state import State, SubmissionRecord, SubmissionStatus, load_state

Ask = Callable[[Provider, SubmissionRecord, Connection], Progress]


@dataclass(frozen=True, slots=True)
class Tracked:
    record: SubmissionRecord
    progress: Progress


@dataclass(frozen=True, slots=True)
class Report:
    tracked: tuple[Tracked, ...]
    unsettled: tuple[SubmissionRecord, ...]
    """Submissions whose outcome is unknown: the state cannot say what to ask the platform."""

    @property
    def ok(self) -> bool:
        """Every platform answered (whatever the backfills' own progress)."""
        return not any(t.progress.error for t in self.tracked)


def _ask(provider: Provider, record: SubmissionRecord, connection: Connection) -> Progress:
    return provider.progress(record, connection)


def report(
    state: State,
    endpoints: Mapping[str, str],
    *,
    plan: str | None = None,
    timeout: float = 30.0,
    ask: Ask | None = None,
) -> Report:
    """One progress query per submitted backfill (of `plan`, if given), oldest first."""
    ask = ask or _ask
    records = sorted(
        (r for r in state.submissions.values() if plan is None or r.plan == plan),
        key=lambda r: r.intent_seq,
    )
    if plan is not None and not records:
        raise BackfillError(
            f"no submission of plan {plan!r} in the state; `backfill state list` shows them"
        )
    tracked = []
    for record in records:
        if record.status is not SubmissionStatus.SUBMITTED:
            continue
        provider = providers.get(record.provider)
        url = providers.endpoint(provider, record.region, endpoints)
        if record.emulator and not providers.is_loopback(url):
            # its remote id means nothing to the real platform, which would answer "not found"
            progress = Progress(
                "unknown",
                error=f"submitted to the built-in emulator at {record.endpoint}; "
                "pass --endpoint to ask an emulator",
            )
        else:
            progress = ask(provider, record, Connection(url, timeout=timeout))
        tracked.append(Tracked(record, progress))
    unsettled = tuple(r for r in records if r.needs_attention)
    return Report(tuple(tracked), unsettled)


@dataclass(frozen=True, slots=True)
class Grids:
    """Every declared plan (or one) with its sync, as `plan` counts it, and its grid."""

    changes: Changeset
    grids: tuple[PlanGrid, ...]
    seq: int
    """The journal event the state was read at."""
    warnings: tuple[str, ...] = ()

    def sync(self, plan: str) -> PlanChanges:
        """The plan's counts in `changes` (every grid's plan has them)."""
        return next(p for p in self.changes.plans if p.plan.name == plan)

    @property
    def totals(self) -> Mapping[Mark, int]:
        counts: Counter[Mark] = Counter()
        for grid in self.grids:
            counts.update(grid.counts)
        return {mark: counts[mark] for mark in MARKS if counts[mark]}


def grid_report(paths: Sequence[Path], state_dir: Path, *, plan: str | None = None) -> Grids:
    """The plans' cells against the state: no platform is asked (`refresh` asks them)."""
    valid = pipeline.plans(paths)
    if plan is not None and plan not in {p.name for p in valid.plans}:
        raise BackfillError(
            f"no plan named {plan!r} in {', '.join(str(p) for p in paths)}; `backfill status`"
            " without a name shows every declared plan"
        )
    state = load_state(state_dir)
    changes = pipeline.changeset(valid, state)
    return Grids(changes, grids(expand(valid.plans), state, plan=plan), state.seq, state.warnings)
