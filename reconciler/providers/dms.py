"""Alibaba Cloud DMS Enterprise `BackFill` (2018-11-01): plan fields to RPC parameters, one call
per DAG per contiguous run of dates, replies mapped to outcomes, and the remote lookup that
settles an unknown outcome (`ListTaskFlowInstance`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from reconciler.contract import (
    DATES,
    INTEGER,
    MAX_TARGETS,
    REGION_PATTERN,
    UNIQUE,
    ApiEnum,
    DayRange,
    DmsId,
    Maybe,
    Spec,
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
    days,
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
    from reconciler.providers.acs3 import AliyunCredentials
    from reconciler.state import SubmissionRecord

# --- the spec: what a plan file says, with the defaults of the API ----------------------------


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
        BeforeValidator(unique),
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


# --- the API -------------------------------------------------------------------------------

NAME = DmsSpec.provider_name()
ACTION = "BackFill"
VERSION = "2018-11-01"
ENDPOINT = "https://dms-enterprise.{region}.aliyuncs.com"
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

READ_ACTION = "ListTaskFlowInstance"
"""What `refresh` calls, at the pace BACKFILL_ALIYUN_RATE_LIMIT sets for every DMS call."""

# ListTaskFlowInstance `Status` -> health. The numbers and their names are documented (API
# reference of ListTaskFlowInstance, as issue 12 quotes it; the seed reference,
# seeds/aliyun-dms-BackFill, covers BackFill only): 0 waiting for scheduling, 1 running,
# 2 suspended, 3 failed, 4 succeeded, 5 completed. That a suspended run counts as stopped and a
# completed one as succeeded is this tool's reading. Any other value is `unknown`, kept raw.
INSTANCE_STATUS: Mapping[int, tuple[str, protocol.Meaning]] = {
    0: ("WAITING", protocol.Meaning(Health.WAITING, "documented")),
    1: ("RUNNING", protocol.Meaning(Health.RUNNING, "documented")),
    2: ("SUSPENDED", protocol.Meaning(Health.STOPPED, "assumed")),
    3: ("FAILED", protocol.Meaning(Health.FAILED, "documented")),
    4: ("SUCCEEDED", protocol.Meaning(Health.SUCCEEDED, "documented")),
    5: ("COMPLETED", protocol.Meaning(Health.SUCCEEDED, "assumed")),
}
_MEANINGS = {status: meaning for status, (_, meaning) in INSTANCE_STATUS.items()}


def classify(code: str) -> OutcomeKind:
    if code in UNKNOWN_CODES:
        return OutcomeKind.UNKNOWN
    if code.startswith(RETRYABLE_PREFIXES):
        return OutcomeKind.RETRYABLE
    if code.startswith(REJECTED_PREFIXES):
        return OutcomeKind.REJECTED
    return OutcomeKind.UNKNOWN


def rate_limit() -> float:
    return protocol.configured_rate(RATE_VARIABLE, DEFAULT_RATE_LIMIT)


def _spec(plan: Plan) -> DmsSpec:
    if not isinstance(plan.spec, DmsSpec):
        raise TypeError(f"plan {plan.name!r} is a {plan.provider} plan, not a {NAME} one")
    return plan.spec


class DmsProvider:
    name = NAME
    action = ACTION
    credentials_prefix = "ALIBABA_CLOUD_"
    spec_model = DmsSpec

    @property
    def rate_limit(self) -> float:
        return rate_limit()

    def region(self, plan: Plan) -> str:
        return _spec(plan).region

    def targets(self, plan: Plan) -> tuple[str, ...]:
        return tuple(dict.fromkeys(str(t) for t in _spec(plan).dag_ids))

    def cell_groups(self, plan: Plan) -> list[CellGroup]:
        spec = _spec(plan)
        params = spec.fingerprinted()
        spans = merge_spans(range_span(entry.start, entry.last) for entry in spec.dates)
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
        spec = _spec(plan)
        (target,) = batch.targets
        request: dict[str, JSON] = {"DagId": int(target)}
        if len(batch.dates) == 1:
            request["BackFillDate"] = batch.dates[0]
        else:
            request["BackFillDateBegin"] = batch.dates[0]
            request["BackFillDateEnd"] = batch.dates[-1]
        request["IsTriggerSubTree"] = spec.trigger_sub_tree
        request["Interval"] = spec.interval_hours
        request["Asc"] = spec.order.api
        for value, name in (
            (spec.tenant_id, "Tid"),
            (spec.history_dag_id, "HistoryDagId"),
            (spec.start_node_ids, "StartNodeIds"),
            (spec.filter_node_ids, "FilterNodeIds"),
        ):
            if value is not None:
                request[name] = value
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

    @property
    def read_limits(self) -> Mapping[str, float]:
        return {READ_ACTION: rate_limit()}

    def observe(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
        *,
        pace: Pace,
    ) -> Observation:
        with closing(self.client(connection)) as client:
            return client.observe(record, request, others, pace)

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

        Only a run this request could have made counts (`_own_runs`). Exactly one such run for
        every date, the first
        date's already started: it ran, as that run. None at all in a complete listing,
        SETTLE_SECONDS or more after the intent: it did not. Anything else stays unknown, with a
        sentence saying why, for a person or a later lookup.
        """
        (target,) = record.targets
        dates = sorted(record.dates)
        listed = self._runs(record, request, protocol.unpaced)
        if isinstance(listed, Outcome):
            return Lookup(
                "unclear",
                how=f"ListTaskFlowInstance failed: {listed.code} {listed.message}".strip(),
            )
        runs, doubts = _own_runs(record, listed, others)
        problems = [doubt for day in dates for doubt in doubts[day]]
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
        age = clock() - _epoch(record.intent_time)
        if age >= SETTLE_SECONDS:
            return Lookup("missing", how=f"{how}: none")
        return Lookup(
            "unclear",
            how=f"{how}: none yet, but the request left only {age:.0f}s ago and may still be "
            f"running at DMS: look again {SETTLE_SECONDS:.0f}s after it",
        )

    def _runs(
        self, record: SubmissionRecord, request: Mapping[str, JSON], pace: Pace
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

        def read(page: int) -> Outcome:
            return pace(READ_ACTION, lambda: self.call(READ_ACTION, {**params, "PageIndex": page}))

        return protocol.every_page(
            read,
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
        listed = self._runs(record, request, protocol.unpaced)
        if isinstance(listed, Outcome):
            failure = f"ListTaskFlowInstance: {listed.code} {listed.message}"
            return Progress(Health.UNKNOWN, error=failure.strip())
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
                Health.UNKNOWN,
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

    def observe(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        others: Sequence[Claim],
        pace: Pace,
    ) -> Observation:
        """The health of the record's cells that are not final, from the DAG's runs of their
        business dates that this submission made, counted as the recovery lookup counts them
        (`_own_runs`): one run for a date gives its status; none yet, waiting; more than one, or
        one that another submission may have made, unknown (the doubt is kept as its word)."""
        listed = self._runs(record, request, pace)
        if isinstance(listed, Outcome):
            return Observation(error=f"{READ_ACTION}: {listed.code} {listed.message}".strip())
        runs, doubts = _own_runs(record, listed, others)
        cells = []
        for target, day in protocol.unfinished(record):
            found = runs[day]
            if doubts[day] or len(found) > 1:
                ids = ",".join(run.id for run in found) or "none"
                cells.append(Instance(target, day, f"AMBIGUOUS(ids {ids})", Health.UNKNOWN))
            elif found:
                cells.append(_instance(target, day, found[0].item))
            else:
                cells.append(Instance(target, day, "", Health.WAITING))
        return Observation(tuple(cells))

    def close(self) -> None:
        self._http.close()


def _own_runs(
    record: SubmissionRecord, listed: Sequence[Mapping[str, Any]], others: Sequence[Claim]
) -> tuple[dict[str, list[_Run]], dict[str, list[str]]]:
    """The runs among `listed` that the submission could have made, per date, and per date why
    one may not be its: the same DAG and one of its dates, not triggered by the schedule,
    started in a later second than the intent (or not yet), not the remote id of another
    submission, and not a run that an unsettled submission of the same DAG and date could have
    made too. A run that started up to CLOCK_SKEW_SECONDS before the intent may be its or not."""
    (target,) = record.targets
    intent = _epoch(record.intent_time)
    claimed = {c.remote_id for c in others if not c.unsettled}
    rivals = [c for c in others if c.unsettled and target in c.targets]
    runs: dict[str, list[_Run]] = {day: [] for day in record.dates}
    doubts: dict[str, list[str]] = {day: [] for day in record.dates}
    for item in listed:
        day = str(item.get("BusinessTime", ""))[:10]
        trigger = item.get("TriggerType")
        # A run that does not say how it was triggered may be this request's: ignoring it
        # could conclude "did not run" and send the backfill twice.
        if day not in runs or trigger not in (MANUAL_TRIGGER, None):
            continue
        run = _Run(str(item.get("Id", "")), day, _started(item.get("startTime")), item)
        if run.id in claimed:
            continue  # the remote id of another submission: never this one's
        early = run.early(intent)
        if early > CLOCK_SKEW_SECONDS:
            continue  # started before the intent, whatever the clocks: not this request's
        if early > 0:
            doubts[day].append(
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
            doubts[day].append(
                f"instance {run.id} for {day} may also be submission {', '.join(shared)}'s, "
                "whose outcome is unknown too"
            )
        runs[day].append(run)
    return runs, doubts


@dataclass(frozen=True, slots=True)
class _Run:
    """One manual run of the DAG for one of a submission's dates, as the lookup weighs it."""

    id: str
    day: str
    started: float | None
    """Epoch seconds (whole: `startTime` has no fraction); None while it waits to start."""
    item: Mapping[str, Any]
    """As listed."""

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
    name = known[0] if known else "UNLISTED"
    return Instance(
        target=target,
        date=day,
        state=f"{name}({status})",
        phase=protocol.health_of(_MEANINGS, status),
    )


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
