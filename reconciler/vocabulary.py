"""The words the stages and the views share that are not records: how plans, cells and
records name days, a plan's limits, and what became of a call, a submission or a cell.

`domain` builds its records from these and offers them with its own; the modules `validate`
loads import them from here, without `domain`'s dataclasses (making a dataclass compiles its
methods: the records `validate` never makes were a tenth of its start-up on a few plans).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Any

JSON = Any
"""A value that `json.dumps` accepts: what YAML and the APIs exchange."""


MAX_CELLS_PER_CALL = 10_000
"""One API call covers at most this many cells (targets x days), whatever `spec.chunk` says:
an unknown outcome quarantines every cell of its call, and a person has to settle them, so a
call stays a size a person can check (a year of 27 tasks)."""
MAX_DAYS_PER_PLAN = 3653
"""Ten years of daily data, the longest history one reviewed plan re-runs; more is several
plans. `chunk` goes no higher."""
MAX_CELLS_PER_PLAN = 100_000
"""Cells (targets x days) of one plan: a plan is reviewed, planned and journaled cell by cell,
so its size bounds the memory and the time of `plan` and `apply`."""

DATE_PATTERN = r"^(19[7-9][0-9]|20[0-9][0-9])-[0-9]{2}-[0-9]{2}$"
"""How a plan file writes a date, which also bounds its year; whether the date exists is a rule
of `validate`."""
TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
"""How a plan file writes a time of day, HH:mm."""


_ORDINALS: dict[str, int] = {}
_DAYS: dict[int, str] = {}
"""One string per calendar day, shared by every cell and record that names it (a repo-scale
state names millions of cells but only a few thousand days), and its ordinal."""


def ordinal(day: str) -> int:
    """The proleptic ordinal of an ISO date; ValueError if it is not one."""
    number = _ORDINALS.get(day)
    if number is None:
        number = date.fromisoformat(day).toordinal()
        _ORDINALS[day] = number
    return number


def day(number: int) -> str:
    """The shared ISO string of a day's ordinal."""
    text = _DAYS.get(number)
    if text is None:
        text = _DAYS[number] = date.fromordinal(number).isoformat()
        _ORDINALS.setdefault(text, number)
    return text


def days(start: str, end: str) -> list[str]:
    """Every day from start to end, inclusive."""
    return [day(n) for n in range(ordinal(start), ordinal(end) + 1)]


def runs(dates: Iterable[str]) -> list[tuple[int, int]]:
    """Dates as sorted, merged runs of consecutive days (first and last ordinal)."""
    return merge_spans((number, number) for number in map(ordinal, dates))


def contiguous_runs(dates: Iterable[str]) -> list[tuple[str, str]]:
    """ISO dates -> inclusive (start, end) runs of consecutive days."""
    return [(day(first), day(last)) for first, last in runs(dates)]


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Runs of days, sorted and merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def span_text(first: int, last: int) -> str:
    """A run of days as text: `2025-09-01..2025-09-30`, or the date alone for one day."""
    return day(first) if first == last else f"{day(first)}..{day(last)}"


def compact_dates(spans: Iterable[tuple[int, int]]) -> list[str]:
    """Runs of days as text, one `span_text` each."""
    return [span_text(first, last) for first, last in spans]


def range_span(start: str, end: str) -> tuple[int, int]:
    """An inclusive range of ISO dates as a run of days."""
    return ordinal(start), ordinal(end)


class Health(StrEnum):
    """What became of one cell on the platform, as `backfill refresh` last saw it."""

    WAITING = "waiting"
    """Not started: waiting for its turn, its upstream or an event (or not listed yet)."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    """Stopped or paused by a person on the platform."""
    UNKNOWN = "unknown"
    """The platform said something this tool does not know (kept raw beside it)."""


FINAL_HEALTH = frozenset({Health.SUCCEEDED, Health.FAILED, Health.STOPPED})
"""A cell in one of these states is never asked about again."""

NOT_OBSERVED = "not observed"
"""What a submitted cell's health is called until `refresh` has reported on it."""


class OutcomeKind(StrEnum):
    SUBMITTED = "submitted"
    """The API created it (a read: the API answered it, with its data in `detail`)."""
    REJECTED = "rejected"
    """Definitely not created (validation, authentication, permission)."""
    RETRYABLE = "retryable"
    """Definitely not executed (throttled): try again."""
    UNKNOWN = "unknown"
    """May have been created: never resubmitted without a person or a remote lookup."""
    UNSENT = "unsent"
    """Provably never left the process (no connection could be made): nothing was created."""


class SubmissionStatus(StrEnum):
    """What became of a submission, as the state folds its journal events."""

    PENDING = "pending"
    """An intent without an outcome; seen on load, its process died in between: treat as unknown."""
    SUBMITTED = "submitted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    MISSING = "missing"
    """A remote lookup found it was not created."""
    FORGOTTEN = "forgotten"
    UNSENT = "unsent"
    """Never sent: its cells stay missing, and the next apply submits them."""
