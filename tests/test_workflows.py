"""The GitHub workflows, the composite action and the pre-commit hook: their security properties
read from the YAML, and their shell steps run for real against local git repositories."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from factories import wedata_plan, write

from reconciler.state import open_state

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / "action.yml"
BACKFILL = Path(sys.executable).parent / "backfill"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
MARKER = "<!-- backfill-reconciler:plan -->"


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def triggers(workflow: dict[Any, Any]) -> Any:
    # YAML 1.1 reads a bare `on` as true
    return workflow["on"] if "on" in workflow else workflow[True]


def workflow(name: str) -> dict[str, Any]:
    return load(WORKFLOWS / name)


def all_steps() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load(path)["jobs"].values():
            for step in job["steps"]:
                yield path.name, step
    for step in load(ACTION)["runs"]["steps"]:
        yield ACTION.name, step


def step(job: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [s for s in job["steps"] if s.get("name") == name]
    assert isinstance(found, dict)
    return found


def test_the_four_workflows_exist() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == [
        "backfill-apply.yml",
        "backfill-plan.yml",
        "ci.yml",
        "newest-deps.yml",
    ]


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version_alongside() -> None:
    for path in [*sorted(WORKFLOWS.glob("*.yml")), ACTION]:
        for line in path.read_text().splitlines():
            if line.strip().startswith(("uses:", "- uses:")):
                reference = line.split("uses:", 1)[1].strip()
                assert PINNED.match(reference), f"{path.name}: {reference}"


def test_no_expression_is_expanded_inside_a_script() -> None:
    # Values reach scripts through `env:` only, so no input can become shell or JavaScript code.
    for where, item in all_steps():
        for script in (item.get("run"), item.get("with", {}).get("script")):
            if script is not None:
                assert "${{" not in script, f"{where}: {item.get('name')}"


def test_permissions_are_none_by_default_and_least_privilege_per_job() -> None:
    expected = {
        "backfill-plan.yml": {"plan": {"contents": "read", "pull-requests": "write"}},
        "backfill-apply.yml": {"plan": {"contents": "read"}, "apply": {"contents": "write"}},
        "ci.yml": {"ci": {"contents": "read"}},
        "newest-deps.yml": {"newest": {"contents": "read"}},
    }
    for name, jobs in expected.items():
        document = workflow(name)
        assert document["permissions"] == {}, name
        assert {job: spec["permissions"] for job, spec in document["jobs"].items()} == jobs


def test_every_checkout_keeps_no_credentials_and_every_job_has_a_timeout() -> None:
    for where, item in all_steps():
        if str(item.get("uses", "")).startswith("actions/checkout@"):
            assert item["with"]["persist-credentials"] is False, where
    for path in WORKFLOWS.glob("*.yml"):
        for job in load(path)["jobs"].values():
            assert job["timeout-minutes"] <= 60


def test_the_plan_workflow_runs_on_pull_requests_without_secrets() -> None:
    text = (WORKFLOWS / "backfill-plan.yml").read_text()
    document = workflow("backfill-plan.yml")
    assert triggers(document) == {"pull_request": {"paths": ["plans/**"]}}
    assert "pull_request_target" not in text.replace("never `pull_request_target`", "")
    assert "${{ secrets." not in text
    job = document["jobs"]["plan"]
    assert "backfill plan --format markdown" in step(job, "Validate and plan")["run"]


def test_the_plan_comment_is_sticky_and_only_for_branches_of_this_repository() -> None:
    job = workflow("backfill-plan.yml")["jobs"]["plan"]
    comment = step(job, "Post or update the plan comment")
    assert "github.event.pull_request.head.repo.full_name == github.repository" in comment["if"]
    script = comment["with"]["script"]
    assert MARKER in script
    assert "updateComment" in script
    assert "createComment" in script
    assert 'c.user.login === "github-actions[bot]"' in script


def test_the_apply_workflow_runs_on_main_one_at_a_time_behind_an_environment() -> None:
    document = workflow("backfill-apply.yml")
    assert triggers(document) == {
        "push": {"branches": ["main"], "paths": ["plans/**"]},
        "workflow_dispatch": None,
    }
    assert document["concurrency"] == {"group": "backfill-apply", "cancel-in-progress": False}
    plan, apply = document["jobs"]["plan"], document["jobs"]["apply"]
    assert plan["if"] == "github.ref == 'refs/heads/main'"
    assert step(plan, "Check out main")["with"]["ref"] == "main"
    assert "environment" not in plan
    assert apply["needs"] == "plan"
    assert apply["environment"] == "backfill"
    assert step(apply, "Check out the planned commit")["with"]["ref"] == (
        "${{ needs.plan.outputs.commit }}"
    )


def test_cloud_secrets_reach_only_the_apply_step() -> None:
    document = workflow("backfill-apply.yml")
    for job_name, job in document["jobs"].items():
        for item in job["steps"]:
            uses_secrets = "secrets." in json.dumps(item)
            assert uses_secrets == (job_name == "apply" and item.get("name") == "Apply"), item
    applying = step(document["jobs"]["apply"], "Apply")
    assert applying["run"] == "backfill apply --yes"
    assert set(applying["env"]) == {
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    }


def test_the_state_is_committed_even_after_a_failed_apply_and_kept_if_it_cannot_be() -> None:
    apply = workflow("backfill-apply.yml")["jobs"]["apply"]
    assert step(apply, "Commit the state to main")["if"] == "${{ always() }}"
    keep = step(apply, "Keep the state of a run that could not be committed")
    assert keep["uses"].startswith("actions/upload-artifact@")
    assert keep["with"]["path"] == "state/"


def test_the_tool_is_installed_from_the_runtime_lock_and_nothing_unlocked() -> None:
    # The locked versions with their hashes, then the tool alone: with no index, whatever the
    # lock lacks fails the step instead of being fetched; the lock has the build backend.
    installs = [
        (where, item["run"])
        for where, item in all_steps()
        if item.get("name") == "Install backfill-reconciler"
    ]
    assert [where for where, _ in installs] == [
        "backfill-apply.yml",
        "backfill-apply.yml",
        "backfill-plan.yml",
        "action.yml",
    ]
    from_workflow = [
        "--quiet --require-hashes -r requirements/runtime.txt",
        "--quiet --no-index --no-build-isolation .",
    ]
    from_action = [  # the action installs from its own checkout
        '--quiet --require-hashes -r "$ACTION_PATH/requirements/runtime.txt"',
        '--quiet --no-index --no-build-isolation "$ACTION_PATH"',
    ]
    for where, script in installs:
        pips = [line.split(" -m pip install ")[1] for line in script.splitlines() if "pip" in line]
        assert pips == (from_action if where == ACTION.name else from_workflow), where


def test_ci_runs_the_projects_own_checks_on_push_and_pull_request() -> None:
    document = workflow("ci.yml")
    assert set(triggers(document)) == {"push", "pull_request"}
    assert step(document["jobs"]["ci"], "Run .ci/run")["run"] == "bash .ci/run"
    ci_run = (ROOT / ".ci" / "run").read_text()
    for target in ("make test", "make lint", "make check-workflows"):
        assert target in ci_run
    assert re.search(r"^check-workflows:", (ROOT / "Makefile").read_text(), re.M)


def test_the_suite_runs_weekly_against_the_newest_dependencies_the_ranges_allow() -> None:
    document = workflow("newest-deps.yml")
    on = triggers(document)
    assert set(on) == {"schedule", "workflow_dispatch"}
    [schedule] = on["schedule"]
    assert schedule["cron"].split()[2:] == ["*", "*", "1"]  # every Monday
    job = document["jobs"]["newest"]
    install = step(job, "Install the newest versions the ranges allow")["run"]
    assert "requirements/" not in install  # not the lock
    newest = "pip install --quiet --upgrade --upgrade-strategy eager -e '.[test,lint,bench]'"
    assert newest in install
    assert step(job, "Test")["run"] == ".venv/bin/python -m pytest -q"


# --- the apply workflow's scripts, run ----------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare `origin` whose main has one plan, and a checkout of it as the runner has."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    write(seed / "plans" / "orders.yaml", wedata_plan())
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "orders")
    git(seed, "push", "-q", "origin", "HEAD:main")
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "runner"))
    return bare


def run_step(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GIT_"))}
    base["PATH"] = f"{BACKFILL.parent}{os.pathsep}{base['PATH']}"
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],  # as GitHub runs it
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def commit_state(runner: Path) -> subprocess.CompletedProcess[str]:
    script = step(workflow("backfill-apply.yml")["jobs"]["apply"], "Commit the state to main")
    return run_step(
        script["run"],
        runner,
        STATE_DIR="state",
        BRANCH="main",
        GH_TOKEN="",
        SERVER_URL="https://github.com",
        RUN_URL="https://github.com/acme/backfills/actions/runs/1",
    )


def journal_something(runner: Path) -> None:
    with open_state(runner / "state", actor={"user": "ci"}, command="test") as writer:
        writer.append(
            "intent",
            {
                "key": "k1",
                "plan": "orders-backfill",
                "revision": 1,
                "provider": "tencent-wedata",
                "action": "CreateDataBackfillPlan",
                "region": "ap-guangzhou",
                "endpoint": "https://wedata.intl.tencentcloudapi.com",
                "targets": ["20250827115253729", "20250827115253730"],
                "dates": ["2025-09-01", "2025-09-02", "2025-09-03"],
                "fingerprint": "f",
                "params": {},
                "request": {},
            },
        )
        writer.append("unknown", {"key": "k1", "code": "ReadTimeout", "message": "no reply"})


def test_the_state_commit_is_rebased_onto_a_main_that_moved_and_pushed(
    origin: Path, tmp_path: Path
) -> None:
    runner = tmp_path / "runner"
    journal_something(runner)
    # meanwhile another pull request is merged
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    write(other / "plans" / "more.yaml", wedata_plan("more-backfill"))
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", "more")
    git(other, "push", "-q", "origin", "HEAD:main")

    done = commit_state(runner)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "main moved: rebasing the state commit onto it (attempt 1)." in done.stdout
    log = git(origin, "log", "--format=%an|%s", "main")
    assert log.splitlines() == [
        "github-actions[bot]|backfill: state after apply",
        "t|more",
        "t|orders",
    ]
    files = git(origin, "show", "--name-only", "--format=", "main")
    assert sorted(files.splitlines()) == [
        "state/.gitignore",
        "state/journal.jsonl",
        "state/snapshot.json",
    ]


def test_an_unchanged_or_absent_state_makes_no_commit(origin: Path, tmp_path: Path) -> None:
    runner = tmp_path / "runner"
    before = git(origin, "rev-parse", "main")
    done = commit_state(runner)
    assert done.returncode == 0, done.stderr
    assert "No state was written." in done.stdout
    journal_something(runner)
    assert commit_state(runner).returncode == 0
    after = git(origin, "rev-parse", "main")
    assert after != before
    done = commit_state(runner)
    assert done.returncode == 0, done.stderr
    assert "The state did not change." in done.stdout
    assert git(origin, "rev-parse", "main") == after


def test_a_state_changed_on_main_meanwhile_fails_loudly_and_leaves_main_alone(
    origin: Path, tmp_path: Path
) -> None:
    runner = tmp_path / "runner"
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    journal_something(other)
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", "someone else's state")
    git(other, "push", "-q", "origin", "HEAD:main")
    before = git(origin, "rev-parse", "main")
    journal_something(runner)
    (runner / "state" / "journal.jsonl").write_text(
        (runner / "state" / "journal.jsonl").read_text().replace('"ci"', '"cj"')
    )

    done = commit_state(runner)
    assert done.returncode == 1
    assert "::error::the state on main changed during this run" in done.stdout
    assert git(origin, "rev-parse", "main") == before


def plan_step(runner: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    script = step(workflow("backfill-apply.yml")["jobs"]["plan"], "Plan")["run"]
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    done = run_step(script, runner, RUNNER_TEMP=str(tmp_path), GITHUB_OUTPUT=str(outputs))
    return done, outputs.read_text()


def test_the_plan_job_says_how_many_calls_apply_would_make(origin: Path, tmp_path: Path) -> None:
    runner = tmp_path / "runner"
    done, outputs = plan_step(runner, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"commit={git(runner, 'rev-parse', 'HEAD')}\n" in outputs
    assert "creates=1\n" in outputs


def test_the_plan_job_fails_when_only_unknown_outcomes_are_left(
    origin: Path, tmp_path: Path
) -> None:
    runner = tmp_path / "runner"
    journal_something(runner)
    done, outputs = plan_step(runner, tmp_path)
    assert done.returncode == 1
    assert "creates=0\n" in outputs
    assert "::error::6 cells have an unknown outcome" in done.stdout


# --- the composite action -----------------------------------------------------------------------


def test_the_action_is_composite_with_the_documented_inputs() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {"command", "plans", "state-dir", "format", "python-version"}
    for item in action["runs"]["steps"]:
        if "run" in item:
            assert item["shell"] == "bash"
    install = step(action["runs"], "Install backfill-reconciler")
    assert install["env"] == {"ACTION_PATH": "${{ github.action_path }}"}


def run_action(tmp_path: Path, **inputs: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """The action's command step, with the tool where its install step puts it."""
    temp = tmp_path / "runner-temp"
    (temp / "backfill-reconciler" / "bin").mkdir(parents=True, exist_ok=True)
    link = temp / "backfill-reconciler" / "bin" / "backfill"
    if not link.exists():
        link.symlink_to(BACKFILL)
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    script = step(load(ACTION)["runs"], "Run backfill")["run"]
    env = {"COMMAND": "plan", "PLANS": "plans", "STATE_DIR": "state", "FORMAT": ""}
    env.update({name.upper(): value for name, value in inputs.items()})
    done = run_step(script, tmp_path, RUNNER_TEMP=str(temp), GITHUB_OUTPUT=str(outputs), **env)
    return done, outputs.read_text()


def test_the_action_plans_and_reports_pending_calls_without_failing(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "orders.yaml", wedata_plan())
    done, outputs = run_action(tmp_path, command="plan", format="json")
    assert done.returncode == 0, done.stderr
    assert "exit-code=2\n" in outputs
    output_file = re.search(r"^output-file=(.+)$", outputs, re.M)
    assert output_file is not None
    assert json.loads(Path(output_file.group(1)).read_text())["summary"]["create_calls"] == 1


def test_the_action_validates_a_given_path_and_fails_on_invalid_plans(tmp_path: Path) -> None:
    write(tmp_path / "backfills" / "orders.yaml", wedata_plan(dates=[("2025-09-03", "2025-09-01")]))
    done, outputs = run_action(tmp_path, command="validate", plans="backfills")
    assert done.returncode == 1
    assert "exit-code=1\n" in outputs
    assert "backfills/orders.yaml:" in done.stderr


def test_the_action_refuses_an_unknown_command_without_echoing_it(tmp_path: Path) -> None:
    done, outputs = run_action(tmp_path, command='plan"; curl evil #')
    assert done.returncode == 1
    assert "::error::backfill-reconciler: unknown command input" in done.stdout
    assert "curl" not in done.stdout + done.stderr
    assert outputs == ""


# --- the pre-commit hook ------------------------------------------------------------------------


def test_the_pre_commit_hook_validates_the_plans_when_a_plan_file_changes() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "backfill-validate"
    assert hook["entry"] == "backfill validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert files.search("plans/orders.yaml")
    assert files.search("plans/finance/ledger.yml")
    assert not files.search("plans/README.md")
    assert not files.search("docs/plans/orders.yaml")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["backfill"] == "reconciler.cli:main"


def test_a_plain_pip_install_ships_every_package() -> None:
    # The action and the hook install with `pip install <path>`, not in editable mode: a package
    # missing from this list is missing from their installs.
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "reconciler").rglob("__init__.py")
    }
    assert on_disk <= listed
