"""`backfill recover`, and `plan`/`apply --recover`: settle unknown outcomes by remote lookups
where the API allows it (DMS), and say what a person must check where it does not (WeData)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler import providers
from reconciler.commands.branch import StateBranch, writing
from reconciler.domain import JSON
from reconciler.providers.protocol import Claim, Connection, Lookup, Provider
from reconciler.reports.plan import Finding
from reconciler.state import (
    State,
    StateWriter,
    SubmissionRecord,
    SubmissionStatus,
    intent_details,
)

LookUp = Callable[
    [Provider, SubmissionRecord, Mapping[str, JSON], Connection, Sequence[Claim]], Lookup
]


def _default(
    provider: Provider,
    record: SubmissionRecord,
    request: Mapping[str, JSON],
    connection: Connection,
    others: Sequence[Claim],
) -> Lookup:
    return provider.look_up(record, request, connection, others)


def claims(state: State) -> dict[str, list[Claim]]:
    """Per provider, every submission that has or may have a remote counterpart: those
    submitted (with their remote id) and those whose outcome is unknown. Lookups made in one
    run all weigh the same claims, so two unknowns can never settle on one remote run."""
    found: dict[str, list[Claim]] = {}
    for record in state.submissions.values():
        settled = record.status is SubmissionStatus.SUBMITTED and bool(record.remote_id)
        if settled or record.needs_attention:
            found.setdefault(record.provider, []).append(
                Claim(
                    key=record.key,
                    targets=record.targets,
                    dates=record.dates,
                    intent_time=record.intent_time,
                    remote_id=record.remote_id if settled else "",
                )
            )
    return found


def look_up(
    state: State,
    endpoints: Mapping[str, str],
    *,
    timeout: float = 30.0,
    look: LookUp | None = None,
) -> list[Finding]:
    """One lookup per submission whose outcome is unknown; nothing is written."""
    look = look or _default
    unsettled = sorted(
        (r for r in state.submissions.values() if r.needs_attention), key=lambda r: r.intent_seq
    )
    if not unsettled:
        return []
    every = claims(state)
    sent = intent_details(state, unsettled)
    findings = []
    for record in unsettled:
        provider = providers.get(record.provider)
        url = providers.endpoint(provider, record.region, endpoints)
        others = [c for c in every.get(record.provider, []) if c.key != record.key]
        request = sent[record.key].request
        lookup = look(provider, record, request, Connection(url, timeout=timeout), others)
        findings.append(Finding(record, lookup))
    return findings


def journal(writer: StateWriter, findings: list[Finding]) -> None:
    """Journal every lookup that settled its submission; unclear ones stay unknown."""
    for finding in findings:
        verdict = finding.lookup.verdict
        if verdict == "unclear":
            continue
        writer.append(
            "resolved",
            {
                "key": finding.record.key,
                "status": verdict,
                "remote_id": finding.lookup.remote_id,
                "how": finding.lookup.how,
            },
        )


def preview(state: State, findings: list[Finding]) -> State:
    """The state as it would be after `journal`, for a `plan` that must not write."""
    settled = {
        f.record.key: dataclasses.replace(
            f.record,
            status=SubmissionStatus(f.lookup.verdict),
            remote_id=f.lookup.remote_id,
            message=f.lookup.how,
        )
        for f in findings
        if f.lookup.verdict != "unclear"
    }
    return state.amended(settled)


def run(
    state_dir: Path,
    endpoints: Mapping[str, str],
    *,
    lock_timeout: float = 0.0,
    branch: StateBranch | None = None,
) -> list[Finding]:
    """`backfill recover`: look every unknown outcome up under the state lock and journal what
    settled; with `branch`, only on the branch's newest state, and published there."""
    with writing(state_dir, "recover", lock_timeout=lock_timeout, branch=branch) as writer:
        found = look_up(writer.state, endpoints)
        journal(writer, found)
    if branch:
        branch.publish("backfill: outcomes of lookups (recover)", journal_only=False)
    return found
