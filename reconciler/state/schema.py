"""What every read of the state checks, taken from `schemas/state.schema.json`, which is generated
from the models in `formats`: the readers (every load, `verify_journal`) need no pydantic, and
check each event's `data` with plain comparisons compiled once from the payload definitions.

The writer checks what it appends with the models themselves (`formats.check_data`); a test
holds these checks to the models' answers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from reconciler.state.fold import FoldError
from reconciler.state.records import EventType

SCHEMA_FILE = "state.schema.json"

Check = Callable[[Any], str | None]
"""What is wrong with a value (`is not a string`), or None."""

_TYPES: Mapping[str, tuple[type, str]] = {
    "string": (str, "a string"),
    "integer": (int, "an integer"),
    "boolean": (bool, "true or false"),
    "array": (list, "a list"),
    "object": (dict, "a JSON object"),
}
_UNCHECKED = frozenset({"description", "examples", "additionalProperties"})
"""Keywords that say nothing a check must enforce (an object's content is free)."""


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


def compile_check(schema: Mapping[str, Any]) -> Check:
    """A check of one property's schema. A keyword it does not know fails here, at the first
    load, rather than go unchecked."""
    unknown = set(schema) - _UNCHECKED - {"type", "enum", "minLength", "minimum", "pattern"}
    unknown -= {"minItems", "maxItems", "items", "prefixItems", "uniqueItems"}
    if unknown:
        raise ValueError(f"no check for the schema keywords {sorted(unknown)}")
    if "enum" in schema:
        choices = tuple(schema["enum"])
        said = f"is not one of {', '.join(map(str, choices))}"
        return lambda value: None if type(value) is str and value in choices else said
    kind: Any  # (a type, but typed so that the checks below stay on an Any value)
    kind, name = _TYPES[schema["type"]]
    wrong_type = f"is not {name}"
    least = schema.get("minLength", schema.get("minItems"))
    most = schema.get("maxItems")
    unique = schema.get("uniqueItems", False)
    positions = tuple(compile_check(each) for each in schema.get("prefixItems", ()))
    minimum = schema.get("minimum")
    pattern = re.compile(schema["pattern"]).search if "pattern" in schema else None
    item = compile_check(schema["items"]) if "items" in schema else None
    plain_items = schema.get("items", {}).keys() <= _UNCHECKED | {"type"}
    item_kind = _TYPES[schema["items"]["type"]][0] if item is not None and plain_items else None

    def check(value: Any) -> str | None:
        # Exact types: JSON gives exactly these, and `true` is no integer.
        if type(value) is not kind:
            return wrong_type
        if least is not None and len(value) < least:
            return f"has fewer than {least} {'items' if kind is list else 'characters'}"
        if most is not None and len(value) > most:
            return f"has more than {most} items"
        if unique and len(set(map(json.dumps, value))) < len(value):
            return "lists the same item twice"
        for index, position in enumerate(positions):
            wrong = position(value[index])
            if wrong:
                return f"has an item {index} that {wrong}"
        if minimum is not None and value < minimum:
            return f"is less than {minimum}"
        if pattern is not None and not pattern(value):
            return f"is not of the form {schema['pattern']}"
        if item_kind is not None:
            if not all(type(each) is item_kind for each in value):
                return f"has an item that is not {_TYPES[schema['items']['type']][1]}"
        elif item is not None:
            for each in value:
                wrong = item(each)
                if wrong:
                    return f"has an item that {wrong}"
        return None

    return check


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
        checks = tuple((name, compile_check(schema)) for name, schema in properties.items())
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
