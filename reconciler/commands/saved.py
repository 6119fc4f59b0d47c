"""Saved plans: `plan --out FILE` records exactly what a review saw; `apply FILE` makes exactly
those calls, or refuses and names what changed since (plan files, state, or the calls)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from reconciler.diff import Changeset
from reconciler.domain import canonical_json
from reconciler.errors import BackfillError
from reconciler.load import discover
from reconciler.state import State
from reconciler.version import VERSION
from reconciler.views import json as json_view

Format = Literal[1]
FORMAT: Format = 1
"""Bumped (with `Format`) when a saved plan changes incompatibly: an older one is refused."""
HASH = r"^[0-9a-f]{64}$"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Planned(BaseModel):
    """A part of `backfill plan --format json` (schemas/plan-output.schema.json): what a saved
    plan is checked against is read; the rest is kept for people and tools."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class SavedCall(_Planned):
    key: str = Field(min_length=1, description="The submission key.")
    request: dict[str, Any] = Field(description="The request exactly as it would be sent.")


class SavedPlanEntry(_Planned):
    submissions: list[SavedCall]


class SavedChanges(_Planned):
    """The plan as `backfill plan --format json` prints it (schemas/plan-output.schema.json)."""

    plans: list[SavedPlanEntry]


class PlanFiles(_Part):
    paths: list[str] = Field(description="The paths `plan` was given (files or directories).")
    sha256: dict[str, Annotated[str, Field(pattern=HASH)]] = Field(
        description="Each plan file found under them, by path: the sha256 of its bytes."
    )


class StatePosition(_Part):
    seq: int = Field(ge=0, description="The journal's last event when the plan was made.")
    hash: str = Field(pattern=HASH, description="That event's hash.")
    state_id: str = Field(
        "",
        description="Which state it was planned against: a state started anew has the same "
        "first seq. Empty for a state made before `backfill init`.",
    )


class SavedPlanDocument(_Part):
    """A saved plan (`backfill plan --out FILE`): exactly what a review saw. `backfill apply
    FILE` makes those calls, or refuses when the plan files, the state or the calls differ."""

    model_config = ConfigDict(title="SavedPlan")

    saved_plan_format: Format = Field(description="Version of this file format.")
    tool_version: str = Field(description="The version of backfill-reconciler that saved it.")
    plan_files: PlanFiles
    state: StatePosition
    plan: SavedChanges


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
    document = SavedPlanDocument(
        saved_plan_format=FORMAT,
        tool_version=VERSION,
        plan_files=PlanFiles(paths=[str(p) for p in paths], sha256=_files(paths)),
        state=StatePosition(seq=state.seq, hash=state.head_hash, state_id=state.state_id),
        plan=SavedChanges.model_validate(json_view.changeset(changes)),
    ).model_dump(mode="json")
    temp = out.with_name(f".{out.name}.tmp")
    try:
        temp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(temp, out)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise BackfillError(f"cannot write the saved plan {out}: {error.strerror}") from None


def load(source: Path) -> SavedPlan:
    try:
        document = SavedPlanDocument.model_validate_json(source.read_bytes())
    except OSError as error:
        raise BackfillError(f"cannot read the saved plan {source}: {error.strerror}") from None
    except pydantic.ValidationError as invalid:
        first = invalid.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        raise BackfillError(
            f"{source} is not a saved plan of this version ({where}: {first['msg']}); make one "
            "with `backfill plan --out FILE`"
        ) from None
    return SavedPlan(
        source=source,
        paths=tuple(Path(p) for p in document.plan_files.paths),
        files=dict(document.plan_files.sha256),
        seq=document.state.seq,
        head_hash=document.state.hash,
        state_id=document.state.state_id,
        calls={
            call.key: canonical_json(call.request)
            for entry in document.plan.plans
            for call in entry.submissions
        },
    )


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
