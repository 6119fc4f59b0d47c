"""Fault injection for the emulator, seeded for reproducibility: latency on every API request,
and on create actions throttling, 5xx before commit, replies lost after commit, slow replies;
and how the runs a backfill makes fare: how long each takes, and which of them fail."""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

MAX_HANG_MS = 600_000.0
"""A lost reply holds its server thread at most this long (and only until the server stops)."""


class Fault(StrEnum):
    """What can happen to one create request, instead of a plain prompt reply."""

    THROTTLE = "throttle"
    """The API's own throttling reply: nothing was executed, and the client can know it."""
    ERROR = "error"
    """HTTP 503 before the create runs: nothing was executed, but the client cannot know it."""
    TIMEOUT_AFTER_COMMIT = "timeout_after_commit"
    """The create runs; its reply is held back past any client timeout and never sent."""
    RESET_AFTER_COMMIT = "reset_after_commit"
    """The create runs; then the TCP connection is reset without a reply."""
    SLOW = "slow"
    """The reply is late (by `slow_ms`) but complete."""


_LATENCY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?$")


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds added before every API request is handled, uniform in [low_ms, high_ms]."""

    low_ms: float = 0.0
    high_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.low_ms <= self.high_ms:
            raise ValueError(f"latency {self}: give 0 <= low <= high milliseconds")

    @classmethod
    def parse(cls, text: str) -> Latency:
        """`200` (always 200 ms) or `50-400` (uniform between 50 and 400 ms)."""
        match = _LATENCY.match(text)
        if match is None:
            raise ValueError(f"latency {text!r}: give milliseconds, as 200 or as a range 50-400")
        low = float(match[1])
        return cls(low, float(match[2]) if match[2] is not None else low)

    def __str__(self) -> str:
        if self.low_ms == self.high_ms:
            return f"{self.low_ms:g}"
        return f"{self.low_ms:g}-{self.high_ms:g}"


def _about(
    help: str,
    *,
    bounds: tuple[float, float | None] | None = None,
    expect: str = "",
    metavar: str | None = None,
) -> dict[str, Any]:
    """What a person is told of a setting (`backfill emulator --help`), and for a number its
    bounds and how to say what it takes: a FaultConfig field's metadata."""
    return {"help": help, "bounds": bounds, "expect": expect, "metavar": metavar}


def _rate(help: str) -> Any:
    """A field of a fault's rate, off by default."""
    return field(
        default=0.0,
        metadata=_about(help, bounds=(0.0, 1.0), expect="a probability between 0 and 1"),
    )


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """How the emulator misbehaves. The rates of faults are the chances that one create request
    meets each fault; they exclude each other, so they must add up to at most 1. How the runs of
    a backfill fare (`instance_seconds`, `instance_failure_rate`) applies to the runs of the
    creates accepted while it is in force.

    `seed` None means a fresh random seed, chosen when the config is installed and reported by
    `GET /_emulator/faults`, so that any run can be repeated.

    Each field is a setting of `POST /_emulator/faults` and an option of `backfill emulator`
    under the same name, explained by its metadata.
    """

    latency: Latency = field(
        default=Latency(),
        metadata=_about(
            "Delay before every API request is handled: 200, or uniform in 50-400 (milliseconds).",
            metavar="MS|LOW-HIGH",
        ),
    )
    throttle_rate: float = _rate(
        "Chance that a create gets the API's own throttling reply (nothing created)."
    )
    error_rate: float = _rate(
        "Chance that a create gets HTTP 503 before it runs (nothing created)."
    )
    timeout_after_commit_rate: float = _rate(
        "Chance that a create runs, then its reply is held back (--hang-ms) and never sent."
    )
    reset_after_commit_rate: float = _rate(
        "Chance that a create runs, then its connection is reset without a reply."
    )
    slow_rate: float = _rate("Chance that a create is answered late (--slow-ms) but normally.")
    slow_ms: float = field(
        default=2000.0,
        metadata=_about(
            "How late a slow reply is, in milliseconds.",
            bounds=(0.0, None),
            expect="a number of milliseconds >= 0",
        ),
    )
    hang_ms: float = field(
        default=60_000.0,
        metadata=_about(
            "How long a reply lost after commit holds its connection (past the client's timeout).",
            bounds=(0.0, MAX_HANG_MS),
            expect=f"0 to {MAX_HANG_MS:g} milliseconds",
        ),
    )
    """Longer than the client's timeout (30 s by default) so that the client gives up first."""
    instance_seconds: float = field(
        default=2.0,
        metadata=_about(
            "How long each run a backfill makes takes, in seconds; a backfill's runs go one "
            "after another.",
            bounds=(0.0, None),
            expect="a number of seconds >= 0",
        ),
    )
    instance_failure_rate: float = _rate(
        "Chance that a run a backfill makes fails at its end instead of succeeding (drawn from "
        "--seed for each target and date)."
    )
    seed: int | None = field(
        default=None, metadata=_about("Seed of the fault draws (default: random, printed).")
    )

    def __post_init__(self) -> None:
        for setting in fields(self):
            bounds = setting.metadata["bounds"]
            value = getattr(self, setting.name)
            if bounds and not (bounds[0] <= value and (bounds[1] is None or value <= bounds[1])):
                raise ValueError(f"{setting.name} {value:g}: give {setting.metadata['expect']}")
        total = sum(self.rates().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {total:g}: they must add up to at most 1")

    def rates(self) -> dict[Fault, float]:
        """In the order a draw tries them."""
        return {
            Fault.THROTTLE: self.throttle_rate,
            Fault.ERROR: self.error_rate,
            Fault.TIMEOUT_AFTER_COMMIT: self.timeout_after_commit_rate,
            Fault.RESET_AFTER_COMMIT: self.reset_after_commit_rate,
            Fault.SLOW: self.slow_rate,
        }

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        value["latency"] = str(self.latency)
        return value

    @classmethod
    def from_json(cls, value: Any) -> FaultConfig:
        """The body of `POST /_emulator/faults`; fields left out take their defaults.

        `latency` is `200`, `"50-400"` or `[50, 400]`. Raises ValueError saying what is wrong.
        """
        if not isinstance(value, dict):
            raise ValueError("the fault config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown fault setting {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        settings: dict[str, Any] = {}
        for name, item in value.items():
            if name == "latency":
                settings[name] = _latency(item)
            elif name == "seed":
                if item is not None and (not isinstance(item, int) or isinstance(item, bool)):
                    raise ValueError(f"seed {item!r}: give an integer or null")
                settings[name] = item
            elif isinstance(item, int | float) and not isinstance(item, bool):
                settings[name] = float(item)
            else:
                raise ValueError(f"{name} {item!r}: give a number")
        return cls(**settings)


def _latency(value: Any) -> Latency:
    if isinstance(value, str):
        return Latency.parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Latency(float(value), float(value))
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return Latency(float(value[0]), float(value[1]))
    raise ValueError(f'latency {value!r}: give milliseconds, as 200, "50-400" or [50, 400]')


class FaultInjector:
    """Draws the faults of one emulator and counts the ones it injected; thread-safe.

    Two streams come from the seed: one for the faults of creates, one for latencies, so that
    reads (which only get latency) do not shift which creates fail. The same seed and the same
    order of requests give the same faults; concurrent clients make the order itself vary.
    """

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._injected: Counter[Fault] = Counter()
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        """The config in force, with the seed actually used."""
        with self._lock:
            return self._config

    def configure(self, config: FaultConfig) -> None:
        """Replace the config and restart both random streams from its seed."""
        if config.seed is None:
            config = replace(config, seed=random.SystemRandom().randrange(2**32))
        with self._lock:
            self._config = config
            self._faults = random.Random(config.seed)  # noqa: S311 - reproducible, not secret
            self._latencies = random.Random(f"{config.seed}/latency")  # noqa: S311

    def reset(self) -> None:
        """Back to the start of the seed's streams, with nothing counted."""
        self.configure(self.config)
        with self._lock:
            self._injected.clear()

    def latency(self) -> float:
        """Seconds to wait before handling the next API request."""
        with self._lock:
            latency = self._config.latency
            if latency.high_ms == 0:
                return 0.0
            return self._latencies.uniform(latency.low_ms, latency.high_ms) / 1000

    def draw(self) -> Fault | None:
        """The fault for the next create request, or None for a plain reply; always one draw, so
        that a rate of 0 does not shift the faults of the others."""
        with self._lock:
            roll = self._faults.random()
            threshold = 0.0
            for fault, rate in self._config.rates().items():
                threshold += rate
                if roll < threshold:
                    self._injected[fault] += 1
                    return fault
            return None

    def run_fails(self, provider: str, target: str, day: str, attempt: int) -> bool:
        """Whether run number `attempt` (0 for the first) of `target` on `day` fails. Drawn
        from the seed and the run alone, not from a stream: the same seed fails the same runs
        whatever the order in which parallel creates arrive, and a later run of a cell that
        failed (a re-run) has a chance of its own."""
        config = self.config
        draw = hashlib.sha256(f"{config.seed}/{provider}/{target}/{day}/{attempt}".encode())
        return int.from_bytes(draw.digest()[:8]) / 2**64 < config.instance_failure_rate

    def injected(self) -> dict[str, int]:
        """How many of each fault were injected since the start or the last `reset`."""
        with self._lock:
            return {str(fault): self._injected[fault] for fault in Fault}
