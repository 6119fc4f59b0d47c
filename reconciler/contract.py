"""The plan file contract: a `BackfillPlan` document as pydantic models. The JSON Schema that
editors and `validate` use, `schemas/backfill-plan.schema.json`, is generated from them
(`make schemas`), so each field, limit, default and description is written once, here.

`validate` reads every plan file with these models (compiled validators: fast) and explains a
document they refuse with the generated schema, problem by problem at file:line:col; a test holds
the two to the same answers. The providers get typed specs: defaults filled in, ids as the API
takes them, each enum value with its API word beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from reconciler.domain import JSON, MAX_CELLS_PER_CALL

SCHEMAS = "https://github.com/backfill-reconciler/backfill-reconciler/schemas/"
"""The base of every schema file's `$id`: one file refers to another by its name under it."""

MAX_DAYS_PER_PLAN = 3653
"""Ten years of daily data, the longest history one reviewed plan re-runs; more is several
plans. `chunk` goes no higher."""
MAX_CELLS_PER_PLAN = 100_000
"""Cells (targets x days) of one plan: a plan is reviewed, planned and journaled cell by cell,
so its size bounds the memory and the time of `plan` and `apply`."""
MAX_TARGETS = 1000
"""A longer list is several plans; one call can always hold one day of every target."""
MAX_REVISION = 9999
LONG = 2**63 - 1
"""The APIs' ids are 64-bit Longs."""
INTEGER = 2**31 - 1
"""The APIs' counts are 32-bit Integers."""

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
DATE_PATTERN = r"^(19[7-9][0-9]|20[0-9][0-9])-[0-9]{2}-[0-9]{2}$"
"""The form of a date, which also bounds its year; whether the date exists is a rule of
`validate`."""
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
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


def _unique(items: object) -> object:
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


def _text(value: object) -> str:
    """A WeData id as the API and the state name it: text, however the plan wrote it."""
    return str(_WEDATA_ID.validate_python(value))


def _number(value: object) -> int:
    """A DMS id as the API takes it: a number, however the plan wrote it."""
    return int(_DMS_ID.validate_python(value))


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
    takeover: Maybe[Annotated[list[Takeover], BeforeValidator(_unique)]] = Field(
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

    NOT_SENT: ClassVar[Mapping[str, str]] = {
        "provider": "which API the plan's calls go to",
        "revision": "a new coverage for the same request",
        "chunk": "how many days one call covers",
        "takeover": "which submissions of other plans count as this plan's",
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

    def fingerprinted(self) -> dict[str, JSON]:
        """Every request field but the targets and the dates, with the defaults filled in,
        under its key in the plan file: the parameters a fingerprint is computed over."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={*self.NOT_SENT, self.TARGETS, "dates"},
        )


# --- Tencent Cloud WeData ---------------------------------------------------------------------


class ExecutionWindow(Contract):
    """Daily execution window: backfill instances run only between these times
    (ExecutionStartTime / ExecutionEndTime)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"start": "01:00", "end": "06:00"}]})

    start: TimeOfDay
    end: TimeOfDay


class WeDataRange(DayRange):
    """An inclusive range of data dates; `end` defaults to `start` (one day)."""

    execution_window: Maybe[ExecutionWindow] = Field(
        None, description="This range's own execution window, instead of the plan's."
    )


class CheckParents(ApiEnum):
    NONE = "none", "NONE"
    ALL = "all", "ALL"
    IN_PLAN = "in-plan", "MAKE_SCOPE"


class DataTimeOrder(ApiEnum):
    NORMAL = "normal", "NORMAL"
    CHRONOLOGICAL = "chronological", "ORDER"
    REVERSE = "reverse", "REVERSE"


class CycleType(ApiEnum):
    MONTHLY = "monthly", "MONTH_CYCLE"


class ComputeConfigItem(StrEnum):
    COMPUTE_ENGINE = "COMPUTE_ENGINE"
    DLC_ENGINE_RESOURCE_GROUP = "DLC_ENGINE_RESOURCE_GROUP"


TASK_ID = Field(
    description="A WeData task id; quote ids of more than 19 digits.",
    examples=["20250827115253729"],
)


class ComputeConfigMapping(Contract):
    task_type_id: int = Field(
        ge=0,
        le=INTEGER,
        description="Task type: 32 DLC_SQL, 46 DLC_SPARK, 50 DLC_PYSPARK (TaskTypeId).",
    )
    item: ComputeConfigItem = Field(
        strict=False, description="What to override (ComputeConfigItem)."
    )
    # Kept as written (text or number): the fingerprint has always been computed over them so.
    task_ids: Maybe[list[Annotated[WEDATA_ID_AS_WRITTEN, TASK_ID]]] = Field(
        None, description="Only these tasks (TaskIds); empty means all."
    )
    source_value: str = Field(description="Original engine or resource group (SourceValue).")
    target_value: str = Field(description="Engine or resource group to use instead (TargetValue).")


class WeDataSpec(Spec):
    # The options in the order plans have always listed them (the Markdown plan shows them so).
    model_config = ConfigDict(
        title="Tencent Cloud WeData backfill (CreateDataBackfillPlan, 2025-08-06)"
    )
    TARGETS: ClassVar[str] = "task_ids"

    provider: Literal["tencent-wedata"] = Field(description="Which platform runs the backfill.")
    time_zone: str = Field(
        "UTC+8",
        min_length=1,
        description="Time zone of the dates (TimeZone).",
        examples=["UTC+8", "UTC+0"],
    )
    check_parents: CheckParents = Field(
        CheckParents.NONE,
        strict=False,
        description="Check upstream parent tasks (CheckParentType): none (NONE), all (ALL), or "
        "only parents that are part of this backfill (MAKE_SCOPE).",
    )
    skip_event_listening: bool = Field(
        True, description="Ignore event dependencies (SkipEventListening)."
    )
    order: DataTimeOrder = Field(
        DataTimeOrder.NORMAL,
        strict=False,
        description="Execution order by data time (DataTimeOrder NORMAL / ORDER / REVERSE).",
    )
    remote_name: Maybe[str] = Field(
        None,
        min_length=1,
        max_length=128,
        description="Name of the backfill plan in WeData (DataBackfillPlanName). When unset, one "
        "is derived from metadata.name and the submission key, so every remote plan can be "
        "traced back to its YAML.",
        examples=["orders-late-arrivals", "orders-late-arrivals-again"],
    )
    self_dependency: Maybe[bool] = Field(
        None,
        description="Redefine the workflow self-dependency (RedefineSelfWorkflowDependency "
        "yes/no). Unset keeps the workflow's own.",
    )
    parallelism: Maybe[int] = Field(
        None,
        ge=1,
        le=INTEGER,
        description="Instances that may run at once (RedefineParallelNum, a 32-bit Integer). "
        "Unset keeps the task's own.",
        examples=[2, 4],
    )
    scheduler_resource_group_id: Maybe[str] = Field(
        None,
        min_length=1,
        description="Scheduling resource group (SchedulerResourceGroupId). Unset uses the task's "
        "own.",
        examples=["rg-batch", "rg-nightly"],
    )
    integration_resource_group_id: Maybe[str] = Field(
        None,
        min_length=1,
        description="Integration resource group (IntegrationResourceGroupId). Unset uses the "
        "task's own.",
        examples=["rg-integration", "rg-sync"],
    )
    parameters: Maybe[dict[str, str | int | float | bool]] = Field(
        None,
        description="Task parameters redefined for the backfilled instances (RedefineParamList, "
        "as K/V pairs, in this order).",
        examples=[{"bizdate": "${yyyyMMdd}", "mode": "repair"}, {"mode": "restate"}],
    )
    instance_cycle: Maybe[CycleType] = Field(
        None,
        strict=False,
        description="Regenerate daily instances as monthly ones on the 1st (RedefineCycleType "
        "MONTH_CYCLE).",
    )
    compute_config_mappings: Maybe[list[ComputeConfigMapping]] = Field(
        None,
        min_length=1,
        description="Storage/compute engine overrides (ComputeConfigMappings).",
        examples=[
            [
                {
                    "taskTypeId": 32,
                    "item": "COMPUTE_ENGINE",
                    "sourceValue": "engine-a",
                    "targetValue": "engine-b",
                }
            ],
            [
                {
                    "taskTypeId": 46,
                    "item": "DLC_ENGINE_RESOURCE_GROUP",
                    "taskIds": ["20250827115253729"],
                    "sourceValue": "rg-a",
                    "targetValue": "rg-b",
                }
            ],
        ],
    )
    region: str = Field(
        min_length=1,
        max_length=63,
        pattern=REGION_PATTERN,
        description="Tencent Cloud region of the WeData project (X-TC-Region), at most 63 "
        "characters.",
        examples=["ap-guangzhou", "ap-singapore"],
    )
    project_id: WeDataId = Field(
        description="WeData project id (ProjectId); quote ids of more than 19 digits.",
        examples=["1460947878944567296", "1460947878944567297"],
    )
    task_ids: Annotated[list[Annotated[WeDataId, TASK_ID]], BeforeValidator(_unique)] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description=f"Tasks to re-run (TaskIds), at most {MAX_TARGETS}. Quote long ids or leave "
        "them bare.",
        examples=[["20250827115253729"], ["20250827115253729", "20250827115253730"]],
        json_schema_extra=UNIQUE,
    )
    dates: list[WeDataRange] = Field(
        min_length=1,
        description="Data dates to re-run (DataBackfillRangeList): one or more ranges, "
        f"inclusive. {DATES}",
        examples=[
            [{"start": "2025-09-01", "end": "2025-09-14"}],
            [{"start": "2025-09-01"}, {"start": "2025-09-20", "end": "2025-09-21"}],
        ],
    )
    execution_window: Maybe[ExecutionWindow] = Field(
        None,
        description="Daily execution window of every range that does not set its own "
        "(ExecutionStartTime / ExecutionEndTime).",
        examples=[{"start": "01:00", "end": "06:00"}, {"start": "22:00", "end": "23:30"}],
    )


# --- Alibaba Cloud DMS Enterprise -------------------------------------------------------------


class DmsOrder(ApiEnum):
    CHRONOLOGICAL = "chronological", True
    REVERSE = "reverse", False


NODE_ID = Field(description="A node id (a 64-bit Long: at most 19 digits).", examples=[4301])


class DmsSpec(Spec):
    # The options in the order plans have always listed them (the Markdown plan shows them so).
    model_config = ConfigDict(
        title="Alibaba Cloud DMS Enterprise task-flow backfill (BackFill, 2018-11-01)"
    )
    TARGETS: ClassVar[str] = "dag_ids"

    provider: Literal["aliyun-dms"] = Field(description="Which platform runs the backfill.")
    trigger_sub_tree: bool = Field(
        True, description="Also run the descendants of the start nodes (IsTriggerSubTree)."
    )
    interval_hours: int = Field(
        24,
        ge=1,
        le=INTEGER,
        description="Interval between backfilled runs, in hours (Interval, a 32-bit integer).",
        examples=[24, 12],
    )
    order: DmsOrder = Field(
        DmsOrder.CHRONOLOGICAL,
        strict=False,
        description="Run dates oldest first or newest first (Asc true / false).",
    )
    region: str = Field(
        max_length=63,
        pattern=REGION_PATTERN,
        description="Region of the DMS instance: the endpoint is "
        "dms-enterprise.<region>.aliyuncs.com, so at most 63 characters (a part of a host name).",
        examples=["cn-hangzhou", "ap-southeast-1"],
    )
    tenant_id: Maybe[DmsId] = Field(
        None,
        description="DMS tenant id (Tid, a 64-bit Long: at most 19 digits). Unset uses the "
        "caller's default tenant.",
        examples=[3000, 3001],
    )
    history_dag_id: Maybe[DmsId] = Field(
        None,
        description="Id of the historical task flow to run (HistoryDagId, a 64-bit Long: at "
        "most 19 digits).",
        examples=[16001, 16002],
    )
    start_node_ids: Maybe[list[Annotated[DmsId, NODE_ID]]] = Field(
        None,
        min_length=1,
        description="Run from these nodes of the task flow (StartNodeIds).",
        examples=[[4301], [4301, 4302]],
    )
    filter_node_ids: Maybe[list[Annotated[DmsId, NODE_ID]]] = Field(
        None,
        min_length=1,
        description="Nodes that must not be re-run (FilterNodeIds).",
        examples=[[4302], [4302, 4303]],
    )
    dag_ids: Annotated[
        list[
            Annotated[
                DmsId,
                Field(
                    description="A DMS task flow id (a 64-bit Long: at most 19 digits).",
                    examples=[15001],
                ),
            ]
        ],
        BeforeValidator(_unique),
    ] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description=f"Task flows (DAGs) to re-run (DagId), at most {MAX_TARGETS}: one BackFill "
        "call per DAG per contiguous run of dates.",
        examples=[[15001], [15001, 15002]],
        json_schema_extra=UNIQUE,
    )
    dates: list[DayRange] = Field(
        min_length=1,
        description="Business dates to re-run: one or more inclusive ranges. A one-day run is "
        f"sent as BackFillDate, a longer one as BackFillDateBegin/BackFillDateEnd. {DATES}",
        examples=[
            [{"start": "2025-08-01", "end": "2025-08-15"}],
            [{"start": "2025-08-01"}, {"start": "2025-08-20", "end": "2025-08-21"}],
        ],
    )


SPECS: tuple[type[Spec], ...] = (WeDataSpec, DmsSpec)
"""Every provider's spec; `providers` has an adapter for each."""

AnySpec = Annotated[WeDataSpec | DmsSpec, Field(discriminator="provider")]


class BackfillPlan(Contract):
    """A declarative backfill: re-run these tasks (or DAGs) for these dates, with these options.
    Editors validate with a first line `# yaml-language-server: $schema=<path to this file>`."""

    model_config = ConfigDict(title="BackfillPlan")

    api_version: Literal["backfill-reconciler/v1"] = Field(
        description="Version of this file format."
    )
    kind: Literal["BackfillPlan"]
    metadata: Metadata
    spec: AnySpec = Field(description="What to re-run. The fields depend on `provider`.")


def read_plan(document: Any) -> BackfillPlan:
    """A document the schema accepted, as the typed plan it is."""
    return BackfillPlan.model_validate(document)
