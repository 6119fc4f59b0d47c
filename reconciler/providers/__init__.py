"""Platform adapters, one module per API; `get` finds the one a plan names."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import ip_address
from urllib.parse import urlsplit

from reconciler.errors import BackfillError
from reconciler.providers import dms, wedata
from reconciler.providers.protocol import Provider

_ALL_PROVIDERS: tuple[Provider, ...] = (wedata.PROVIDER, dms.PROVIDER)
REGISTRY: dict[str, Provider] = {p.name: p for p in _ALL_PROVIDERS}

ALL = "*"
"""Key of an endpoint override that applies to every provider (the emulator serves them all)."""


def get(name: str) -> Provider:
    if name not in REGISTRY:
        raise BackfillError(
            f"unknown provider {name!r}; known providers: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name]


def endpoint(provider: Provider, region: str, overrides: Mapping[str, str]) -> str:
    """An explicit override for this provider, else one for all, else the API's own endpoint."""
    chosen = overrides.get(provider.name) or overrides.get(ALL)
    return chosen or provider.default_endpoint(region)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
