"""Inside GitHub Actions: errors as annotations at file:line, the plan in the job summary, and
step outputs a workflow can branch on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from factories import wedata_plan, write
from harness import Repo, cli
from scenarios import clean_env, under_review

from reconciler.emulator.app import Emulator
from reconciler.errors import Diagnostic, Location
from reconciler.providers.tc3 import TencentCredentials
from reconciler.views import github, markdown

GOLDEN = Path(__file__).parent / "golden"


def test_data_escapes_percent_and_line_breaks() -> None:
    assert github.escape_data("100%\r\nnext: a,b") == "100%25%0D%0Anext: a,b"


def test_properties_also_escape_colon_and_comma() -> None:
    assert github.escape_property("C:\\plans\\a,b%.yaml\n") == "C%3A\\plans\\a%2Cb%25.yaml%0A"


def test_a_command_escapes_each_property_and_the_message() -> None:
    line = github.command(
        "error",
        "50% of it\nis wrong::really",
        {"file": "plans/we,ird:name.yaml", "line": 3, "col": 7, "title": "Invalid: a,b"},
    )
    assert line == (
        "::error file=plans/we%2Cird%3Aname.yaml,line=3,col=7,title=Invalid%3A a%2Cb"
        "::50%25 of it%0Ais wrong::really"
    )


def test_unknown_line_and_column_are_left_out() -> None:
    [line] = github.diagnostic_annotations(
        [Diagnostic(Location("plans/b.yaml"), "cannot read the file: not UTF-8")], Path("/repo")
    )
    assert (
        line
        == "::error file=plans/b.yaml,title=Invalid backfill plan::cannot read the file: not UTF-8"
    )


def test_paths_are_made_relative_to_the_checkout_so_annotations_attach_to_the_diff() -> None:
    root = Path("/home/runner/work/repo/repo")
    assert github.workspace_path("plans/a.yaml", root / "infra", root) == "infra/plans/a.yaml"
    assert github.workspace_path("../plans/a.yaml", root / "infra", root) == "plans/a.yaml"
    assert github.workspace_path("/elsewhere/a.yaml", root, root) == "/elsewhere/a.yaml"
    assert github.workspace_path("plans/a.yaml", root / "infra", None) == "plans/a.yaml"


def test_outputs_are_name_value_lines_and_multi_line_values_a_heredoc() -> None:
    values = {"changes": "true", "creates": "3", "note": "two\nlines"}
    assert github.output_lines(values, delimiter=lambda: "EOF_1234") == (
        "changes=true\ncreates=3\nnote<<EOF_1234\ntwo\nlines\nEOF_1234\n"
    )


def test_a_value_containing_its_delimiter_is_refused() -> None:
    with pytest.raises(ValueError, match="contains its delimiter"):
        github.output_lines({"note": "a\nEOF_1\nb"}, delimiter=lambda: "EOF_1")


def test_the_delimiter_is_random() -> None:
    first, second = (github.output_lines({"x": "a\nb"}).split("\n")[0] for _ in range(2))
    assert first != second
    assert first.startswith("x<<ghadelimiter_")


# --- the CLI in a simulated workflow step ------------------------------------------------------


class Step:
    """A workflow step's files, with what earlier commands of the step already wrote."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.summary = root / "step_summary.md"
        self.output = root / "github_output"
        self.summary.write_text("# Earlier\n", encoding="utf-8")
        self.output.write_text("earlier=1\n", encoding="utf-8")

    def run(
        self, *args: str, cwd: Path | None = None, actions: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = clean_env(
            GITHUB_ACTIONS="true" if actions else "false",
            GITHUB_STEP_SUMMARY=str(self.summary),
            GITHUB_OUTPUT=str(self.output),
            GITHUB_WORKSPACE=str(self.root),
        )
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=cwd or self.root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def summary_added(self) -> str:
        return self.summary.read_text(encoding="utf-8").removeprefix("# Earlier\n")

    def outputs_added(self) -> str:
        return self.output.read_text(encoding="utf-8").removeprefix("earlier=1\n")


def workflow_commands(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("::")]


def test_validate_annotates_each_error_at_its_file_line_and_column(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "we,ird:name.yaml", wedata_plan("a", checkParents="50%"))
    step = Step(tmp_path)
    done = step.run("validate")
    assert done.returncode == 1
    [line] = workflow_commands(done.stderr)
    assert line.startswith(
        "::error file=plans/we%2Cird%3Aname.yaml,line=17,col=17,"
        "title=Invalid backfill plan%3A spec.checkParents::"
    )
    assert "50%25" in line
    assert "plans/we,ird:name.yaml:17:17: error: spec.checkParents" in done.stderr  # as before
    assert step.summary_added() == ""
    assert step.outputs_added() == ""


def test_validate_json_keeps_stdout_json_and_annotates_on_stderr(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a", checkParents="x"))
    done = Step(tmp_path).run("validate", "--format", "json")
    assert done.stdout.startswith("{")
    assert len(workflow_commands(done.stderr)) == 1


def test_outside_actions_nothing_is_annotated_or_written(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a", checkParents="x"))
    step = Step(tmp_path)
    assert workflow_commands(step.run("validate", actions=False).stderr) == []
    assert workflow_commands(step.run("plan", actions=False).stderr) == []
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a"))
    assert step.run("plan", actions=False).returncode == 0
    assert step.summary_added() == ""
    assert step.outputs_added() == ""


def test_plan_appends_the_markdown_to_the_summary_sets_outputs_and_annotates_conflicts(
    repo: Repo,
) -> None:
    under_review(repo)
    step = Step(repo.plans.parent)
    done = step.run("plan")
    assert done.returncode == 1  # a conflict
    assert done.stdout.endswith(
        "Plan: 5 calls to make (12 cells). 3 cells in sync, 1 conflict, 0 cells needing "
        "attention, 4 orphaned cells.\n"
    )  # the terminal's text, unchanged
    golden = (GOLDEN / "plan-review.md").read_text(encoding="utf-8")
    assert step.summary_added() == "\n" + golden
    assert step.outputs_added() == (
        "changes=true\ncreates=5\nconflicts=1\nattention=0\norphans=4\n"
    )
    [conflict] = workflow_commands(done.stderr)
    assert conflict.startswith(
        "::error file=plans/orders.yaml,line=11,col=3,"
        "title=Backfill conflict%3A orders-backfill r1::6 cells (2025-09-01..2025-09-03) "
        "already submitted by "
    )
    assert (
        "(parallelism: 2 -> 4). A submitted backfill cannot be edited: set `spec.revision` to 2"
        in conflict
    )


def test_plan_markdown_on_stdout_is_the_same_report(repo: Repo) -> None:
    under_review(repo)
    step = Step(repo.plans.parent)
    done = step.run("plan", "--format", "markdown")
    assert done.stdout == (GOLDEN / "plan-review.md").read_text(encoding="utf-8")
    assert step.summary_added() == "\n" + done.stdout


def test_no_changes_sets_changes_false(repo: Repo) -> None:
    repo.write("orders", wedata_plan())
    repo.apply()
    step = Step(repo.plans.parent)
    assert step.run("plan", "--detailed-exitcode").returncode == 0
    assert step.outputs_added() == "changes=false\ncreates=0\nconflicts=0\nattention=0\norphans=0\n"
    assert "**No changes.**" in step.summary_added()


def test_invalid_plans_stop_plan_with_annotations_and_the_problems_in_the_summary(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "infra" / "plans" / "a.yaml", wedata_plan("a", checkParents="x", parallelism=0)
    )
    step = Step(tmp_path)
    done = step.run("plan", "--format", "markdown", cwd=tmp_path / "infra")
    assert done.returncode == 1
    lines = workflow_commands(done.stderr)
    assert len(lines) == 2
    # Relative to the checkout, not to the working directory, so they attach to the diff.
    assert all(line.startswith("::error file=infra/plans/a.yaml,line=") for line in lines)
    assert done.stdout.startswith(
        markdown.MARKER + "\n## Backfill plan\n\n**The plan files have 2 problems"
    )
    assert step.summary_added() == "\n" + done.stdout
    assert step.outputs_added() == ""
    assert "2 problems in the plan files; nothing was planned or applied." in done.stderr


def test_invalid_plans_stop_apply_with_annotations(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a", checkParents="x"))
    done = Step(tmp_path).run("apply", "--yes")
    assert done.returncode == 1
    [line] = workflow_commands(done.stderr)
    assert line.startswith("::error file=plans/a.yaml,line=")


def test_apply_in_actions_summarises_results_annotates_problems_and_sets_outputs(
    tmp_path: Path, emulator: Emulator, emulator_url: str, tencent_credentials: TencentCredentials
) -> None:
    write(tmp_path / "plans" / "ok.yaml", wedata_plan("ok", dates=[("2025-09-01", "2025-09-01")]))
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    env = clean_env(
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_OUTPUT=str(output),
        TENCENTCLOUD_SECRET_ID=tencent_credentials.secret_id,
        TENCENTCLOUD_SECRET_KEY="a-wrong-key",  # rejected: AuthFailure.SignatureFailure
    )
    assert cli("init", cwd=tmp_path, env=env).returncode == 0
    done = cli("apply", "--yes", "--endpoint", emulator_url, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert "::error title=rejected " in done.stderr
    assert "AuthFailure.SignatureFailure" in done.stderr
    text = summary.read_text()
    assert "**Apply: 0 submitted, 1 not created, 0 unknown.**" in text
    assert "| rejected | `ok` |" in text
    assert output.read_text().splitlines()[-5:] == [
        "submitted=0",
        "not_created=1",
        "unknown=0",
        "not_sent=0",
        "not_attempted=0",
    ]
