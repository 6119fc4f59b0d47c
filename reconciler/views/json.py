"""Machine-readable output: plain dicts ready for `json.dumps`, stable in shape and order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from reconciler.vocabulary import compact_dates

if TYPE_CHECKING:
    from reconciler.diff import Changeset
    from reconciler.domain import Submission
    from reconciler.errors import Diagnostic, Location
    from reconciler.execute import Result
    from reconciler.reports.apply import Applied
    from reconciler.reports.refresh import Refreshed
    from reconciler.reports.state import Listing
    from reconciler.state import IntentDetails, SubmissionRecord
    from reconciler.validate import Validation

FORMAT_VERSION = 1


def dumps(payload: object) -> str:
    """A document as every command prints it: indented, non-ASCII kept as is."""
    return json.dumps(payload, indent=2, ensure_ascii=False)


def diagnostic(item: Diagnostic) -> dict[str, Any]:
    loc = item.location
    return {
        "file": loc.file,
        "line": loc.line,
        "col": loc.col,
        "field": item.field,
        "message": item.message,
    }


def validation(result: Validation) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "valid": result.ok,
        "files": result.files,
        "plans": list(result.names),
        "errors": [diagnostic(d) for d in result.diagnostics],
    }


def submission(item: Submission) -> dict[str, Any]:
    return {
        "key": item.key,
        "plan": item.plan,
        "revision": item.revision,
        "provider": item.provider,
        "action": item.action,
        "region": item.region,
        "targets": list(item.targets),
        "dates": list(item.dates),
        "cells": item.size,
        "fingerprint": item.fingerprint,
        "request": dict(item.request),
        "replaces": list(item.replaces),
    }


def _location(loc: Location) -> dict[str, Any]:
    return {"file": loc.file, "line": loc.line, "col": loc.col}


def refreshed(result: Refreshed) -> dict[str, Any]:
    """What a refresh read: `backfill refresh --format json`, and the plan's `refresh`."""
    return {
        "asked": result.asked,
        "final": result.final,
        "cells": result.cells,
        "changed_cells": result.changed_cells,
        "errors": [
            {"key": s.record.key, "plan": s.record.plan, "error": s.error} for s in result.errors
        ],
    }


def changeset(changes: Changeset, read: Refreshed | None = None) -> dict[str, Any]:
    """The plan, and what the refresh made before it read (`read`, with --refresh);
    `schemas/plan-output.schema.json` documents every key."""
    creates = changes.creates
    return {
        "format_version": FORMAT_VERSION,
        **({} if read is None else {"refresh": refreshed(read)}),
        "summary": {
            "changes": changes.has_changes,
            "create_calls": len(creates),
            "create_cells": sum(s.size for s in creates),
            "in_sync_cells": changes.count("in_sync_cells"),
            "conflicts": len(changes.conflicts),
            "attention_cells": changes.count("attention_cells"),
            "orphaned_cells": sum(o.cells for o in changes.orphans),
            "exhausted_cells": changes.count("exhausted_cells"),
        },
        "plans": [
            {
                "name": p.plan.name,
                "provider": p.plan.provider,
                "revision": p.plan.revision,
                **_location(p.plan.location),
                "owner": p.plan.owner,
                "reason": p.plan.reason,
                "labels": dict(p.plan.labels),
                "create_cells": p.create_cells,
                "in_sync_cells": p.in_sync_cells,
                "conflict_cells": p.conflict_cells,
                "attention_cells": p.attention_cells,
                "exhausted_cells": p.exhausted_cells,
                "retry_cells": p.retry_cells,
                "health": dict(p.health),
                "submissions": [submission(s) for s in p.submissions],
            }
            for p in changes.plans
        ],
        "conflicts": [
            {
                "plan": c.plan,
                "revision": c.revision,
                "key": c.key,
                "cells": c.cells,
                "first_date": c.first_date,
                "last_date": c.last_date,
                "changes": [asdict(x) for x in c.changes],
                "other_plan": c.other_plan,
                **_location(c.location),
            }
            for c in changes.conflicts
        ],
        "attention": [asdict(a) for a in changes.attention],
        "exhausted": [
            {
                "plan": e.plan,
                "revision": e.revision,
                "target": e.target,
                "dates": compact_dates(e.spans),
                "attempts": e.attempts,
            }
            for e in changes.exhausted
        ],
        "orphans": [asdict(o) for o in changes.orphans],
        "warnings": list(changes.warnings),
    }


def result(item: Result) -> dict[str, Any]:
    outcome = item.outcome
    return {
        "key": item.submission.key,
        "plan": item.submission.plan,
        "outcome": str(outcome.kind),
        "remote_id": outcome.remote_id,
        "request_id": outcome.request_id,
        "code": outcome.code,
        "message": outcome.message,
        "attempts": item.attempts,
        "stopped": item.stopped,
    }


def results(items: Sequence[Result], planned: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "planned": planned,
        "results": [result(r) for r in items],
    }


def applied(report: Applied, read: Refreshed | None = None) -> dict[str, Any]:
    return {
        "plan": changeset(report.changes, read),
        "apply": results(report.results, report.planned),
    }


def listing(report: Listing) -> dict[str, Any]:
    assert report.details is not None, "the JSON of a listing shows what each intent journaled"
    return {
        "format_version": FORMAT_VERSION,
        "seq": report.seq,
        "submissions": [record(r, report.details[r.key]) for r in report.records],
    }


def record(item: SubmissionRecord, sent: IntentDetails) -> dict[str, Any]:
    """The record with what its intent journaled (`state show`, `state list --format json`)."""
    data = {f.name: getattr(item, f.name) for f in fields(item) if f.name != "spans"}
    data.update(
        status=str(item.shown_status),
        targets=list(item.targets),
        dates=list(item.dates),
        endpoint=sent.endpoint,
        params=sent.params,
        request=sent.request,
        actor=sent.actor,
        replaces=list(sent.replaces),
    )
    return data
