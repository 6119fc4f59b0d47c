"""The built-in emulator of the cloud APIs: `create_app` assembles it, `server` serves it."""

from __future__ import annotations

import time
from enum import Enum

from reconciler.emulator.app import CallLog, Clock, Emulator, Service
from reconciler.emulator.dms import DmsService
from reconciler.emulator.faults import Fault, FaultConfig, FaultInjector, Latency
from reconciler.emulator.wedata import WeDataService
from reconciler.providers.acs3 import AliyunCredentials
from reconciler.providers.tc3 import TencentCredentials


class _Default(Enum):
    FROM_ENV = "from the environment"


FROM_ENV = _Default.FROM_ENV
"""Take a provider's credentials from its usual environment variables."""


def create_app(
    *,
    tencent: TencentCredentials | _Default | None = FROM_ENV,
    aliyun: AliyunCredentials | _Default | None = FROM_ENV,
    clock: Clock = time.time,
    tencent_rate_limit: float = 20.0,
    tencent_instance_seconds: float = 2.0,
    aliyun_rate_limit: float | None = None,
    aliyun_instance_seconds: float = 2.0,
    faults: FaultConfig | None = None,
) -> Emulator:
    """The emulator with one service per API. A service without credentials (None, or none in
    the environment) refuses every request, as a real endpoint refuses unknown keys.

    `faults` makes it misbehave (latency, throttling, 5xx, lost replies), reproducibly from its
    seed; `POST /_emulator/faults` replaces it while serving.
    """
    if tencent is FROM_ENV:
        tencent = TencentCredentials.from_env()
    if aliyun is FROM_ENV:
        aliyun = AliyunCredentials.from_env()
    calls = CallLog()
    services: list[Service] = [
        WeDataService(
            calls,
            tencent,
            clock=clock,
            rate_limit=tencent_rate_limit,
            instance_seconds=tencent_instance_seconds,
        ),
        DmsService(
            calls,
            aliyun,
            clock=clock,
            rate_limit=aliyun_rate_limit,
            instance_seconds=aliyun_instance_seconds,
        ),
    ]
    return Emulator(services, calls, faults=FaultInjector(faults))


__all__ = [
    "FROM_ENV",
    "CallLog",
    "DmsService",
    "Emulator",
    "Fault",
    "FaultConfig",
    "FaultInjector",
    "Latency",
    "WeDataService",
    "create_app",
]
