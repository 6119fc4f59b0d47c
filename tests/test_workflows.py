"""The GitHub workflows, the composite action and the pre-commit hook: their security properties
read from the YAML. What they do when they run is tests/test_gitops.py: the whole flow,
simulated against a bare origin built from this repository's files."""

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

import yaml
from factories import wedata_plan, write

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


def test_the_five_workflows_exist() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == [
        "backfill-apply.yml",
        "backfill-plan.yml",
        "backfill-refresh.yml",
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
        "backfill-apply.yml": {
            "plan": {"contents": "read"},
            "apply": {"contents": "write", "actions": "read", "pull-requests": "write"},
            "settle": {"contents": "write", "actions": "read"},
        },
        "backfill-refresh.yml": {"refresh": {"contents": "write", "actions": "read"}},
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


def test_the_plan_workflow_runs_on_every_pull_request_without_secrets() -> None:
    text = (WORKFLOWS / "backfill-plan.yml").read_text()
    document = workflow("backfill-plan.yml")
    # every pull request: the check can be required; it ends at once when no plan changed
    assert triggers(document) == {"pull_request": None}
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


def test_the_apply_workflow_runs_one_at_a_time_and_writes_the_state_behind_an_environment() -> None:
    document = workflow("backfill-apply.yml")
    on = triggers(document)
    assert on["push"] == {"branches": ["main"], "paths": ["plans/**"]}
    assert on["workflow_dispatch"]["inputs"]["operation"]["options"] == [
        "apply",
        "recover",
        "import",
        "forget",
        "init",
    ]
    assert document["concurrency"] == {"group": "backfill-apply", "cancel-in-progress": False}
    plan, apply, settle = (document["jobs"][name] for name in ("plan", "apply", "settle"))
    assert step(plan, "Check out main")["with"]["ref"] == "main"
    assert "environment" not in plan
    assert apply["needs"] == "plan"
    assert apply["environment"] == settle["environment"] == "backfill"
    # the saved plan is applied exactly, against the newest state, publishing as it goes
    assert 'backfill apply "$RUNNER_TEMP/saved-plan/plan.json"' in step(apply, "Apply")["run"]
    assert "--state-branch" in step(apply, "Apply")["run"]


def test_the_scheduled_refresh_writes_the_state_as_the_apply_workflow_does() -> None:
    document = workflow("backfill-refresh.yml")
    on = triggers(document)
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert on["schedule"][0]["cron"]
    apply = workflow("backfill-apply.yml")
    # one writer of the state's branch at a time, across both workflows, behind one environment
    assert document["concurrency"] == apply["concurrency"]
    assert document["env"] == apply["env"]
    job = document["jobs"]["refresh"]
    assert job["environment"] == apply["jobs"]["apply"]["environment"]
    script = step(job, "Refresh and apply")["run"]
    assert '--state-branch "$STATE_BRANCH"' in script.split("backfill refresh", 1)[1]
    assert '--state-branch "$STATE_BRANCH"' in script.split("backfill apply", 1)[1]
    assert step(job, "Status")["if"] == "${{ always() }}"
    assert "backfill status --format markdown" in step(job, "Status")["run"]


def test_cloud_secrets_reach_only_the_steps_that_call_the_clouds() -> None:
    document = workflow("backfill-apply.yml")
    calling = {("apply", "Apply"), ("settle", "Settle")}
    for job_name, job in document["jobs"].items():
        for item in job["steps"]:
            uses_secrets = "secrets." in json.dumps(item)
            assert uses_secrets == ((job_name, item.get("name")) in calling), item
    for job_name, name in calling:
        env = step(document["jobs"][job_name], name)["env"]
        assert {k for k in env if "secrets." in env[k]} == {
            "TENCENTCLOUD_SECRET_ID",
            "TENCENTCLOUD_SECRET_KEY",
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        }


def test_a_failed_apply_keeps_the_runs_state_as_an_artifact() -> None:
    apply = workflow("backfill-apply.yml")["jobs"]["apply"]
    keep = step(apply, "Keep this run's state")
    assert keep["if"] == "${{ failure() }}"
    assert keep["uses"].startswith("actions/upload-artifact@")
    assert keep["with"]["path"] == "${{ runner.temp }}/backfill-state/state/"


def test_the_tool_is_installed_from_the_runtime_lock_and_nothing_unlocked() -> None:
    # The locked versions with their hashes, then the tool alone: with no index, whatever the
    # lock lacks fails the step instead of being fetched; the lock has the build backend.
    installs = [
        (where, item["run"])
        for where, item in all_steps()
        if item.get("name") == "Install backfill-reconciler"
    ]
    assert [where for where, _ in installs] == [
        *["backfill-apply.yml"] * 3,  # the plan, apply and settle jobs
        "backfill-plan.yml",
        "backfill-refresh.yml",
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


# --- the composite action -----------------------------------------------------------------------


def test_the_action_is_composite_with_the_documented_inputs() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {
        *("command", "plans", "state-dir", "state-branch", "token", "format", "python-version"),
    }
    for item in action["runs"]["steps"]:
        if "run" in item:
            assert item["shell"] == "bash"
    install = step(action["runs"], "Install backfill-reconciler")
    assert install["env"] == {"ACTION_PATH": "${{ github.action_path }}"}
    assert '--no-index --no-build-isolation "$ACTION_PATH"' in install["run"]


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
    env = {
        "COMMAND": "plan",
        "PLANS": "plans",
        "STATE_DIR": "state",
        "STATE_BRANCH": "",
        "FORMAT": "",
    }
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
    assert scripts["backfill"] == "reconciler.__main__:main"


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


def test_the_repos_gitignore_lets_the_state_be_committed_but_not_its_lock(tmp_path: Path) -> None:
    """The state is committed next to the plans (and by the workflows, to its branch): with the
    repository's own .gitignore, `git add` takes the journal and the snapshot, never the lock."""
    from reconciler.state import init_state, open_state

    (tmp_path / ".gitignore").write_bytes((ROOT / ".gitignore").read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    init_state(tmp_path / "state", actor={"user": "t"})
    with open_state(tmp_path / "state", actor={"user": "t"}, command="test") as writer:
        writer.checkpoint()
        assert (tmp_path / "state" / "lock").exists()
        subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    listed = subprocess.run(
        ["git", "ls-files"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.split()
    assert {"state/journal.jsonl", "state/snapshot.json", "state/.gitignore"} <= set(listed)
    assert "state/lock" not in listed
