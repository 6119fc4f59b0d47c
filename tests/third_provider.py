"""A third platform, made by following the README's recipe for adding a provider: "Acme Jobs",
an API that re-runs a job for a list of dates. Its adapter, its (trivial) signer, its emulated
API and its spec model are all here; `test_third_provider` wires it in through the providers'
registry alone and applies plans of it end to end."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Generator, Mapping, Sequence
from contextlib import closing
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints

from reconciler.contract import MAX_TARGETS, UNIQUE, DayRange, Spec, unique
from reconciler.domain import (
    JSON,
    Batch,
    CellGroup,
    Health,
    Outcome,
    OutcomeKind,
    Plan,
    Submission,
    fingerprint,
    merge_spans,
    range_span,
)
from reconciler.emulator.app import (
    EmulatedApi,
    EmulatorRequest,
    EmulatorResponse,
    ServiceFactory,
    Settings,
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
from reconciler.state import SubmissionRecord

ACTION = "RerunJob"
TOKEN_VARIABLE = "ACME_TOKEN"
PAGE_SIZE = 2
"""Small, so that a few dates already take several pages."""


class Priority(StrEnum):
    LOW = "low"
    HIGH = "high"


class AcmeSpec(Spec):
    """Its spec, a model like the built-in providers': the plan schema's branch for it is
    generated from this, and its validated plans carry one."""

    model_config = ConfigDict(title="Acme Jobs re-run (RerunJob)")
    TARGETS: ClassVar[str] = "job_ids"

    provider: Literal["acme-jobs"] = Field(description="Which platform runs the backfill.")
    job_ids: Annotated[
        list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,40}$")]],
        BeforeValidator(unique),
    ] = Field(min_length=1, max_length=MAX_TARGETS, json_schema_extra=UNIQUE)
    dates: list[DayRange] = Field(min_length=1)
    priority: Priority = Field(Priority.LOW, strict=False, description="Queue priority.")


NAME = AcmeSpec.provider_name()


def _spec(plan: Plan) -> AcmeSpec:
    assert isinstance(plan.spec, AcmeSpec)
    return plan.spec


# --- the signer: a bearer token, as an httpx.Auth ----------------------------------------------


class TokenAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


# --- the provider --------------------------------------------------------------------------


class AcmeProvider:
    name = NAME
    action = ACTION
    rate_limit = 5.0
    credentials_prefix = "ACME_"
    spec_model = AcmeSpec

    def region(self, plan: Plan) -> str:
        return "global"  # one endpoint, no regions

    def targets(self, plan: Plan) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_spec(plan).job_ids))

    def cell_groups(self, plan: Plan) -> list[CellGroup]:
        spec = _spec(plan)
        params = spec.fingerprinted()
        spans = merge_spans(range_span(r.start, r.last) for r in spec.dates)
        return [
            CellGroup(
                plan=plan.name,
                revision=plan.revision,
                targets=self.targets(plan),
                spans=tuple(spans),
                params=params,
                fingerprint=fingerprint(params),
            )
        ]

    def batches(self, plan: Plan, missing: Mapping[str, Sequence[str]]) -> list[Batch]:
        # One call per job, for any of its dates, contiguous or not.
        return [
            Batch(targets=(job,), dates=chunk)
            for job in sorted(missing)
            for chunk in protocol.chunked(sorted(missing[job]), plan, 1)
        ]

    def calls(self, plan: Plan) -> int:
        (group,) = self.cell_groups(plan)
        return len(group.targets) * protocol.call_count(group.days, plan, 1)

    def request(self, plan: Plan, group: CellGroup, batch: Batch, key: str) -> dict[str, JSON]:
        (job,) = batch.targets
        return {
            "JobId": job,
            "Dates": list(batch.dates),
            "Priority": group.params["priority"],
            "Label": f"{plan.name}-r{plan.revision}-{key[:10]}",
        }

    def default_endpoint(self, region: str) -> str:
        return "https://jobs.acme.example"

    def client(self, connection: Connection) -> AcmeClient:
        token = os.environ.get(TOKEN_VARIABLE, "")
        if not token:
            raise BackfillError(f"no Acme credentials: set {TOKEN_VARIABLE}")
        return AcmeClient(token, connection)

    def remote_name(self, request: Mapping[str, JSON]) -> str:
        return str(request.get("Label") or "")

    def look_up(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
    ) -> Lookup:
        with closing(self.client(connection)) as client:
            found = client.call("FindRerun", {"Label": self.remote_name(request)})
        if found.kind is not OutcomeKind.SUBMITTED:
            return Lookup("unclear", how=f"FindRerun failed: {found.code} {found.message}")
        ids = [str(i) for i in found.detail.get("RerunIds", [])]
        if len(ids) == 1:
            return Lookup("submitted", remote_id=ids[0], how=f"FindRerun: one re-run, {ids[0]}")
        # None may only mean not yet; two are not this submission's alone.
        return Lookup("unclear", how=f"FindRerun found {len(ids)} re-runs: check in the console")

    def progress(
        self, record: SubmissionRecord, request: Mapping[str, JSON], connection: Connection
    ) -> Progress:
        return self._progress(record, connection, protocol.unpaced)

    def _progress(self, record: SubmissionRecord, connection: Connection, pace: Pace) -> Progress:
        with closing(self.client(connection)) as client:
            listed = protocol.every_page(
                lambda page: pace(
                    "GetRerun",
                    lambda: client.call(
                        "GetRerun", {"RerunId": record.remote_id, "Page": page, "Size": PAGE_SIZE}
                    ),
                ),
                items=lambda data: data.get("Runs") or [],
                last=lambda data, page: page * PAGE_SIZE >= int(data.get("Total") or 0),
            )
        if isinstance(listed, Outcome):
            return Progress(Health.UNKNOWN, error=f"GetRerun: {listed.code} {listed.message}")
        instances = tuple(
            Instance(
                str(run["JobId"]),
                str(run["Date"]),
                str(run["State"]),
                Health.SUCCEEDED if run["State"] == "DONE" else Health.RUNNING,
            )
            for run in listed
        )
        return Progress(protocol.overall(instances, len(record.dates)), instances=instances)

    @property
    def read_limits(self) -> Mapping[str, float]:
        return {"GetRerun": self.rate_limit}

    def observe(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
        *,
        pace: Pace,
    ) -> Observation:
        progress = self._progress(record, connection, pace)
        seen = {(i.target, i.date): i for i in progress.instances}
        return Observation(
            tuple(
                seen.get(cell) or Instance(*cell, "", Health.WAITING)
                for cell in protocol.unfinished(record)
            ),
            error=progress.error,
        )

    def emulated(self) -> ServiceFactory:
        return AcmeService


class AcmeClient:
    def __init__(self, token: str, connection: Connection) -> None:
        self._http = connection.http(TokenAuth(token))
        self.credential_id = token[:4]

    def submit(self, submission: Submission) -> Outcome:
        outcome = self.call(ACTION, submission.request)
        if outcome.kind is not OutcomeKind.SUBMITTED:
            return outcome
        return Outcome(
            OutcomeKind.SUBMITTED,
            remote_id=str(outcome.detail["RerunId"]),
            request_id=outcome.request_id,
            emulator=outcome.emulator,
        )

    def call(self, action: str, body: Mapping[str, JSON]) -> Outcome:
        response = protocol.send(
            self._http, "/", json=dict(body), headers={"X-Acme-Action": action}
        )
        if isinstance(response, Outcome):
            return response
        try:
            reply = response.json()
        except ValueError:
            return protocol.unreadable(response, "Acme")
        error = reply.get("Error") if isinstance(reply, dict) else None
        if isinstance(error, dict):
            # Every refusal of this API comes before it runs anything.
            return Outcome(
                OutcomeKind.REJECTED,
                code=str(error["Code"]),
                message=str(error["Message"]),
                emulator=protocol.from_emulator(response),
            )
        return Outcome(
            OutcomeKind.SUBMITTED,
            request_id=str(reply["RequestId"]),
            detail=reply,
            emulator=protocol.from_emulator(response),
        )

    def close(self) -> None:
        self._http.close()


PROVIDER = AcmeProvider()


# --- its emulated API ------------------------------------------------------------------------


class AcmeService(EmulatedApi):
    """Re-runs kept in memory; each date's run is done `instance_seconds` after the previous."""

    provider = NAME
    create_action = ACTION
    default_rate_limit = PROVIDER.rate_limit

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.token = settings.environ.get(TOKEN_VARIABLE, "")
        self._reruns: dict[str, tuple[float, dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def action(self, request: EmulatorRequest) -> str | None:
        return request.headers.get("x-acme-action")

    def throttled(self, request: EmulatorRequest) -> EmulatorResponse:
        return EmulatorResponse.json(429, {"Error": {"Code": "Busy", "Message": "slow down"}})

    def forget(self) -> None:
        self._reruns.clear()

    def handle(self, request: EmulatorRequest) -> EmulatorResponse:
        action = request.headers["x-acme-action"]
        if not self.token or request.headers.get("authorization") != f"Bearer {self.token}":
            return _error("Unauthorized", "unknown token")
        if self.limit.admit(action):
            return self.throttled(request)
        body = json.loads(request.body or b"{}")
        request_id = f"req-{next(self._ids)}"
        if action == ACTION:
            return self._rerun(body, request_id)
        if action == "GetRerun":
            return self._get(body, request_id)
        if action == "FindRerun":
            with self._lock:
                ids = [i for i, (_, b) in self._reruns.items() if b["Label"] == body["Label"]]
            return EmulatorResponse.json(200, {"RequestId": request_id, "RerunIds": ids})
        return _error("UnknownAction", action)

    def _rerun(self, body: dict[str, Any], request_id: str) -> EmulatorResponse:
        if not body.get("Dates"):
            return _error("InvalidDates", "give at least one date")
        now = self.clock()
        rerun_id = f"rr-{next(self._ids)}"
        with self._lock:
            self._reruns[rerun_id] = (now, body)
        self.accepted(body, remote_id=rerun_id, request_id=request_id, time=now)
        return EmulatorResponse.json(200, {"RequestId": request_id, "RerunId": rerun_id})

    def _get(self, body: dict[str, Any], request_id: str) -> EmulatorResponse:
        with self._lock:
            found = self._reruns.get(body["RerunId"])
        if found is None:
            return _error("NotFound", body["RerunId"])
        created, rerun = found
        elapsed = self.clock() - created
        runs = [
            {
                "JobId": rerun["JobId"],
                "Date": date,
                "State": "DONE" if elapsed >= (n + 1) * self.instance_seconds else "RUNNING",
            }
            for n, date in enumerate(rerun["Dates"])
        ]
        first = (body["Page"] - 1) * body["Size"]
        page = runs[first : first + body["Size"]]
        return EmulatorResponse.json(
            200, {"RequestId": request_id, "Runs": page, "Total": len(runs)}
        )


def _error(code: str, message: str) -> EmulatorResponse:
    return EmulatorResponse.json(400, {"Error": {"Code": code, "Message": message}})
