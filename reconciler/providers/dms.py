"""Alibaba Cloud DMS Enterprise `BackFill` (2018-11-01): plan fields to RPC parameters, one call
per DAG per contiguous run of dates, replies mapped to outcomes, and the remote lookup that
settles an unknown outcome (`ListTaskFlowInstance`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from reconciler.domain import (
    JSON,
    Batch,
    CellGroup,
    Outcome,
    OutcomeKind,
    Plan,
    Submission,
    days,
    fingerprint,
    merge_spans,
    range_span,
)
from reconciler.errors import BackfillError
from reconciler.providers.acs3 import ACS3Auth, AliyunCredentials, encode_query, rpc_params
from reconciler.providers.protocol import (
    Connection,
    Instance,
    Lookup,
    Phase,
    Progress,
    call_count,
    chunked,
    contiguous_runs,
    from_emulator,
    overall,
    send,
    unreadable,
)

NAME = "aliyun-dms"
ACTION = "BackFill"
VERSION = "2018-11-01"
ENDPOINT = "https://dms-enterprise.{region}.aliyuncs.com"
ENDPOINT_VARIABLE = "BACKFILL_ALIYUN_ENDPOINT"
RATE_VARIABLE = "BACKFILL_ALIYUN_RATE_LIMIT"
DEFAULT_RATE_LIMIT = 10.0
"""Not documented by DMS; override with BACKFILL_ALIYUN_RATE_LIMIT (calls per second)."""
LIST_PAGE_SIZE = 100
SETTLE_SECONDS = 300.0
"""How long after its intent a create may still be running at DMS although its process died:
finding no instance before then proves nothing (recovering at once after a kill must not
conclude "did not run" while the server is still handling the request)."""
clock: Callable[[], float] = time.time
"""The wall clock an intent's age is judged by."""

DEFAULTS: dict[str, JSON] = {"triggerSubTree": True, "intervalHours": 24, "order": "chronological"}
OPTIONAL = ("tenantId", "historyDagId", "startNodeIds", "filterNodeIds")

# Outcome table (README "Outcomes"). Gateway refusals come before DMS executes anything;
# `Success: false` with a validation code is a refusal too. Codes not listed are UNKNOWN.
RETRYABLE_PREFIXES = ("Throttling",)
REJECTED_PREFIXES = (
    "InvalidParameter",
    "MissingParameter",
    "Missing",
    "Invalid",  # InvalidAccessKeyId, InvalidTimeStamp, InvalidApi, InvalidVersion, InvalidDagId ...
    "IncompleteSignature",
    "SignatureDoesNotMatch",
    "SignatureNonceUsed",
    "Forbidden",
    "NoPermission",
    "UnsupportedOperation",
)
UNKNOWN_CODES = frozenset({"InternalError", "ServiceUnavailable", "UnknownError"})

# ListTaskFlowInstance `Status` as documented: 0 waiting for scheduling, 1 running, 2 suspended,
# 3 failed, 4 succeeded, 5 completed. A status not listed is taken as still running.
INSTANCE_STATUS: Mapping[int, tuple[str, Phase]] = {
    0: ("WAITING", "waiting"),
    1: ("RUNNING", "running"),
    2: ("SUSPENDED", "paused"),
    3: ("FAILED", "failed"),
    4: ("SUCCEEDED", "succeeded"),
    5: ("COMPLETED", "succeeded"),
}


def classify(code: str) -> OutcomeKind:
    if code in UNKNOWN_CODES:
        return OutcomeKind.UNKNOWN
    if code.startswith(RETRYABLE_PREFIXES):
        return OutcomeKind.RETRYABLE
    if code.startswith(REJECTED_PREFIXES):
        return OutcomeKind.REJECTED
    return OutcomeKind.UNKNOWN


def rate_limit() -> float:
    text = os.environ.get(RATE_VARIABLE, "")
    try:
        value = float(text) if text else DEFAULT_RATE_LIMIT
    except ValueError:
        value = 0.0
    if value <= 0:
        raise BackfillError(f"{RATE_VARIABLE}={text!r}: give a positive number of calls per second")
    return value


class DmsProvider:
    name = NAME
    action = ACTION

    @property
    def rate_limit(self) -> float:
        return rate_limit()

    def region(self, plan: Plan) -> str:
        return str(plan.spec["region"])

    def cell_groups(self, plan: Plan) -> list[CellGroup]:
        spec = plan.spec
        params: dict[str, JSON] = {key: spec.get(key, default) for key, default in DEFAULTS.items()}
        params["region"] = spec["region"]
        for key in OPTIONAL:
            if key in spec:
                value = spec[key]
                params[key] = [int(v) for v in value] if isinstance(value, list) else int(value)
        spans = merge_spans(
            range_span(entry["start"], entry.get("end", entry["start"])) for entry in spec["dates"]
        )
        targets = tuple(dict.fromkeys(str(int(t)) for t in spec["dagIds"]))
        return [
            CellGroup(
                plan=plan.name,
                revision=plan.revision,
                targets=targets,
                spans=tuple(spans),
                params=params,
                fingerprint=fingerprint(params),
            )
        ]

    def batches(self, plan: Plan, missing: Mapping[str, Sequence[str]]) -> list[Batch]:
        # BackFill takes one DAG and one date or one contiguous range per call.
        batches: list[Batch] = []
        for target in sorted(missing, key=int):
            for start, end in contiguous_runs(sorted(missing[target])):
                for chunk in chunked(days(start, end), plan, 1):
                    batches.append(Batch(targets=(target,), dates=chunk))
        return batches

    def calls(self, plan: Plan) -> int:
        return sum(
            len(group.targets) * call_count(last - first + 1, plan, 1)
            for group in self.cell_groups(plan)
            for first, last in group.spans
        )

    def request(self, plan: Plan, group: CellGroup, batch: Batch, key: str) -> dict[str, JSON]:
        params = group.params
        (target,) = batch.targets
        request: dict[str, JSON] = {"DagId": int(target)}
        if len(batch.dates) == 1:
            request["BackFillDate"] = batch.dates[0]
        else:
            request["BackFillDateBegin"] = batch.dates[0]
            request["BackFillDateEnd"] = batch.dates[-1]
        request["IsTriggerSubTree"] = params["triggerSubTree"]
        request["Interval"] = params["intervalHours"]
        request["Asc"] = params["order"] == "chronological"
        for field, name in (
            ("tenantId", "Tid"),
            ("historyDagId", "HistoryDagId"),
            ("startNodeIds", "StartNodeIds"),
            ("filterNodeIds", "FilterNodeIds"),
        ):
            if field in params:
                request[name] = params[field]
        return request

    def default_endpoint(self, region: str) -> str:
        return ENDPOINT.format(region=region)

    def client(self, connection: Connection) -> DmsClient:
        credentials = AliyunCredentials.from_env()
        if credentials is None:
            raise BackfillError(
                "no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS ones)"
            )
        return DmsClient(credentials, connection)

    def look_up(self, record: Any, connection: Connection) -> Lookup:
        client = self.client(connection)
        try:
            return client.find(record)
        finally:
            client.close()

    def progress(self, record: Any, connection: Connection) -> Progress:
        client = self.client(connection)
        try:
            return client.progress(record)
        finally:
            client.close()


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    body: Mapping[str, Any]


class DmsClient:
    """Sends DMS RPC actions signed with ACS3 and maps every possible reply to an Outcome."""

    def __init__(self, credentials: AliyunCredentials, connection: Connection) -> None:
        self._http = httpx.Client(
            base_url=connection.endpoint,
            auth=ACS3Auth(credentials),
            transport=connection.transport,
            timeout=httpx.Timeout(connection.timeout, connect=10.0),
        )
        self.credential_id = credentials.access_key_id

    def submit(self, submission: Submission) -> Outcome:
        reply = self.call(ACTION, submission.request)
        outcome = reply.outcome
        if outcome.kind is not OutcomeKind.SUBMITTED:
            return outcome
        instance = reply.body.get("DagInstanceId")
        if instance in (None, ""):
            return Outcome(
                OutcomeKind.UNKNOWN,
                request_id=outcome.request_id,
                code="NoInstanceId",
                message="success reply without a DagInstanceId",
                emulator=outcome.emulator,
            )
        return Outcome(
            OutcomeKind.SUBMITTED,
            remote_id=str(instance),
            request_id=outcome.request_id,
            detail={"DagInstanceId": instance, "NodeId": reply.body.get("NodeId")},
            emulator=outcome.emulator,
        )

    def call(self, action: str, params: Mapping[str, JSON]) -> Reply:
        query = encode_query(rpc_params(params))
        headers = {"x-acs-action": action, "x-acs-version": VERSION, "accept": "application/json"}
        response = send(self._http, f"/?{query}", headers=headers)
        if isinstance(response, Outcome):
            return Reply(response, {})
        return _reply(response)

    def find(self, record: Any) -> Lookup:
        """Instances of the DAG, for the submission's business dates, started since its intent.

        Found for every date: it ran. None at all in a complete listing, SETTLE_SECONDS or more
        after the intent: it did not. Anything else (some dates only, a request that may still
        be running, an error) stays unknown for a person or a later lookup to decide.
        """
        (target,) = record.targets
        since = record.intent_time[:10]
        wanted = set(record.dates)
        found: dict[str, int] = {}
        page = 1
        while True:
            reply = self.call(
                "ListTaskFlowInstance",
                {
                    "DagId": int(target),
                    "StartTimeBegin": since,
                    "StartTimeEnd": (date.today() + timedelta(days=1)).isoformat(),
                    "PageIndex": page,
                    "PageSize": LIST_PAGE_SIZE,
                },
            )
            if reply.outcome.kind is not OutcomeKind.SUBMITTED:
                return Lookup(
                    "unclear",
                    how=f"ListTaskFlowInstance failed: {reply.outcome.code} "
                    f"{reply.outcome.message}".strip(),
                )
            items = reply.body.get("DAGInstanceList", {}).get("DAGInstance", []) or []
            for item in items:
                business = str(item.get("BusinessTime", ""))[:10]
                if business in wanted:
                    found.setdefault(business, int(item["Id"]))
            total = int(reply.body.get("TotalCount", 0) or 0)
            if page * LIST_PAGE_SIZE >= total or not items:
                break
            page += 1
        how = (
            f"ListTaskFlowInstance DagId={target} since {since}: "
            f"{len(found)} of {len(wanted)} dates have instances"
        )
        if len(found) == len(wanted):
            return Lookup("submitted", remote_id=str(min(found.values())), how=how)
        age = clock() - datetime.fromisoformat(record.intent_time).timestamp()
        if not found and age >= SETTLE_SECONDS:
            return Lookup("missing", how=how)
        if not found:
            return Lookup(
                "unclear",
                how=f"{how}, but the request left only {age:.0f}s ago and may still be running "
                f"at DMS: look again {SETTLE_SECONDS:.0f}s after it",
            )
        return Lookup("unclear", how=how)

    def progress(self, record: Any) -> Progress:
        """The DAG's instances for the submission's business dates (UseBizDate), each date's
        being the first one DMS created at or after the submission's DagInstanceId: a later
        backfill of the same dates makes newer instances, an earlier one older ones."""
        (target,) = record.targets
        wanted = set(record.dates)
        first_id = int(record.remote_id) if record.remote_id.isdigit() else 0
        params: dict[str, JSON] = {
            "DagId": int(target),
            "UseBizDate": True,
            "StartTimeBegin": min(wanted),
            "StartTimeEnd": max(wanted),
            "PageSize": LIST_PAGE_SIZE,
        }
        if "Tid" in record.request:
            params["Tid"] = record.request["Tid"]
        chosen: dict[str, Mapping[str, Any]] = {}
        page = 1
        while True:
            reply = self.call("ListTaskFlowInstance", {**params, "PageIndex": page})
            if reply.outcome.kind is not OutcomeKind.SUBMITTED:
                failure = f"ListTaskFlowInstance: {reply.outcome.code} {reply.outcome.message}"
                return Progress("unknown", error=failure.strip())
            items = reply.body.get("DAGInstanceList", {}).get("DAGInstance", []) or []
            for item in items:
                business = str(item.get("BusinessTime", ""))[:10]
                number = int(item.get("Id", 0))
                if business not in wanted or number < first_id:
                    continue
                if business not in chosen or number < int(chosen[business]["Id"]):
                    chosen[business] = item
            if page * LIST_PAGE_SIZE >= int(reply.body.get("TotalCount", 0) or 0) or not items:
                break
            page += 1
        instances = tuple(_instance(target, day, chosen[day]) for day in sorted(chosen))
        if not instances:
            return Progress(
                "unknown",
                error=f"ListTaskFlowInstance DagId={target} has no instance for "
                f"{min(wanted)}..{max(wanted)} from DagInstanceId {record.remote_id} on",
            )
        succeeded = sum(1 for i in instances if i.phase == "succeeded")
        finished = succeeded + sum(1 for i in instances if i.phase == "failed")
        return Progress(
            overall(instances, len(wanted)),
            instances=instances,
            complete_percent=100 * finished // len(wanted),
            success_percent=100 * succeeded // len(wanted),
        )

    def close(self) -> None:
        self._http.close()


def _instance(target: str, day: str, item: Mapping[str, Any]) -> Instance:
    status = item.get("Status")
    known = INSTANCE_STATUS.get(status) if isinstance(status, int) else None
    name, phase = known or ("UNLISTED", "running")
    return Instance(target=target, date=day, state=f"{name}({status})", phase=phase)


def _reply(response: httpx.Response) -> Reply:
    emulator = from_emulator(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Reply(unreadable(response, "DMS"), {})
    request_id = str(body.get("RequestId", ""))
    if response.status_code >= 400:
        # The API gateway refused the request before DMS ran it.
        code = str(body.get("Code") or f"HTTP{response.status_code}")
        return Reply(
            Outcome(
                classify(code),
                request_id=request_id,
                code=code,
                message=str(body.get("Message", "")),
                emulator=emulator,
            ),
            body,
        )
    if body.get("Success") is not True:
        code = str(body.get("ErrorCode") or "UnknownError")
        return Reply(
            Outcome(
                classify(code),
                request_id=request_id,
                code=code,
                message=str(body.get("ErrorMessage", "")),
                emulator=emulator,
            ),
            body,
        )
    return Reply(Outcome(OutcomeKind.SUBMITTED, request_id=request_id, emulator=emulator), body)


PROVIDER = DmsProvider()
