"""`backfill recover`, and `plan`/`apply --recover`: settle unknown outcomes by remote lookups
where the API allows it (DMS), and say what a person must check where it does not (WeData)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from reconciler import providers
from reconciler.providers.protocol import Connection, Lookup, Provider
from reconciler.state import State, StateWriter, SubmissionRecord, SubmissionStatus

LookUp = Callable[[Provider, SubmissionRecord, Connection], Lookup]


@dataclass(frozen=True, slots=True)
class Finding:
    record: SubmissionRecord
    lookup: Lookup


def _default(provider: Provider, record: SubmissionRecord, connection: Connection) -> Lookup:
    return provider.look_up(record, connection)


def look_up(
    state: State,
    endpoints: Mapping[str, str],
    *,
    timeout: float = 30.0,
    look: LookUp | None = None,
) -> list[Finding]:
    """One lookup per submission whose outcome is unknown; nothing is written."""
    look = look or _default
    findings = []
    for record in sorted(state.submissions.values(), key=lambda r: r.intent_seq):
        if not record.needs_attention:
            continue
        provider = providers.get(record.provider)
        url = providers.endpoint(provider, record.region, endpoints)
        findings.append(Finding(record, look(provider, record, Connection(url, timeout=timeout))))
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
    if not settled:
        return state
    submissions = MappingProxyType({**state.submissions, **settled})
    return State(
        seq=state.seq,
        head_hash=state.head_hash,
        emulator=state.emulator,
        submissions=submissions,
        warnings=state.warnings,
    )
