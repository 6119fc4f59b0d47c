"""The audit log as a terminal table, JSON, CSV or Markdown, and the verdict of `audit verify`.
Pure functions: data in, text out."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.domain import JSON, contiguous_runs
from reconciler.views.markdown import escape
from reconciler.views.text import Style, plural, styler

if TYPE_CHECKING:
    from reconciler.state import Attempt, AuditLog, Step, Verification

FORMAT_VERSION = 1
CSV_FIELDS = (
    "intent_seq",
    "intent_time",
    "plan",
    "revision",
    "key",
    "attempt",
    "provider",
    "action",
    "region",
    "targets",
    "dates",
    "user",
    "commit",
    "ref",
    "pr",
    "run_url",
    "tool_version",
    "outcome",
    "outcome_seq",
    "outcome_time",
    "outcome_event",
    "outcome_user",
    "remote_id",
    "request_id",
    "code",
    "message",
    "approved_by",
    "plan_commit",
    "outcome_reason",
    "outcome_approved_by",
)
"""The columns of `--format csv`, in order: the attempt, who and from where, what became of it."""

_PLAIN = styler(False)

_SAFE_URL = re.compile(r"https://[^\s()<>\[\]]+")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def dates_text(dates: Sequence[str]) -> str:
    """Every date, as contiguous runs: `2025-09-01..2025-09-03,2025-09-07`."""
    runs = contiguous_runs(sorted(dates))
    return ",".join(start if start == end else f"{start}..{end}" for start, end in runs)


def _pr(actor: Mapping[str, JSON]) -> str:
    return f"#{actor['pr']}" if actor.get("pr") else ""


def approvers(actor: Mapping[str, JSON]) -> str:
    """Who approved the run (the deployment's reviewers in GitHub), comma-separated."""
    found = actor.get("approved_by")
    return ",".join(str(name) for name in found) if isinstance(found, list) else ""


def outcome(attempt: Attempt) -> str:
    """`rejected (InvalidParameterValue)`; a verdict after the outcome says whose it was, who
    approved it, and why: `forgotten; forgotten by bob (approved by carol) at seq 9: "..."`."""
    record = attempt.record
    text = str(record.shown_status) + (f" ({record.code})" if record.code else "")
    settled = attempt.settled
    if settled is not None and settled.verdict:
        who = settled.actor.get("user") or "?"
        approved = approvers(settled.actor)
        text += f"; {settled.type} by {who}" + (f" (approved by {approved})" if approved else "")
        text += f" at seq {settled.seq}" + (f': "{settled.reason}"' if settled.reason else "")
    return text


def _columns(attempt: Attempt) -> dict[str, str]:
    record, actor = attempt.record, attempt.intent.actor
    settled = attempt.settled
    return {
        "intent_seq": str(attempt.intent.seq),
        "intent_time": attempt.intent.time,
        "plan": record.plan,
        "revision": str(record.revision),
        "key": record.key,
        "attempt": str(attempt.number),
        "provider": record.provider,
        "action": record.action,
        "region": record.region,
        "targets": " ".join(record.targets),
        "dates": dates_text(record.dates),
        "user": str(actor.get("user", "")),
        "commit": str(actor.get("commit", "")),
        "ref": str(actor.get("ref", "")),
        "pr": str(actor.get("pr", "")),
        "run_url": str(actor.get("run_url", "")),
        "tool_version": str(actor.get("tool_version", "")),
        "outcome": str(record.shown_status),
        "outcome_seq": str(settled.seq) if settled else "",
        "outcome_time": settled.time if settled else "",
        "outcome_event": str(settled.type) if settled else "",
        "outcome_user": str(settled.actor.get("user", "")) if settled else "",
        "remote_id": record.remote_id,
        "request_id": record.request_id,
        "code": record.code,
        "message": record.message,
        "approved_by": approvers(actor),
        "plan_commit": str(actor.get("plan_commit", "")),
        "outcome_reason": settled.reason if settled else "",
        "outcome_approved_by": approvers(settled.actor) if settled else "",
    }


# --- audit log --------------------------------------------------------------------------------


def table(log: AuditLog, style: Style = _PLAIN) -> str:
    attempts = log.attempts
    if not attempts:
        return "No submission attempts match." if log.journaled else "The journal is empty."
    header = (
        *("SEQ", "TIME", "PLAN", "REV", "KEY", "TRY", "OUTCOME", "REMOTE ID", "REQUEST ID"),
        *("USER", "APPROVED BY", "COMMIT", "PR", "RUN"),
    )
    rows = [
        (
            str(a.intent.seq),
            a.intent.time,
            a.record.plan,
            str(a.record.revision),
            a.record.key,
            str(a.number),
            outcome(a),
            a.record.remote_id or "-",
            a.record.request_id or "-",
            str(a.intent.actor.get("user") or "-"),
            approvers(a.intent.actor) or "-",
            str(a.intent.actor.get("commit") or "-")[:12],
            _pr(a.intent.actor) or "-",
            str(a.intent.actor.get("run_url") or "-"),
        )
        for a in attempts
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in (header, *rows)
    ]
    lines[0] = style(lines[0], bold=True)
    return "\n".join(lines)


def _step(step: Step) -> dict[str, Any]:
    return {
        "seq": step.seq,
        "time": step.time,
        "type": str(step.type),
        "actor": step.actor,
        "reason": step.reason,
    }


def json_log(log: AuditLog) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "journal": str(log.journal),
        "seq": log.seq,
        "head_hash": log.head_hash,
        "attempts": [
            {
                "key": a.record.key,
                "attempt": a.number,
                "plan": a.record.plan,
                "revision": a.record.revision,
                "provider": a.record.provider,
                "action": a.record.action,
                "region": a.record.region,
                "targets": list(a.record.targets),
                "dates": list(a.record.dates),
                "outcome": str(a.record.shown_status),
                "code": a.record.code,
                "message": a.record.message,
                "remote_id": a.record.remote_id,
                "request_id": a.record.request_id,
                "intent": _step(a.intent),
                "settled": _step(a.settled) if a.settled else None,
                "events": [_step(s) for s in a.steps],
            }
            for a in log.attempts
        ],
    }


def _spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_log(log: AuditLog) -> str:
    """One row per attempt, every field; a cell a spreadsheet would run as a formula gets a
    leading `'` (the JSON format is the byte-exact one)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for attempt in log.attempts:
        writer.writerow({k: _spreadsheet_safe(v) for k, v in _columns(attempt).items()})
    return out.getvalue()


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if _SAFE_URL.fullmatch(url) else escape(url)


def markdown_log(log: AuditLog) -> str:
    attempts = log.attempts
    submissions = len({a.record.key for a in attempts})
    lines = [
        "### Backfill audit log",
        "",
        f"{plural(len(attempts), 'submission attempt')} of {plural(submissions, 'submission')};"
        f" journal at seq {log.seq}, head `{log.head_hash[:12]}`.",
    ]
    if not attempts:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "| Time (UTC) | Plan | Key | Try | Outcome | Remote id | RequestId | Who | Approved by "
        "| Commit | PR | Run |",
        "|---|---|---|--:|---|---|---|---|---|---|---|---|",
    ]
    for a in attempts:
        actor = a.intent.actor
        run = str(actor.get("run_url") or "")
        cells = [
            escape(a.intent.time),
            escape(f"{a.record.plan} r{a.record.revision}"),
            escape(a.record.key),
            str(a.number),
            escape(outcome(a)),
            escape(a.record.remote_id),
            escape(a.record.request_id),
            escape(str(actor.get("user", ""))),
            escape(approvers(actor)),
            escape(str(actor.get("commit", ""))[:12]),
            escape(_pr(actor)),
            _link("run", run) if run else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --- audit verify -----------------------------------------------------------------------------


def verdict(result: Verification, style: Style = _PLAIN) -> str:
    journal = result.journal
    if result.intact:
        snapshot = (
            "snapshot.json equals the journal folded"
            if result.snapshot
            else "no snapshot.json to compare (it is only a cache)"
        )
        lines = [
            style("OK", fg="green", bold=True)
            + f": {journal}: {plural(result.seq, 'event')}, hash chain intact"
            f" (head {result.head_hash[:12]}); {snapshot}."
        ]
        lines += [f"warning: {w}" for w in result.warnings]
        return "\n".join(lines)
    lines = [
        f"{style(str(p.location), bold=True)}: {style('error', fg='red')}: {p.message}"
        for p in result.problems
    ]
    first = result.problems[0].location
    lines.append(
        f"The state does not verify: {plural(len(result.problems), 'problem')}; the first is at"
        f" {first}. The journal is never edited by hand: `git log -p -- {journal}` shows who"
        " changed what; restore it from git."
    )
    return "\n".join(lines)


def json_verdict(result: Verification) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "intact": result.intact,
        "seq": result.seq,
        "head_hash": result.head_hash,
        "problems": [
            {"file": p.location.file, "line": p.location.line, "message": p.message}
            for p in result.problems
        ],
        "warnings": list(result.warnings),
    }
