"""What every read of the state checks, taken from `schemas/state.schema.json`, which is generated
from the models in `formats`: the readers (every load, `verify_journal`) need no pydantic, and
check each event's `data` with plain comparisons compiled once from the payload definitions
(`checks`, which `validate` compiles the plan schema with too).

The writer checks what it appends with the models themselves (`formats.check_data`); a test
holds these checks to the models' answers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from reconciler.checks import Check, compile_check
from reconciler.state.fold import FoldError
from reconciler.state.records import EventType

SCHEMA_FILE = "state.schema.json"


@functools.cache
def definitions() -> Mapping[str, Any]:
    text = resources.files("reconciler.schemas").joinpath(SCHEMA_FILE).read_text("utf-8")
    defs: dict[str, Any] = json.loads(text)["$defs"]
    return defs


def version(model: str, field: str) -> int:
    """The one value a version field of a file allows (`Event.v`, `Snapshot.format`)."""
    return int(definitions()[model]["properties"][field]["const"])


def fields(model: str) -> frozenset[str]:
    return frozenset(definitions()[model]["properties"])


@functools.cache
def _payloads() -> Mapping[
    str, tuple[frozenset[str], frozenset[str], tuple[tuple[str, Check], ...]]
]:
    defs = definitions()
    by_type = {
        rule["if"]["properties"]["type"]["const"]: rule["then"]["properties"]["data"]["$ref"]
        for rule in defs["Event"]["allOf"]
    }
    compiled = {}
    for kind, ref in by_type.items():
        payload = defs[ref.removeprefix("#/$defs/")]
        properties = payload["properties"]
        checks = tuple((name, compile_check(schema, defs)) for name, schema in properties.items())
        compiled[kind] = (frozenset(payload["required"]), frozenset(properties), checks)
    return compiled


def check_data(kind: EventType, data: Any) -> None:
    """Raises FoldError naming the field when `data` is not what an event of `kind` carries."""
    required, names, checks = _payloads()[kind]
    if type(data) is not dict:
        raise FoldError(f"`data` of a `{kind}` event is not a JSON object")
    if not required <= data.keys() <= names:
        missing, extra = sorted(required - data.keys()), sorted(data.keys() - names)
        what = [f"has no {', '.join(f'`{name}`' for name in missing)}"] if missing else []
        what += [f"has unexpected {', '.join(f'`{name}`' for name in extra)}"] if extra else []
        raise FoldError(f"`{kind}` event {' and '.join(what)}")
    for name, check in checks:
        if name not in data:  # an optional field left out
            continue
        wrong = check(data[name])
        if wrong:
            raise FoldError(f"`data.{name}` of a `{kind}` event {wrong}")
