"""Tencent Cloud WeData `CreateDataBackfillPlan` (2025-08-06): plan fields to request fields,
batching of missing cells, and the reply mapped to an outcome."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any

from reconciler.domain import (
    JSON,
    Batch,
    CellGroup,
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
from reconciler.providers.protocol import Claim, Connection, Instance, Lookup, Phase, Progress

if TYPE_CHECKING:
    import httpx

    from reconciler.emulator.app import ServiceFactory
    from reconciler.providers.tc3 import TencentCredentials
    from reconciler.state import SubmissionRecord

NAME = "tencent-wedata"
SERVICE = "wedata"
ACTION = "CreateDataBackfillPlan"
VERSION = "2025-08-06"
DEFAULT_ENDPOINT = "https://wedata.intl.tencentcloudapi.com"
ENDPOINT_VARIABLE = "BACKFILL_TENCENT_ENDPOINT"
RATE_LIMIT = 20.0
"""Documented: at most 20 requests per second for CreateDataBackfillPlan."""
NAME_LIMIT = 128

# Documented defaults, filled in so that writing a default explicitly is not an edit.
DEFAULTS: dict[str, JSON] = {
    "timeZone": "UTC+8",
    "checkParents": "none",
    "skipEventListening": True,
    "order": "normal",
}

CHECK_PARENT_TYPE = {"none": "NONE", "all": "ALL", "in-plan": "MAKE_SCOPE"}
DATA_TIME_ORDER = {"normal": "NORMAL", "chronological": "ORDER", "reverse": "REVERSE"}
CYCLE_TYPE = {"monthly": "MONTH_CYCLE"}

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

# ListDataBackfillInstances `State` (InstanceState in the SDK models). A failed try that will be
# retried is still running, a skipped instance is done, and a state not listed here is taken as
# still running: neither done nor known to have failed.
INSTANCE_PHASES: Mapping[str, Phase] = {
    "WAIT_EVENT": "waiting",
    "WAIT_UPSTREAM": "waiting",
    "WAIT_RUN": "waiting",
    "RUNNING": "running",
    "FAILED_RETRY": "running",
    "SKIP_RUNNING": "succeeded",
    "COMPLETED": "succeeded",
    "EXPIRED": "failed",
}
LIST_PAGE_SIZE = 100


def classify(code: str) -> OutcomeKind:
    family = code.split(".", 1)[0]
    if family in RETRYABLE_CODES:
        return OutcomeKind.RETRYABLE
    if family in REJECTED_CODES:
        return OutcomeKind.REJECTED
    return OutcomeKind.UNKNOWN


def _id(value: JSON) -> str:
    return str(value)


class WeDataProvider:
    name = NAME
    action = ACTION
    rate_limit = RATE_LIMIT
    targets_field = "taskIds"
    credentials_prefix = "TENCENTCLOUD_"
    spec_schema: Mapping[str, JSON] = {"$ref": "#/$defs/tencentSpec"}

    def region(self, plan: Plan) -> str:
        return str(plan.spec["region"])

    def targets(self, plan: Plan) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_id(t) for t in plan.spec[self.targets_field]))

    def cell_groups(self, plan: Plan) -> list[CellGroup]:
        spec = plan.spec
        targets = self.targets(plan)
        common = {key: spec.get(key, default) for key, default in DEFAULTS.items()}
        for key in (
            "remoteName",
            "selfDependency",
            "parallelism",
            "schedulerResourceGroupId",
            "integrationResourceGroupId",
            "parameters",
            "instanceCycle",
            "computeConfigMappings",
        ):
            if key in spec:
                common[key] = spec[key]
        common["region"] = spec["region"]
        common["projectId"] = _id(spec["projectId"])
        # Ranges with the same execution window share every parameter, so they form one group.
        by_window: dict[tuple[str, str] | None, tuple[JSON, list[tuple[int, int]]]] = {}
        for entry in spec["dates"]:
            window = entry.get("executionWindow", spec.get("executionWindow"))
            same = (window["start"], window["end"]) if window else None
            slot = by_window.setdefault(same, (window, []))
            slot[1].append(range_span(entry["start"], entry.get("end", entry["start"])))
        groups = []
        for window, spans in by_window.values():
            params = dict(common)
            if window is not None:
                params["executionWindow"] = window
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
        params = group.params
        window = params.get("executionWindow")
        ranges: list[dict[str, JSON]] = []
        for start, end in contiguous_runs(batch.dates):
            entry: dict[str, JSON] = {"StartDate": start, "EndDate": end}
            if isinstance(window, Mapping):
                entry["ExecutionStartTime"] = window["start"]
                entry["ExecutionEndTime"] = window["end"]
            ranges.append(entry)
        request: dict[str, JSON] = {
            "ProjectId": params["projectId"],
            "TaskIds": list(batch.targets),
            "DataBackfillRangeList": ranges,
            "DataBackfillPlanName": params.get("remoteName") or remote_name(plan, key),
            "TimeZone": params["timeZone"],
            "CheckParentType": CHECK_PARENT_TYPE[str(params["checkParents"])],
            "SkipEventListening": params["skipEventListening"],
            "DataTimeOrder": DATA_TIME_ORDER[str(params["order"])],
        }
        if "selfDependency" in params:
            request["RedefineSelfWorkflowDependency"] = "yes" if params["selfDependency"] else "no"
        if "parallelism" in params:
            request["RedefineParallelNum"] = params["parallelism"]
        if "schedulerResourceGroupId" in params:
            request["SchedulerResourceGroupId"] = params["schedulerResourceGroupId"]
        if "integrationResourceGroupId" in params:
            request["IntegrationResourceGroupId"] = params["integrationResourceGroupId"]
        if "parameters" in params:
            request["RedefineParamList"] = [
                {"K": k, "V": _param_text(v)} for k, v in dict(params["parameters"]).items()
            ]
        if "instanceCycle" in params:
            request["RedefineCycleType"] = CYCLE_TYPE[str(params["instanceCycle"])]
        if "computeConfigMappings" in params:
            request["ComputeConfigMappings"] = [
                _compute_mapping(m) for m in params["computeConfigMappings"]
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


def _compute_mapping(mapping: Mapping[str, Any]) -> dict[str, JSON]:
    out: dict[str, JSON] = {
        "TaskTypeId": mapping["taskTypeId"],
        "ComputeConfigItem": mapping["item"],
        "SourceValue": mapping["sourceValue"],
        "TargetValue": mapping["targetValue"],
    }
    if "taskIds" in mapping:
        out["TaskIds"] = [_id(t) for t in mapping["taskIds"]]
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
        plan = {
            "ProjectId": str(request["ProjectId"]),
            "DataBackfillPlanId": record.remote_id,
        }
        got = self.call("GetDataBackfillPlan", record.region, plan)
        if got.kind is not OutcomeKind.SUBMITTED:
            return Progress("unknown", error=_failure("GetDataBackfillPlan", got))
        instances: list[Instance] = []
        for task in record.targets:
            listed = self._instances(record.region, {**plan, "TaskId": task})
            if isinstance(listed, Outcome):
                return Progress("unknown", error=_failure("ListDataBackfillInstances", listed))
            instances += [_instance(item) for item in listed]
        return Progress(
            protocol.overall(instances, len(record.targets) * len(record.dates)),
            instances=tuple(instances),
            complete_percent=_percent(got.detail.get("CompletePercent")),
            success_percent=_percent(got.detail.get("SuccessPercent")),
        )

    def _instances(
        self, region: str, query: Mapping[str, JSON]
    ) -> list[Mapping[str, Any]] | Outcome:
        """Every page of ListDataBackfillInstances for one plan and task."""
        return protocol.every_page(
            lambda page: self.call(
                "ListDataBackfillInstances",
                region,
                {**query, "PageNumber": page, "PageSize": LIST_PAGE_SIZE},
            ),
            items=lambda data: data.get("Items") or [],
            last=lambda data, page: page >= int(data.get("TotalPageNumber") or 0),
        )

    def close(self) -> None:
        self._http.close()


def _instance(item: Mapping[str, Any]) -> Instance:
    state = str(item.get("State") or "")
    return Instance(
        target=str(item.get("TaskId", "")),
        date=str(item.get("CurRunDate") or "")[:10],
        state=state,
        phase=INSTANCE_PHASES.get(state, "running"),
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
