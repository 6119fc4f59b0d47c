"""What both providers conclude from replies that are not an answer of the API: the part of the
outcome tables that decides whether a call may be sent again."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from factories import submission

from reconciler.domain import OutcomeKind
from reconciler.providers import dms, wedata
from reconciler.providers.protocol import Client, Connection, Provider

Respond = Callable[[httpx.Request], httpx.Response]


def client(provider: Provider, respond: Respond) -> Client:
    # A stand-in for whatever answers on the wire (a proxy, a load balancer): the emulator
    # never sends these replies.
    transport = httpx.MockTransport(respond)
    return provider.client(Connection("http://127.0.0.1:9", transport=transport))


def fails(error: type[httpx.TransportError]) -> Respond:
    def respond(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return respond


@pytest.fixture(autouse=True)
def credentials(credentials_env: None) -> None:
    """Both providers need credentials to build a client."""


@pytest.mark.parametrize("provider", [wedata.PROVIDER, dms.PROVIDER], ids=["wedata", "dms"])
@pytest.mark.parametrize(
    ("respond", "kind"),
    [
        (fails(httpx.ConnectError), OutcomeKind.UNSENT),
        (fails(httpx.ConnectTimeout), OutcomeKind.UNSENT),
        (fails(httpx.PoolTimeout), OutcomeKind.UNSENT),
        (fails(httpx.ReadTimeout), OutcomeKind.UNKNOWN),
        (fails(httpx.RemoteProtocolError), OutcomeKind.UNKNOWN),
        (lambda r: httpx.Response(429, text="Too Many Requests"), OutcomeKind.RETRYABLE),
        (lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"), OutcomeKind.UNKNOWN),
        (lambda r: httpx.Response(503, json={"Success": True}), OutcomeKind.UNKNOWN),
        (lambda r: httpx.Response(200, text="<html>captive portal</html>"), OutcomeKind.UNKNOWN),
    ],
    ids=[
        *("refused", "connect-timeout", "no-pooled-connection", "read-timeout", "reset"),
        *("429", "502", "503", "not-json"),
    ],
)
def test_only_what_proves_nothing_ran_is_sent_again(
    provider: Provider, respond: Respond, kind: OutcomeKind
) -> None:
    outcome = client(provider, respond).submit(submission(provider))
    assert outcome.kind is kind
    assert outcome.code


@pytest.mark.parametrize("provider", [wedata.PROVIDER, dms.PROVIDER], ids=["wedata", "dms"])
def test_no_connection_to_an_endpoint_stops_its_calls_but_a_busy_pool_does_not(
    provider: Provider,
) -> None:
    refused = client(provider, fails(httpx.ConnectError)).submit(submission(provider))
    busy = client(provider, fails(httpx.PoolTimeout)).submit(submission(provider))
    assert refused.halt
    assert not busy.halt
