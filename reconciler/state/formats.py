"""What the state's files hold, as pydantic models: each journal event and its payload, the
snapshot and its records. `schemas/state.schema.json` is generated from them (`make schemas`).

Every event's `data` is checked against its payload's model when it is appended. Reading a state
(every load) needs no pydantic: `schema` checks each event's `data` with checks compiled from
the generated schema, and the envelope and the snapshot are checked by hand-written code on the
hot path (journal.py, records.py, snapshot.py); tests hold all of these to the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, InstanceOf

from reconciler.domain import Health, SubmissionStatus
from reconciler.state.fold import FoldError
from reconciler.state.records import EventType

Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="A sha256 hex digest.")]
Time = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
        description="UTC with milliseconds, e.g. 2026-11-21T06:40:00.123Z.",
    ),
]
Key = Annotated[
    str,
    Field(
        min_length=1,
        description="The submission key: a hash of plan, revision, cells and fingerprint.",
    ),
]
DateRun = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.\.[0-9]{4}-[0-9]{2}-[0-9]{2})?$",
        description="A date, or consecutive days as `2025-09-01..2025-09-30`.",
    ),
]
HealthRun = Annotated[
    tuple[
        Annotated[str, Field(description="The target (task or DAG id).")],
        DateRun,
        Annotated[Health, Field(strict=False)],
        Annotated[
            str,
            Field(
                description="What the platform said, as it said it (e.g. WeData `COMPLETED`, "
                "DMS `SUCCEEDED(4)`)."
            ),
        ],
    ],
    Field(
        strict=False,  # a JSON array is a list: lax for the tuple itself, the items as typed
        description="A run of a submission's cells the platform said the same of: [target, "
        "dates, health, the platform's own word].",
    ),
]
JsonObject = Annotated[dict[str, Any], InstanceOf()]
"""A JSON object of any content, checked to be one and kept as it is (not copied)."""
Actor = Annotated[
    dict[str, Any],
    Field(
        description="Who acted, as the caller gave it: user or CI actor, commit, PR, run URL, "
        "tool version. Never credentials."
    ),
]


class Part(BaseModel):
    """A part of a state file: exactly these fields, of exactly these JSON types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


# --- the payload of each event ----------------------------------------------------------------


class Submission(Part):
    """What an intent and the record folded from it both say of a submission."""

    key: Key
    plan: str
    revision: int = Field(ge=1)
    provider: str
    action: str
    region: str


class Payload(Part):
    type: ClassVar[EventType]


class Initialized(Payload):
    """The first event of every state `backfill init` made: a state exists only after it."""

    type = EventType.INITIALIZED
    state_id: str = Field(
        pattern=r"^[0-9a-f]{16}$", description="Random: tells one state from another."
    )


class Torn(Payload):
    """The line before this event is no event: a write cut short by a crash or a full disk,
    left in place. The chain goes on from the event before it."""

    type = EventType.TORN
    length: int = Field(
        ge=1, description="Bytes of the torn line, without the newline added after it."
    )
    sha256: Hash = Field(description="sha256 of those bytes.")


class Intent(Payload, Submission):
    """Journaled before the request leaves the process: what is about to be sent, and the cells
    it covers."""

    type = EventType.INTENT
    endpoint: str = Field(
        description="Where the request goes (the emulator's loopback address in a demo)."
    )
    targets: list[str] = Field(min_length=1, description="WeData task ids or DMS DAG ids.")
    dates: list[str] = Field(
        min_length=1, description="ISO dates; the cells are every target with every date."
    )
    fingerprint: str = Field(description="Hash of every request field but the targets and dates.")
    params: JsonObject = Field(description="The fields the fingerprint is computed over.")
    request: JsonObject = Field(
        description="The action's request parameters exactly as sent, without credentials."
    )
    replaces: list[Key] | None = Field(
        None,
        min_length=1,
        description="Only on a retry (`spec.reprocess: failed`): the keys of the attempts whose "
        "failed cells it runs again. First attempts have no `replaces`.",
        json_schema_extra={"uniqueItems": True},
    )


class Submitted(Payload):
    """The API created it."""

    type = EventType.SUBMITTED
    key: Key
    remote_id: str
    request_id: str
    detail: JsonObject = Field(description="Provider-specific facts of the reply.")
    emulator: bool = Field(description="The reply came from the built-in emulator.")


class Failed(Payload):
    """What an error outcome carries: the API's error, or why the request never left."""

    key: Key
    code: str
    message: str


class Rejected(Failed):
    """Definitely not created: its cells stay missing and may be submitted again."""

    type = EventType.REJECTED
    request_id: str


class Unknown(Failed):
    """May have been created: quarantined until a lookup or a person settles it."""

    type = EventType.UNKNOWN


class Resolved(Payload):
    """A remote lookup settled a pending or unknown submission."""

    type = EventType.RESOLVED
    key: Key
    status: Literal["submitted", "missing"] = Field(description="What the lookup found.")
    remote_id: str
    how: str = Field(description="Which lookup, and what it found.")


class Imported(Payload):
    """A person says it ran, with its remote id."""

    type = EventType.IMPORTED
    key: Key
    remote_id: str
    reason: str


class Forgotten(Payload):
    """A person says it did not run: its cells may be submitted again."""

    type = EventType.FORGOTTEN
    key: Key
    reason: str


class Unsent(Failed):
    """The request never left the process (no connection could be made): nothing was
    created, its cells stay missing and the next apply submits them."""

    type = EventType.UNSENT


class Observed(Payload):
    """What `refresh` saw of a submitted backfill: only the cells whose health or raw word
    changed since the last observation. Never changes the submission's status."""

    type = EventType.OBSERVED
    key: Key
    cells: list[HealthRun] = Field(min_length=1)


PAYLOADS: Mapping[EventType, type[Payload]] = {
    payload.type: payload
    for payload in (
        Initialized,
        Torn,
        Intent,
        Submitted,
        Rejected,
        Unknown,
        Resolved,
        Imported,
        Forgotten,
        Unsent,
        Observed,
    )
}


def check_data(kind: EventType, data: Any) -> None:
    """Raises FoldError naming the field when `data` is not what an event of `kind` carries."""
    try:
        PAYLOADS[kind].model_validate(data)
    except pydantic.ValidationError as invalid:
        raise FoldError(_sentence(kind, invalid)) from None


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a JSON object",
}


def _sentence(kind: EventType, invalid: pydantic.ValidationError) -> str:
    errors = invalid.errors(include_url=False)
    if any(not error["loc"] for error in errors):
        return f"`data` of a `{kind}` event is not a JSON object"
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
    extra = [
        str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1
    ]
    if missing or extra:
        what = [f"has no {', '.join(f'`{name}`' for name in missing)}"] if missing else []
        what += [f"has unexpected {', '.join(f'`{name}`' for name in extra)}"] if extra else []
        return f"`{kind}` event {' and '.join(what)}"
    [first, *_] = errors
    field = ".".join(["data", *map(str, first["loc"])])
    expected = _EXPECTED.get(first["type"])
    if expected:
        return f"`{field}` of a `{kind}` event is not {expected}"
    return f"`{field}` of a `{kind}` event cannot be {repr(first['input'])[:80]}"


# --- the envelope of every event, and the snapshot --------------------------------------------


def _data_by_type(schema: dict[str, Any]) -> None:
    schema["allOf"] = [
        {
            "if": {"properties": {"type": {"const": str(kind)}}},
            "then": {"properties": {"data": {"$ref": f"#/$defs/{payload.__name__}"}}},
        }
        for kind, payload in PAYLOADS.items()
    ]


class Event(Part):
    """One line of journal.jsonl: canonical JSON (sorted keys, no spaces) then a newline.
    `hash` is the sha256 of the canonical JSON of the event without `hash`; `prev` is the hash
    of the event before it, so the lines form a chain."""

    model_config = ConfigDict(json_schema_extra=_data_by_type)

    v: Literal[1] = Field(description="Version of the event format.")
    seq: int = Field(
        ge=1,
        description="1-based and consecutive. Equal to the line number unless blank or torn "
        "lines come before it.",
    )
    time: Time
    type: EventType = Field(strict=False)
    actor: Actor
    data: dict[str, Any] = Field(description="The event's payload, as its `type` says.")
    prev: Hash = Field(description="The hash of event seq - 1; 64 zeros for the first event.")
    hash: Hash


class Record(Submission):
    """One submission key folded from the journal: its latest intent and what became of it.
    Endpoint, parameters, request and actor are not repeated here: they are in the journal, in
    the intent event at `intent_seq`."""

    targets: list[str] = Field(min_length=1)
    dates: list[
        Annotated[
            str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.\.[0-9]{4}-[0-9]{2}-[0-9]{2})?$")
        ]
    ] = Field(
        min_length=1,
        description="The covered dates as sorted runs: `2025-09-01..2025-09-30` for consecutive "
        "days, a date alone for one day.",
    )
    fingerprint: str
    status: SubmissionStatus = Field(
        strict=False,
        description="pending: an intent without an outcome (read back from disk, its process "
        "died: as uncertain as unknown). pending, submitted and unknown cover their cells.",
    )
    remote_id: str
    request_id: str
    code: str
    message: str = Field(
        description="The API's error (rejected, unknown), why it was never sent (unsent), or "
        "the reason a lookup or a person gave (resolved, imported, forgotten)."
    )
    detail: dict[str, Any]
    emulator: bool
    attempts: int = Field(ge=1, description="How many intents this key has had.")
    intent_seq: int = Field(ge=1)
    intent_time: Time
    updated_seq: int = Field(ge=1)
    updated_time: Time
    health: list[HealthRun] = Field(
        description="The last word of the platform on each observed cell (empty until `refresh` "
        "saw something)."
    )
    observed_time: str = Field(
        description="When `refresh` last journaled something new of it; empty while never."
    )


class Snapshot(Part):
    """snapshot.json: the journal folded up to event `seq`, a cache that loading starts from.
    One submission per line, sorted, so that git diffs are readable. Trusted only when `digest`
    matches and the journal still begins with the `journal_size` bytes of sha256
    `journal_sha256` (else every line is checked, and event `seq` must have hash `hash`);
    otherwise the journal is replayed."""

    format: Literal[3] = Field(description="Version of the snapshot format.")
    seq: int = Field(ge=0, description="The last event folded in.")
    hash: Hash = Field(
        description="The hash of event `seq` (64 zeros when seq is 0): ties the snapshot to its "
        "journal line."
    )
    state_id: str = Field(
        description="The state's id, from its `initialized` event (empty for a state made before "
        "`backfill init`)."
    )
    emulator: bool = Field(
        description="Some submission was made against the built-in emulator: this state is not "
        "a record of real runs."
    )
    journal_size: int = Field(
        ge=0,
        description="Bytes of the journal up to and with the newline of event `seq`: the lines "
        "this snapshot folds.",
    )
    journal_sha256: Hash = Field(
        description="sha256 of those bytes. The writer that made the snapshot had checked every "
        "line of them, so a load whose journal still begins with them needs not look at them "
        "again."
    )
    digest: Hash = Field(
        description="sha256 of the first line without `digest` (its keys sorted, a newline after "
        "it) followed by every byte after the first line: a snapshot edited by hand or mangled "
        "by a merge no longer matches it."
    )
    submissions: dict[str, Record] = Field(description="Records by submission key.")
