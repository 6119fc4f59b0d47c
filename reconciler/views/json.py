"""Machine-readable output: plain dicts ready for `json.dumps`, stable in shape and order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from reconciler.diff import Changeset
from reconciler.domain import Submission
from reconciler.errors import Diagnostic, Location
from reconciler.execute import Result
from reconciler.state import SubmissionRecord
from reconciler.state.records import compact_dates
from reconciler.validate import Validated

FORMAT_VERSION = 1


def diagnostic(item: Diagnostic) -> dict[str, Any]:
    loc = item.location
    return {
        "file": loc.file,
        "line": loc.line,
        "col": loc.col,
        "field": item.field,
        "message": item.message,
    }


def validation(result: Validated) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "valid": result.ok,
        "files": result.files,
        "plans": [p.name for p in result.plans],
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


def changeset(changes: Changeset) -> dict[str, Any]:
    """The plan; `schemas/plan-output.schema.json` documents every key."""
    creates = changes.creates
    return {
        "format_version": FORMAT_VERSION,
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


def record(item: SubmissionRecord) -> dict[str, Any]:
    data = {f.name: getattr(item, f.name) for f in fields(item) if f.name not in _LEFT_OUT}
    data.update(
        status=str(item.shown_status),
        targets=list(item.targets),
        dates=list(item.dates),
        endpoint=item.endpoint,
        params=item.params,
        request=item.request,
        actor=item.actor,
        replaces=list(item.replaces),
    )
    return data


_LEFT_OUT = frozenset({"spans", "details"})
