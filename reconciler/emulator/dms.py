"""The emulated Alibaba Cloud DMS Enterprise API 2018-11-01: `BackFill`, `ListTaskFlowInstance`.

Speaks the wire of the real service: RPC style with ACS3-signed requests, gateway errors as HTTP 4xx
with `Code`/`Message`, business errors as HTTP 200 with `Success: false`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

from reconciler.emulator.app import (
    EmulatedApi,
    EmulatorRequest,
    EmulatorResponse,
    Settings,
)
from reconciler.providers import acs3

PROVIDER = "aliyun-dms"
PRODUCT = "dms-enterprise"
API_VERSION = "2018-11-01"

CREATE_ACTION = "BackFill"
LIST_ACTION = "ListTaskFlowInstance"
THROTTLED = "Throttling.User"
INVALID_VERSION = "InvalidVersion"
API_NOT_FOUND = "InvalidApi.NotFound"
INVALID_PARAMETER = "InvalidParameter"
"""The business code for a request the service refused after the gateway let it through."""

_GATEWAY_ERRORS: Mapping[str, tuple[int, str]] = {
    **acs3.AUTH_ERRORS,
    THROTTLED: (400, "Request was denied due to user flow control."),
    INVALID_VERSION: (400, "Specified parameter Version is not valid."),
    API_NOT_FOUND: (404, "Specified api is not found, please check your url and method."),
}

_FIRST_INSTANCE_ID = 470001
FAILURE_MESSAGE = "emulated failure (--instance-failure-rate)"

TIME_ZONE = timezone(timedelta(hours=8))
"""DMS task orchestration states its times in UTC+8 ("All times are in UTC+8", DMS
documentation, Configure a timed schedule); ListTaskFlowInstance writes them without a zone."""


class TriggerType(IntEnum):
    """`TriggerType` of a task flow run, as ListTaskFlowInstance documents it."""

    SCHEDULED = 0
    """Triggered by the task flow's periodic schedule."""
    MANUAL = 1
    """Triggered by hand: a backfill is one."""


class DagInstanceStatus(IntEnum):
    """`Status` of a task flow run, as ListTaskFlowInstance reports it."""

    WAITING = 0
    RUNNING = 1
    SUSPENDED = 2
    FAILED = 3
    SUCCEEDED = 4
    COMPLETED = 5


class _Rejected(Exception):
    """A request refused: by the gateway (HTTP 4xx, `Code`) or by DMS (HTTP 200, `ErrorCode`)."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        gateway: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.gateway = gateway
        self.retry_after = retry_after


def _missing(name: str) -> _Rejected:
    return _Rejected(f"Missing{name}", f"{name} is mandatory for this action.", gateway=True)


def _invalid(name: str) -> _Rejected:
    return _Rejected(f"Invalid{name}", f"Specified parameter {name} is not valid.", gateway=True)


def _business(message: str) -> _Rejected:
    return _Rejected(INVALID_PARAMETER, message)


# The parameter types the gateway checks before DMS sees a request, and the required ones.
_LONG, _INT, _BOOL, _STR, _LONG_ARRAY = "long", "integer", "boolean", "string", "array"
_Params = tuple[Mapping[str, str], tuple[str, ...]]
BACK_FILL_PARAMS: _Params = (
    {
        "Tid": _LONG,
        "DagId": _LONG,
        "StartNodeIds": _LONG_ARRAY,
        "FilterNodeIds": _LONG_ARRAY,
        "IsTriggerSubTree": _BOOL,
        "BackFillDate": _STR,
        "BackFillDateBegin": _STR,
        "BackFillDateEnd": _STR,
        "Interval": _INT,
        "Asc": _BOOL,
        "HistoryDagId": _LONG,
    },
    ("DagId",),
)
LIST_PARAMS: _Params = (
    {
        "Tid": _LONG,
        "DagId": _LONG,
        "TriggerType": _INT,
        "StartTimeBegin": _STR,
        "StartTimeEnd": _STR,
        "PageIndex": _INT,
        "PageSize": _INT,
        "UseBizDate": _BOOL,
        "Status": _INT,
    },
    ("DagId", "PageIndex", "PageSize"),
)
_Handler = Callable[[dict[str, Any], str], dict[str, Any]]
"""An action: decoded parameters and the RequestId in, the reply's fields out."""


def _decode(name: str, kind: str, raw: str) -> Any:
    if kind in (_LONG, _INT):
        try:
            return int(raw)
        except ValueError:
            raise _invalid(name) from None
    if kind == _BOOL:
        if raw.lower() not in ("true", "false"):
            raise _invalid(name)
        return raw.lower() == "true"
    if kind == _LONG_ARRAY:
        try:
            value = json.loads(raw)
        except ValueError:
            raise _invalid(name) from None
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise _invalid(name)
        return value
    return raw


def _parse_date(name: str, value: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _business(f"{name} must be a date in yyyy-MM-dd format: {value!r}.") from None


@dataclass(frozen=True, slots=True)
class DagInstance:
    """One run of a task flow for one business date, made by a backfill (or by the schedule)."""

    id: int
    dag_id: int
    business_date: date
    starts_at: float
    ends_at: float
    history_dag_id: int | None
    fails: bool
    trigger_type: TriggerType = TriggerType.MANUAL

    def status(self, now: float) -> DagInstanceStatus:
        if now < self.starts_at:
            return DagInstanceStatus.WAITING
        if now < self.ends_at:
            return DagInstanceStatus.RUNNING
        return DagInstanceStatus.FAILED if self.fails else DagInstanceStatus.SUCCEEDED

    def to_wire(self, now: float) -> dict[str, Any]:
        """Shaped like the SDK's `ListTaskFlowInstanceResponseBodyDAGInstanceListDAGInstance`."""
        status = self.status(now)
        item: dict[str, Any] = {
            "Id": self.id,
            "DagId": str(self.dag_id),
            "DagName": f"dag-{self.dag_id}",
            "DagVersion": "1",
            "OwnerName": "emulator",
            "BusinessTime": f"{self.business_date.isoformat()} 00:00:00",
            "TriggerType": int(self.trigger_type),
            "Status": int(status),
            "Message": FAILURE_MESSAGE if status is DagInstanceStatus.FAILED else "",
        }
        if self.history_dag_id is not None:
            item["HistoryDagId"] = self.history_dag_id
        if now >= self.starts_at:
            item["startTime"] = _wire_time(self.starts_at)
        if now >= self.ends_at:
            item["EndTime"] = _wire_time(self.ends_at)
        return item


def _wire_time(epoch: float) -> str:
    return _local(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _local(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, TIME_ZONE)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


class DmsService(EmulatedApi):
    """DMS Enterprise as its gateway and service answer on the wire.

    Every request must carry a valid ACS3 signature by the `ALIBABA_CLOUD_*` credentials of the
    settings' environment; without them every request is refused, as a real endpoint refuses
    unknown keys. DMS documents no rate limit, so none is enforced unless the settings give one.
    """

    provider = PROVIDER
    create_action = CREATE_ACTION
    default_rate_limit = None

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.credentials = acs3.AliyunCredentials.from_env(settings.environ)
        self._nonces = acs3.NonceWindow()
        self._instances: list[DagInstance] = []
        self._next_id = _FIRST_INSTANCE_ID
        self._actions: dict[str, tuple[_Params, _Handler]] = {
            CREATE_ACTION: (BACK_FILL_PARAMS, self._back_fill),
            LIST_ACTION: (LIST_PARAMS, self._list_task_flow_instance),
        }

    def action(self, request: EmulatorRequest) -> str | None:
        if "x-acs-action" in request.headers:
            return request.headers["x-acs-action"]
        return request.query().get("Action")

    def throttled(self, request: EmulatorRequest) -> EmulatorResponse:
        """What `_throttle` answers, for a request the fault injector throttles."""
        retry_after = 1.0 / self.rate_limit if self.rate_limit else 1.0
        rejected = _Rejected(THROTTLED, gateway=True, retry_after=retry_after)
        return self._error(rejected, request, _request_id())

    def forget(self) -> None:
        self._instances.clear()
        self._nonces.clear()

    def run_on_schedule(self, dag_id: int, business_date: date) -> int:
        """What the task flow's own periodic schedule does: one run for the business date,
        starting now (TriggerType 0). Returns its id."""
        now = self.clock()
        with self._lock:
            instance = DagInstance(
                id=self._next_id,
                dag_id=dag_id,
                business_date=business_date,
                starts_at=now,
                ends_at=now + self.instance_seconds,
                history_dag_id=None,
                fails=self.run_fails(str(dag_id), business_date.isoformat()),
                trigger_type=TriggerType.SCHEDULED,
            )
            self._next_id += 1
            self._instances.append(instance)
        return instance.id

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        request_id = _request_id()
        try:
            self._authenticate(request)
            self._throttle(self.action(request) or "")
            run, params = self._route(request)
            body = run(params, request_id)
        except _Rejected as rejected:
            return self._error(rejected, request, request_id)
        return _reply(200, {"RequestId": request_id, "Success": True, **body}, request_id)

    def _authenticate(self, request: EmulatorRequest) -> None:
        known = (
            {} if self.credentials is None else {self.credentials.access_key_id: self.credentials}
        )
        code = acs3.verify(
            request.method,
            request.path,
            request.query_string,
            request.headers,
            request.body,
            credentials_by_id=known,
            now=self.clock(),
            nonces=self._nonces,
        )
        if code is not None:
            raise _Rejected(code, gateway=True)

    def _throttle(self, action: str) -> None:
        throttled = self.limit.admit(action)
        if throttled is not None:
            raise _Rejected(THROTTLED, gateway=True, retry_after=throttled.retry_after)

    def _route(self, request: EmulatorRequest) -> tuple[_Handler, dict[str, Any]]:
        """The action's handler and its parameters, decoded as the gateway checks them."""
        query = request.query()
        version = request.headers.get("x-acs-version") or query.get("Version", "")
        if version != API_VERSION:
            raise _Rejected(INVALID_VERSION, gateway=True)
        action = self.action(request)
        if action not in self._actions:
            raise _Rejected(API_NOT_FOUND, gateway=True)
        raw = dict(acs3.parse_query(request.query_string))
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raw.update(acs3.parse_query(request.body.decode()))
        (types, required), run = self._actions[action]
        for name in required:
            if not raw.get(name):
                raise _missing(name)
        params = {
            name: _decode(name, kind, raw[name]) for name, kind in types.items() if name in raw
        }
        return run, params

    def _back_fill(self, params: dict[str, Any], request_id: str) -> dict[str, Any]:
        single: str | None = params.get("BackFillDate")
        begin: str | None = params.get("BackFillDateBegin")
        end: str | None = params.get("BackFillDateEnd")
        if single is not None:
            if begin is not None or end is not None:
                raise _business("Specify either BackFillDate or BackFillDateBegin/BackFillDateEnd.")
            first = last = _parse_date("BackFillDate", single)
        elif begin is not None and end is not None:
            first = _parse_date("BackFillDateBegin", begin)
            last = _parse_date("BackFillDateEnd", end)
            if first > last:
                raise _business("BackFillDateBegin must not be after BackFillDateEnd.")
        else:
            raise _business("Specify BackFillDate, or both BackFillDateBegin and BackFillDateEnd.")
        if params.get("Interval", 24) < 1:
            raise _business("Interval must be at least 1 (hours).")
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        if not params.get("Asc", True):
            days.reverse()
        now = self.clock()
        seconds = self.instance_seconds
        with self._lock:
            created = []
            for position, day in enumerate(days):
                starts = now + position * seconds
                created.append(
                    DagInstance(
                        id=self._next_id,
                        dag_id=params["DagId"],
                        business_date=day,
                        starts_at=starts,
                        ends_at=starts + seconds,
                        history_dag_id=params.get("HistoryDagId"),
                        fails=self.run_fails(str(params["DagId"]), day.isoformat()),
                    )
                )
                self._next_id += 1
            self._instances.extend(created)
        dag_instance_id = created[0].id
        self.accepted(params, remote_id=str(dag_instance_id), request_id=request_id, time=now)
        start_nodes = params.get("StartNodeIds") or [None]
        return {"DagInstanceId": dag_instance_id, "NodeId": start_nodes[0]}

    def _list_task_flow_instance(self, params: dict[str, Any], request_id: str) -> dict[str, Any]:
        page_index, page_size = params["PageIndex"], params["PageSize"]
        if page_index < 1 or page_size < 1:
            raise _business("PageIndex and PageSize must be at least 1.")
        now = self.clock()
        begin: str | None = params.get("StartTimeBegin")
        end: str | None = params.get("StartTimeEnd")
        first = _parse_date("StartTimeBegin", begin) if begin is not None else date.min
        last = _parse_date("StartTimeEnd", end) if end is not None else date.max
        by_business = params.get("UseBizDate", False)

        def selected(instance: DagInstance) -> bool:
            when = instance.business_date if by_business else _local(instance.starts_at).date()
            return (
                instance.dag_id == params["DagId"]
                and params.get("TriggerType", instance.trigger_type) == instance.trigger_type
                and params.get("Status", instance.status(now)) == instance.status(now)
                and first <= when <= last
            )

        with self._lock:
            matching = sorted(
                (i for i in self._instances if selected(i)), key=lambda i: i.id, reverse=True
            )
        page = matching[(page_index - 1) * page_size : page_index * page_size]
        return {
            "TotalCount": len(matching),
            "DAGInstanceList": {"DAGInstance": [i.to_wire(now) for i in page]},
        }

    def _error(
        self, rejected: _Rejected, request: EmulatorRequest, request_id: str
    ) -> EmulatorResponse:
        if not rejected.gateway:
            body = {
                "RequestId": request_id,
                "Success": False,
                "ErrorCode": rejected.code,
                "ErrorMessage": rejected.message,
            }
            return _reply(200, body, request_id)
        status, message = _GATEWAY_ERRORS.get(rejected.code, (400, rejected.message))
        body = {
            "RequestId": request_id,
            "HostId": request.headers.get("host", ""),
            "Code": rejected.code,
            "Message": rejected.message or message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={rejected.code}"
                f"&product={PRODUCT}&requestId={request_id}"
            ),
        }
        extra: tuple[tuple[str, str], ...] = ()
        if rejected.retry_after is not None:
            # Milliseconds; the SDK raises ThrottlingException when this header is present.
            extra = (("x-acs-retry-after", str(max(1, math.ceil(rejected.retry_after * 1000)))),)
        return _reply(status, body, request_id, extra)


def _reply(
    status: int, body: dict[str, Any], request_id: str, extra: tuple[tuple[str, str], ...] = ()
) -> EmulatorResponse:
    response = EmulatorResponse.json(status, body)
    headers = (*response.headers, ("x-acs-request-id", request_id), *extra)
    return EmulatorResponse(status, response.body, headers)
