"""Saved plans: apply exactly what was reviewed, or refuse and say what changed since."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from factories import wedata_plan, write
from harness import cli
from jsonschema import Draft202012Validator

from reconciler.emulator.app import Emulator


def saved(root: Path, cli_env: dict[str, str]) -> Path:
    assert cli("init", cwd=root, env=cli_env).returncode == 0
    done = cli("plan", "--out", "reviewed.json", cwd=root, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "Saved the plan to reviewed.json" in done.stderr
    return root / "reviewed.json"


def test_apply_of_a_saved_plan_makes_exactly_its_calls_without_asking(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(
        tmp_path / "plans" / "orders.yaml",
        wedata_plan(dates=[("2025-09-01", "2025-09-09")], chunk=3),
    )
    plan = saved(tmp_path, cli_env)
    keys = [
        s["key"] for p in json.loads(plan.read_text())["plan"]["plans"] for s in p["submissions"]
    ]
    done = cli("apply", "reviewed.json", "--endpoint", emulator_url, cwd=tmp_path, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert len(keys) == len(emulator.calls.all()) == 3
    names = sorted(c["params"]["DataBackfillPlanName"] for c in emulator.calls.all())
    assert names == sorted(f"orders-backfill-r1-{key[:10]}" for key in keys)


def test_a_plan_file_edited_since_is_named_and_nothing_is_applied(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    path = write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    saved(tmp_path, cli_env)
    write(path, wedata_plan(parallelism=3))
    write(tmp_path / "plans" / "new.yaml", wedata_plan("new", tasks=["20250827115253731"]))
    done = cli("apply", "reviewed.json", "--endpoint", emulator_url, cwd=tmp_path, env=cli_env)
    assert done.returncode == 1
    assert "the plan files changed since reviewed.json was saved" in done.stderr
    assert "added plans/new.yaml; modified plans/orders.yaml" in done.stderr
    assert emulator.calls.all() == []


def test_a_state_that_moved_since_is_refused(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    saved(tmp_path, cli_env)
    applied = cli("apply", "--yes", "--endpoint", emulator_url, cwd=tmp_path, env=cli_env)
    assert applied.returncode == 0
    done = cli("apply", "reviewed.json", "--endpoint", emulator_url, cwd=tmp_path, env=cli_env)
    assert done.returncode == 1
    assert "the state changed since reviewed.json was saved (journal at event 1 then, 3 now)" in (
        done.stderr
    )
    assert len(emulator.calls.all()) == 1


def test_something_that_is_not_a_saved_plan_is_refused_clearly(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "x.json").write_text("{}")
    done = cli("apply", "x.json", cwd=tmp_path, env=cli_env)
    assert done.returncode == 1
    assert "x.json is not a saved plan" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_saved_plan_is_what_its_schema_documents(tmp_path: Path, cli_env: dict[str, str]) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    document = json.loads(saved(tmp_path, cli_env).read_text())
    text = resources.files("reconciler.schemas").joinpath("saved-plan.schema.json").read_text()
    Draft202012Validator(json.loads(text)).validate(document)
    assert [s["key"] for p in document["plan"]["plans"] for s in p["submissions"]]


def test_a_saved_plan_of_another_version_is_refused_naming_the_field(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    path = saved(tmp_path, cli_env)
    path.write_text(json.dumps({**json.loads(path.read_text()), "saved_plan_format": 2}))
    done = cli("apply", "reviewed.json", "--endpoint", emulator_url, cwd=tmp_path, env=cli_env)
    assert done.returncode == 1
    assert "reviewed.json is not a saved plan of this version (saved_plan_format" in done.stderr
    assert "Traceback" not in done.stderr
    assert emulator.calls.all() == []
