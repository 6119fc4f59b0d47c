"""What a person does about each finding, worded once. The text, Markdown and GitHub views all
print these sentences, and every command in them runs when pasted (placeholders are quoted
words to replace, never options left out).

`code` wraps a command or a name the way a view shows code (Markdown escapes what it must);
`value` shows a parameter's value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from reconciler.vocabulary import JSON

Code = Callable[[str], str]


def backticks(text: str) -> str:
    return f"`{text}`"


def plain_value(value: JSON) -> str:
    return "(unset)" if value is None else str(value)


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


REMOTE_ID = "REMOTE_ID"
"""The placeholder a person replaces with the id the platform shows."""


def import_command(key: str) -> str:
    return f'backfill state import {key} --remote-id {REMOTE_ID} --reason "how you know it ran"'


def forget_command(key: str) -> str:
    return f'backfill state forget {key} --reason "how you know it did not run"'


def settle(key: str, code: Code = backticks) -> str:
    """The person's two verdicts on one unknown outcome."""
    return (
        f"if it ran, {code(import_command(key))} (the id the platform shows); if it did not, "
        f"{code(forget_command(key))}"
    )


def look_up(provider: str, remote_name: str, code: Code = backticks) -> str:
    """Where to find out whether an unknown submission ran."""
    if provider == "aliyun-dms":
        return f"Run {code('backfill recover')}: it looks the DAG's instances up on DMS."
    if provider == "tencent-wedata" and remote_name:
        return f"Look in the WeData console for a backfill plan named {code(remote_name)}."
    if remote_name:
        return f"Look on the platform for a backfill named {code(remote_name)}."
    return "Look on the platform for the backfill."


class Change(Protocol):
    @property
    def field(self) -> str: ...
    @property
    def old(self) -> JSON: ...
    @property
    def new(self) -> JSON: ...


class ConflictLike(Protocol):
    @property
    def plan(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def cells(self) -> int: ...
    @property
    def first_date(self) -> str: ...
    @property
    def last_date(self) -> str: ...
    @property
    def changes(self) -> tuple[Change, ...]: ...
    @property
    def other_plan(self) -> str: ...


def conflict(
    item: ConflictLike,
    code: Code = backticks,
    value: Callable[[JSON], str] = plain_value,
) -> str:
    """Declared cells that a submission already covers, other than the plan says."""
    cells = f"{plural(item.cells, 'cell')} ({item.first_date}..{item.last_date})"
    if item.other_plan:
        name = code(item.other_plan)
        return (
            f"{cells} of the same targets and dates were already submitted by plan {name}"
            f" ({code(item.key)}): two plans never submit the same work unknowingly. If this"
            f" plan is {name} renamed, keep the name {name} or declare"
            f" {code(f'takeover: [{{plan: {item.other_plan}, mode: rename}}]')} in its spec;"
            " to run these dates again under this plan on purpose, declare"
            f" {code(f'takeover: [{{plan: {item.other_plan}, mode: rerun}}]')}."
        )
    edits = "; ".join(f"{c.field}: {value(c.old)} -> {value(c.new)}" for c in item.changes)
    return (
        f"{cells} already submitted by {code(item.key)} with other parameters ({edits})."
        f" A submitted backfill cannot be edited: set {code('spec.revision')} to"
        f" {item.revision + 1} to re-run these dates with the new parameters, or restore the"
        " old values."
    )


def attention(
    *, plan: str, key: str, cells: int, provider: str, remote_name: str, code: Code = backticks
) -> str:
    """Declared cells covered by a submission whose outcome is unknown."""
    return (
        f"{plural(cells, 'cell')} of plan {code(plan)} are covered by submission {code(key)},"
        " whose outcome is unknown: it may have run, so it is never resubmitted by itself. "
        f"{look_up(provider, remote_name, code)} Then record what you found: "
        f"{settle(key, code)}."
    )


def exhausted(*, plan: str, target: str, dates: str, attempts: int, code: Code = backticks) -> str:
    """Cells that failed in every attempt `spec.maxAttempts` allows."""
    return (
        f"{code(target)} of plan {code(plan)} failed on {dates} in all"
        f" {plural(attempts, 'attempt')}: never sent again by itself. Find out why on the"
        f" platform; then raise {code('spec.maxAttempts')} to try again, or bump"
        f" {code('spec.revision')} to run the plan's dates anew."
    )


def unknown_outcomes(count: int, code: Code = backticks) -> str:
    """What to do after a run that left outcomes unknown."""
    return (
        f"{plural(count, 'outcome')} may have run and {'is' if count == 1 else 'are'} never"
        f" resubmitted by {'itself' if count == 1 else 'themselves'}: {code('backfill recover')}"
        " looks up what it can (DMS); "
        f"{code('backfill state list --status unknown')} lists the rest, each to settle with"
        f" {code('backfill state import')} or {code('backfill state forget')} (see"
        f" {code('backfill state import --help')})."
    )
