"""`backfill state ...`: read the state, and the two decisions only a person may take about an
unknown outcome: it ran (`import`) or it did not (`forget`), for one submission or many at once
(after an outage a person may settle dozens)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.commands.branch import StateBranch, writing
from reconciler.errors import BackfillError, Location
from reconciler.reports.state import Listing, Verdict
from reconciler.state import (
    IntentDetails,
    State,
    SubmissionRecord,
    intent_details,
    load_state,
)


def listing(state_dir: Path, *, plan: str | None, status: str | None, details: bool) -> Listing:
    """`backfill state list`: the submissions of `plan` and/or with `status` (as shown: an
    intent without an outcome is unknown), oldest intent first; with `details`, what each
    intent journaled (read from the journal)."""
    state = load_state(state_dir)
    records = sorted(
        (
            r
            for r in state.submissions.values()
            if (plan is None or r.plan == plan) and (status is None or r.shown_status == status)
        ),
        key=lambda r: (r.intent_seq, r.key),
    )
    return Listing(
        records=tuple(records),
        total=len(state.submissions),
        seq=state.seq,
        details=intent_details(state, records) if details else None,
        warnings=state.warnings,
    )


def show(state_dir: Path, key: str) -> tuple[SubmissionRecord, IntentDetails]:
    """`backfill state show KEY`: one submission (`find`) with what its intent journaled."""
    state = load_state(state_dir)
    record = find(state, key)
    return record, intent_details(state, [record])[record.key]


def find(state: State, key: str) -> SubmissionRecord:
    """A submission by its key or an unambiguous prefix of it, as git finds commits."""
    if key in state.submissions:
        return state.submissions[key]
    matches = [k for k in state.submissions if k.startswith(key)] if len(key) >= 4 else []
    if len(matches) == 1:
        return state.submissions[matches[0]]
    if matches:
        raise BackfillError(f"key prefix {key!r} is ambiguous: {', '.join(sorted(matches))}")
    raise BackfillError(f"no submission {key!r} in the state; `backfill state list` shows the keys")


def read_verdicts(path: Path, *, with_ids: bool) -> list[Verdict]:
    """One submission a line: `KEY REMOTE_ID` (import) or `KEY` (forget); blank lines and lines
    starting with `#` are skipped. BackfillError names the file and line of a malformed one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BackfillError(f"cannot read {path}: {error}") from None
    verdicts = []
    wanted = "KEY REMOTE_ID" if with_ids else "KEY"
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != (2 if with_ids else 1):
            raise BackfillError(
                f"expected {wanted}, got {line.strip()!r}",
                location=Location(str(path), number),
                hint=f"write one submission a line: {wanted}",
            )
        verdicts.append(Verdict(words[0], words[1] if with_ids else None))
    if not verdicts:
        raise BackfillError(f"{path} names no submission; write one a line: {wanted}")
    return verdicts


def settle(
    state_dir: Path,
    verdicts: Sequence[Verdict],
    *,
    plan: str | None = None,
    reason: str,
    lock_timeout: float,
    branch: StateBranch | None = None,
) -> list[tuple[SubmissionRecord, Verdict]]:
    """Journal a person's verdicts under one lock: every named submission (and, with `plan`,
    every unknown one of that plan, as not run) must have an unknown outcome, or nothing is
    written. Returns each record as it is now, with its verdict. With `branch`, only on the
    branch's newest state, and published there (or an error: nothing recorded where it counts)."""
    command = "state import" if any(v.remote_id is not None for v in verdicts) else "state forget"
    if not reason.strip():
        raise BackfillError(
            f"{command} needs a reason: say how you know (a console link, a ticket); it is kept"
            " in the journal for the audit"
        )
    with writing(state_dir, command, lock_timeout=lock_timeout, branch=branch) as writer:
        chosen: dict[str, Verdict] = {}
        for verdict in verdicts:
            record = find(writer.state, verdict.key)
            if record.key in chosen:
                raise BackfillError(f"submission {record.key} is named twice; nothing was recorded")
            chosen[record.key] = Verdict(record.key, verdict.remote_id)
        if plan is not None:
            unknown = [
                r for r in writer.state.submissions.values() if r.plan == plan and r.needs_attention
            ]
            if not unknown:
                raise BackfillError(f"plan {plan!r} has no submission with an unknown outcome")
            for record in unknown:
                chosen.setdefault(record.key, Verdict(record.key, None))
        settled = [
            writer.state.submissions[key]
            for key in chosen
            if not writer.state.submissions[key].needs_attention
        ]
        if settled:
            raise BackfillError(
                ", ".join(f"{r.key} is {r.shown_status}" for r in settled)
                + ": only an unknown outcome can be imported or forgotten; nothing was recorded"
            )
        for key, verdict in chosen.items():
            if verdict.remote_id is not None:
                data = {"key": key, "remote_id": verdict.remote_id, "reason": reason}
                writer.append("imported", data)
            else:
                writer.append("forgotten", {"key": key, "reason": reason})
        found = [(writer.state.submissions[key], verdict) for key, verdict in chosen.items()]
    if branch:
        keys = ", ".join(chosen)
        branch.publish(f"backfill: {command} {keys}", journal_only=False)
    return found
