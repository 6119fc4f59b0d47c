"""Alibaba Cloud DMS Enterprise `BackFill` (2018-11-01): plan fields to RPC parameters, one call
per DAG per contiguous run of dates, replies mapped to outcomes, and the remote lookup that
settles an unknown outcome (`ListTaskFlowInstance`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
    days,
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
    from reconciler.providers.acs3 import AliyunCredentials
    from reconciler.state import SubmissionRecord

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
sleep: Callable[[float], None] = time.sleep
CREATE_DELAY_SECONDS = 1.0
"""How long a BackFill waits after its intent before it is sent. `startTime` has whole seconds:
a run this request makes then starts in a later second than the intent, and a lookup can tell
it from a run that started in the intent's second or before (another backfill's), which it
could not within one second. Calls in parallel wait side by side, and keep their pace."""

# What the recovery lookup reads in ListTaskFlowInstance (see `DmsClient.find`).
MANUAL_TRIGGER = 1
"""`TriggerType` of a run started by hand, as a BackFill is (documented values: 0 periodic
scheduling, 1 manual). A scheduled run of the same date proves nothing about a backfill."""
INSTANCE_TIME_ZONE = timezone(timedelta(hours=8))
"""`startTime` is written without a zone; DMS task orchestration states its times in UTC+8."""
INSTANCE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CLOCK_SKEW_SECONDS = 60.0
"""How far the clock of the machine that journaled an intent and DMS's clock may disagree. A
run that started more than this before the intent cannot be the intent's; one that started
less long before it (or in the intent's own second) may or may not be, so it leaves the lookup
unclear rather than be counted or ignored."""

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
AUTH_FAILURE_PREFIXES = (
    "IncompleteSignature",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidSecurityToken",
    "InvalidTimeStamp",
)
"""Gateway codes for a request it could not authenticate: every other call signed with the same
key (and clock) fails alike. Not `SignatureNonceUsed`, which concerns one request only."""

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
    targets_field = "dagIds"
    credentials_prefix = "ALIBABA_CLOUD_"
    spec_schema: Mapping[str, JSON] = {"$ref": "#/$defs/aliyunSpec"}

    @property
    def rate_limit(self) -> float:
        return rate_limit()

    def region(self, plan: Plan) -> str:
        return str(plan.spec["region"])

    def targets(self, plan: Plan) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(int(t)) for t in plan.spec[self.targets_field]))

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
        targets = self.targets(plan)
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
                for chunk in protocol.chunked(days(start, end), plan, 1):
                    batches.append(Batch(targets=(target,), dates=chunk))
        return batches

    def calls(self, plan: Plan) -> int:
        return sum(
            len(group.targets) * protocol.call_count(last - first + 1, plan, 1)
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
        # The client's modules (httpx, the signer) load with the first call, not with `validate`.
        from reconciler.providers.acs3 import AliyunCredentials  # noqa: PLC0415

        credentials = AliyunCredentials.from_env()
        if credentials is None:
            raise BackfillError(
                "no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS ones)"
            )
        return DmsClient(credentials, connection)

    def remote_name(self, request: Mapping[str, JSON]) -> str:
        return ""  # BackFill takes no name: a run is found by its DAG and dates (`look_up`)

    def look_up(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
    ) -> Lookup:
        with closing(self.client(connection)) as client:
            return client.find(record, request, others)

    def progress(
        self, record: SubmissionRecord, request: Mapping[str, JSON], connection: Connection
    ) -> Progress:
        with closing(self.client(connection)) as client:
            return client.progress(record, request)

    def emulated(self) -> ServiceFactory:
        from reconciler.emulator.dms import DmsService  # noqa: PLC0415 - see Provider.emulated

        return DmsService


class DmsClient:
    """Sends DMS RPC actions signed with ACS3 and maps every possible reply to an Outcome."""

    def __init__(self, credentials: AliyunCredentials, connection: Connection) -> None:
        from reconciler.providers.acs3 import ACS3Auth  # noqa: PLC0415 - see DmsProvider.client

        self._http = connection.http(ACS3Auth(credentials))
        self.credential_id = credentials.access_key_id

    def submit(self, submission: Submission) -> Outcome:
        # Called just after the intent was journaled: see CREATE_DELAY_SECONDS.
        sleep(CREATE_DELAY_SECONDS)
        outcome = self.call(ACTION, submission.request)
        if outcome.kind is not OutcomeKind.SUBMITTED:
            return outcome
        instance = outcome.detail.get("DagInstanceId")
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
            detail={"DagInstanceId": instance, "NodeId": outcome.detail.get("NodeId")},
            emulator=outcome.emulator,
        )

    def call(self, action: str, params: Mapping[str, JSON]) -> Outcome:
        """One RPC action; a reply DMS accepted has its whole body in `detail`."""
        from reconciler.providers.acs3 import encode_query, rpc_params  # noqa: PLC0415

        query = encode_query(rpc_params(params))
        headers = {"x-acs-action": action, "x-acs-version": VERSION, "accept": "application/json"}
        response = protocol.send(self._http, f"/?{query}", headers=headers)
        if isinstance(response, Outcome):
            return response
        return _outcome(response)

    def find(
        self, record: SubmissionRecord, request: Mapping[str, JSON], others: Sequence[Claim]
    ) -> Lookup:
        """Settle an unknown BackFill from the DAG's manual runs of its business dates.

        Only a run this request could have made counts: the same DAG and one of its dates,
        not triggered by the schedule, started in a later second than the intent (or not yet), not
        the remote id of another submission, and not a run that an unsettled submission of the
        same DAG and date could have made too. A run that started up to CLOCK_SKEW_SECONDS
        before the intent may be its or not. Exactly one such run for every date, the first
        date's already started: it ran, as that run. None at all in a complete listing,
        SETTLE_SECONDS or more after the intent: it did not. Anything else stays unknown, with a
        sentence saying why, for a person or a later lookup.
        """
        (target,) = record.targets
        dates = sorted(record.dates)
        intent = datetime.fromisoformat(record.intent_time).timestamp()
        listed = self._runs(record, request)
        if isinstance(listed, Outcome):
            return Lookup(
                "unclear",
                how=f"ListTaskFlowInstance failed: {listed.code} {listed.message}".strip(),
            )
        claimed = {c.remote_id for c in others if not c.unsettled}
        rivals = [c for c in others if c.unsettled and target in c.targets]
        runs: dict[str, list[_Run]] = {day: [] for day in dates}
        problems: list[str] = []
        for item in listed:
            day = str(item.get("BusinessTime", ""))[:10]
            trigger = item.get("TriggerType")
            # A run that does not say how it was triggered may be this request's: ignoring it
            # could conclude "did not run" and send the backfill twice.
            if day not in runs or trigger not in (MANUAL_TRIGGER, None):
                continue
            run = _Run(str(item.get("Id", "")), day, _started(item.get("startTime")))
            if run.id in claimed:
                continue  # the remote id of another submission: never this one's
            early = run.early(intent)
            if early > CLOCK_SKEW_SECONDS:
                continue  # started before the intent, whatever the clocks: not this request's
            if early > 0:
                problems.append(
                    f"instance {run.id} for {day} started at {item.get('startTime')} (UTC+8), "
                    f"not after the intent but within the {CLOCK_SKEW_SECONDS:.0f}s allowed for "
                    "clocks that disagree: it may or may not be this request's"
                )
                continue
            shared = [
                c.key
                for c in rivals
                if day in c.dates and run.early(_epoch(c.intent_time)) <= CLOCK_SKEW_SECONDS
            ]
            if shared:
                problems.append(
                    f"instance {run.id} for {day} may also be submission {', '.join(shared)}'s, "
                    "whose outcome is unknown too"
                )
            runs[day].append(run)
        how = (
            f"ListTaskFlowInstance DagId={target}: manual runs for "
            f"{_span(dates)} since the intent at {record.intent_time}"
        )
        found = {day: candidates for day, candidates in runs.items() if candidates}
        for day, candidates in found.items():
            if len(candidates) > 1:
                problems.append(
                    f"{len(candidates)} instances for {day} since the intent "
                    f"({', '.join(r.id for r in candidates)}): another backfill of the same "
                    "dates may have made them"
                )
        if found and len(found) < len(dates):
            missing = [day for day in dates if day not in found]
            problems.append(
                f"instances for {len(found)} of {len(dates)} dates only (none for "
                f"{_span(missing)}): another backfill of some of these dates may have made them"
            )
        if problems:
            return Lookup("unclear", how=f"{how}: {'; '.join(problems)}; check in the DMS console")
        if found:
            ascending = request.get("Asc", True) is not False
            (first,) = found[dates[0] if ascending else dates[-1]]
            if first.started is None:
                return Lookup(
                    "unclear",
                    how=f"{how}: the instance for the first date, {first.day} ({first.id}), has "
                    "not started yet, so nothing dates it after the intent: look again once it "
                    "has started",
                )
            ids = ", ".join(f"{found[day][0].id} ({day})" for day in dates)
            return Lookup(
                "submitted", remote_id=first.id, how=f"{how}: one instance per date: {ids}"
            )
        age = clock() - intent
        if age >= SETTLE_SECONDS:
            return Lookup("missing", how=f"{how}: none")
        return Lookup(
            "unclear",
            how=f"{how}: none yet, but the request left only {age:.0f}s ago and may still be "
            f"running at DMS: look again {SETTLE_SECONDS:.0f}s after it",
        )

    def _runs(
        self, record: SubmissionRecord, request: Mapping[str, JSON]
    ) -> list[Mapping[str, Any]] | Outcome:
        """Every run ListTaskFlowInstance lists of the submission's DAG for its business dates
        (in its tenant, if it names one), or the outcome of the call that failed."""
        (target,) = record.targets
        params: dict[str, JSON] = {
            "DagId": int(target),
            "UseBizDate": True,
            "StartTimeBegin": min(record.dates),
            "StartTimeEnd": max(record.dates),
            "PageSize": LIST_PAGE_SIZE,
        }
        if "Tid" in request:
            params["Tid"] = request["Tid"]
        return protocol.every_page(
            lambda page: self.call("ListTaskFlowInstance", {**params, "PageIndex": page}),
            items=lambda body: body.get("DAGInstanceList", {}).get("DAGInstance", []) or [],
            last=lambda body, page: page * LIST_PAGE_SIZE >= int(body.get("TotalCount", 0) or 0),
        )

    def progress(self, record: SubmissionRecord, request: Mapping[str, JSON]) -> Progress:
        """The DAG's instances for the submission's business dates (UseBizDate), each date's
        being the first one DMS created at or after the submission's DagInstanceId: a later
        backfill of the same dates makes newer instances, an earlier one older ones."""
        (target,) = record.targets
        wanted = set(record.dates)
        first_id = int(record.remote_id) if record.remote_id.isdigit() else 0
        listed = self._runs(record, request)
        if isinstance(listed, Outcome):
            failure = f"ListTaskFlowInstance: {listed.code} {listed.message}"
            return Progress("unknown", error=failure.strip())
        chosen: dict[str, Mapping[str, Any]] = {}
        for item in listed:
            business = str(item.get("BusinessTime", ""))[:10]
            number = int(item.get("Id", 0))
            if business not in wanted or number < first_id:
                continue
            if business not in chosen or number < int(chosen[business]["Id"]):
                chosen[business] = item
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
            protocol.overall(instances, len(wanted)),
            instances=instances,
            complete_percent=100 * finished // len(wanted),
            success_percent=100 * succeeded // len(wanted),
        )

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True, slots=True)
class _Run:
    """One manual run of the DAG for one of a submission's dates, as the lookup weighs it."""

    id: str
    day: str
    started: float | None
    """Epoch seconds (whole: `startTime` has no fraction); None while it waits to start."""

    def early(self, intent: float) -> float:
        """How long before an intent's time the run started: 0 when it started in a later
        second (see CREATE_DELAY_SECONDS) or has not started yet."""
        if self.started is None or self.started >= intent:
            return 0.0
        return intent - self.started


def _started(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.strptime(text, INSTANCE_TIME_FORMAT)
    except ValueError:
        return None
    return parsed.replace(tzinfo=INSTANCE_TIME_ZONE).timestamp()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _span(dates: Sequence[str]) -> str:
    return ", ".join(a if a == b else f"{a}..{b}" for a, b in contiguous_runs(dates))


def _instance(target: str, day: str, item: Mapping[str, Any]) -> Instance:
    status = item.get("Status")
    known = INSTANCE_STATUS.get(status) if isinstance(status, int) else None
    name, phase = known or ("UNLISTED", "running")
    return Instance(target=target, date=day, state=f"{name}({status})", phase=phase)


def _outcome(response: httpx.Response) -> Outcome:
    emulator = protocol.from_emulator(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return protocol.unreadable(response, "DMS")
    request_id = str(body.get("RequestId", ""))
    halt = ""
    if response.status_code >= 400:
        # The API gateway refused the request before DMS ran it.
        code = str(body.get("Code") or f"HTTP{response.status_code}")
        message = str(body.get("Message", ""))
        if code.startswith(AUTH_FAILURE_PREFIXES):
            halt = (
                f"the credentials were refused ({code}): check ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS "
                "ones), and this machine's clock"
            )
    elif body.get("Success") is not True:
        code = str(body.get("ErrorCode") or "UnknownError")
        message = str(body.get("ErrorMessage", ""))
    else:
        return Outcome(OutcomeKind.SUBMITTED, request_id=request_id, detail=body, emulator=emulator)
    return Outcome(
        classify(code),
        request_id=request_id,
        code=code,
        message=message,
        emulator=emulator,
        halt=halt,
    )


PROVIDER = DmsProvider()
