"""Platform adapters, one module per API; `get` finds the one a plan names.

The registry loads the provider modules when it is first asked for: `validate` judges plan
files by the plan schema generated from their spec models (committed), so a pre-commit hook on
valid plans loads neither them nor pydantic.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from ipaddress import ip_address
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reconciler.errors import BackfillError

if TYPE_CHECKING:
    from reconciler.contract import Spec
    from reconciler.providers.protocol import Provider

_BUILT_IN = ("wedata", "dms")
"""The providers this package ships, modules of it with their `PROVIDER`: the committed plan
schema is generated from their spec models, in this order."""

ALL = "*"
"""Key of an endpoint override that applies to every provider (the emulator serves them all)."""


_REGISTRY: dict[str, Provider] = {}


def registry() -> dict[str, Provider]:
    """Every registered provider by name: the built-in ones, loaded on the first call (a test
    registers another by adding it here)."""
    if not _REGISTRY:
        built_in: list[Provider] = [
            importlib.import_module(f"{__name__}.{module}").PROVIDER for module in _BUILT_IN
        ]
        _REGISTRY.update((provider.name, provider) for provider in built_in)
    return _REGISTRY


def loaded() -> bool:
    """Whether the registry was asked for: until then it is the built-in one, which the committed
    plan schema describes. (Asked for every document `validate` reads: a look, nothing more.)"""
    return bool(_REGISTRY)


def spec_models() -> tuple[type[Spec], ...]:
    """Each registered provider's spec model: what a plan's `spec` may be, by its `provider`."""
    return _spec_models(tuple(registry().values()))


@functools.cache
def _spec_models(known: tuple[Provider, ...]) -> tuple[type[Spec], ...]:
    # Asked a few times for every plan read typed: the answer is looked up, not made again.
    return tuple(provider.spec_model for provider in known)


def get(name: str) -> Provider:
    known = registry()
    if name not in known:
        raise BackfillError(
            f"unknown provider {name!r}; known providers: {', '.join(sorted(known))}"
        )
    return known[name]


def endpoint(provider: Provider, region: str, overrides: Mapping[str, str]) -> str:
    """An explicit override for this provider, else one for all, else the API's own endpoint;
    checked like every URL a request may go to (BackfillError if it cannot be one)."""
    chosen = overrides.get(provider.name) or overrides.get(ALL)
    if chosen:
        return check_endpoint(chosen, f"the {provider.name} endpoint")
    return check_endpoint(
        provider.default_endpoint(region),
        f"the default {provider.name} endpoint for region {region!r}",
    )


def check_endpoint(url: str, source: str) -> str:
    """`url` if requests can go there: http or https, a host (and a valid port), no user name
    or password, no query or fragment. Otherwise BackfillError naming `source` (the option
    or variable it came from), before anything is journaled: an endpoint is recorded in every
    intent, and a request that cannot even leave must not be one.

    A URL that may carry a password is never repeated, not even in the error.
    """
    if "@" in url:
        raise BackfillError(
            f"{source} contains a user name or password (`user:password@`): give the endpoint "
            "without them and pass credentials through the environment (TENCENTCLOUD_SECRET_ID "
            "and TENCENTCLOUD_SECRET_KEY, ALIBABA_CLOUD_ACCESS_KEY_ID and "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET); the URL was not used or recorded"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BackfillError(
            f"{source} {url!r} is not an http:// or https:// URL: write it in full, e.g. "
            "http://127.0.0.1:8080 for a local emulator"
        )
    if parts.query or parts.fragment:
        # Not repeated: a query string is where tokens hide.
        raise BackfillError(
            f"{source} has a query or fragment (`?...`, `#...`): give only the scheme, host, "
            "port and path, and pass credentials through the environment"
        )
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in url) or not port_ok:
        raise BackfillError(
            f"{source} {url!r} has no valid host and port: write e.g. https://host or "
            "http://127.0.0.1:8080"
        )
    return url


def emulator_only(emulator: bool, url: str, sent_to: str) -> str | None:
    """Why a backfill cannot be asked about at `url`: it was submitted to the built-in emulator
    (at `sent_to`) and `url` is not one, so its remote id means nothing there (the real
    platform would answer "not found"); None when it can be asked."""
    if emulator and not is_loopback(url):
        return (
            f"submitted to the built-in emulator at {sent_to}; pass --endpoint to ask an emulator"
        )
    return None


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
