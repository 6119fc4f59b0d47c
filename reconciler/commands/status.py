"""`backfill status`: per declared plan, its sync and the health `refresh` journaled, as a grid
of targets x dates (`grids`); with `--live`, what the platforms say now of the backfills the
state records as submitted (`report`). Read-only: nothing is written and nothing is created
remotely."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler import pipeline, providers
from reconciler.domain import JSON, Health
from reconciler.errors import BackfillError
from reconciler.grid import grids
from reconciler.providers.protocol import Connection, Progress, Provider
from reconciler.reports.status import Grids, StatusReport, Tracked
from reconciler.state import State, SubmissionRecord, SubmissionStatus, intent_details, load_state

Ask = Callable[[Provider, SubmissionRecord, Mapping[str, JSON], Connection], Progress]


def _ask(
    provider: Provider,
    record: SubmissionRecord,
    request: Mapping[str, JSON],
    connection: Connection,
) -> Progress:
    return provider.progress(record, request, connection)


def report(
    state: State,
    endpoints: Mapping[str, str],
    *,
    plan: str | None = None,
    timeout: float = 30.0,
    ask: Ask | None = None,
) -> StatusReport:
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
    submitted = [r for r in records if r.status is SubmissionStatus.SUBMITTED]
    sent = intent_details(state, submitted)
    tracked = []
    for record in submitted:
        provider = providers.get(record.provider)
        url = providers.endpoint(provider, record.region, endpoints)
        refusal = providers.emulator_only(record.emulator, url, sent[record.key].endpoint)
        if refusal:
            progress = Progress(Health.UNKNOWN, error=refusal)
        else:
            connection = Connection(url, timeout=timeout)
            progress = ask(provider, record, sent[record.key].request, connection)
        tracked.append(Tracked(record, progress))
    unsettled = tuple(r for r in records if r.needs_attention)
    return StatusReport(tuple(tracked), unsettled, state.warnings)


def run(
    state_dir: Path, endpoints: Mapping[str, str], *, plan: str | None, timeout: float
) -> StatusReport:
    """`backfill status [NAME]`: the progress of the state's submitted backfills."""
    return report(load_state(state_dir), endpoints, plan=plan, timeout=timeout)


def grid_report(paths: Sequence[Path], state_dir: Path, *, plan: str | None = None) -> Grids:
    """The plans' cells against the state: no platform is asked (`refresh` asks them)."""
    # the state loads while helpers read the files, as for `plan`
    valid, state = pipeline.plans_while(paths, lambda: load_state(state_dir).indexed())
    if plan is not None and plan not in {p.name for p in valid.plans}:
        raise BackfillError(
            f"no plan named {plan!r} in {', '.join(str(p) for p in paths)}; `backfill status`"
            " without a name shows every declared plan"
        )
    changes = pipeline.changeset(valid, state)
    return Grids(changes, grids(valid.desired, state, plan=plan), state.seq, state.warnings)
