"""Saved plans: apply exactly what was reviewed, or refuse and say what changed since."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import wedata_plan, write
from scenarios import clean_env

from reconciler.emulator.app import Emulator
from reconciler.providers.tc3 import TencentCredentials


@pytest.fixture
def env(tencent_credentials: TencentCredentials) -> dict[str, str]:
    return clean_env(
        TENCENTCLOUD_SECRET_ID=tencent_credentials.secret_id,
        TENCENTCLOUD_SECRET_KEY=tencent_credentials.secret_key,
    )


def cli(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def saved(root: Path, env: dict[str, str]) -> Path:
    done = cli(root, env, "plan", "--out", "reviewed.json")
    assert done.returncode == 0, done.stderr
    assert "Saved the plan to reviewed.json" in done.stderr
    return root / "reviewed.json"


def test_apply_of_a_saved_plan_makes_exactly_its_calls_without_asking(
    tmp_path: Path, emulator: Emulator, emulator_url: str, env: dict[str, str]
) -> None:
    write(
        tmp_path / "plans" / "orders.yaml",
        wedata_plan(dates=[("2025-09-01", "2025-09-09")], chunk=3),
    )
    plan = saved(tmp_path, env)
    keys = [
        s["key"] for p in json.loads(plan.read_text())["plan"]["plans"] for s in p["submissions"]
    ]
    done = cli(tmp_path, env, "apply", "reviewed.json", "--endpoint", emulator_url)
    assert done.returncode == 0, done.stderr
    assert len(keys) == len(emulator.calls.all()) == 3
    names = sorted(c["params"]["DataBackfillPlanName"] for c in emulator.calls.all())
    assert names == sorted(f"orders-backfill-r1-{key[:10]}" for key in keys)


def test_a_plan_file_edited_since_is_named_and_nothing_is_applied(
    tmp_path: Path, emulator: Emulator, emulator_url: str, env: dict[str, str]
) -> None:
    path = write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    saved(tmp_path, env)
    write(path, wedata_plan(parallelism=3))
    write(tmp_path / "plans" / "new.yaml", wedata_plan("new"))
    done = cli(tmp_path, env, "apply", "reviewed.json", "--endpoint", emulator_url)
    assert done.returncode == 1
    assert "the plan files changed since reviewed.json was saved" in done.stderr
    assert "added plans/new.yaml; modified plans/orders.yaml" in done.stderr
    assert emulator.calls.all() == []


def test_a_state_that_moved_since_is_refused(
    tmp_path: Path, emulator: Emulator, emulator_url: str, env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    saved(tmp_path, env)
    assert cli(tmp_path, env, "apply", "--yes", "--endpoint", emulator_url).returncode == 0
    done = cli(tmp_path, env, "apply", "reviewed.json", "--endpoint", emulator_url)
    assert done.returncode == 1
    assert "the state changed since reviewed.json was saved (journal at event 0 then, 2 now)" in (
        done.stderr
    )
    assert len(emulator.calls.all()) == 1


def test_something_that_is_not_a_saved_plan_is_refused_clearly(
    tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "x.json").write_text("{}")
    done = cli(tmp_path, env, "apply", "x.json")
    assert done.returncode == 1
    assert "x.json is not a saved plan" in done.stderr
    assert "Traceback" not in done.stderr
