"""The plan file contract: a `BackfillPlan` document as pydantic models. The JSON Schema that
editors and `validate` use, `schemas/backfill-plan.schema.json`, is generated from them
(`make schemas`), so each field, limit, default and description is written once, here.

`validate` reads every plan file with these models (compiled validators: fast) and explains a
document they refuse with the generated schema, problem by problem at file:line:col; a test holds
the two to the same answers. The providers get typed specs: defaults filled in, ids as the API
takes them, each enum value with its API word beside it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, Union, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    create_model,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from reconciler.domain import (
    DATE_PATTERN,
    JSON,
    MAX_CELLS_PER_CALL,
    MAX_CELLS_PER_PLAN,
    MAX_DAYS_PER_PLAN,
    TIME_PATTERN,
    Reprocess,
)

SCHEMAS = "https://github.com/backfill-reconciler/backfill-reconciler/schemas/"
"""The base of every schema file's `$id`: one file refers to another by its name under it."""

MAX_TARGETS = 1000
"""A longer list is several plans; one call can always hold one day of every target."""
MAX_REVISION = 9999
LONG = 2**63 - 1
"""The APIs' ids are 64-bit Longs."""
INTEGER = 2**31 - 1
"""The APIs' counts are 32-bit Integers."""

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
REGION_PATTERN = r"^[a-z]+(-[a-z0-9]+)+$"


class Contract(BaseModel):
    """A part of a plan file: camelCase keys, nothing unknown, no coercion (`7.0` is no
    integer, `"7"` no number).

    Patterns run on Python's `re`, as the schema's validator does, so that both accept the
    same documents."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="forbid",
        frozen=True,
        strict=True,
        regex_engine="python-re",
    )


class ApiEnum(StrEnum):
    """A value a plan file writes, with the API's word for it beside it: a value cannot be
    added without one."""

    api: JSON

    def __new__(cls, value: str, api: JSON) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.api = api
        return member


# --- values -----------------------------------------------------------------------------------


def _given(value: object) -> object:
    if value is None:
        raise PydanticCustomError("null", "is null: leave the field out instead")
    return value


T = TypeVar("T")
Maybe = Annotated[T | None, BeforeValidator(_given)]
"""A field that may be left out (None when it is), but never written as null: the schema
does not allow null anywhere."""


def unique(items: object) -> object:
    """The schema's `uniqueItems`, for the model too: the same value listed twice."""
    if isinstance(items, list) and any(item in items[:index] for index, item in enumerate(items)):
        raise PydanticCustomError("unique", "lists the same item twice")
    return items


UNIQUE: dict[str, JSON] = {"uniqueItems": True}

WEDATA_ID_AS_WRITTEN = (
    Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_-]+$", min_length=1)]
    | Annotated[int, Field(ge=0, le=LONG)]
)
DMS_ID_AS_WRITTEN = (
    Annotated[int, Field(ge=0, le=LONG)]
    | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}$")]
)
_AS_WRITTEN = ConfigDict(strict=True, regex_engine="python-re")
_WEDATA_ID: TypeAdapter[str | int] = TypeAdapter(WEDATA_ID_AS_WRITTEN, config=_AS_WRITTEN)
_DMS_ID: TypeAdapter[int | str] = TypeAdapter(DMS_ID_AS_WRITTEN, config=_AS_WRITTEN)


# Each id of every plan is read through these: their core validators are called directly,
# without the adapter's wrapper around them (a third of an id's cost).
_WEDATA_ID_CHECK = _WEDATA_ID.validator.validate_python
_DMS_ID_CHECK = _DMS_ID.validator.validate_python


def _text(value: object) -> str:
    """A WeData id as the API and the state name it: text, however the plan wrote it."""
    return str(_WEDATA_ID_CHECK(value))


def _number(value: object) -> int:
    """A DMS id as the API takes it: a number, however the plan wrote it."""
    return int(_DMS_ID_CHECK(value))


WeDataId = Annotated[str, PlainValidator(_text, json_schema_input_type=WEDATA_ID_AS_WRITTEN)]
"""Written as text or as a number, read as text."""
DmsId = Annotated[int, PlainValidator(_number, json_schema_input_type=DMS_ID_AS_WRITTEN)]
"""Written as a number or as text of at most 19 digits, read as a number."""

Date = Annotated[
    str,
    StringConstraints(pattern=DATE_PATTERN),
    Field(
        description="A calendar date, YYYY-MM-DD, from 1970-01-01 to 2099-12-31. Write it "
        "unquoted as people do: 2025-09-01.",
        examples=["2025-09-01"],
        json_schema_extra={"format": "date"},
    ),
]
TimeOfDay = Annotated[
    str,
    StringConstraints(pattern=TIME_PATTERN),
    Field(description="A time of day, HH:mm (24-hour).", examples=["00:00", "06:30"]),
]
DATES = (
    f"A plan declares at most {MAX_DAYS_PER_PLAN} days (ten years) and at most "
    f"{MAX_CELLS_PER_PLAN} cells (targets times days)."
)


# --- the envelope -----------------------------------------------------------------------------


class Metadata(Contract):
    """Which plan this is, who answers for it and why it runs."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Identifies the plan; unique across the repo. Lower-case letters, digits, "
        "'.', '_', '-'; at most 63 characters.",
        examples=["orders-late-arrivals-2025-09"],
    )
    owner: str = Field(
        min_length=1,
        description="Who answers for this backfill (team or person).",
        examples=["data-eng@example.com"],
    )
    reason: str = Field(
        min_length=1,
        description="Why history is re-run: an incident, a fix, a ticket.",
        examples=["INC-4711: late order events fixed upstream"],
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free key/value labels.", examples=[{"team": "orders"}]
    )


class TakeoverMode(StrEnum):
    RENAME = "rename"
    RERUN = "rerun"


class Takeover(Contract):
    plan: str = Field(
        pattern=NAME_PATTERN,
        description="The other plan's metadata.name, as the state records it (usually a plan "
        "since renamed or removed).",
    )
    mode: TakeoverMode = Field(
        strict=False,
        description="rename: this plan is that plan renamed; its submissions count as this "
        "plan's (at the same or a later revision), so nothing is sent again. rerun: run those "
        "dates again under this plan, on purpose.",
    )


MAX_ATTEMPTS = 10
"""`spec.maxAttempts` goes no higher: a cell that failed ten times needs a person, not a retry."""


class DayRange(Contract):
    """An inclusive range of business dates; `end` defaults to `start` (one day)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"start": "2025-09-01", "end": "2025-09-30"}]}
    )

    start: Date
    end: Maybe[Date] = None

    @property
    def last(self) -> str:
        return self.end or self.start


class Spec(Contract):
    """What every provider's `spec` has. A field sent nowhere says so in `NOT_SENT`; every
    other field reaches the request (tests/test_contract.py proves it, field by field)."""

    provider: str
    revision: int = Field(
        1,
        ge=1,
        le=MAX_REVISION,
        description="Bump to deliberately re-run dates that were already submitted, with new "
        f"parameters: each revision has its own coverage; at most {MAX_REVISION}.",
        examples=[1, 2],
    )
    chunk: Maybe[int] = Field(
        None,
        ge=1,
        le=MAX_DAYS_PER_PLAN,
        description=f"At most this many days per API call, 1 to {MAX_DAYS_PER_PLAN}; unset: as "
        f"few calls as the API allows. Either way one call covers at most {MAX_CELLS_PER_CALL} "
        "cells (targets times days), so with many targets a call holds fewer days.",
        examples=[1, 31],
    )
    dates: Sequence[DayRange]
    takeover: Maybe[Annotated[list[Takeover], BeforeValidator(unique)]] = Field(
        None,
        min_length=1,
        description="Plans whose submissions cover the same targets and dates as this one, and "
        "what they are to it. Without an entry, a declared cell already submitted by another "
        "plan is refused as a conflict: two plans never submit the same remote work "
        "unknowingly.",
        examples=[
            [{"plan": "orders-late-arrivals", "mode": "rename"}],
            [{"plan": "orders-late-arrivals", "mode": "rerun"}],
        ],
        json_schema_extra=UNIQUE,
    )
    reprocess: Reprocess = Field(
        Reprocess.NONE,
        strict=False,
        description="What the next apply sends again besides missing cells. none: only cells "
        "never submitted (a failed cell is shown failed and left alone). failed: cells whose "
        "latest attempt the platform reported failed (see `backfill refresh`) are missing again "
        "and submitted once more as a new attempt, linked to the one it replaces, at most "
        "spec.maxAttempts times in all. Running, waiting and unknown cells are never sent "
        "again; succeeded dates are re-run only by bumping spec.revision.",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=MAX_ATTEMPTS,
        description="With reprocess: failed, how many attempts a cell gets in all, the first "
        f"included, 1 to {MAX_ATTEMPTS}. A cell that failed that many times is reported as "
        "exhausted (plan and apply ask for attention) and never sent again: look at why it "
        "fails, then raise this or bump spec.revision.",
    )

    NOT_SENT: ClassVar[Mapping[str, str]] = {
        "provider": "which API the plan's calls go to",
        "revision": "a new coverage for the same request",
        "chunk": "how many days one call covers",
        "takeover": "which submissions of other plans count as this plan's",
        "reprocess": "whether failed cells are sent again",
        "max_attempts": "how many times a cell is sent in all",
    }
    """Fields that are no request field, and what they decide instead."""
    TARGETS: ClassVar[str]
    """The field that lists the targets (tasks, DAGs)."""

    @classmethod
    def provider_name(cls) -> str:
        """The `provider` value that selects this spec."""
        (name,) = get_args(cls.model_fields["provider"].annotation)
        return str(name)

    @classmethod
    def key(cls, field: str) -> str:
        """A field's key in a plan file."""
        return cls.model_fields[field].alias or field

    @classmethod
    def targets_key(cls) -> str:
        """The key of the targets in a plan file."""
        return cls.key(cls.TARGETS)

    def fingerprinted(self) -> dict[str, JSON]:
        """Every request field but the targets and the dates, with the defaults filled in,
        under its key in the plan file: the parameters a fingerprint is computed over."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={*self.NOT_SENT, self.TARGETS, "dates"},
        )


SPEC = "What to re-run. The fields depend on `provider`."


class BackfillPlan(Contract):
    """A declarative backfill: re-run these tasks (or DAGs) for these dates, with these options.
    Editors validate with a first line `# yaml-language-server: $schema=<path to this file>`."""

    model_config = ConfigDict(title="BackfillPlan")

    api_version: Literal["backfill-reconciler/v1"] = Field(
        description="Version of this file format."
    )
    kind: Literal["BackfillPlan"]
    metadata: Metadata
    spec: Spec = Field(description=SPEC)


@functools.cache
def plan_model(specs: tuple[type[Spec], ...]) -> type[BackfillPlan]:
    """The plan document whose `spec` is one of `specs` (each provider's, from the registry),
    chosen by its `provider`."""
    choice: Any = (
        Annotated[Union[specs], Field(discriminator="provider")]  # noqa: UP007 (a tuple of types)
        if len(specs) > 1
        else specs[0]
    )
    return create_model(
        "BackfillPlan",
        __base__=BackfillPlan,
        __doc__=BackfillPlan.__doc__,
        spec=(choice, Field(description=SPEC)),
    )
