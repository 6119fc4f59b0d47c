"""Checks compiled from the JSON Schemas generated from the models (`schemagen`): plain
comparisons, built once, that answer as the reference validator does on the keywords those
schemas use, and need neither pydantic nor jsonschema. The state's readers check each journal
event with them (`state.schema`); `validate` checks each plan file.

A check says what is wrong with a value (`is not a string`), or None. Tests hold each to the
answers of the models its schema was generated from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], str | None]
"""What is wrong with a value (`is not a string`), or None."""

_TYPES: Mapping[str, tuple[tuple[type, ...], str]] = {
    # Exact types: JSON (and the plan loader) give exactly these, and `true` is no integer.
    "string": ((str,), "a string"),
    "integer": ((int,), "an integer"),
    "number": ((int, float), "a number"),
    "boolean": ((bool,), "true or false"),
    "array": ((list,), "a list"),
    "object": ((dict,), "a JSON object"),
    "null": ((type(None),), "null"),
}
_KEYWORDS: Mapping[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern"}),
    "integer": frozenset({"minimum", "maximum"}),
    "number": frozenset({"minimum", "maximum"}),
    "boolean": frozenset(),
    "array": frozenset({"minItems", "maxItems", "uniqueItems", "items", "prefixItems"}),
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "null": frozenset(),
}
"""The keywords that apply to values of one JSON type only (a number has no pattern)."""
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "title", "description", "examples", "default", "format"}
)
"""Keywords that assert nothing (`format` only annotates, as the reference validator has it)."""
_OTHERS = frozenset({"type", "enum", "const", "$ref", "allOf", "if", "then"})
_KNOWN = _ANNOTATIONS | _OTHERS | frozenset().union(*_KEYWORDS.values())
EXTENSION = "x-"
"""Keywords of our own start with it (the reference validator ignores them, as do editors)."""


def compile_check(schema: Mapping[str, Any], definitions: Mapping[str, Any] | None = None) -> Check:
    """A check of `schema`, whose `$ref`s name `#/$defs/...` of `definitions`. A keyword it does
    not know fails here, at the first use, rather than go unchecked."""
    return _Compiler(definitions or {}).check(schema)


class _Compiler:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.compiled: dict[str, Check] = {}
        self.compiling: set[str] = set()

    def check(self, schema: Mapping[str, Any]) -> Check:
        unknown = {key for key in schema if key not in _KNOWN and not key.startswith(EXTENSION)}
        if unknown:
            raise ValueError(f"no check for the schema keywords {sorted(unknown)}")
        parts: list[Check] = []
        if "$ref" in schema:
            parts.append(self.ref(schema["$ref"]))
        if "const" in schema:
            parts.append(_const(schema["const"]))
        if "enum" in schema:
            parts.append(_enum(schema["enum"]))
        types = schema.get("type", [name for name in _TYPES if _KEYWORDS[name] & schema.keys()])
        typed = {name: self.of_type(name, schema) for name in _listed(types)}
        if "type" in schema:
            parts.append(_one_of_types(typed))
        elif typed:  # keywords without a type apply to the values of their type only
            parts.append(_where_typed(typed))
        parts += [self.check(each) for each in schema.get("allOf", ())]
        if "if" in schema:
            parts.append(_conditional(self.check(schema["if"]), self.check(schema.get("then", {}))))
        return _every(parts)

    def ref(self, ref: str) -> Check:
        name = ref.removeprefix("#/$defs/")
        if name == ref or name not in self.definitions:
            raise ValueError(f"no definition for the reference {ref!r}")
        if name in self.compiling:  # the generated schemas have none
            raise ValueError(f"no check for the recursive reference {ref!r}")
        if name not in self.compiled:
            self.compiling.add(name)
            self.compiled[name] = self.check(self.definitions[name])
            self.compiling.discard(name)
        return self.compiled[name]

    def of_type(self, name: str, schema: Mapping[str, Any]) -> Check:
        """The check of a value of JSON type `name`, type included."""
        kinds, said = _TYPES[name]
        wrong_type = f"is not {said}"
        kind = kinds[0] if len(kinds) == 1 else None
        if name == "array":
            rest = self.array(schema)
        elif name == "object":
            rest = self.object(schema)
        elif name == "string":
            rest = _string(schema)
        elif name in ("integer", "number"):
            rest = _number(schema)
        else:
            rest = None

        if kind is not None and rest is None:
            return lambda value: None if type(value) is kind else wrong_type
        if kind is not None and rest is not None:
            return lambda value: rest(value) if type(value) is kind else wrong_type

        def check(value: Any) -> str | None:
            if type(value) not in kinds:
                return wrong_type
            return None if rest is None else rest(value)

        return check

    def array(self, schema: Mapping[str, Any]) -> Check | None:
        least, most = schema.get("minItems"), schema.get("maxItems")
        unique = schema.get("uniqueItems", False)
        positions = tuple(self.check(each) for each in schema.get("prefixItems", ()))
        items = schema.get("items")
        item = self.check(items) if items is not None else None
        # A list of plain values (`{"type": "string"}`) is checked by type alone, fast.
        plain = items is not None and items.keys() <= _ANNOTATIONS | {"type"}
        kind = items["type"] if plain and items is not None else None
        plain_kinds, plain_said = _TYPES[kind] if isinstance(kind, str) else (None, "")
        if not (least or most or unique or positions or item):
            return None

        def check(value: list[Any]) -> str | None:
            if least is not None and len(value) < least:
                return f"has fewer than {least} items"
            if most is not None and len(value) > most:
                return f"has more than {most} items"
            if unique and len(set(map(_identity, value))) < len(value):
                return "lists the same item twice"
            for index, (each, position) in enumerate(zip(value, positions, strict=False)):
                wrong = position(each)
                if wrong:
                    return f"has an item {index} that {wrong}"
            if plain_kinds is not None:
                if not all(type(each) in plain_kinds for each in value):
                    return f"has an item that is not {plain_said}"
            elif item is not None:
                for each in value:
                    wrong = item(each)
                    if wrong:
                        return f"has an item that {wrong}"
            return None

        return check

    def object(self, schema: Mapping[str, Any]) -> Check | None:
        properties = {key: self.check(each) for key, each in schema.get("properties", {}).items()}
        required = tuple(schema.get("required", ()))
        others = schema.get("additionalProperties", True)
        closed = others is False
        other = None if isinstance(others, bool) else self.check(others)
        if not (properties or required or closed or other):
            return None

        def check(value: dict[str, Any]) -> str | None:
            for key in required:
                if key not in value:
                    return f"has no `{key}`"
            for key, item in value.items():
                known = properties.get(key)
                if known is not None:
                    wrong = known(item)
                elif closed:
                    return f"has unexpected `{key}`"
                elif other is not None:
                    wrong = other(item)
                else:
                    continue
                if wrong:
                    return f"has `{key}` that {wrong}"
            return None

        return check


def _pass(value: Any) -> str | None:
    return None


def _listed(types: str | list[str]) -> list[str]:
    return [types] if isinstance(types, str) else list(types)


def _identity(value: Any) -> str:
    """Equal for the values the reference validator counts as the same item (a mapping's keys
    in any order), different for `1` and `true`."""
    return json.dumps(value, sort_keys=True)


def _every(parts: list[Check]) -> Check:
    if not parts:
        return _pass
    if len(parts) == 1:
        return parts[0]

    def check(value: Any) -> str | None:
        for part in parts:
            wrong = part(value)
            if wrong:
                return wrong
        return None

    return check


def _one_of_types(typed: Mapping[str, Check]) -> Check:
    if len(typed) == 1:
        return next(iter(typed.values()))
    by_kind = {kind: check for name, check in typed.items() for kind in _TYPES[name][0]}
    said = f"is not {' or '.join(_TYPES[name][1] for name in typed)}"
    return lambda value: by_kind[type(value)](value) if type(value) in by_kind else said


def _where_typed(typed: Mapping[str, Check]) -> Check:
    by_kind = {kind: check for name, check in typed.items() for kind in _TYPES[name][0]}
    return lambda value: by_kind[type(value)](value) if type(value) in by_kind else None


def _conditional(condition: Check, then: Check) -> Check:
    return lambda value: then(value) if condition(value) is None else None


def _const(expected: Any) -> Check:
    if type(expected) not in (str, int, bool):
        raise ValueError(f"no check for the constant {expected!r}")
    said = f"is not {json.dumps(expected)}"
    kind = type(expected)
    return lambda value: None if type(value) is kind and value == expected else said


def _enum(choices: list[Any]) -> Check:
    if not all(type(choice) is str for choice in choices):
        raise ValueError(f"no check for the enum {choices!r} (only of strings)")
    allowed = frozenset(choices)
    said = f"is not one of {', '.join(choices)}"
    return lambda value: None if type(value) is str and value in allowed else said


def _string(schema: Mapping[str, Any]) -> Check | None:
    least, most = schema.get("minLength"), schema.get("maxLength")
    pattern = re.compile(schema["pattern"]).search if "pattern" in schema else None
    if least is None and most is None and pattern is None:
        return None

    def check(value: str) -> str | None:
        if least is not None and len(value) < least:
            return f"has fewer than {least} characters"
        if most is not None and len(value) > most:
            return f"has more than {most} characters"
        if pattern is not None and not pattern(value):
            return f"is not of the form {schema['pattern']}"
        return None

    return check


def _number(schema: Mapping[str, Any]) -> Check | None:
    least, most = schema.get("minimum"), schema.get("maximum")
    if least is None and most is None:
        return None

    def check(value: float) -> str | None:
        if least is not None and value < least:
            return f"is less than {least}"
        if most is not None and value > most:
            return f"is more than {most}"
        return None

    return check
