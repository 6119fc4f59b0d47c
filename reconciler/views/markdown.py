"""Markdown for pull-request comments and job summaries. Pure functions: data in, text out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import remedies
from reconciler.domain import JSON, OutcomeKind, compact_dates
from reconciler.views.text import date_span, health_text, plural, shown_apart

if TYPE_CHECKING:
    from reconciler.diff import Attention, Changeset, Conflict, Exhausted, Orphan, PlanChanges
    from reconciler.domain import Submission
    from reconciler.errors import Diagnostic
    from reconciler.execute import Result
    from reconciler.reports.plan import Planned

MARKER = "<!-- backfill-reconciler:plan -->"
"""The first line of every report: a workflow finds its own sticky comment by it."""

COMMENT_LIMIT = 65_536
"""GitHub's limit on the body of a comment, in characters."""

BUDGET = 60_000
"""What a comment may use: the margin leaves room for text a workflow wraps around it."""

SUMMARY_BUDGET = 262_144
"""For the job summary (1 MiB a step): even at 4 bytes a character this stays under it."""

_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$#!])")
_OPTION_WIDTH = 60
_VALUE_WIDTH = 200
_TARGETS_SHOWN = 5


def escape(value: str) -> str:
    """User-provided text made safe inline and in table cells: whitespace collapsed (a newline
    would end a row or a list item), characters with Markdown or HTML meaning escaped."""
    return _SPECIAL.sub(r"\\\1", " ".join(value.split()))


def _code(identifier: str) -> str:
    # Only identifiers that validation restricts to [0-9A-Za-z._-] go into code spans (plan
    # names, task and DAG ids, submission keys, action names), so they need no escaping.
    return f"`{identifier}`"


def inline_code(text: str) -> str:
    """Any text as one code span: fenced by more backticks than it holds in a row, so nothing
    in it can close the span early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{' '.join(text.split())}{pad}{fence}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _value(value: JSON, width: int = _VALUE_WIDTH) -> str:
    if value is None:
        return "(unset)"
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return escape(_clip(shown, width))


def _fenced(body: str, info: str) -> list[str]:
    # Longer than any backtick run inside, so no value can close the block early.
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, body, fence]


def _head(summary: str) -> list[str]:
    return [MARKER, "## Backfill plan", "", summary]


# --- plan -------------------------------------------------------------------------------------


def planned(report: Planned, limit: int = BUDGET) -> str:
    """`plan --format markdown`: this change's calls first when the change is known."""
    return changeset(report.changes, limit, changed=report.changed)


def changeset(
    changes: Changeset, limit: int = BUDGET, *, changed: frozenset[Path] | None = None
) -> str:
    """The plan for reviewers: summary, conflicts and attention first, then a table per plan
    with its requests folded; shortened to `limit` characters if need be.

    With `changed` (the files a pull request changed, resolved), the plans of those files come
    first, as the pull request's own calls, apart from the work already pending without it."""
    fixed = [
        *_conflicts(changes.conflicts),
        *_exhausted(changes.exhausted),
        *_attention(changes.attention),
    ]
    fixed += _warnings(changes.warnings)
    busy = [p for p in changes.plans if shown_apart(p)]
    if changed is None:
        sections = [
            _plan_section(item, heading=("### Plans", "") if index == 0 else ())
            for index, item in enumerate(busy)
        ]
        summary = _summary(changes)
    else:
        mine = [p for p in busy if Path(p.plan.location.file).resolve() in changed]
        pending = [p for p in busy if p not in mine]
        sections = _split(mine, pending)
        summary = _summary_of_change(changes, mine, pending)
    if changes.orphans:
        sections.append(_orphan_section(changes.orphans))
    idle = [p for p in changes.plans if p not in busy]
    if idle:
        names = ", ".join(f"{_code(p.plan.name)} r{p.plan.revision}" for p in idle)
        sections.append(
            _Section(
                ("### Nothing to do", "", f"{names}: every declared cell is submitted."),
                kind="Nothing to do",
            )
        )
    return _fit(_head(summary), fixed, sections, limit)


def _split(mine: Sequence[PlanChanges], pending: Sequence[PlanChanges]) -> list[_Section]:
    sections = [
        _plan_section(item, heading=("### This pull request", "") if index == 0 else ())
        for index, item in enumerate(mine)
    ]
    if not mine:
        sections.append(
            _Section(
                (
                    "### This pull request",
                    "",
                    "No plan this pull request adds or changes has calls to make.",
                ),
                kind="This pull request",
            )
        )
    pending_heading = (
        "### Already pending on main",
        "",
        "Plans this pull request does not touch: the next apply on main makes these calls, or"
        " needs these cells settled, whether or not it is merged.",
        "",
    )
    sections += [
        _plan_section(item, heading=pending_heading if index == 0 else ())
        for index, item in enumerate(pending)
    ]
    return sections


def _summary_of_change(
    changes: Changeset, mine: Sequence[PlanChanges], pending: Sequence[PlanChanges]
) -> str:
    own = [s for p in mine for s in p.submissions]
    others = [s for p in pending for s in p.submissions]
    head = (
        f"**This pull request: {plural(len(own), 'API call')} to make"
        f" ({plural(sum(s.size for s in own), 'cell')}).**"
    )
    if others:
        head += (
            f" Already pending on main: {plural(len(others), 'API call')}"
            f" ({plural(sum(s.size for s in others), 'cell')})."
        )
    return f"{head} {' · '.join(_counts(changes))}"


def _summary(changes: Changeset) -> str:
    creates = changes.creates
    if creates or changes.conflicts:
        head = (
            f"**Plan: {plural(len(creates), 'API call')} to make"
            f" ({plural(sum(s.size for s in creates), 'cell')}).**"
        )
    elif changes.attention:
        head = "**No calls to make,** but some cells need attention."
    else:
        head = "**No changes.** Every declared cell is submitted."
    return f"{head} {' · '.join(_counts(changes))}"


def _counts(changes: Changeset) -> list[str]:
    return [
        f"{plural(changes.count('in_sync_cells'), 'cell')} in sync",
        plural(len(changes.conflicts), "conflict"),
        f"{plural(changes.count('attention_cells'), 'cell')} needing attention",
        plural(sum(o.cells for o in changes.orphans), "orphaned cell"),
        *(
            [f"{plural(changes.count('exhausted_cells'), 'cell')} failed every attempt"]
            if changes.exhausted
            else []
        ),
    ]


def _conflicts(conflicts: Sequence[Conflict]) -> list[str]:
    if not conflicts:
        return []
    lines = [
        "",
        "### Conflicts",
        "",
        "> [!CAUTION]",
        "> `backfill apply` refuses to run until every conflict is resolved.",
        "",
    ]
    for conflict in conflicts:
        lines.append(
            f"- **{_code(conflict.plan)} r{conflict.revision}** at "
            f"{escape(str(conflict.location))}: "
            + remedies.conflict(conflict, code=inline_code, value=_value)
        )
    return lines


def _exhausted(items: Sequence[Exhausted]) -> list[str]:
    if not items:
        return []
    lines = ["", "### Failed every attempt", ""]
    for item in items:
        lines.append(
            f"- **{_code(item.plan)} r{item.revision}**: "
            + remedies.exhausted(
                plan=f"{item.plan} r{item.revision}",
                target=item.target,
                dates=", ".join(compact_dates(item.spans)),
                attempts=item.attempts,
                code=inline_code,
            )
        )
    return lines


def _attention(items: Sequence[Attention]) -> list[str]:
    if not items:
        return []
    lines = ["", "### Needs attention", ""]
    for item in items:
        lines.append(
            f"- **{_code(item.plan)}**: "
            + remedies.attention(
                plan=item.plan,
                key=item.key,
                cells=item.cells,
                provider=item.provider,
                remote_name=item.remote_name,
                code=inline_code,
            )
        )
    return lines


def _warnings(warnings: Sequence[str]) -> list[str]:
    if not warnings:
        return []
    return ["", "### Warnings", "", *(f"- {escape(w)}" for w in warnings)]


def _plan_section(item: PlanChanges, *, heading: Sequence[str]) -> _Section:
    plan = item.plan
    regions = sorted({escape(s.region) for s in item.submissions})
    title = " · ".join([f"{_code(plan.name)} r{plan.revision}", plan.provider, *regions])
    about = [escape(str(plan.location))]
    if plan.owner:
        about.append(f"owner: {escape(plan.owner)}")
    if plan.reason:
        about.append(f"reason: {escape(plan.reason)}")
    if plan.labels:
        labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in sorted(plan.labels.items()))
        about.append(f"labels: {labels}")
    intro = [*heading, f"#### {title}", "", " · ".join(about)]
    rows = _rows(item.submissions)
    if rows:
        intro += [
            "",
            "| Targets | Dates | Cells | API calls | Key options |",
            "| --- | --- | ---: | ---: | --- |",
        ]
    return _Section(
        intro=tuple(intro),
        rows=tuple(rows),
        outro=("", _plan_totals(item)),
        details=tuple(_requests(item.submissions)),
        columns=5,
    )


def _rows(submissions: Sequence[Submission]) -> list[str]:
    # One row per set of targets sharing every parameter: the calls a chunk or a gap splits
    # them into are counted, and listed in full in the details.
    groups: dict[tuple[tuple[str, ...], str], list[Submission]] = {}
    for submission in submissions:
        groups.setdefault((submission.targets, submission.fingerprint), []).append(submission)
    rows = []
    for (targets, _), calls in groups.items():
        shown = ", ".join(_code(t) for t in targets[:_TARGETS_SHOWN])
        if len(targets) > _TARGETS_SHOWN:
            shown += f", … (+{len(targets) - _TARGETS_SHOWN})"
        dates = sorted({d for s in calls for d in s.dates})
        options = ", ".join(
            f"{escape(name)}={_value(value, _OPTION_WIDTH)}"
            for name, value in calls[0].params.items()
            if name != "region"  # in the heading
        )
        cells = [shown, escape(date_span(dates)), str(sum(s.size for s in calls))]
        rows.append("| " + " | ".join([*cells, str(len(calls)), options or "-"]) + " |")
    return rows


def _plan_totals(item: PlanChanges) -> str:
    if item.submissions:
        calls = plural(len(item.submissions), "API call")
        parts = [f"**{plural(item.create_cells, 'cell')} to create in {calls}**"]
    else:
        parts = ["**No calls to make**"]
    if item.retry_cells:
        parts.append(f"{plural(item.retry_cells, 'failed cell')} sent again")
    health = health_text(item.health)
    for count, what in (
        (item.in_sync_cells, f"in sync ({health})" if health else "in sync"),
        (item.conflict_cells, "in conflict"),
        (item.attention_cells, "needing attention"),
        (item.exhausted_cells, "failed every attempt"),
    ):
        if count:
            parts.append(f"{plural(count, 'cell')} {what}")
    return " · ".join(parts)


def _requests(submissions: Sequence[Submission]) -> list[str]:
    if not submissions:
        return []
    lines = [f"<details><summary>Requests: {plural(len(submissions), 'API call')}</summary>", ""]
    for s in submissions:
        lines += [
            f"{_code(s.action)} {_code(s.key)} · {escape(s.region)} · {plural(s.size, 'cell')}",
            "",
            *_fenced(json.dumps(dict(s.request), indent=2, ensure_ascii=False), "json"),
            "",
        ]
    lines.append("</details>")
    return lines


def _orphan_section(orphans: Sequence[Orphan]) -> _Section:
    return _Section(
        intro=(
            "### Orphaned",
            "",
            "Cells in the state that no plan declares any more. Reported only: a backfill that "
            "ran cannot be un-run.",
            "",
            "| Plan | Submission | Cells | Why |",
            "| --- | --- | ---: | --- |",
        ),
        kind="Orphaned",
        rows=tuple(
            f"| {_code(o.plan)} r{o.revision} | {_code(o.key)} | {o.cells} | "
            + ("plan no longer declared" if o.plan_removed else "cells no longer declared")
            + " |"
            for o in orphans
        ),
        columns=4,
    )


# --- validation -------------------------------------------------------------------------------


def invalid(diagnostics: Sequence[Diagnostic], limit: int = BUDGET) -> str:
    """In place of the plan when the plan files are invalid, so the comment never shows a plan
    older than the files."""
    files = len({d.location.file for d in diagnostics})
    summary = (
        f"**The plan files have {plural(len(diagnostics), 'problem')} in "
        f"{plural(files, 'file')}; nothing was planned or applied.** `backfill validate` "
        "lists the same."
    )
    table = _Section(
        intro=("| Where | Field | Problem |", "| --- | --- | --- |"),
        kind="Problems",
        rows=tuple(
            f"| {escape(str(d.location))} | {escape(d.field) or '-'} | {escape(d.message)} |"
            for d in diagnostics
        ),
        columns=3,
    )
    return _fit(_head(summary), [], [table], limit)


def apply_results(
    results: Sequence[Result],
    planned: int,
    limit: int = BUDGET,
    *,
    reasons: Sequence[str] = (),
    head: Sequence[str] = (),
) -> str:
    """What an apply did, for the job summary: counts, why the run failed beyond its calls
    (`reasons`), then every call that did not succeed first (they need someone), then the
    rest. `head` replaces the plan's heading (a comment on a pull request has its own)."""
    from reconciler.reports.apply import Tally  # noqa: PLC0415 (apply's: validate loads no reports)

    tally = Tally.of(results, planned)
    summary = (
        f"**Apply: {tally.submitted} submitted, {tally.not_created} not created, "
        f"{tally.unknown} unknown"
        + (f", {tally.not_sent} not sent" if tally.not_sent else "")
        + (f", {tally.not_attempted} of {planned} not attempted" if tally.not_attempted else "")
        + ".**"
    )
    for result in results:
        if result.stopped:
            summary += f" {escape(result.stopped[:1].upper() + result.stopped[1:])}."
    if tally.unknown:
        summary += " " + remedies.unknown_outcomes(tally.unknown, code=inline_code)
    ordered = sorted(
        results,
        key=lambda r: (
            r.outcome.kind is OutcomeKind.SUBMITTED,
            r.submission.plan,
            r.submission.key,
        ),
    )
    table = _Section(
        intro=("| Outcome | Plan | Submission | Remote id or error |", "| --- | --- | --- | --- |"),
        kind="Calls",
        rows=tuple(
            f"| {r.outcome.kind} | `{escape(r.submission.plan)}` | `{r.submission.key}` | "
            + (
                f"`{escape(r.outcome.remote_id)}`"
                if r.outcome.kind is OutcomeKind.SUBMITTED
                else escape(f"{r.outcome.code}: {r.outcome.message}")
            )
            + " |"
            for r in ordered
        ),
        columns=4,
    )
    fixed = ["", "> [!CAUTION]", *(f"> {escape(reason)}" for reason in reasons)] if reasons else []
    return _fit([*head, summary] if head else _head(summary), fixed, [table], limit)


APPLIED = "<!-- backfill-reconciler:applied -->"
"""The first line of the comment an apply posts on the pull request of the plans it applied."""


def applied(results: Sequence[Result], run_url: str, limit: int = BUDGET) -> str:
    """For the pull request that introduced or last changed these calls' plans: what the apply
    after its merge made of them."""
    run = f"[run]({run_url})" if run_url.startswith("https://") else "run"
    head = [
        APPLIED,
        "## Backfill applied",
        "",
        f"After the merge, the apply {run} made the calls of this pull request's plans:",
        "",
    ]
    return apply_results(results, len(results), limit, head=head)


# --- fitting under the limit ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Section:
    """A part of a report that may be shortened: its folded details go first, then its rows."""

    intro: tuple[str, ...]
    kind: str = "plan"
    """What the notice calls it when it is left out: a plan, or the title of the section."""
    rows: tuple[str, ...] = ()
    outro: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    columns: int = 0
    """Of the table the rows belong to; 0 when the section has no rows."""

    @property
    def units(self) -> int:
        """What can be left out: each row, or the whole section when it has none."""
        return max(1, len(self.rows))

    def render(self, units: int, details: bool) -> list[str]:
        if units <= 0:
            return []
        shown = self.rows[:units]
        lines = [*self.intro, *shown]
        if len(shown) < len(self.rows):
            note = f"… {plural(len(self.rows) - len(shown), 'more row')} left out"
            lines.append(f"| {note} |" + " |" * (self.columns - 1))
        lines.extend(self.outro)
        if details and self.details:
            lines.extend(("", *self.details))
        return lines


def _notice(details: int, plans: int, rows: int, sections: Sequence[str]) -> list[str]:
    parts = []
    if details:
        parts.append(f"the request details of {plural(details, 'plan')}")
    if plans:
        parts.append(f"the tables of {plural(plans, 'plan')}")
    if rows:
        parts.append(f"{plural(rows, 'row')} of a table")
    parts += [f"the {title} section" for title in sections]
    if not parts:
        return []
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return [
        "",
        "> [!WARNING]",
        f"> Shortened to stay under GitHub's size limit for comments ({COMMENT_LIMIT:,} "
        f"characters) and job summaries; left out: {listed}. Run `backfill plan` for the full "
        "plan, or `backfill plan --format json` for every request.",
    ]


def _largest(fits: Callable[[int], bool], high: int) -> int | None:
    """The largest n in 0..high that fits, for a `fits` that holds up to some n and not after."""
    if not fits(0):
        return None
    low = 0
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _fit(
    head: Sequence[str], fixed: Sequence[str], sections: Sequence[_Section], limit: int
) -> str:
    """As much of the report as fits in `limit` characters: request details are left out first
    (the last plan's first), then table rows from the end; `head` and `fixed` always stay."""
    with_details = [i for i, s in enumerate(sections) if s.details]
    all_units = sum(s.units for s in sections)

    def render(details: int, units: int) -> str:
        keep = set(with_details[:details])
        body: list[str] = []
        plans = rows = 0
        titles: list[str] = []
        for index, section in enumerate(sections):
            kept = max(0, min(units, section.units))
            units -= section.units
            if not kept and section.kind == "plan":
                plans += 1
            elif not kept:
                titles.append(section.kind)
            elif kept < len(section.rows):
                rows += len(section.rows) - kept
            part = section.render(kept, index in keep)
            if part:
                body.extend(("", *part))
        left_out = len(with_details) - details
        notice = _notice(left_out, plans, rows, titles)
        return "\n".join([*head, *notice, *fixed, *body]) + "\n"

    def fits(text: str) -> bool:
        return len(text) <= limit

    details = _largest(lambda d: fits(render(d, all_units)), len(with_details))
    if details is not None:
        return render(details, all_units)
    units = _largest(lambda u: fits(render(0, u)), all_units)
    return render(0, units or 0)
