"""What a submission's intent journaled beyond the record the state keeps of it: the endpoint,
the parameters, the full request and who sent it.

The snapshot leaves these in the journal, so that loading a state reads none of them: a command
that shows them (`state show`), sends them on (`recover`, `status`) or weighs them (a conflict's
changed parameters) asks for the records it needs, and the journal is read then, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.domain import JSON
from reconciler.errors import StateError
from reconciler.state.chain import Chain
from reconciler.state.records import EventType, State, SubmissionRecord


@dataclass(frozen=True, slots=True)
class IntentDetails:
    endpoint: str
    params: Mapping[str, JSON]
    """Every request field but the targets and dates: what the fingerprint hashes."""
    request: Mapping[str, JSON]
    actor: Mapping[str, JSON]
    replaces: tuple[str, ...] = ()
    """A retry's (`reprocess: failed`): the keys of the attempts whose failed cells it runs
    again; empty for a first attempt."""


def intent_details(state: State, records: Iterable[SubmissionRecord]) -> dict[str, IntentDetails]:
    """The details of each record's latest intent, by submission key, from one walk of the
    state's journal with its hash chain checked; no read at all when `records` is empty.

    Raises StateError when the journal has no intent of that key where the record says."""
    wanted = {record.intent_seq: record.key for record in records}
    if not wanted:
        return {}
    if state.journal is None:
        raise StateError("this state was not read from a journal: it has no intents to read")
    found: dict[str, IntentDetails] = {}
    for entry in Chain(state.journal, decode=wanted):
        key = wanted.get(entry.seq)
        if key is None:
            continue
        event = entry.event
        assert event is not None  # the chain decodes the events it is asked for
        data = event["data"]
        if event["type"] != EventType.INTENT or data["key"] != key:
            break
        found[key] = IntentDetails(
            data["endpoint"],
            data["params"],
            data["request"],
            event["actor"],
            tuple(data.get("replaces", ())),
        )
        if len(found) == len(wanted):
            return found
    seq = min(seq for seq, key in wanted.items() if key not in found)
    raise StateError(f"{state.journal}: event {seq} is not the intent the snapshot says it is")
