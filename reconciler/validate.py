"""Second stage: loaded documents -> typed plans, or every problem found, each at file:line:col.

The contract runs first: the plan schema generated from its models (`contract`, each provider's
spec model), as checks compiled from the committed file (`checks`), which is all `validate`
needs to know a document holds; the models themselves read a document for the commands that go
on with the plan. The schema's reference validator explains a document either rejects. The
rules it cannot say (real dates, ranges in order, names unique across the repo) run on every
document. Each document is judged on its own first (`check_document`, where it was loaded),
then the repo as a whole (`check_repo`).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler import providers
from reconciler.checks import Check, compile_check
from reconciler.errors import Diagnostic
from reconciler.load import Document
from reconciler.vocabulary import (
    DATE_PATTERN,
    JSON,
    MAX_CELLS_PER_PLAN,
    MAX_DAYS_PER_PLAN,
    TIME_PATTERN,
    day,
    merge_spans,
    range_span,
)

if TYPE_CHECKING:
    from jsonschema import TypeChecker, ValidationError
    from jsonschema.protocols import Validator

    from reconciler.contract import BackfillPlan, Spec
    from reconciler.domain import Plan

SCHEMA_FILE = "backfill-plan.schema.json"
"""Generated from `contract` (`make schemas`): what editors validate against, and `validate`."""

TARGETS = "x-targets"
"""A keyword of our own in each provider's spec of the plan schema, written by `schemagen` from
the spec model: the `property` that lists the targets, and the JSON type each is read `as` (a
DMS id written as text is a number). The rules across plans judge targets by it."""

MAX_CALLS_PER_PLAN = 1000
"""API calls one plan makes on an empty state (`spec.chunk` and the ranges decide, and DMS
makes one per DAG per run of days): each is planned, journaled and sent with its own request,
and 1000 calls are 50 s of WeData's 20 calls/s. `chunk: 1` over years would be many more."""


def plan_schema() -> dict[str, Any]:
    """The plan schema of the registered providers: the committed file, generated for the
    built-in ones (as editors read it), or for another registry the same generated from its
    spec models."""
    return _schema_of(_registered())


def _registered() -> tuple[type[Spec], ...] | None:
    """The registered spec models, or None while the registry is the built-in one and not
    loaded: the committed schema says what `validate` needs of it."""
    return providers.spec_models() if providers.loaded() else None


@functools.cache
def _schema_file() -> dict[str, Any]:
    # A file beside the package's module (importlib.resources would load more modules than
    # validating a small repo's plans takes); the package maps it from the repo's schemas/.
    module = importlib.import_module("reconciler.schemas").__file__
    assert module is not None
    text = Path(module).with_name(SCHEMA_FILE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _schema_of(specs: tuple[type[Spec], ...] | None) -> dict[str, Any]:
    schema = _schema_file()
    written = schema["properties"]["spec"]["properties"]["provider"]["enum"]
    if specs is None or written == [spec.provider_name() for spec in specs]:
        return schema
    from reconciler import schemagen  # noqa: PLC0415 (only a registry of other providers)

    return schemagen.plan_document(specs)


class _Compiled:
    """What `validate` takes from the plan schema: where each provider's plans list their
    targets, and whether a document holds: checks compiled when first asked for (`plan` reads
    documents with the models, and needs only the targets)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        reads: dict[str, Callable[[Any], object]] = {"integer": int, "string": str}
        targets = {}
        for rule in schema["properties"]["spec"]["allOf"]:
            provider = rule["if"]["properties"]["provider"]["const"]
            spec = schema["$defs"][rule["then"]["$ref"].removeprefix("#/$defs/")]
            targets[provider] = (spec[TARGETS]["property"], reads[spec[TARGETS]["as"]])
        self.targets: Mapping[str, tuple[str, Callable[[Any], object]]] = targets
        """Provider -> the key of its targets, and what reads one as the provider names it."""

    @functools.cached_property
    def check(self) -> Check:
        return compile_check(self._schema, self._schema["$defs"])


def _compiled() -> _Compiled:
    return _compiled_for(_registered())


@functools.cache
def _compiled_for(specs: tuple[type[Spec], ...] | None) -> _Compiled:
    return _Compiled(_schema_of(specs))


def _whole_number(checker: TypeChecker, instance: object) -> bool:
    """JSON Schema counts 7.0 and 1e308 as integers; a plan's integers are counts and ids
    that the APIs take as integers, so a number written with a point or an exponent is not."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _validator() -> Validator:
    """The reference implementation: it reports every error with its path."""
    return _validator_of(_registered())


@functools.cache
def _validator_of(specs: tuple[type[Spec], ...] | None) -> Validator:
    """Loaded only to explain a document the contract rejected: most runs (a pre-commit hook on
    valid plans) never need it."""
    from jsonschema import Draft202012Validator, validators  # noqa: PLC0415

    # jsonschema's `extend` is its documented way to change a type, and has no annotations.
    plan_validator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _whole_number),
    )
    return plan_validator(_schema_of(specs))


@dataclass(frozen=True, slots=True)
class Validation:
    """What `validate` reports: every problem of a repo's plan files, or its valid plans' names."""

    names: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]
    files: int
    documents: int

    @property
    def ok(self) -> bool:
        return not self.diagnostics


@dataclass(frozen=True, slots=True)
class Validated(Validation):
    """A validation with the valid plans typed, for the commands that go on with them."""

    plans: tuple[Plan, ...]


class Footprint(NamedTuple):
    """What a valid plan declares, as the rules across plans judge it, read from its document
    by what the plan schema says of its provider: its targets as the provider names them, and
    its runs of days."""

    name: str
    provider: str
    key: str
    """Where the plan file lists the targets (`taskIds`, `dagIds`)."""
    targets: tuple[str, ...]
    spans: list[tuple[int, int]]

    @property
    def cells(self) -> int:
        return len(self.targets) * sum(last - first + 1 for first, last in self.spans)


@dataclass(frozen=True, slots=True)
class Checked:
    """One document judged on its own (schema, rules, limits): its problems, or what the rules
    across documents need of a valid plan (unique names, overlapping plans: `check_repo`'s), and
    the plan itself when it was read typed. What is judged across documents is `Repo`'s."""

    document: Document
    """Where it was written: positions only (`data` is None): a big repo's documents are many,
    and their parsed data is dead weight once they are judged."""
    name: str | None
    """`metadata.name`, if the document has one that is text, valid or not."""
    plan: Plan | None
    footprint: Footprint | None
    problems: tuple[Diagnostic, ...]


def check_document(doc: Document, *, typed: bool = True) -> Checked:
    """Independent of every other document, so documents can be checked where they are loaded.
    `typed`: also read the plan with the contract's models (for plan, apply, status)."""
    document, problems = _read(doc, typed)
    problems.extend(_semantic_problems(doc))
    if problems:
        return _checked(doc, None, None, problems)
    footprint = _footprint(doc)
    # Every call covers a cell: only a plan of more cells than that may make too many, and
    # only its provider can count them.
    if footprint.cells > MAX_CALLS_PER_PLAN:
        counted = _plan(doc, document or _model_read(doc.data))
        calls = providers.get(counted.provider).calls(counted)
        if calls > MAX_CALLS_PER_PLAN:
            return _checked(doc, None, None, [_too_many_calls(doc, counted, calls)])
    return _checked(doc, document, footprint, [])


def _checked(
    doc: Document,
    document: BackfillPlan | None,
    footprint: Footprint | None,
    problems: list[Diagnostic],
) -> Checked:
    settled = doc.settled()
    # The plan finds its fields where the document kept them: one copy of it, not two.
    plan = None if document is None else _plan(settled, document)
    return Checked(settled, _name_of(doc.data), plan, footprint, tuple(problems))


class Repo:
    """The rules across documents, judged as the documents come, in document order: a name
    used twice is the problem of its later document. What it keeps of each is its plan, its
    footprint and where its name was written, not its data."""

    def __init__(
        self, load_problems: Sequence[Diagnostic] = (), *, keep_plans: bool = True
    ) -> None:
        self._load_problems = list(load_problems)
        self._keep_plans = keep_plans
        """False when whoever adds the documents takes each plan `add` returns: then the result
        names the valid plans without holding them all."""
        self._diagnostics: list[Diagnostic] = []
        self._valid: list[Checked] = []
        self._names: dict[str, Document] = {}
        self._documents = 0

    def load_problems(self, problems: Sequence[Diagnostic]) -> None:
        self._load_problems.extend(problems)

    def add(self, item: Checked) -> Plan | None:
        """The document's typed plan if it is valid so far (on its own, and its name unique so
        far); a problem across plans found at the end (`result`) may still make it invalid."""
        self._documents += 1
        doc, problems, name = item.document, list(item.problems), item.name
        if name is not None:
            if name in self._names:
                first = self._names[name].locate(("metadata", "name"))
                problems.append(
                    Diagnostic(
                        doc.locate(("metadata", "name")),
                        f"plan name {name!r} is already used at {first}; "
                        "names identify plans in the state, so each must be unique in the repo",
                        "metadata.name",
                    )
                )
            else:
                self._names[name] = doc
        if problems:
            self._diagnostics.extend(problems)
            return None
        plan = item.plan
        if item.footprint is not None:
            if not self._keep_plans and plan is not None:
                # as `dataclasses.replace` would make it, at a fifth of its cost (each plan)
                item = Checked(item.document, item.name, None, item.footprint, item.problems)
            self._valid.append(item)
        return plan

    def result(self, files: int) -> Validated:
        """Every problem, the rules across plans included, or the valid plans (typed, of the
        documents read typed)."""
        valid = self._valid
        diagnostics = [*self._load_problems, *self._diagnostics, *_overlaps(valid)]
        diagnostics.sort(key=lambda d: (d.location.file, d.location.line, d.location.col))
        return Validated(
            tuple(item.footprint.name for item in valid if item.footprint is not None),
            tuple(diagnostics),
            files,
            self._documents,
            tuple(item.plan for item in valid if item.plan is not None),
        )


def check_repo(
    checked: Sequence[Checked], load_problems: Sequence[Diagnostic], files: int
) -> Validated:
    """The documents' own problems and the rules across them, in document order."""
    repo = Repo(load_problems)
    for item in checked:
        repo.add(item)
    return repo.result(files)


def _footprint(doc: Document) -> Footprint:
    """Of a document that holds: every key read here is one the schema requires."""
    data = doc.data
    spec = data["spec"]
    key, read = _compiled().targets[spec["provider"]]
    targets = tuple(dict.fromkeys(str(read(target)) for target in spec[key]))
    spans = merge_spans(
        range_span(entry["start"], entry.get("end", entry["start"])) for entry in spec["dates"]
    )
    return Footprint(data["metadata"]["name"], spec["provider"], key, targets, spans)


def _too_many_calls(doc: Document, plan: Plan, calls: int) -> Diagnostic:
    path = ("spec", "chunk") if plan.chunk else ("spec", "dates")
    advice = "raise spec.chunk, or split the plan" if plan.chunk else "split the plan"
    return Diagnostic(
        doc.locate(path),
        f"the plan makes {calls:,} API calls; a plan makes at most {MAX_CALLS_PER_PLAN:,}: "
        + advice,
        _field(path),
    )


def _name_of(data: JSON) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("metadata"), dict):
        name = data["metadata"].get("name")
        return name if isinstance(name, str) else None
    return None


_NONE: Mapping[str, str] = {}
"""The labels or takeovers of a plan that has none: one for all (a big repo's plans are many,
and what is kept of each outlives it); a dict, as a helper's plans cross a pipe, never changed."""


def _plan(doc: Document, document: BackfillPlan) -> Plan:
    from reconciler.domain import Plan  # noqa: PLC0415 (typed plans only: `validate` makes none)

    metadata, spec = document.metadata, document.spec
    return Plan(
        name=metadata.name,
        spec=spec,
        location=doc.location,
        owner=metadata.owner,
        reason=metadata.reason,
        labels=metadata.labels or _NONE,
        takeover={entry.plan: entry.mode for entry in spec.takeover} if spec.takeover else _NONE,
        # `_checked` gives the document it keeps, settled: positions only, the typed spec
        # replaces its data.
        locator=doc.locate,
    )


# --- schema errors, rewritten as sentences a user can act on ---------------------------------


def _field(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:  # a key a user could not tell apart, or that would break the line: quoted
            text += f"[{part!r}]"
    return text or "(document)"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _read(doc: Document, typed: bool) -> tuple[BackfillPlan | None, list[Diagnostic]]:
    """The document as the contract's models read it (`typed`; else None when it holds), or
    every problem with it.

    The models, and the checks compiled from the schema generated from them, answer "valid?"
    fast, which is the answer for nearly every file in a repo; the checks need no pydantic,
    which a pre-commit hook would spend more time loading than checking its plans. A document
    either rejects is explained by the reference validator on that schema, which names each
    problem with its path."""
    if typed:
        import pydantic  # noqa: PLC0415 (with the models, which `validate` does without)

        try:
            return _model_read(doc.data), []
        except pydantic.ValidationError as rejected:
            refusal = f"the plan models refuse a document their schema accepts: {rejected}"
    else:
        wrong = _compiled().check(doc.data)
        if wrong is None:
            return None, []
        refusal = f"the plan schema's checks refuse a document it accepts: it {wrong}"
    problems = list(_schema_problems(doc))
    if not problems:  # tests/test_validate.py holds the three to the same answers
        raise RuntimeError(f"{doc.location}: {refusal}")
    return None, problems


def _model_read(data: JSON) -> BackfillPlan:
    """The document typed by the contract's models (pydantic.ValidationError if it does not
    hold)."""
    from reconciler import contract  # noqa: PLC0415 (pydantic, which `validate` does without)

    return contract.plan_model(providers.spec_models()).model_validate(data)


def _schema_problems(doc: Document) -> Iterator[Diagnostic]:
    errors = sorted(_validator().iter_errors(doc.data), key=lambda e: list(map(str, e.path)))
    # A value of the wrong type is that one problem, not also a number out of range.
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    errors = [e for e in errors if e.validator == "type" or tuple(e.absolute_path) not in mistyped]
    # One mistake can fail several branches of the schema alike (a `spec` that is a list fails
    # `spec` and both providers' `then`; `required` fails once per missing key): say it once.
    yield from dict.fromkeys(d for error in errors for d in _explain(doc, error))


def _explain(doc: Document, error: ValidationError) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                where = doc.locate_key((*path, key))
                yield Diagnostic(
                    where, _unknown_field(key, allowed, doc.data), _field((*path, key))
                )
        return
    location = doc.locate(path)
    field = _field(path)
    if kind == "required" and isinstance(instance, dict):
        required: list[str] = list(schema.get("required", []))
        for key in required:
            if key not in instance:
                hint = _describe(schema.get("properties", {}).get(key, {}))
                message = f"missing required field {key!r}"
                yield Diagnostic(location, f"{message}: {hint}" if hint else message, field)
        return
    yield Diagnostic(location, _sentence(error, schema, instance), field)


def _sentence(error: ValidationError, schema: Mapping[str, Any], instance: JSON) -> str:
    kind = error.validator
    expected: Any = error.validator_value
    got = _type_name(instance) if isinstance(instance, dict | list) else json.dumps(instance)
    if kind == "enum":
        options = ", ".join(str(v) for v in expected)
        return f"must be one of: {options} (got {got})"
    if kind == "const":
        return f"must be {json.dumps(expected)} (got {got})"
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        message = f"expected {_article(wanted)}, got {_type_name(instance)}"
        if "integer" in wanted and isinstance(instance, float) and instance.is_integer():
            message += ": write a whole number without a decimal point or exponent"
        return message
    if kind == "pattern":
        hint = _describe(schema)
        if schema.get("pattern") == DATE_PATTERN:  # the form of a date bounds its year
            return f"{got} is not a date a plan takes: {hint}"
        return f"{got} is not in the expected form" + (f": {hint}" if hint else "")
    if kind == "minItems":
        return f"needs at least {expected} item{'s' if expected != 1 else ''}"
    if kind == "maxItems" and isinstance(instance, list):
        return f"lists {len(instance):,} items; at most {expected:,} are allowed: split the plan"
    if kind == "uniqueItems":
        return "lists the same item twice; each may appear once"
    if kind == "minimum":
        return f"must be at least {expected} (got {got})"
    if kind == "maximum":
        hint = _describe(schema)
        return f"must be at most {expected} (got {got})" + (f": {hint}" if hint else "")
    if kind == "minLength":
        return "must not be empty"
    if kind == "maxLength":
        return f"is longer than {expected} characters"
    return str(error.message)


def _describe(schema: Mapping[str, Any]) -> str:
    description = schema.get("description")
    if isinstance(description, str):
        return description
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = plan_schema()["$defs"].get(ref.removeprefix("#/$defs/"), {})
        return str(target.get("description", ""))
    return ""


def _article(word: str) -> str:
    names = {
        "string": "a string",
        "integer": "an integer",
        "object": "a mapping",
        "array": "a list",
        "boolean": "true or false",
        "number": "a number",
    }
    return " or ".join(names.get(w, w) for w in word.split(" or "))


def _type_name(value: JSON) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {json.dumps(value)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"number {value}"
    return f"string {json.dumps(value)}"


def _unknown_field(key: str, allowed: Sequence[str], data: JSON) -> str:
    message = f"unknown field {key!r}"
    owner = _provider_owning(key, data)
    if owner:
        return f"{message}: it belongs to provider {owner!r}, not to this plan's provider"
    import difflib  # noqa: PLC0415 (only to explain an unknown key)

    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message}; allowed here: {', '.join(allowed)}"


def _provider_owning(key: str, data: JSON) -> str | None:
    spec = data.get("spec") if isinstance(data, dict) else None
    current = spec.get("provider") if isinstance(spec, dict) else None
    for model in providers.spec_models():
        keys = {model.key(name) for name in model.model_fields}
        if model.provider_name() != current and key in keys:
            return model.provider_name()
    return None


# --- rules the schema cannot say --------------------------------------------------------------


def _real_date(text: Any) -> date | None:
    if not isinstance(text, str) or not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


_DATE = re.compile(DATE_PATTERN)
"""The schema's form of a date, which also bounds its year: the rules below judge only dates
the schema let through."""
_TIME = re.compile(TIME_PATTERN)


def _semantic_problems(doc: Document) -> Iterator[Diagnostic]:
    """Run on every document, also one the schema rejected, so that one run reports every
    problem; each rule looks only at values well-formed enough to judge (the schema has
    already named the others)."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    if not isinstance(spec, dict):
        return
    ranges = spec.get("dates")
    spans: list[tuple[date, date, int]] = []
    for index, entry in enumerate(ranges if isinstance(ranges, list) else []):
        if not isinstance(entry, dict):
            continue
        start_text, end_text = entry.get("start"), entry.get("end", entry.get("start"))
        start, end = _real_date(start_text), _real_date(end_text)
        for key, text, value in (("start", start_text, start), ("end", end_text, end)):
            if value is None and key in entry and isinstance(text, str) and _DATE.match(text):
                path: tuple[str | int, ...] = ("spec", "dates", index, key)
                yield Diagnostic(
                    doc.locate(path),
                    f"{text} is not a real calendar date; write an existing YYYY-MM-DD date",
                    _field(path),
                )
        if start and end:
            if start > end:
                path = ("spec", "dates", index, "end")
                yield Diagnostic(
                    doc.locate(path),
                    f"end {end_text} is before start {start_text}; swap them or fix the typo",
                    _field(path),
                )
            else:
                spans.append((start, end, index))
        yield from _window_problems(doc, ("spec", "dates", index, "executionWindow"))
    yield from _window_problems(doc, ("spec", "executionWindow"))
    spans.sort()
    for (_, first_end, first), (second_start, _, second) in itertools.pairwise(spans):
        if second_start <= first_end:
            where: tuple[str | int, ...] = ("spec", "dates", second)
            yield Diagnostic(
                doc.locate(where),
                f"overlaps spec.dates[{first}]; a date may appear in one range only "
                f"(merge the ranges or remove the overlap ending {first_end.isoformat()})",
                _field(where),
            )
    for ids in ("taskIds", "dagIds", "startNodeIds", "filterNodeIds"):
        yield from _duplicate_ids(doc, spec, ("spec", ids))
    yield from _takeover_problems(doc, spec)
    yield from _size_problems(
        doc, spec, merge_spans((s.toordinal(), e.toordinal()) for s, e, _ in spans)
    )


def _size_problems(
    doc: Document, spec: dict[str, Any], spans: list[tuple[int, int]]
) -> Iterator[Diagnostic]:
    """The bounds of what one plan may declare, worked out from its ranges, never day by day:
    an oversized plan is refused before anything is allocated per cell."""
    path = ("spec", "dates")
    days = sum(last - first + 1 for first, last in spans)
    if days > MAX_DAYS_PER_PLAN:
        yield Diagnostic(
            doc.locate(path),
            f"the ranges add up to {days:,} days; a plan declares at most "
            f"{MAX_DAYS_PER_PLAN:,} (ten years): split the dates over several plans",
            _field(path),
        )
        return
    provider = _compiled().targets.get(str(spec.get("provider")))
    ids = spec.get(provider[0]) if provider else None
    targets = len({str(target) for target in ids}) if isinstance(ids, list) else 0
    if targets * days > MAX_CELLS_PER_PLAN:
        yield Diagnostic(
            doc.locate(path),
            f"{targets:,} targets x {days:,} days make {targets * days:,} cells; a plan "
            f"declares at most {MAX_CELLS_PER_PLAN:,}: split it into several plans, by "
            "targets or by dates",
            _field(path),
        )


def _takeover_problems(doc: Document, spec: dict[str, Any]) -> Iterator[Diagnostic]:
    entries = spec.get("takeover")
    name = _name_of(doc.data)
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        other = entry.get("plan") if isinstance(entry, dict) else None
        if not isinstance(other, str):
            continue
        path: tuple[str | int, ...] = ("spec", "takeover", index, "plan")
        if other == name:
            yield Diagnostic(
                doc.locate(path),
                "a plan cannot take over its own submissions; name the other plan",
                _field(path),
            )
        elif other in seen:
            yield Diagnostic(
                doc.locate(path),
                f"{other!r} is listed twice (also at index {seen[other]}); give it one mode",
                _field(path),
            )
        seen.setdefault(other, index)


def _window_problems(doc: Document, path: tuple[str | int, ...]) -> Iterator[Diagnostic]:
    window: Any = doc.data
    for part in path:
        window = window.get(part) if isinstance(window, dict) else None
    if not isinstance(window, dict):
        return
    start, end = window.get("start"), window.get("end")
    if not (isinstance(start, str) and isinstance(end, str)):
        return
    if _TIME.match(start) and _TIME.match(end) and start >= end:
        yield Diagnostic(
            doc.locate((*path, "end")),
            f"execution window ends ({end}) before it starts ({start}); "
            "the window is a span within one day, HH:mm to a later HH:mm",
            _field((*path, "end")),
        )


def _duplicate_ids(
    doc: Document, spec: dict[str, Any], path: tuple[str, ...]
) -> Iterator[Diagnostic]:
    """The same id written once as a number and once as text (`123` and `"123"`): the schema
    sees two different values, the API one id. Exact repeats are the schema's to report."""
    values = spec.get(path[-1])
    seen: dict[str, tuple[int, Any]] = {}
    for index, value in enumerate(values if isinstance(values, list) else []):
        text = str(value)
        if text in seen and type(seen[text][1]) is not type(value):
            where: tuple[str | int, ...] = (*path, index)
            yield Diagnostic(
                doc.locate(where),
                f"{text} is listed twice (also at index {seen[text][0]}, written as "
                f"{'a number' if isinstance(seen[text][1], int) else 'text'}); list each id once",
                _field(where),
            )
        seen.setdefault(text, (index, value))


# --- rules across plans -----------------------------------------------------------------------


def _overlaps(plans: Sequence[Checked]) -> Iterator[Diagnostic]:
    """A target on a date belongs to one plan at a time: two plans declaring it would both
    submit it. Each plan of a clashing pair gets the problem, naming the other."""
    # A target is nearly always one plan's: only those of several have their days looked at
    # (a big repo's every target with its days would be tens of MB at once).
    owners: dict[str, dict[str, int]] = defaultdict(dict)
    """provider -> target -> the first plan (its number) declaring it."""
    shared: dict[tuple[str, str], list[int]] = {}
    footprints: list[Footprint] = []
    for number, item in enumerate(plans):
        footprint = item.footprint
        assert footprint is not None  # only valid plans' are judged together
        footprints.append(footprint)
        owned = owners[footprint.provider]
        for target in footprint.targets:
            owner = owned.setdefault(target, number)
            if owner != number:
                shared.setdefault((footprint.provider, target), [owner]).append(number)
    clashes: dict[tuple[int, int], dict[str, list[tuple[int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for (_, target), numbers in shared.items():
        declared = sorted(
            (first, last, number) for number in numbers for first, last in footprints[number].spans
        )
        for index, (_, last, number) in enumerate(declared):
            for other_first, other_last, other in declared[index + 1 :]:
                if other_first > last:
                    break
                if other != number:
                    both = (min(number, other), max(number, other))
                    clashes[both][target].append((other_first, min(last, other_last)))
    for (one, other), targets in sorted(clashes.items()):
        for this, that in ((plans[one], plans[other]), (plans[other], plans[one])):
            yield _overlap(this, that, targets)


def _overlap(
    plan: Checked, other: Checked, targets: dict[str, list[tuple[int, int]]]
) -> Diagnostic:
    assert plan.footprint is not None
    assert other.footprint is not None
    field = plan.footprint.key
    shown = [
        f"{target} on "
        + ", ".join(
            day(first) if first == last else f"{day(first)}..{day(last)}"
            for first, last in merge_spans(runs)
        )
        for target, runs in sorted(targets.items())
    ]
    more = f" and {len(shown) - 3} more targets" if len(shown) > 3 else ""
    return Diagnostic(
        plan.document.locate(("spec", field)),
        f"declares the same work as plan {other.footprint.name!r} "
        f"({other.document.locate(('spec', other.footprint.key))}):"
        f" {'; '.join(shown[:3])}{more}. A target on a date belongs to one plan at a time, or"
        " both would submit it: remove the dates from one plan (to run them again under the"
        " other, see spec.takeover)",
        f"spec.{field}",
    )
