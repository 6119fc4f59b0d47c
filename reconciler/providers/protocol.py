"""What every platform adapter provides: cells of a plan, how missing cells batch into calls,
the request for a batch, and a client that sends it and classifies the reply; and the plumbing
they share (`send`, `every_page`, `chunked`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

from reconciler.domain import (
    FINAL_HEALTH,
    JSON,
    MAX_CELLS_PER_CALL,
    Batch,
    CellGroup,
    Health,
    Outcome,
    OutcomeKind,
    Plan,
    Submission,
)
from reconciler.errors import BackfillError

if TYPE_CHECKING:
    import ssl

    import httpx

    from reconciler.contract import Spec
    from reconciler.emulator.app import ServiceFactory
    from reconciler.state import SubmissionRecord

EMULATOR_HEADER = "X-Backfill-Emulator"
"""The built-in emulator marks every reply with it, so that a client can record that it talked
to the emulator (a state written against it must never pass for real runs)."""


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and how to reach a provider's API. `transport` lets tests mount the emulator."""

    endpoint: str
    transport: httpx.BaseTransport | None = None
    timeout: float = 30.0

    def http(self, auth: httpx.Auth) -> httpx.Client:
        """An HTTP client to the endpoint that signs every request with `auth`."""
        # Imported by the first client: the plan side of the providers (what `validate` and
        # `plan` use) must not load an HTTP client.
        import httpx  # noqa: PLC0415

        return httpx.Client(
            base_url=self.endpoint,
            auth=auth,
            transport=self.transport,
            timeout=httpx.Timeout(self.timeout, connect=10.0),
            verify=_tls(),
        )


@cache
def _tls() -> ssl.SSLContext:
    """The TLS settings of every client (httpx's defaults), made once: loading the CA
    certificates takes tens of milliseconds, and `refresh` makes a client per backfill it
    reads. A context may be shared by the clients of every thread."""
    import httpx  # noqa: PLC0415 - see Connection.http

    return httpx.create_ssl_context()


@dataclass(frozen=True, slots=True)
class Claim:
    """Another submission of the same provider in the state, as a lookup must weigh it: the
    remote id the state gives it, or, while its own outcome is unknown, whatever it may have
    created for its targets and dates since its intent. What one submission claims cannot prove
    that another ran."""

    key: str
    targets: tuple[str, ...]
    dates: tuple[str, ...]
    intent_time: str
    remote_id: str
    """Empty while its outcome is unknown."""

    @property
    def unsettled(self) -> bool:
        return not self.remote_id


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a remote lookup says of a submission whose outcome is unknown."""

    verdict: Literal["submitted", "missing", "unclear"]
    remote_id: str = ""
    how: str = ""
    """What was looked up and found, for the journal and for the person reading it."""


Source = Literal["documented", "assumed"]


@dataclass(frozen=True, slots=True)
class Meaning:
    """What one of a platform's state words means here, and whether the API reference says so
    (`documented`) or this tool reads it so (`assumed`). A word a table does not list is
    `unknown`, kept raw beside it."""

    health: Health
    source: Source


def health_of(table: Mapping[Any, Meaning], word: object) -> Health:
    meaning = table.get(word)
    return meaning.health if meaning else Health.UNKNOWN


@dataclass(frozen=True, slots=True)
class Instance:
    """One run the platform made for a backfill: a target (task, DAG) on one business date."""

    target: str
    date: str
    state: str
    """As the platform names it (WeData `COMPLETED`, DMS `SUCCEEDED(4)`)."""
    phase: Health


@dataclass(frozen=True, slots=True)
class Progress:
    """What the platform says now of a submitted backfill. Reading it changes nothing."""

    phase: Health
    instances: tuple[Instance, ...] = ()
    complete_percent: int | None = None
    """The platform's own figure where it has one (WeData), else counted from the instances."""
    success_percent: int | None = None
    error: str = ""
    """Why the platform could not be asked, or what it answered instead."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a refresh read of a submitted backfill's cells that are not final yet: the health of
    each (a cell the platform lists nothing for is `waiting`), or why it could not be read."""

    cells: tuple[Instance, ...] = ()
    error: str = ""


def unfinished(record: SubmissionRecord) -> list[tuple[str, str]]:
    """The (target, date) cells of a submission not observed final yet: what a refresh asks."""
    cells = []
    for target in record.targets:
        for date in record.dates:
            seen = record.health_of(target, date)
            if seen is None or seen[0] not in FINAL_HEALTH:
                cells.append((target, date))
    return cells


Pace = Callable[[str, Callable[[], Outcome]], Outcome]
"""Makes one read (the callable) of the read action it is given, at that action's own rate,
and returns its outcome; a read changes nothing, so one the platform throttled may be asked
again."""


def unpaced(action: str, read: Callable[[], Outcome]) -> Outcome:
    """The pace of reads made one at a person's request (`status`, a lookup): none, once."""
    return read()


def overall(instances: Sequence[Instance], expected: int) -> Health:
    """One health for a backfill of `expected` instances: a failure or a stop is what a person
    must see first; it has succeeded only when every expected instance has."""
    phases = {i.phase for i in instances}
    if Health.FAILED in phases:
        return Health.FAILED
    if Health.STOPPED in phases:
        return Health.STOPPED
    if phases == {Health.SUCCEEDED} and len(instances) >= expected:
        return Health.SUCCEEDED
    if phases <= {Health.WAITING}:
        return Health.WAITING
    return Health.RUNNING


class Client(Protocol):
    @property
    def credential_id(self) -> str:
        """Which credential signs the calls (its public id, never the secret): rate limits
        apply per credential."""
        ...

    def submit(self, submission: Submission) -> Outcome: ...

    def close(self) -> None: ...


class Provider(Protocol):
    name: str
    """The `spec.provider` value."""
    action: str
    """The create action, as journaled."""

    @property
    def rate_limit(self) -> float:
        """Creates per second the API allows (documented or configured)."""
        ...

    credentials_prefix: str
    """What the names of the environment variables its credentials come from start with:
    nothing else the tool runs (git and its hooks) is given them."""

    @property
    def spec_model(self) -> type[Spec]:
        """What a plan's `spec` is when it names this provider: the plan schema's branch for it
        is generated from this model, and validated plans carry an instance of it."""
        ...

    def region(self, plan: Plan) -> str: ...

    def targets(self, plan: Plan) -> tuple[str, ...]:
        """The plan's targets as the state names them, each once, in the order written."""
        ...

    def cell_groups(self, plan: Plan) -> list[CellGroup]: ...

    def batches(self, plan: Plan, missing: Mapping[str, Sequence[str]]) -> list[Batch]:
        """Missing dates per target of one cell group -> as few calls as the API allows."""
        ...

    def calls(self, plan: Plan) -> int:
        """How many calls `batches` makes of the plan when none of its cells is covered,
        counted from its ranges without listing a cell."""
        ...

    def request(self, plan: Plan, group: CellGroup, batch: Batch, key: str) -> dict[str, JSON]:
        """The create action's parameters for one batch, exactly as they will be sent."""
        ...

    def default_endpoint(self, region: str) -> str: ...

    def client(self, connection: Connection) -> Client:
        """A client using credentials from the environment; BackfillError if there are none."""
        ...

    def remote_name(self, request: Mapping[str, JSON]) -> str:
        """What the platform calls the backfill that `request` created, for a person to search
        for; empty where the API takes no name."""
        ...

    def look_up(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
    ) -> Lookup:
        """Settle an unknown outcome (of `record`, which sent `request`) remotely where the API
        allows it, never with what `others` claim; otherwise say what a person must check."""
        ...

    def progress(
        self, record: SubmissionRecord, request: Mapping[str, JSON], connection: Connection
    ) -> Progress:
        """The remote progress of a submitted backfill (`record`, which sent `request`),
        read-only."""
        ...

    @property
    def read_limits(self) -> Mapping[str, float]:
        """Calls per second each read action `observe` makes may take (documented or
        configured): each is paced on its own."""
        ...

    def observe(
        self,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
        *,
        pace: Pace,
    ) -> Observation:
        """The health of the cells of a submitted backfill (`record`, which sent `request`)
        that are not final yet, read-only, never counting what `others` (the provider's other
        submissions) may have made; every read goes through `pace`, with its action."""
        ...

    def emulated(self) -> ServiceFactory:
        """How the built-in emulator makes this API (`backfill emulator`, the tests); its code
        is loaded only when an emulator is made."""
        ...


def configured_rate(variable: str, default: float) -> float:
    """Calls per second an API may take: the environment variable `variable` if set, else
    `default`; BackfillError unless it is a positive number."""
    text = os.environ.get(variable, "")
    try:
        value = float(text) if text else default
    except ValueError:
        value = 0.0
    if not value > 0:
        raise BackfillError(f"{variable}={text!r}: give a positive number of calls per second")
    return value


def send(http: httpx.Client, url: str, **request: Any) -> httpx.Response | Outcome:
    """POST one request. What is not an answer of the API is classified here, alike for every
    provider: what httpx raises before the request went out (no connection: refused, timed out,
    no such host, TLS failed; no pooled connection free) was never sent; HTTP 429 definitely did
    not run (retryable); a transport failure after sending and HTTP 5xx may have run (unknown).

    A connection that cannot be made to the endpoint cannot be made for any other call either:
    such an outcome says so (`halt`), and the run stops sending there."""
    import httpx  # noqa: PLC0415 - loaded with the client (see Connection.http)

    try:
        response = http.post(url, **request)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as error:
        return Outcome(
            OutcomeKind.UNSENT,
            code=type(error).__name__,
            message=str(error) or "no connection",
            halt=f"no connection could be made ({type(error).__name__}: {error}); check the "
            "endpoint and that it is reachable from here",
        )
    except httpx.PoolTimeout as error:
        return Outcome(OutcomeKind.UNSENT, code="PoolTimeout", message=str(error) or "no slot")
    except httpx.TransportError as error:
        return Outcome(
            OutcomeKind.UNKNOWN, code=type(error).__name__, message=str(error) or "no reply"
        )
    emulator = from_emulator(response)
    if response.status_code == 429:
        return Outcome(
            OutcomeKind.RETRYABLE, code="HTTP429", message="throttled", emulator=emulator
        )
    if response.status_code >= 500:
        return Outcome(
            OutcomeKind.UNKNOWN,
            code=f"HTTP{response.status_code}",
            message=f"server error {response.status_code}: the call may have been executed",
            emulator=emulator,
        )
    return response


def every_page(
    read: Callable[[int], Outcome],
    items: Callable[[Mapping[str, JSON]], Sequence[Mapping[str, Any]]],
    last: Callable[[Mapping[str, JSON], int], bool],
) -> list[Mapping[str, Any]] | Outcome:
    """Every item of a paged listing, reading pages 1, 2, ... until one is empty or `last`
    (given the reply's data and the page number) says it was the last one; or the outcome of
    the read that failed, for the caller to say so."""
    found: list[Mapping[str, Any]] = []
    page = 1
    while True:
        reply = read(page)
        if reply.kind is not OutcomeKind.SUBMITTED:
            return reply
        listed = items(reply.detail)
        found.extend(listed)
        if not listed or last(reply.detail, page):
            return found
        page += 1


def unreadable(response: httpx.Response, api: str) -> Outcome:
    """A reply that is not the API's: whatever answered, the call may have run."""
    return Outcome(
        OutcomeKind.UNKNOWN,
        code=f"HTTP{response.status_code}",
        message=f"reply is not a {api} response: " + response.text[:200],
        emulator=from_emulator(response),
    )


def from_emulator(response: httpx.Response) -> bool:
    return EMULATOR_HEADER in response.headers


def days_per_call(plan: Plan, targets: int) -> int:
    """The most days one call for `targets` targets may cover: `spec.chunk`, and never more
    than the cells-per-call limit allows."""
    size = max(1, MAX_CELLS_PER_CALL // targets)
    return min(size, plan.chunk) if plan.chunk else size


def chunked(dates: Sequence[str], plan: Plan, targets: int) -> list[tuple[str, ...]]:
    """Split the dates of a call for `targets` targets into as few calls as allowed."""
    size = days_per_call(plan, targets)
    return [tuple(dates[i : i + size]) for i in range(0, len(dates), size)]


def call_count(days: int, plan: Plan, targets: int) -> int:
    """How many calls `chunked` makes of `days` dates, without listing them."""
    return -(-days // days_per_call(plan, targets))  # division rounded up
