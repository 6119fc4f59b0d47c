"""Saved plans: `plan --out FILE` records exactly what a review saw; `apply FILE` makes exactly
those calls, or refuses and names what changed since (plan files, state, or the calls)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.diff import Changeset
from reconciler.domain import canonical_json
from reconciler.errors import BackfillError
from reconciler.load import discover
from reconciler.state import State
from reconciler.version import VERSION
from reconciler.views import json as json_view

FORMAT = 1


@dataclass(frozen=True, slots=True)
class SavedPlan:
    source: Path
    paths: tuple[Path, ...]
    files: dict[str, str]
    seq: int
    head_hash: str
    state_id: str
    """Which state it was planned against: a state started anew has the same first seq."""
    calls: dict[str, str]
    """Submission key -> canonical JSON of its request."""


def _files(paths: Sequence[Path]) -> dict[str, str]:
    found, _ = discover(paths)
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in found}


def save(out: Path, paths: Sequence[Path], changes: Changeset, state: State) -> None:
    document = {
        "saved_plan_format": FORMAT,
        "tool_version": VERSION,
        "plan_files": {"paths": [str(p) for p in paths], "sha256": _files(paths)},
        "state": {"seq": state.seq, "hash": state.head_hash, "state_id": state.state_id},
        "plan": json_view.changeset(changes),
    }
    temp = out.with_name(f".{out.name}.tmp")
    try:
        temp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(temp, out)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise BackfillError(f"cannot write the saved plan {out}: {error.strerror}") from None


def load(source: Path) -> SavedPlan:
    try:
        document: Any = json.loads(source.read_text("utf-8"))
        if document.get("saved_plan_format") != FORMAT:
            raise ValueError("not a saved plan of this version")
        files = document["plan_files"]
        return SavedPlan(
            source=source,
            paths=tuple(Path(p) for p in files["paths"]),
            files=dict(files["sha256"]),
            seq=int(document["state"]["seq"]),
            head_hash=str(document["state"]["hash"]),
            state_id=str(document["state"].get("state_id", "")),
            calls={
                s["key"]: canonical_json(s["request"])
                for p in document["plan"]["plans"]
                for s in p["submissions"]
            },
        )
    except OSError as error:
        raise BackfillError(f"cannot read the saved plan {source}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BackfillError(
            f"{source} is not a saved plan ({error}); make one with `backfill plan --out FILE`"
        ) from None


def check(saved: SavedPlan, state: State, changes: Changeset) -> None:
    """Refuse unless the plan files, the state and the calls are exactly what was saved."""
    again = f"make and review a new one with `backfill plan --out {saved.source}`"
    now = _files(saved.paths)
    changed = [
        *(f"added {p}" for p in sorted(now.keys() - saved.files.keys())),
        *(f"removed {p}" for p in sorted(saved.files.keys() - now.keys())),
        *(
            f"modified {p}"
            for p in sorted(now.keys() & saved.files.keys())
            if now[p] != saved.files[p]
        ),
    ]
    if changed:
        raise BackfillError(
            f"the plan files changed since {saved.source} was saved ({'; '.join(changed)}): "
            f"nothing was applied; {again}"
        )
    if saved.state_id != state.state_id:
        raise BackfillError(
            f"{saved.source} was saved against another state (id {saved.state_id or 'none'},"
            f" this one is {state.state_id or 'none'}): nothing was applied; {again}"
        )
    if (state.seq, state.head_hash) != (saved.seq, saved.head_hash):
        raise BackfillError(
            f"the state changed since {saved.source} was saved (journal at event {saved.seq} "
            f"then, {state.seq} now): nothing was applied; {again}"
        )
    calls = {s.key: canonical_json(dict(s.request)) for s in changes.creates}
    if calls != saved.calls:
        raise BackfillError(
            f"the calls this version would make differ from those in {saved.source} "
            f"({len(calls)} now, {len(saved.calls)} saved): nothing was applied; {again}"
        )
