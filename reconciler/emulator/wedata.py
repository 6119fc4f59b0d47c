"""The emulated Tencent Cloud WeData API, version 2025-08-06: the data backfill plan actions,
signed, throttled and validated as the real service answers them on the wire.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.emulator.app import (
    EmulatedApi,
    EmulatorRequest,
    EmulatorResponse,
    Settings,
)
from reconciler.providers import tc3

PROVIDER = "tencent-wedata"
SERVICE = "wedata"
VERSION = "2025-08-06"
RATE_LIMIT = 20.0
"""Documented: 20 requests per second of each action."""
DEFAULT_TIME_ZONE = "UTC+8"
ACCOUNT_UIN = "100000000001"
"""The emulator has one account; real plans name the creator's UIN."""

# Common error codes of Tencent Cloud API 3.0.
INVALID_ACTION = "InvalidAction"
INVALID_PARAMETER = "InvalidParameter"
INVALID_PARAMETER_VALUE = "InvalidParameterValue"
MISSING_PARAMETER = "MissingParameter"
NO_SUCH_VERSION = "NoSuchVersion"
REQUEST_LIMIT_EXCEEDED = "RequestLimitExceeded"
RESOURCE_NOT_FOUND = "ResourceNotFound"
UNKNOWN_PARAMETER = "UnknownParameter"
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"

# Instance states as WeData names them (InstanceState in the SDK models of this version; the
# API reference's example of ListDataBackfillInstances shows EXPIRED).
WAIT_RUN = "WAIT_RUN"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
EXPIRED = "EXPIRED"
"""Failed."""

CREATE_ACTION = "CreateDataBackfillPlan"


class ApiError(Exception):
    """A refusal, answered as HTTP 200 with `Response.Error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


ParamType = Literal["String", "Integer", "Boolean", "Array", "Object"]
Check = Callable[[Any], str | None]
"""Returns why a well-typed value is not acceptable, or None."""


@dataclass(frozen=True)
class Param:
    """One request parameter as the API reference declares it (type names as in the docs)."""

    type: ParamType
    required: bool = False
    values: tuple[str, ...] = ()
    items: Param | None = None
    fields: Mapping[str, Param] = field(default_factory=dict)
    minimum: int | None = None
    non_empty: bool = False
    check: Check | None = None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_UTC_OFFSET = re.compile(
    r"^(?:UTC|GMT)(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::(?P<minutes>\d{2}))?)?$"
)


def _date_problem(value: str) -> str | None:
    if not _DATE.match(value):
        return "expected a date as yyyy-MM-dd"
    try:
        date.fromisoformat(value)
    except ValueError:
        return "no such date"
    return None


def _clock_time_problem(value: str) -> str | None:
    return None if _CLOCK_TIME.match(value) else "expected a time of day as HH:mm"


def _time_zone(name: str) -> tzinfo | None:
    match = _UTC_OFFSET.match(name)
    if match:
        if not match["sign"]:
            return UTC
        offset = timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
        if offset > timedelta(hours=14):
            return None
        return timezone(-offset if match["sign"] == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _time_zone_problem(value: str) -> str | None:
    if _time_zone(value) is None:
        return "expected a time zone such as UTC+8 or Asia/Shanghai"
    return None


_RANGE = {
    "StartDate": Param("String", required=True, check=_date_problem),
    "EndDate": Param("String", required=True, check=_date_problem),
    "ExecutionStartTime": Param("String", check=_clock_time_problem),
    "ExecutionEndTime": Param("String", check=_clock_time_problem),
}
_KV_PAIR = {"K": Param("String", required=True, non_empty=True), "V": Param("String")}
_COMPUTE_CONFIG_MAPPING = {
    "TaskTypeId": Param("Integer"),
    "ComputeConfigItem": Param("String", values=("COMPUTE_ENGINE", "DLC_ENGINE_RESOURCE_GROUP")),
    "TaskIds": Param("Array", items=Param("String", non_empty=True)),
    "SourceValue": Param("String"),
    "TargetValue": Param("String"),
}
_PROJECT_ID = Param("String", required=True, non_empty=True)
_PLAN_ID = Param("String", required=True, non_empty=True)

CREATE_PARAMS: Mapping[str, Param] = {
    "ProjectId": _PROJECT_ID,
    "TaskIds": Param("Array", required=True, non_empty=True, items=Param("String", non_empty=True)),
    "DataBackfillRangeList": Param(
        "Array", required=True, non_empty=True, items=Param("Object", fields=_RANGE)
    ),
    "TimeZone": Param("String", check=_time_zone_problem),
    "DataBackfillPlanName": Param("String"),
    "CheckParentType": Param("String", values=("NONE", "ALL", "MAKE_SCOPE")),
    "SkipEventListening": Param("Boolean"),
    "RedefineSelfWorkflowDependency": Param("String", values=("yes", "no")),
    "RedefineParallelNum": Param("Integer", minimum=1),
    "SchedulerResourceGroupId": Param("String"),
    "IntegrationResourceGroupId": Param("String"),
    "RedefineParamList": Param("Array", items=Param("Object", fields=_KV_PAIR)),
    "DataTimeOrder": Param("String", values=("NORMAL", "ORDER", "REVERSE")),
    "RedefineCycleType": Param("String", values=("MONTH_CYCLE",)),
    "ComputeConfigMappings": Param("Array", items=Param("Object", fields=_COMPUTE_CONFIG_MAPPING)),
}
GET_PARAMS: Mapping[str, Param] = {
    "ProjectId": _PROJECT_ID,
    "DataBackfillPlanId": _PLAN_ID,
    "TimeZone": Param("String", check=_time_zone_problem),
}
LIST_INSTANCES_PARAMS: Mapping[str, Param] = {
    "ProjectId": _PROJECT_ID,
    "DataBackfillPlanId": _PLAN_ID,
    "TaskId": Param("String", required=True),  # required, as the API reference says
    "PageNumber": Param("Integer", minimum=1),
    "PageSize": Param("Integer", minimum=1),
}
DELETE_PARAMS: Mapping[str, Param] = {"ProjectId": _PROJECT_ID, "DataBackfillPlanId": _PLAN_ID}


def validate(params: Mapping[str, Any], spec: Mapping[str, Param], prefix: str = "") -> None:
    """Raise the `ApiError` the real API answers for the first problem; paths are flattened as
    API 3.0 names them (`DataBackfillRangeList.0.StartDate`)."""
    for name in params:
        if name not in spec:
            raise ApiError(UNKNOWN_PARAMETER, f"The parameter `{prefix}{name}` is not recognized.")
    for name, param in spec.items():
        value = params.get(name)
        if value is None:
            if param.required:
                raise ApiError(MISSING_PARAMETER, _missing(f"{prefix}{name}"))
            continue
        _validate_value(value, param, f"{prefix}{name}")


def _validate_value(value: Any, param: Param, path: str) -> None:
    if not _has_type(value, param.type):
        raise ApiError(INVALID_PARAMETER, f"The type of parameter `{path}` must be {param.type}.")

    def invalid(why: str) -> ApiError:
        message = f"The value of parameter `{path}` is invalid: {why}."
        return ApiError(INVALID_PARAMETER_VALUE, message)

    if param.non_empty and not value:
        raise invalid("it must not be empty")
    if param.values and value not in param.values:
        raise invalid(f"{value!r} is not one of {', '.join(param.values)}")
    if param.minimum is not None and value < param.minimum:
        raise invalid(f"it must be at least {param.minimum}")
    if param.check is not None:
        problem = param.check(value)
        if problem:
            raise invalid(f"{value!r}: {problem}")
    if param.type == "Array" and param.items is not None:
        for index, item in enumerate(value):
            if item is None:
                raise invalid(f"item {index} is null")
            _validate_value(item, param.items, f"{path}.{index}")
    if param.type == "Object":
        validate(value, param.fields, f"{path}.")


def _has_type(value: Any, kind: ParamType) -> bool:
    if kind == "String":
        return isinstance(value, str)
    if kind == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "Array":
        return isinstance(value, list)
    return isinstance(value, dict)


_Handler = Callable[[dict[str, Any], str], Any]
"""An action: validated parameters and the RequestId in, the reply's `Data` out."""


@dataclass(frozen=True, slots=True)
class _Instance:
    """One run of a task for one data time: it waits, runs, then completes or fails."""

    task_id: str
    data_time: str
    """`yyyy-MM-dd HH:mm:ss`, the instance's data time."""
    starts_at: float
    ends_at: float
    fails: bool

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return WAIT_RUN
        if now < self.ends_at:
            return RUNNING
        return EXPIRED if self.fails else COMPLETED


@dataclass(frozen=True, slots=True)
class _Plan:
    plan_id: str
    project_id: str
    name: str
    params: Mapping[str, Any]
    created: float
    instances: tuple[_Instance, ...]
    """In the order they run, one after another."""


def _runs(
    task_ids: list[str], ranges: list[Mapping[str, str]], order: str
) -> list[tuple[str, str]]:
    """(task, data time) of each instance a plan makes, in the order they run."""
    data_times: dict[str, str] = {}
    for backfill_range in ranges:
        start = date.fromisoformat(backfill_range["StartDate"])
        end = date.fromisoformat(backfill_range["EndDate"])
        clock = backfill_range.get("ExecutionStartTime") or "00:00"
        for offset in range((end - start).days + 1):
            day = (start + timedelta(days=offset)).isoformat()
            data_times.setdefault(day, f"{day} {clock}:00")
    days = sorted(data_times, reverse=order == "REVERSE")
    return [(task_id, data_times[day]) for day in days for task_id in task_ids]


def _check_ranges(ranges: list[Mapping[str, str]]) -> None:
    for index, backfill_range in enumerate(ranges):
        path = f"DataBackfillRangeList.{index}"
        if backfill_range["StartDate"] > backfill_range["EndDate"]:
            raise ApiError(
                INVALID_PARAMETER_VALUE,
                f"The value of parameter `{path}.EndDate` is invalid: "
                f"{backfill_range['EndDate']} is before StartDate {backfill_range['StartDate']}.",
            )
        first = backfill_range.get("ExecutionStartTime")
        last = backfill_range.get("ExecutionEndTime")
        if first and last and first > last:
            raise ApiError(
                INVALID_PARAMETER_VALUE,
                f"The value of parameter `{path}.ExecutionEndTime` is invalid: "
                f"{last} is before ExecutionStartTime {first}.",
            )


class WeDataService(EmulatedApi):
    """The WeData backfill actions, signed with the `TENCENTCLOUD_*` credentials of the
    settings' environment (without them every request is refused); plans and instances live in
    memory and progress with the clock."""

    provider = PROVIDER
    create_action = CREATE_ACTION
    default_rate_limit = RATE_LIMIT

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.credentials = tc3.TencentCredentials.from_env(settings.environ)
        self._plans: dict[str, _Plan] = {}
        self._actions: dict[str, tuple[Mapping[str, Param], _Handler]] = {
            CREATE_ACTION: (CREATE_PARAMS, self._create),
            "GetDataBackfillPlan": (GET_PARAMS, self._get),
            "ListDataBackfillInstances": (LIST_INSTANCES_PARAMS, self._list_instances),
            "DeleteDataBackfillPlanAsync": (DELETE_PARAMS, self._delete),
        }

    def action(self, request: EmulatorRequest) -> str | None:
        return request.headers.get("x-tc-action")

    def forget(self) -> None:
        self._plans.clear()

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        request_id = str(uuid.uuid4())
        try:
            data = self._answer(request, request_id)
        except ApiError as error:
            return _error_reply(error, request_id)
        return EmulatorResponse.json(200, {"Response": {"Data": data, "RequestId": request_id}})

    def throttled(self, request: EmulatorRequest) -> EmulatorResponse:
        """What `_throttle` answers, for a request the fault injector throttles."""
        limit = RATE_LIMIT if self.rate_limit is None else self.rate_limit
        return _error_reply(_limit_exceeded(limit + 1, limit), str(uuid.uuid4()))

    def _answer(self, request: EmulatorRequest, request_id: str) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method != "POST" or content_type != "application/json":
            raise ApiError(
                UNSUPPORTED_PROTOCOL,
                "The emulator accepts POST requests with a JSON body (Content-Type: "
                "application/json) signed with TC3-HMAC-SHA256.",
            )
        action = request.headers["x-tc-action"]
        version = request.headers.get("x-tc-version", "")
        if not version:
            raise ApiError(MISSING_PARAMETER, _missing("Version"))
        if version != VERSION:
            raise ApiError(NO_SUCH_VERSION, f"The API version `{version}` does not exist.")
        if action not in self._actions:
            raise ApiError(INVALID_ACTION, f"The action `{action}` does not exist in {VERSION}.")
        if not request.headers.get("x-tc-region", "").strip():
            raise ApiError(MISSING_PARAMETER, _missing("Region"))
        self._authenticate(request)
        self._throttle(action)
        params = _json_object(request.body)
        spec, run = self._actions[action]
        validate(params, spec)
        return run(params, request_id)

    def _authenticate(self, request: EmulatorRequest) -> None:
        credentials = self.credentials
        if credentials is None:
            raise ApiError(
                tc3.AUTH_SECRET_ID_NOT_FOUND,
                "The SecretId is not found: the emulator was started without Tencent credentials "
                "(set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY).",
            )
        rejection = tc3.verify(
            request.method,
            request.path,
            request.query_string,
            request.headers,
            request.body,
            credentials_by_id=lambda key: credentials if key == credentials.secret_id else None,
            now=self.clock(),
            service=SERVICE,
        )
        if rejection is not None:
            raise ApiError(rejection.code, rejection.message)

    def _throttle(self, action: str) -> None:
        throttled = self.limit.admit(action)
        if throttled is not None:
            raise _limit_exceeded(throttled.count, throttled.limit)

    def _create(self, params: dict[str, Any], request_id: str) -> Any:
        ranges: list[Mapping[str, str]] = params["DataBackfillRangeList"]
        _check_ranges(ranges)
        task_ids: list[str] = params["TaskIds"]
        duplicates = sorted(task for task, count in Counter(task_ids).items() if count > 1)
        if duplicates:
            raise ApiError(
                INVALID_PARAMETER_VALUE,
                f"The value of parameter `TaskIds` is invalid: {duplicates[0]} appears twice.",
            )
        now = self.clock()
        seconds = self.instance_seconds
        runs = _runs(task_ids, ranges, params.get("DataTimeOrder", "NORMAL"))
        with self._lock:
            instances = tuple(
                _Instance(
                    task_id,
                    data_time,
                    starts_at=now + position * seconds,
                    ends_at=now + (position + 1) * seconds,
                    fails=self.run_fails(task_id, data_time[:10]),
                )
                for position, (task_id, data_time) in enumerate(runs)
            )
            plan = _Plan(
                plan_id=str(uuid.uuid4()),
                project_id=params["ProjectId"],
                name=params.get("DataBackfillPlanName") or f"backfill_{uuid.uuid4().hex[:12]}",
                params=params,
                created=now,
                instances=instances,
            )
            self._plans[plan.plan_id] = plan
        self.accepted(params, remote_id=plan.plan_id, request_id=request_id, time=now)
        return {"DataBackfillPlanId": plan.plan_id}

    def _get(self, params: dict[str, Any], request_id: str) -> Any:
        plan = self._find(params)
        zone = _time_zone(
            params.get("TimeZone") or plan.params.get("TimeZone") or DEFAULT_TIME_ZONE
        )
        now = self.clock()
        states = [instance.state(now) for instance in plan.instances]
        total = len(states)
        finished = sum(state in (COMPLETED, EXPIRED) for state in states)
        end = max(instance.ends_at for instance in plan.instances)
        return {
            "ProjectId": plan.project_id,
            "DataBackfillPlanId": plan.plan_id,
            "DataBackfillPlanName": plan.name,
            "TaskIds": plan.params["TaskIds"],
            "DataBackfillRangeList": plan.params["DataBackfillRangeList"],
            "CheckParentType": plan.params.get("CheckParentType", "NONE"),
            "SkipEventListening": plan.params.get("SkipEventListening", True),
            "RedefineParallelNum": plan.params.get("RedefineParallelNum"),
            "RedefineSelfWorkflowDependency": plan.params.get("RedefineSelfWorkflowDependency"),
            "SchedulerResourceGroupId": plan.params.get("SchedulerResourceGroupId"),
            "IntegrationResourceGroupId": plan.params.get("IntegrationResourceGroupId"),
            "RedefineCycleType": plan.params.get("RedefineCycleType"),
            "RedefineParamList": plan.params.get("RedefineParamList"),
            "StartTime": _format(plan.created, zone),
            "EndTime": _format(end, zone) if finished == total else None,
            "CreateUserUin": ACCOUNT_UIN,
            "CompletePercent": 100 * finished // total,
            "SuccessPercent": 100 * states.count(COMPLETED) // total,
            "DataTimeOrder": plan.params.get("DataTimeOrder", "NORMAL"),
        }

    def _list_instances(self, params: dict[str, Any], request_id: str) -> Any:
        plan = self._find(params)
        zone = _time_zone(plan.params.get("TimeZone") or DEFAULT_TIME_ZONE)
        page_number: int = params.get("PageNumber", 1)
        page_size: int = params.get("PageSize", 10)
        now = self.clock()
        items = [
            _instance_view(instance, now, zone)
            for instance in plan.instances
            if instance.task_id == params["TaskId"]
        ]
        first = (page_number - 1) * page_size
        return {
            "PageNumber": page_number,
            "PageSize": page_size,
            "TotalPageNumber": math.ceil(len(items) / page_size),
            "TotalCount": len(items),
            "Items": items[first : first + page_size],
        }

    def _delete(self, params: dict[str, Any], request_id: str) -> Any:
        plan = self._find(params)
        with self._lock:
            self._plans.pop(plan.plan_id, None)
        return {"AsyncId": str(uuid.uuid4())}

    def _find(self, params: Mapping[str, Any]) -> _Plan:
        with self._lock:
            plan = self._plans.get(params["DataBackfillPlanId"])
        if plan is None or plan.project_id != params["ProjectId"]:
            raise ApiError(
                RESOURCE_NOT_FOUND,
                f"The data backfill plan `{params['DataBackfillPlanId']}` does not exist in "
                f"project `{params['ProjectId']}`.",
            )
        return plan


def _instance_view(instance: _Instance, now: float, zone: tzinfo | None) -> Any:
    """Shaped like the SDK's `BackfillInstance`."""
    state = instance.state(now)
    ended = state in (COMPLETED, EXPIRED)
    return {
        "TaskName": f"task_{instance.task_id}",
        "TaskId": instance.task_id,
        "CurRunDate": instance.data_time,
        "State": state,
        "StartTime": _format(instance.starts_at, zone) if state != WAIT_RUN else None,
        "EndTime": _format(instance.ends_at, zone) if ended else None,
        "CostTime": f"{instance.ends_at - instance.starts_at:g}s" if ended else None,
    }


def _error_reply(error: ApiError, request_id: str) -> EmulatorResponse:
    # API 3.0 answers refusals with HTTP 200 too; only `Response.Error` tells them apart.
    body = {"Error": {"Code": error.code, "Message": error.message}, "RequestId": request_id}
    return EmulatorResponse.json(200, {"Response": body})


def _limit_exceeded(count: float, limit: float) -> ApiError:
    return ApiError(
        REQUEST_LIMIT_EXCEEDED,
        f"Your current request times equals to `{count:g}` in a second, which exceeds the "
        f"frequency limit `{limit:g}` for a second. Please reduce the frequency of calls.",
    )


def _missing(name: str) -> str:
    return f"The request is missing a required parameter `{name}`."


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        params = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(INVALID_PARAMETER, f"The request body is not valid JSON: {error}.") from None
    if not isinstance(params, dict):
        raise ApiError(INVALID_PARAMETER, "The request body must be a JSON object.")
    return params


def _format(moment: float, zone: tzinfo | None) -> str:
    return datetime.fromtimestamp(moment, zone or UTC).strftime("%Y-%m-%d %H:%M:%S")
