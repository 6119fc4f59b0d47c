"""The JSON Schemas in `schemas/`, generated from the models of the files they describe: plan
files (`contract` and each provider's spec model), saved plans (`commands.saved`), the state
directory (`state.formats`).

`make schemas` writes them; tests/test_contract.py fails while a committed file differs from
what the models generate. `validate` loads the committed plan schema, as an editor does; only a
registry of other providers than the file's (a test's made-up one) has its schema generated.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonRef,
    JsonSchemaMode,
    JsonSchemaValue,
    models_json_schema,
)
from pydantic_core import CoreSchema, core_schema

from reconciler import providers
from reconciler.commands.saved import SavedPlanDocument
from reconciler.contract import SCHEMAS, Spec, plan_model
from reconciler.state import formats
from reconciler.validate import TARGETS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
PLAN_FILE = "backfill-plan.schema.json"

_KEYWORDS = {
    "string": {"pattern", "minLength", "maxLength", "format"},
    "integer": {"minimum", "maximum"},
    "number": {"minimum", "maximum"},
    "boolean": set(),
}
"""The keywords that apply to values of one JSON type only (a number has no pattern)."""


class Generator(GenerateJsonSchema):
    """Pydantic's JSON Schema, written the way a person reads and an editor completes a file:
    a value that may be text or a number is one `type` list, not two alternatives a validator
    reports as "not valid under any"; a field that may be left out is never `null`; a
    discriminated union says which fields apply with `if`/`then`, so that a misspelt field is
    named as such; enums are listed where they are used."""

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        generated = super().generate(schema, mode)
        return self.sort(_inline_enums(generated))

    def sort(self, value: JsonSchemaValue, parent_key: str | None = None) -> JsonSchemaValue:
        sorted_value: JsonSchemaValue = _sorted(value, parent_key)
        return sorted_value

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property is named by its key; a title would say it again

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        generated = super().model_schema(schema)
        if "title" not in schema["cls"].model_config:
            generated.pop("title", None)
        if "description" in generated:  # a docstring, wrapped as code is
            generated["description"] = " ".join(generated["description"].split())
        if issubclass(schema["cls"], Spec) and schema["cls"] is not Spec:
            generated[TARGETS] = _targets(schema["cls"])
        return generated

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        # Only the values: a value of the wrong type is then told the values it may have.
        return {"enum": [member.value for member in schema["members"]]}

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        generated = super().literal_schema(schema)
        generated.pop("type", None)
        return generated

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        # An optional field is left out when unset; a file never writes it as null.
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        generated = super().default_schema(schema)
        if "default" in generated and generated["default"] is None:
            del generated["default"]
        return generated

    def union_schema(self, schema: core_schema.UnionSchema) -> JsonSchemaValue:
        return _one_type_list(super().union_schema(schema))

    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        generated = super().tagged_union_schema(schema)
        name: str = generated["discriminator"]["propertyName"]
        mapping: dict[str, str] = generated["discriminator"]["mapping"]
        first = self.get_schema_from_definitions(JsonRef(next(iter(mapping.values())))) or {}
        tag: dict[str, Any] = {"enum": list(mapping)}
        description = first.get("properties", {}).get(name, {}).get("description")
        if description:
            tag["description"] = description
        return {
            "type": "object",
            "required": [name],
            "properties": {name: tag},
            "allOf": [
                {
                    "if": {"properties": {name: {"const": value}}, "required": [name]},
                    "then": {"$ref": ref},
                }
                for value, ref in mapping.items()
            ],
        }


_JSON_TYPES = {int: "integer", str: "string"}


def _targets(spec: type[Spec]) -> dict[str, str]:
    """Where a plan of `spec` lists its targets, and the JSON type the model reads each as: what
    the rules across plans need of a plan, and `validate` knows without the models."""
    (item,) = get_args(spec.model_fields[spec.TARGETS].annotation)
    read = get_args(item)[0] if get_origin(item) is Annotated else item
    return {"property": spec.targets_key(), "as": _JSON_TYPES[read]}


def _sorted(value: Any, parent_key: str | None) -> Any:
    """Keys in alphabetical order, but properties in the order of the fields, and values (a
    default, an example) as written."""
    if parent_key in ("default", "examples", "const", "enum"):
        return value
    if isinstance(value, dict):
        keys = value if parent_key == "properties" else sorted(value)
        return {key: _sorted(value[key], key) for key in keys}
    if isinstance(value, list):
        return [_sorted(item, parent_key) for item in value]
    return value


def _one_type_list(generated: JsonSchemaValue) -> JsonSchemaValue:
    """`anyOf` simple types, each with keywords of its own type only, as one `type` list: the
    same values, and one error that says which types a value may have."""
    branches = generated.get("anyOf")
    if not isinstance(branches, list) or set(generated) != {"anyOf"}:
        return generated
    types = [branch.get("type") for branch in branches]
    if not all(kind in _KEYWORDS for kind in types) or len(set(types)) < len(types):
        return generated
    numbers = sum(kind in ("integer", "number") for kind in types)
    merged: JsonSchemaValue = {"type": types}
    for branch in branches:
        for key, value in branch.items():
            if key == "type":
                continue
            # A bound of one of two numeric types would bound the other one too.
            shared = numbers > 1 and key in ("minimum", "maximum")
            if key not in _KEYWORDS[branch["type"]] or shared:
                return generated
            merged[key] = value
    return merged


def _inline_enums(schema: JsonSchemaValue) -> JsonSchemaValue:
    """Each enum where it is used, beside its description, instead of in `$defs`."""
    definitions: dict[str, Any] = schema.get("$defs", {})
    enums = {
        f"#/$defs/{name}": {"enum": body["enum"]}
        for name, body in definitions.items()
        if set(body) <= {"enum", "title", "description"}  # the field says what it is
    }

    def inline(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("$ref") in enums:
                rest = {key: item for key, item in value.items() if key != "$ref"}
                return {**enums[value["$ref"]], **inline(rest)}
            return {key: inline(item) for key, item in value.items()}
        if isinstance(value, list):
            return [inline(item) for item in value]
        return value

    result: JsonSchemaValue = inline(schema)
    kept = {
        name: body
        for name, body in result.get("$defs", {}).items()
        if f"#/$defs/{name}" not in enums
    }
    if kept:
        result["$defs"] = kept
    else:
        result.pop("$defs", None)
    return result


def document(file: str, model: type[BaseModel]) -> dict[str, Any]:
    """The schema file `file` for a model."""
    generated = model.model_json_schema(schema_generator=Generator)
    return {"$schema": DRAFT, "$id": SCHEMAS + file, **generated}


def plan_document(specs: Sequence[type[Spec]]) -> dict[str, Any]:
    """The plan schema for a plan whose `spec` is one of `specs`."""
    return document(PLAN_FILE, plan_model(tuple(specs)))


def either(
    file: str,
    heading: tuple[str, str],
    models: Sequence[type[BaseModel]],
    referenced: Sequence[type[BaseModel]] = (),
) -> dict[str, Any]:
    """The schema file `file`, titled and described by `heading`, for a value that is one of
    `models`; `referenced` are models their schemas refer to by name."""
    _, generated = models_json_schema(
        [(model, "validation") for model in (*models, *referenced)], schema_generator=Generator
    )
    definitions = _sorted(_inline_enums(generated), None)["$defs"]
    return {
        "$schema": DRAFT,
        "$id": SCHEMAS + file,
        "title": heading[0],
        "description": heading[1],
        "oneOf": [{"$ref": f"#/$defs/{model.__name__}"} for model in models],
        "$defs": definitions,
    }


def documents() -> dict[str, dict[str, Any]]:
    """Every generated schema file by name."""
    state = "state.schema.json"
    return {
        PLAN_FILE: plan_document(providers.spec_models()),
        "saved-plan.schema.json": document("saved-plan.schema.json", SavedPlanDocument),
        state: either(
            state,
            (
                "BackfillState",
                "The state directory's files: snapshot.json is a `Snapshot`; each line of "
                "journal.jsonl is an `Event`, whose `data` is the payload its `type` names.",
            ),
            [formats.Snapshot, formats.Event],
            referenced=list(formats.PAYLOADS.values()),
        ),
    }


def text(schema: dict[str, Any]) -> str:
    """A schema file's content: stable, readable, diffable."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path, help="where the schema files go (schemas/)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file differs"
    )
    options = parser.parse_args(argv)
    stale = []
    for file, schema in documents().items():
        path = options.directory / file
        wanted = text(schema)
        if path.exists() and path.read_text("utf-8") == wanted:
            continue
        stale.append(path)
        if not options.check:
            path.write_text(wanted, "utf-8")
    for path in stale:
        print(f"{path}: {'differs from the models' if options.check else 'written'}")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
