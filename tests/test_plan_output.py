"""`backfill plan --format json` is what schemas/plan-output.schema.json documents."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from factories import wedata_plan
from harness import Repo
from jsonschema import Draft202012Validator
from scenarios import applied, clean_env, edited, interrupted

SCHEMA = "plan-output.schema.json"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    # Read as the installed package ships it, which is how other tools would get it.
    schema = json.loads(resources.files("reconciler.schemas").joinpath(SCHEMA).read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def plan_json(root: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--format", "json"],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "Traceback" not in done.stderr
    output: dict[str, Any] = json.loads(done.stdout)
    return output


def errors(validator: Draft202012Validator, instance: object) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def test_a_plan_with_every_kind_of_entry_validates(
    repo: Repo, validator: Draft202012Validator
) -> None:
    applied(repo)
    interrupted(repo, wedata_plan("stuck-backfill", tasks=["777"]))
    edited(repo)
    with (repo.state / "journal.jsonl").open("ab") as journal:
        journal.write(b'{"seq": 99, "ty')  # a torn last line: a warning, not an error
    output = plan_json(repo.plans.parent)
    assert errors(validator, output) == []
    assert output["summary"] == {
        "changes": True,
        "create_calls": 5,
        "create_cells": 12,
        "in_sync_cells": 3,
        "conflicts": 1,
        "attention_cells": 3,
        "orphaned_cells": 4,
        "exhausted_cells": 0,
    }
    [conflict] = output["conflicts"]
    assert conflict["file"] == "plans/orders.yaml"
    assert (conflict["line"], conflict["col"]) == (11, 3)
    assert conflict["changes"] == [{"field": "parallelism", "old": 2, "new": 4}]
    [attention] = output["attention"]
    assert attention["plan"] == "stuck-backfill"
    assert attention["remote_name"].startswith("stuck-backfill-r1-")
    assert {o["plan"] for o in output["orphans"]} == {"retired-backfill"}
    assert len(output["warnings"]) == 1
    orders = next(p for p in output["plans"] if p["name"] == "orders-backfill")
    assert orders["labels"] == {"team": "orders", "ticket": "INC-4711"}
    assert [s["dates"] for s in orders["submissions"]] == [["2025-09-04", "2025-09-05"]]


def test_an_empty_plan_validates(tmp_path: Path, validator: Draft202012Validator) -> None:
    (tmp_path / "plans").mkdir()
    output = plan_json(tmp_path)
    assert errors(validator, output) == []
    assert output["plans"] == []
    assert output["summary"]["changes"] is False


def test_the_schema_catches_an_undocumented_key(
    repo: Repo, validator: Draft202012Validator
) -> None:
    applied(repo)
    output = plan_json(repo.plans.parent)
    output["plans"][0]["surprise"] = 1
    assert errors(validator, output) == [
        "plans/0: Additional properties are not allowed ('surprise' was unexpected)"
    ]
