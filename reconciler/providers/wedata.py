"""Tencent Cloud WeData `CreateDataBackfillPlan` (2025-08-06): plan fields to request fields,
batching of missing cells, and the reply mapped to an outcome."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import closing
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from reconciler.contract import (
    DATES,
    INTEGER,
    MAX_TARGETS,
    REGION_PATTERN,
    UNIQUE,
    WEDATA_ID_AS_WRITTEN,
    ApiEnum,
    Contract,
    DayRange,
    Maybe,
    Spec,
    TimeOfDay,
    WeDataId,
    unique,
)
from reconciler.domain import (
    JSON,
    Batch,
    CellGroup,
    Health,
    Outcome,
    OutcomeKind,
    Plan,
    Submission,
    contiguous_runs,
    fingerprint,
    merge_spans,
    range_span,
)
from reconciler.errors import BackfillError
from reconciler.providers import protocol
from reconciler.providers.protocol import (
    Claim,
    Connection,
    Instance,
    Lookup,
    Observation,
    Pace,
    Progress,
)

if TYPE_CHECKING:
    import httpx

    from reconciler.emulator.app import ServiceFactory
    from reconciler.providers.tc3 import TencentCredentials
    from reconciler.state import SubmissionRecord

# --- the spec: what a plan file says, with the defaults of the API ----------------------------


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
    task_ids: Annotated[list[Annotated[WeDataId, TASK_ID]], BeforeValidator(unique)] = Field(
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


# --- the API -------------------------------------------------------------------------------

NAME = WeDataSpec.provider_name()
SERVICE = "wedata"
ACTION = "CreateDataBackfillPlan"
VERSION = "2025-08-06"
DEFAULT_ENDPOINT = "https://wedata.intl.tencentcloudapi.com"
RATE_LIMIT = 20.0
"""Documented: at most 20 requests per second for CreateDataBackfillPlan."""
RATE_VARIABLE = "BACKFILL_TENCENT_RATE_LIMIT"
"""Calls per second instead of RATE_LIMIT, for every WeData action: less, to leave an
account's quota to other jobs; more, where Tencent raised it."""
NAME_LIMIT = 128
WINDOW = WeDataSpec.key("execution_window")
"""A cell group's execution window, in its parameters: its ranges' own, or the plan's."""

# Outcome table (README "Outcomes"). Codes match on their prefix before the first dot.
# Anything not listed is UNKNOWN: an error we cannot classify may hide a created plan.
RETRYABLE_CODES = frozenset({"RequestLimitExceeded", "LimitExceeded"})
REJECTED_CODES = frozenset(
    {
        "AuthFailure",
        "FailedOperation",
        "InvalidAction",
        "InvalidParameter",
        "InvalidParameterValue",
        "MissingParameter",
        "UnknownParameter",
        "UnauthorizedOperation",
        "UnsupportedOperation",
        "UnsupportedRegion",
        "InvalidRegion",
        "NoSuchVersion",
        "ResourceNotFound",
        "OperationDenied",
    }
)
UNKNOWN_CODES = frozenset({"InternalError", "ServiceUnavailable"})
AUTH_FAILURE = "AuthFailure"
"""The family of codes for a request that could not be authenticated (signature, secret id,
token, clock): every other call signed the same way fails alike."""

READ_ACTIONS = ("GetDataBackfillPlan", "ListDataBackfillInstances")
"""What `refresh` calls; the 20 calls per second documented for the create action are assumed
for each of them (Tencent Cloud's usual limit per API; their reference pages name none), or
what BACKFILL_TENCENT_RATE_LIMIT says."""

# ListDataBackfillInstances `State` -> health. The API reference names the field `State`
# without listing its values (BackfillInstance in the SDK models of 2025-08-06): the words are
# the instance states the same API version documents for scheduled instances (`InstanceState`
# of ListTaskInstances / InstanceExecution: WAIT_EVENT waiting for an event, WAIT_UPSTREAM
# waiting for upstream, WAIT_RUN waiting to run, RUNNING, SKIP_RUNNING skipped, FAILED_RETRY
# failed and retrying, EXPIRED failed, COMPLETED succeeded), and that they are what a backfill
# instance reports is assumed; the seed reference (seeds/tencent-wedata-CreateDataBackfillPlan)
# covers the create action only. A failed try that will be retried is still running; a
# skipped instance is done without failing. Any other word is `unknown`, kept raw.
INSTANCE_HEALTH: Mapping[str, protocol.Meaning] = {
    "WAIT_EVENT": protocol.Meaning(Health.WAITING, "assumed"),
    "WAIT_UPSTREAM": protocol.Meaning(Health.WAITING, "assumed"),
    "WAIT_RUN": protocol.Meaning(Health.WAITING, "assumed"),
    "RUNNING": protocol.Meaning(Health.RUNNING, "assumed"),
    "FAILED_RETRY": protocol.Meaning(Health.RUNNING, "assumed"),
    "SKIP_RUNNING": protocol.Meaning(Health.SUCCEEDED, "assumed"),
    "COMPLETED": protocol.Meaning(Health.SUCCEEDED, "assumed"),
    "EXPIRED": protocol.Meaning(Health.FAILED, "assumed"),
}
ALL_SUCCEEDED = "SuccessPercent=100"
"""The word recorded for cells of a plan GetDataBackfillPlan says fully succeeded (documented:
SuccessPercent is the share of its instances that succeeded): its instances are not listed."""
LIST_PAGE_SIZE = 100


def classify(code: str) -> OutcomeKind:
    family = code.split(".", 1)[0]
    if family in RETRYABLE_CODES:
        return OutcomeKind.RETRYABLE
    if family in REJECTED_CODES:
        return OutcomeKind.REJECTED
    return OutcomeKind.UNKNOWN


def rate_limit() -> float:
    return protocol.configured_rate(RATE_VARIABLE, RATE_LIMIT)


def _spec(plan: Plan) -> WeDataSpec:
    if not isinstance(plan.spec, WeDataSpec):
        raise TypeError(f"plan {plan.name!r} is a {plan.provider} plan, not a {NAME} one")
    return plan.spec


class WeDataProvider:
    name = NAME
    action = ACTION
    credentials_prefix = "TENCENTCLOUD_"
    spec_model = WeDataSpec

    @property
    def rate_limit(self) -> float:
        return rate_limit()

    def region(self, plan: Plan) -> str:
        return _spec(plan).region

    def targets(self, plan: Plan) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_spec(plan).task_ids))

    def cell_groups(self, plan: Plan) -> list[CellGroup]:
        spec = _spec(plan)
        targets = self.targets(plan)
        # The plan's execution window is that of each range without its own: a parameter of
        # the ranges, and ranges with the same window share every parameter, hence one group.
        common = spec.fingerprinted()
        common.pop(WINDOW, None)
        by_window: dict[ExecutionWindow | None, list[tuple[int, int]]] = {}
        for entry in spec.dates:
            window = entry.execution_window or spec.execution_window
            by_window.setdefault(window, []).append(range_span(entry.start, entry.last))
        groups = []
        for window, spans in by_window.items():
            params = dict(common)
            if window is not None:
                params[WINDOW] = window.model_dump(mode="json", by_alias=True)
            groups.append(
                CellGroup(
                    plan=plan.name,
                    revision=plan.revision,
                    targets=targets,
                    spans=tuple(merge_spans(spans)),
                    params=params,
                    fingerprint=fingerprint(params),
                )
            )
        return groups

    def batches(self, plan: Plan, missing: Mapping[str, Sequence[str]]) -> list[Batch]:
        # Tasks missing exactly the same dates share a call; each call covers its dates as
        # several DataBackfillRangeList entries when they are not contiguous.
        by_dates: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for target, dates in missing.items():
            if dates:
                by_dates[tuple(sorted(dates))].append(target)
        return [
            Batch(targets=tuple(targets), dates=chunk)
            for dates, targets in sorted(by_dates.items())
            for chunk in protocol.chunked(dates, plan, len(targets))
        ]

    def calls(self, plan: Plan) -> int:
        return sum(
            protocol.call_count(group.days, plan, len(group.targets))
            for group in self.cell_groups(plan)
        )

    def request(self, plan: Plan, group: CellGroup, batch: Batch, key: str) -> dict[str, JSON]:
        spec = _spec(plan)
        window = group.params.get(WINDOW)
        ranges: list[dict[str, JSON]] = []
        for start, end in contiguous_runs(batch.dates):
            entry: dict[str, JSON] = {"StartDate": start, "EndDate": end}
            if isinstance(window, Mapping):
                entry["ExecutionStartTime"] = window["start"]
                entry["ExecutionEndTime"] = window["end"]
            ranges.append(entry)
        request: dict[str, JSON] = {
            "ProjectId": spec.project_id,
            "TaskIds": list(batch.targets),
            "DataBackfillRangeList": ranges,
            "DataBackfillPlanName": spec.remote_name or remote_name(plan, key),
            "TimeZone": spec.time_zone,
            "CheckParentType": spec.check_parents.api,
            "SkipEventListening": spec.skip_event_listening,
            "DataTimeOrder": spec.order.api,
        }
        if spec.self_dependency is not None:
            request["RedefineSelfWorkflowDependency"] = "yes" if spec.self_dependency else "no"
        if spec.parallelism is not None:
            request["RedefineParallelNum"] = spec.parallelism
        if spec.scheduler_resource_group_id is not None:
            request["SchedulerResourceGroupId"] = spec.scheduler_resource_group_id
        if spec.integration_resource_group_id is not None:
            request["IntegrationResourceGroupId"] = spec.integration_resource_group_id
        if spec.parameters is not None:
            request["RedefineParamList"] = [
                {"K": k, "V": _param_text(v)} for k, v in spec.parameters.items()
            ]
        if spec.instance_cycle is not None:
            request["RedefineCycleType"] = spec.instance_cycle.api
        if spec.compute_config_mappings is not None:
            request["ComputeConfigMappings"] = [
                _compute_mapping(m) for m in spec.compute_config_mappings
            ]
        return request

    def default_endpoint(self, region: str) -> str:
        return DEFAULT_ENDPOINT

    def client(self, connection: Connection) -> WeDataClient:
        # The client's modules (httpx, the signer) load with the first call, not with `validate`.
        from reconciler.providers.tc3 import TencentCredentials  # noqa: PLC0415

        credentials = TencentCredentials.from_env()
        if credentials is None:
            raise BackfillError(
                "no Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID and "
                "TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SESSION_TOKEN for temporary ones)"
            )
        return WeDataClient(credentials, connection)

    def remote_name(self, request: Mapping[str, JSON]) -> str:
        return str(request.get("DataBackfillPlanName") or "")

    def look_up(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
    ) -> Lookup:
        # WeData offers no lookup of a backfill plan by name: a person has to look.
        return Lookup(
            "unclear",
            how=f"WeData cannot be searched by plan name through the API: look in the WeData "
            f"console (project {request.get('ProjectId', '?')}, region {record.region}) "
            f"for a backfill plan named {self.remote_name(request)!r} created after "
            f"{record.intent_time}",
        )

    def progress(
        self, record: SubmissionRecord, request: Mapping[str, JSON], connection: Connection
    ) -> Progress:
        with closing(self.client(connection)) as client:
            return client.progress(record, request)

    @property
    def read_limits(self) -> Mapping[str, float]:
        return dict.fromkeys(READ_ACTIONS, rate_limit())

    def observe(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
        *,
        pace: Pace,
    ) -> Observation:
        # a WeData plan id is the submission's own: no other submission's instances are listed
        with closing(self.client(connection)) as client:
            return client.observe(record, request, pace)

    def emulated(self) -> ServiceFactory:
        from reconciler.emulator.wedata import WeDataService  # noqa: PLC0415 - see Provider.emulated

        return WeDataService


def remote_name(plan: Plan, key: str) -> str:
    """A WeData plan name that leads back to the YAML: plan name, revision, submission key."""
    suffix = f"-r{plan.revision}-{key[:10]}"
    return plan.name[: NAME_LIMIT - len(suffix)] + suffix


def _param_text(value: JSON) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compute_mapping(mapping: ComputeConfigMapping) -> dict[str, JSON]:
    out: dict[str, JSON] = {
        "TaskTypeId": mapping.task_type_id,
        "ComputeConfigItem": str(mapping.item),
        "SourceValue": mapping.source_value,
        "TargetValue": mapping.target_value,
    }
    if mapping.task_ids is not None:
        out["TaskIds"] = [str(t) for t in mapping.task_ids]
    return out


class WeDataClient:
    """Sends CreateDataBackfillPlan and maps every possible reply to an Outcome."""

    def __init__(self, credentials: TencentCredentials, connection: Connection) -> None:
        from reconciler.providers.tc3 import TC3Auth  # noqa: PLC0415 - see WeDataProvider.client

        self._http = connection.http(TC3Auth(credentials, service=SERVICE))
        self.credential_id = credentials.secret_id

    def submit(self, submission: Submission) -> Outcome:
        return self.call(ACTION, submission.region, dict(submission.request), create=True)

    def call(
        self, action: str, region: str, body: Mapping[str, JSON], *, create: bool = False
    ) -> Outcome:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-TC-Action": action,
            "X-TC-Version": VERSION,
            "X-TC-Region": region,
        }
        response = protocol.send(self._http, "/", content=payload, headers=headers)
        if isinstance(response, Outcome):
            return response
        return _outcome(response, create=create)

    def progress(self, record: SubmissionRecord, request: Mapping[str, JSON]) -> Progress:
        """GetDataBackfillPlan for WeData's own percentages, then every page of
        ListDataBackfillInstances of each task (the API lists one task at a time) for its state
        on each date."""
        got = self._plan(record, request, protocol.unpaced)
        if got.kind is not OutcomeKind.SUBMITTED:
            return Progress(Health.UNKNOWN, error=_failure("GetDataBackfillPlan", got))
        instances: list[Instance] = []
        for task in record.targets:
            listed = self._instances(record, request, task, protocol.unpaced)
            if isinstance(listed, Outcome):
                return Progress(Health.UNKNOWN, error=_failure("ListDataBackfillInstances", listed))
            instances += listed
        return Progress(
            protocol.overall(instances, len(record.targets) * len(record.dates)),
            instances=tuple(instances),
            complete_percent=_percent(got.detail.get("CompletePercent")),
            success_percent=_percent(got.detail.get("SuccessPercent")),
        )

    def observe(
        self, record: SubmissionRecord, request: Mapping[str, JSON], pace: Pace
    ) -> Observation:
        """The health of the record's cells that are not final: GetDataBackfillPlan first (a
        plan it says fully succeeded is not listed), then ListDataBackfillInstances of each
        task that has such a cell; a cell without an instance is waiting."""
        open_cells = protocol.unfinished(record)
        got = self._plan(record, request, pace)
        if got.kind is not OutcomeKind.SUBMITTED:
            return Observation(error=_failure("GetDataBackfillPlan", got))
        if _percent(got.detail.get("SuccessPercent")) == 100:
            return Observation(
                tuple(Instance(t, d, ALL_SUCCEEDED, Health.SUCCEEDED) for t, d in open_cells)
            )
        seen: dict[tuple[str, str], Instance] = {}
        for task in dict.fromkeys(task for task, _ in open_cells):
            listed = self._instances(record, request, task, pace)
            if isinstance(listed, Outcome):
                return Observation(error=_failure("ListDataBackfillInstances", listed))
            seen.update(((i.target, i.date), i) for i in listed)
        return Observation(
            tuple(seen.get(cell) or Instance(*cell, "", Health.WAITING) for cell in open_cells)
        )

    def _plan(self, record: SubmissionRecord, request: Mapping[str, JSON], pace: Pace) -> Outcome:
        query = {"ProjectId": str(request["ProjectId"]), "DataBackfillPlanId": record.remote_id}
        return pace(
            "GetDataBackfillPlan", lambda: self.call("GetDataBackfillPlan", record.region, query)
        )

    def _instances(
        self, record: SubmissionRecord, request: Mapping[str, JSON], task: str, pace: Pace
    ) -> list[Instance] | Outcome:
        """Every page of ListDataBackfillInstances for one plan and task."""
        query: dict[str, JSON] = {
            "ProjectId": str(request["ProjectId"]),
            "DataBackfillPlanId": record.remote_id,
            "TaskId": task,
            "PageSize": LIST_PAGE_SIZE,
        }

        def read(page: int) -> Outcome:
            return pace(
                "ListDataBackfillInstances",
                lambda: self.call(
                    "ListDataBackfillInstances", record.region, {**query, "PageNumber": page}
                ),
            )

        listed = protocol.every_page(
            read,
            items=lambda data: data.get("Items") or [],
            last=lambda data, page: page >= int(data.get("TotalPageNumber") or 0),
        )
        return listed if isinstance(listed, Outcome) else [_instance(item) for item in listed]

    def close(self) -> None:
        self._http.close()


def _instance(item: Mapping[str, Any]) -> Instance:
    state = str(item.get("State") or "")
    return Instance(
        target=str(item.get("TaskId", "")),
        date=str(item.get("CurRunDate") or "")[:10],
        state=state,
        phase=protocol.health_of(INSTANCE_HEALTH, state),
    )


def _refused_credentials(code: str) -> str:
    if code.split(".", 1)[0] != AUTH_FAILURE:
        return ""
    return (
        f"the credentials were refused ({code}): check TENCENTCLOUD_SECRET_ID and "
        "TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SESSION_TOKEN for temporary ones), and this "
        "machine's clock"
    )


def _failure(action: str, outcome: Outcome) -> str:
    return f"{action}: {outcome.code} {outcome.message}".strip()


def _percent(value: JSON) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _outcome(response: httpx.Response, *, create: bool) -> Outcome:
    emulator = protocol.from_emulator(response)
    try:
        envelope = response.json()["Response"]
        request_id = str(envelope.get("RequestId", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return protocol.unreadable(response, "Tencent Cloud API")
    error = envelope.get("Error")
    if isinstance(error, Mapping):
        code = str(error.get("Code", "")) or "UnknownError"
        return Outcome(
            classify(code),
            request_id=request_id,
            code=code,
            message=str(error.get("Message", "")),
            emulator=emulator,
            halt=_refused_credentials(code),
        )
    data = envelope.get("Data")
    if not create:
        return Outcome(
            OutcomeKind.SUBMITTED,
            request_id=request_id,
            detail=data if isinstance(data, dict) else {},
            emulator=emulator,
        )
    plan_id = data.get("DataBackfillPlanId") if isinstance(data, Mapping) else None
    if not plan_id:
        return Outcome(
            OutcomeKind.UNKNOWN,
            request_id=request_id,
            code="NoPlanId",
            message="success reply without a DataBackfillPlanId",
            emulator=emulator,
        )
    return Outcome(
        OutcomeKind.SUBMITTED, remote_id=str(plan_id), request_id=request_id, emulator=emulator
    )


PROVIDER = WeDataProvider()
