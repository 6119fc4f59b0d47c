"""The plan contract: the models are the one source of the schema files, every field of a
provider's spec reaches the API call (or says why not), and plans written before keep their
fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from factories import dms_plan, wedata_plan, write
from harness import cli
from pydantic import Field
from scenarios import clean_env

from reconciler import providers, schemagen
from reconciler.contract import ApiEnum, Maybe, Spec
from reconciler.domain import Plan, canonical_json
from reconciler.errors import Location
from reconciler.providers.wedata import WeDataSpec

REPO = Path(__file__).resolve().parent.parent

# --- generated schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("file", sorted(schemagen.documents()))
def test_each_committed_schema_is_what_the_models_generate(file: str) -> None:
    committed = (REPO / "schemas" / file).read_text("utf-8")
    assert committed == schemagen.text(schemagen.documents()[file]), "run `make schemas`"


def test_make_schemas_writes_what_differs_and_check_mode_only_says_so(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reconciler.schemagen", *args, str(tmp_path)]
        return subprocess.run(
            command, env=clean_env(), capture_output=True, text=True, check=False, timeout=60
        )

    assert run("--check").returncode == 1  # nothing there yet
    assert run().returncode == 0
    assert run("--check").returncode == 0
    plan_schema = tmp_path / "backfill-plan.schema.json"
    plan_schema.write_text("{}\n")
    stale = run("--check")
    assert stale.returncode == 1
    assert f"{plan_schema}: differs from the models" in stale.stdout
    assert plan_schema.read_text() == "{}\n"


# --- every field of a spec reaches the call ---------------------------------------------------


class _Absent:
    """The value of an optional field that is left out."""

    def __repr__(self) -> str:
        return "left out"


ABSENT = _Absent()


def _candidates(schema: dict[str, Any], required: bool) -> list[Any]:
    """Every value the schema itself offers for a property: its constant, its examples, its
    default, each enum value, both booleans, and leaving it out if that is allowed and is not
    the default."""
    values: list[Any] = [schema["const"]] if "const" in schema else []
    values += schema.get("examples", [])
    if "default" in schema:
        values.append(schema["default"])
    values += schema.get("enum", [])
    if schema.get("type") == "boolean":
        values += [True, False]
    if not required and "default" not in schema:
        values.append(ABSENT)
    distinct: list[Any] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    return distinct


def _calls(model: type[Spec], spec: dict[str, Any]) -> tuple[list[str], set[str]]:
    """What a plan with this spec sends on an empty state (region and request of each call),
    and the fingerprints of its cells."""
    typed: Any = model.model_validate({k: v for k, v in spec.items() if v is not ABSENT})
    plan = Plan(name="coverage", spec=typed, location=Location("coverage.yaml"))
    provider = providers.get(plan.provider)
    sent, fingerprints = [], set()
    for group in provider.cell_groups(plan):
        fingerprints.add(group.fingerprint)
        missing = {target: list(group.dates) for target in group.targets}
        for batch in provider.batches(plan, missing):
            request = provider.request(plan, group, batch, "0123456789abcdef0123")
            sent.append(canonical_json([provider.region(plan), request]))
    return sent, fingerprints


def uncovered(model: type[Spec]) -> list[str]:
    """The properties of a spec's schema that are neither declared unsent (`NOT_SENT`) nor
    proven to reach the call: each value the schema offers must send what no other one sends
    and, unless the property lists the targets or the dates, give its own fingerprint. Leaving
    out a property with a default must be writing the default: the same calls and cells."""
    schema = schemagen.document("spec", model)
    required = set(schema.get("required", []))
    choices = {
        key: _candidates(value, key in required) for key, value in schema["properties"].items()
    }
    base = {key: values[0] for key, values in choices.items()}
    unsent = {model.key(name) for name in model.NOT_SENT}
    cells = {model.key(model.TARGETS), model.key("dates")}
    problems = []
    for key, values in choices.items():
        if key in unsent:
            continue
        if len(values) < 2:
            problems.append(f"{key}: give it two examples, so that a change can be tried")
        default = schema["properties"][key].get("default", ABSENT)
        if default is not ABSENT:
            written = _calls(model, {**base, key: default})
            if _calls(model, {**base, key: ABSENT}) != written:
                problems.append(f"{key}: left out differs from its default {default!r}")
        seen: list[tuple[Any, list[str], set[str]]] = []
        for value in values:
            sent, fingerprints = _calls(model, {**base, key: value})
            for other, other_sent, other_fingerprints in seen:
                if sent == other_sent:
                    problems.append(f"{key}: {value!r} sends what {other!r} sends")
                    break
                if key not in cells and fingerprints == other_fingerprints:
                    problems.append(f"{key}: {value!r} has the fingerprint of {other!r}")
                    break
            seen.append((value, sent, fingerprints))
    return problems


SPECS = providers.spec_models()


@pytest.mark.parametrize("model", SPECS, ids=[spec.provider_name() for spec in SPECS])
def test_every_field_of_a_spec_reaches_the_request_and_the_fingerprint(model: type[Spec]) -> None:
    assert uncovered(model) == []


class WithAFieldSentNowhere(WeDataSpec):
    """What adding a field to the contract alone looks like: valid in plan files, part of the
    fingerprint (every field is), but no request field of the API."""

    surprise: Maybe[str] = Field(None, examples=["a", "b"])


class WithAFieldSaidToBeUnsent(WithAFieldSentNowhere):
    NOT_SENT: ClassVar[dict[str, str]] = {**WeDataSpec.NOT_SENT, "surprise": "a local note"}


def test_a_field_added_to_the_contract_alone_is_found() -> None:
    assert uncovered(WithAFieldSentNowhere) == [
        "surprise: 'b' sends what 'a' sends",
        "surprise: left out sends what 'a' sends",
    ]
    assert uncovered(WithAFieldSaidToBeUnsent) == []


def test_an_enum_value_cannot_be_added_without_the_word_the_api_takes_for_it() -> None:
    """A plan's enum values are not the API's words (`checkParents: in-plan` is MAKE_SCOPE): a
    value added without its word fails where it is written, never later as a KeyError."""
    with pytest.raises(TypeError):

        class CheckParentsWithANewValue(ApiEnum):
            NONE = "none", "NONE"
            UPSTREAM = "upstream"


# --- nothing planned before changes -----------------------------------------------------------


def test_plans_written_before_the_contract_models_keep_their_keys_and_fingerprints(
    tmp_path: Path,
) -> None:
    """A state records each submission's key and fingerprint: were either computed otherwise
    now, every submitted cell would show as a conflict or be submitted again."""
    mapping = {"taskTypeId": 32, "item": "COMPUTE_ENGINE", "sourceValue": "a", "targetValue": "b"}
    full_wedata = wedata_plan(
        "full-wedata",
        tasks=["20250827115253729", 20250827115253730],  # type: ignore[list-item]
        projectId=1460947878944567296,
        dates=[("2025-10-01", "2025-10-03"), ("2025-10-10", "2025-10-10")],
        chunk=31,
        parallelism=2,
        revision=2,
        remoteName="x",
        timeZone="UTC+0",
        checkParents="in-plan",
        skipEventListening=False,
        selfDependency=False,
        schedulerResourceGroupId="rg-a",
        integrationResourceGroupId="rg-b",
        executionWindow={"start": "01:00", "end": "06:00"},
        parameters={"mode": "repair", "n": 1, "ratio": 0.5, "on": True},
        computeConfigMappings=[
            {**mapping, "taskIds": ["1", 2]},
            {**mapping, "item": "DLC_ENGINE_RESOURCE_GROUP"},
        ],
        order="reverse",
        instanceCycle="monthly",
    )
    full_wedata["spec"]["dates"][1]["executionWindow"] = {"start": "02:00", "end": "03:00"}
    full_dms = dms_plan(
        "full-dms",
        dags=[15001, "15002"],  # type: ignore[list-item]
        chunk=7,
        tenantId="3000",
        historyDagId=16001,
        startNodeIds=[4301, "4303"],
        filterNodeIds=["4302"],
        intervalHours=12,
        triggerSubTree=False,
        order="reverse",
        dates=[("2025-10-01", "2025-10-01"), ("2025-10-05", "2025-10-09")],
    )
    plans = [wedata_plan("minimal-wedata"), full_wedata, dms_plan("minimal-dms"), full_dms]
    for plan in plans:
        write(tmp_path / "plans" / f"{plan['metadata']['name']}.yaml", plan)
    (tmp_path / "state").mkdir()
    assert cli("init", cwd=tmp_path, env=clean_env()).returncode == 0
    done = cli("plan", "--format", "json", cwd=tmp_path, env=clean_env())
    output = json.loads(done.stdout)
    submissions = {s["key"]: s["fingerprint"] for p in output["plans"] for s in p["submissions"]}
    assert submissions == {
        "f35689e452e8f5be29d8": "cee1c3999e493416",  # minimal-wedata
        "7bf68dcce73c3c8474f1": "d71fe05b2bec2f71",  # full-wedata, the plan's window
        "3cfc543d88b1c9a93219": "d18490a0555d23c5",  # full-wedata, the range's own window
        "449c04ae228c3015c4c8": "7f9bdb57a3b88cab",  # minimal-dms
        "2d672987d6097a779544": "7f9bdb57a3b88cab",
        "8e5410a10ffda3c91c04": "859f5b87b8db301e",  # full-dms
        "de89bab3eed60aa29d9b": "859f5b87b8db301e",
        "f5b9001fd33e9f98da09": "859f5b87b8db301e",
        "3cf031887bce1f47fdf9": "859f5b87b8db301e",
    }
