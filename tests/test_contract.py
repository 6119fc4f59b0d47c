"""The plan contract: the models are the one source of the schema files, and plans written
before keep their fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan, write
from scenarios import clean_env

from reconciler import schemagen

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
    subprocess.run(
        [sys.executable, "-m", "reconciler", "init"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--format", "json"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
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
