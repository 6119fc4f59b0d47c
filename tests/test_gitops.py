"""Exactly-once in the deployment: the GitHub flow, simulated as it runs (tests/gitops.py), from
pull request to merge to apply to settling unknown outcomes. Every scenario ends by counting
the creates the emulator accepted: each declared cell created exactly once, none lost.

BACKFILL_GITOPS_SOURCE=<another checkout> builds the origin from that checkout's files instead,
to see what these scenarios make of another version of the flow.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from factories import wedata_plan
from gitops import GitHub, PullRequest, Run, creates, git, triggers

from reconciler.domain import days
from reconciler.emulator.app import Emulator
from reconciler.emulator.faults import FaultConfig
from reconciler.providers.acs3 import AliyunCredentials
from reconciler.providers.tc3 import TencentCredentials

pytestmark = pytest.mark.slow

APPLY = "backfill-apply.yml"
PLAN = "backfill-plan.yml"
REFRESH = "backfill-refresh.yml"
MARKER = "<!-- backfill-reconciler:plan -->"
APPLIED = "<!-- backfill-reconciler:applied -->"

Cell = tuple[str, str]


def plan_file(name: str, tasks: list[str], first: str, last: str) -> str:
    """A WeData plan of one call per day (chunk 1), so that a run makes several calls."""
    document = wedata_plan(name, tasks=tasks, dates=[(first, last)], chunk=1)
    return yaml.safe_dump(document, sort_keys=False)


def cells_of(tasks: list[str], first: str, last: str) -> set[Cell]:
    return {(task, day) for task in tasks for day in days(first, last)}


def created(url: str) -> Counter[Cell]:
    """How many times the emulator created each (task, date)."""
    counted: Counter[Cell] = Counter()
    for call in creates(url):
        params = call["params"]
        for span in params["DataBackfillRangeList"]:
            for day in days(span["StartDate"], span["EndDate"]):
                counted.update((str(task), day) for task in params["TaskIds"])
    return counted


class Flow:
    """A repository deployed with this project's workflows, and the emulator as its cloud."""

    def __init__(self, github: GitHub, emulator: Emulator, url: str) -> None:
        self.github, self.emulator, self.url = github, emulator, url
        self.declared: set[Cell] = set()
        self.numbers = iter(range(1, 1000))
        self.operations = "operation" in json.dumps(triggers(github.workflow(APPLY)))
        self.state_branch = "backfill-state" if self.operations else "main"
        if not self.operations:
            # that flow has no way to set an endpoint: the runner's own environment does
            github.runner_env["BACKFILL_ENDPOINT"] = url
        # A deployment starts from its own plans, not this project's examples.
        examples = [f for f in github.files_at("main") if f.startswith("plans/")]
        github.push_commit(dict.fromkeys(examples), "Start from no plans")

    def start_state(self) -> None:
        """Once per repository: the `init` operation of the apply workflow. (A flow without it
        has the state committed on main, as its README said: `backfill init`, then commit.)"""
        if self.operations:
            run = self.github.dispatch(APPLY, operation="init").execute()
            assert run.ok, run["settle"].log
            assert "state/journal.jsonl" in self.github.files_at(self.state_branch)
            return
        work = self.github.clone("init")
        from harness import cli  # only the other flow needs it
        from scenarios import clean_env

        assert cli("init", cwd=work, env=clean_env()).returncode == 0
        git(work, "add", "--force", "state")
        git(work, "commit", "--quiet", "-m", "Start the state")
        git(work, "push", "--quiet", "origin", "HEAD:main")

    def pull_request(self, files: dict[str, str | None], title: str = "Backfill") -> PullRequest:
        return self.github.open_pull_request(next(self.numbers), files, title)

    def add_plan(self, name: str, tasks: list[str], first: str, last: str) -> PullRequest:
        self.declared |= cells_of(tasks, first, last)
        return self.pull_request(
            {f"plans/{name}.yaml": plan_file(name, tasks, first, last)}, f"Backfill {name}"
        )

    def merge(self, pull: PullRequest) -> Run:
        run = self.github.on_push(APPLY, self.github.merge(pull))
        assert run is not None, "a merge that changes plans starts the apply workflow"
        return run

    def apply_by_hand(self) -> Run:
        return (
            self.github.dispatch(APPLY, operation="apply")
            if self.operations
            else (self.github.dispatch(APPLY))
        )

    def count(self) -> Counter[Cell]:
        return created(self.url)

    def assert_exactly_once(self) -> None:
        """Every declared cell created once: no duplicate, nothing lost."""
        counted = self.count()
        duplicates = {cell: n for cell, n in counted.items() if n > 1}
        assert not duplicates, f"created more than once: {sorted(duplicates.items())[:5]}"
        assert set(counted) == self.declared, (
            f"lost: {sorted(self.declared - set(counted))[:5]}, "
            f"undeclared: {sorted(set(counted) - self.declared)[:5]}"
        )

    def journal(self) -> list[dict[str, Any]]:
        text = self.github.show(self.state_branch, "state/journal.jsonl")
        return [json.loads(line) for line in text.splitlines() if line]

    def unsettled(self) -> list[dict[str, Any]]:
        """The intents on the state branch whose outcome is unknown (none, or `unknown`)."""
        intents: dict[str, dict[str, Any]] = {}
        last: dict[str, str] = {}
        for event in self.journal():
            key = event["data"].get("key")
            if key is None:
                continue
            if event["type"] == "intent":
                intents[key] = event
            last[key] = event["type"]
        return [intents[key] for key, kind in last.items() if kind in ("intent", "unknown")]

    def settle_all(self) -> None:
        """What a person does for each unknown outcome: look in the console (the emulator's
        list of creates) and run the workflow with `import` or `forget`, with a reason."""
        made = {call["params"]["DataBackfillPlanName"]: call for call in creates(self.url)}
        for intent in self.unsettled():
            key = intent["data"]["key"]
            name = intent["data"]["request"]["DataBackfillPlanName"]
            if name in made:
                run = self.github.dispatch(
                    APPLY,
                    operation="import",
                    key=key,
                    **{"remote-id": made[name]["remote_id"]},
                    reason=f"found {name} in the console",
                )
            else:
                run = self.github.dispatch(
                    APPLY, operation="forget", key=key, reason=f"no plan {name} in the console"
                )
            run.execute()
            assert run.ok, run["settle"].log


@pytest.fixture
def flow(
    tmp_path: Path,
    serve_emulator: Callable[..., tuple[Emulator, str]],
    tencent_credentials: TencentCredentials,
    aliyun_credentials: AliyunCredentials,
) -> Flow:
    emulator, url = serve_emulator()
    github = GitHub(
        tmp_path,
        variables={"BACKFILL_ENDPOINT": url, "BACKFILL_BATCH": "2", "BACKFILL_PARALLEL": "2"},
        secrets={
            "TENCENTCLOUD_SECRET_ID": tencent_credentials.secret_id,
            "TENCENTCLOUD_SECRET_KEY": tencent_credentials.secret_key,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": aliyun_credentials.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": aliyun_credentials.access_key_secret,
        },
    )
    return Flow(github, emulator, url)


def leaks(flow: Flow, run: Run) -> list[str]:
    """Secrets found where they must never be: logs, summaries, the state branch."""
    secrets = [*flow.github.secrets.values(), "ghs_SimulatedInstallationToken"]
    places = [j.log + j.summary for j in run.history]
    if flow.operations:
        places.append(flow.github.show(flow.state_branch, "state/journal.jsonl"))
    return [s for s in secrets for text in places if s in text]


# --- pull requests ------------------------------------------------------------------------------


def test_a_pull_request_is_planned_with_its_own_calls_apart_from_work_pending_on_main(
    flow: Flow,
) -> None:
    flow.start_state()
    # merged, but its apply has not run yet: pending on main
    flow.github.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-02"))
    pull = flow.add_plan("returns", ["201", "202"], "2025-09-01", "2025-09-03")

    run = flow.github.on_pull_request(PLAN, pull).execute()

    assert run.ok, run["plan"].log
    [comment] = flow.github.comments[pull.number]
    assert comment.body.startswith(MARKER)
    mine, pending = comment.body.split("### Already pending on main")
    assert "**This pull request: 3 API calls to make (6 cells).**" in mine
    assert "`returns` r1" in mine
    assert "`orders` r1" not in mine
    assert "`orders` r1" in pending
    assert "2 API calls" in comment.body.split("\n")[3]
    assert run["plan"].step("Validate and plan").outputs["exit-code"] == "2"
    # pushed again: the same comment is updated, not a second one posted
    flow.github.on_pull_request(PLAN, pull).execute()
    assert len(flow.github.comments[pull.number]) == 1
    assert flow.count() == Counter()


def test_a_pull_request_that_changes_no_plan_passes_the_required_check_at_once(
    flow: Flow,
) -> None:
    pull = flow.pull_request({"docs/notes.md": "notes\n"}, "Docs")

    run = flow.github.on_pull_request(PLAN, pull).execute()

    assert run.ok
    assert run["plan"].step("Validate and plan").outcome == "skipped"
    assert "changes no plan file" in run["plan"].summary
    assert pull.number not in flow.github.comments
    assert flow.count() == Counter()


def test_an_invalid_plan_fails_the_check_with_its_problems_on_the_files_it_changed(
    flow: Flow,
) -> None:
    flow.start_state()
    flow.github.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-02"))
    bad = wedata_plan("orders", dates=[("2025-02-30", "2025-03-01")])
    # sorts before the untouched file that has the name first
    pull = flow.pull_request({"plans/a-copy.yaml": yaml.safe_dump(bad, sort_keys=False)})

    run = flow.github.on_pull_request(PLAN, pull).execute()

    assert not run.ok
    errors = [a for a in run["plan"].annotations if a.level == "error" and a.file]
    assert {a.file for a in errors} == {"plans/a-copy.yaml"}
    assert any("already used at plans/orders.yaml" in a.message for a in errors)
    [comment] = flow.github.comments[pull.number]
    assert "plans/a-copy.yaml" in comment.body
    assert flow.count() == Counter()


# --- merge, apply, state ------------------------------------------------------------------------


def test_a_merge_is_applied_once_its_state_published_and_its_outcome_posted_on_the_pull_request(
    flow: Flow,
) -> None:
    flow.start_state()
    pull = flow.add_plan("orders", ["101", "102"], "2025-09-01", "2025-09-05")

    run = flow.merge(pull).execute()

    assert run.ok, run["apply"].log
    assert sum(flow.count().values()) == 10
    # the intents of every batch were on the branch before its calls: the commits say so
    log = git(flow.github.origin, "log", "--format=%s", "--reverse", flow.state_branch)
    assert log.splitlines()[1:] == [
        "backfill: intents of calls 1-2 of 5",
        "backfill: intents of calls 3-4 of 5",
        "backfill: intents of calls 5-5 of 5",
        "backfill: outcomes",
    ]
    intents = [e for e in flow.journal() if e["type"] == "intent"]
    assert {e["actor"]["pr"] for e in intents} == {pull.number}
    assert {tuple(e["actor"]["approved_by"]) for e in intents} == {("alice",)}
    [posted] = flow.github.comments[pull.number]
    assert posted.body.startswith(APPLIED)
    assert "5 submitted, 0 not created, 0 unknown" in posted.body
    assert not leaks(flow, run)

    # nothing is sent twice: by hand, and after the next merge only the new plan's calls
    again = flow.apply_by_hand().execute()
    assert again["plan"].outputs["creates"] == "0"
    assert again["apply"].result == "skipped"
    flow.merge(flow.add_plan("returns", ["201"], "2025-09-01", "2025-09-02")).execute()
    flow.assert_exactly_once()


def test_two_merges_in_quick_succession_make_each_call_once(flow: Flow) -> None:
    flow.start_state()
    first = flow.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-04"))
    first.execute(iter(["plan"]))  # then the apply job waits for its approval ...
    second = flow.merge(flow.add_plan("returns", ["201"], "2025-09-01", "2025-09-03"))
    first.execute(iter(["apply"]))  # ... and runs; the second run waits for it to end
    second.execute()

    assert first.ok, first["apply"].log
    assert second.ok, second["apply"].log
    flow.assert_exactly_once()


def test_a_commit_landing_on_main_during_the_apply_makes_no_call_again(flow: Flow) -> None:
    flow.start_state()
    run = flow.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-06"))
    other = flow.add_plan("returns", ["201"], "2025-09-01", "2025-09-02")
    landed: list[Run] = []

    def land() -> bool:
        if not landed and creates(flow.url):
            landed.append(flow.merge(other))
        return False

    flow.emulator.faults.configure(FaultConfig(latency=_latency(150)))
    run.during[("apply", "Apply")] = land
    run.execute()
    flow.emulator.faults.configure(FaultConfig())
    [later] = landed
    later.execute()

    assert run.ok, run["apply"].log
    assert later.ok, later["apply"].log
    flow.assert_exactly_once()


def test_a_state_written_meanwhile_stops_the_apply_before_it_sends_more(flow: Flow) -> None:
    flow.start_state()
    run = flow.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-06"))
    written: list[str] = []

    def write_state() -> bool:
        # someone pushes to the state branch by hand while the apply sends its first batch
        tip = git(flow.github.origin, "log", "-1", "--format=%s", flow.state_branch)
        if not written and tip == "backfill: intents of calls 1-2 of 6":
            flow.github.push_commit(
                {"state/NOTES": "by hand\n"}, "by hand", branch=flow.state_branch
            )
            written.append("yes")
            flow.emulator.faults.configure(FaultConfig())
        return False

    # slow replies to the first batch: the hand-made commit lands while it is in flight
    flow.emulator.faults.configure(FaultConfig(latency=_latency(1500)))
    run.during[("apply", "Apply")] = write_state
    run.execute()
    flow.emulator.faults.configure(FaultConfig())

    assert not run.ok
    log = run["apply"].step("Apply").log
    assert "moved since this run read it" in log
    assert "Nothing of calls 3-4 of 6 was sent" in log
    assert sum(flow.count().values()) == 2
    # the next run plans from the newest state: the first batch needs attention, the rest is sent
    again = flow.apply_by_hand().execute()
    assert sum(flow.count().values()) == 6
    assert "of earlier submissions still need attention" in again["apply"].summary
    flow.settle_all()
    flow.assert_exactly_once()


def test_re_running_a_failed_apply_job_sends_nothing_again(flow: Flow) -> None:
    flow.start_state()
    run = flow.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-08"))
    flow.emulator.faults.configure(FaultConfig(latency=_latency(200)))
    run.during[("apply", "Apply")] = lambda: len(creates(flow.url)) >= 3  # the runner dies
    run.execute()
    flow.emulator.faults.configure(FaultConfig())
    assert run["apply"].result == "failure"
    # a create the dead runner sent may still be held by the latency: count once it is answered
    while flow.emulator.stats()["in_flight"]:
        time.sleep(0.01)
    sent = sum(flow.count().values())

    run.rerun_failed()

    assert run["apply"].result == "failure"
    assert "the state changed since" in run["apply"].step("Apply").log
    assert "re-run all jobs" in run["apply"].step("Apply").log
    assert sum(flow.count().values()) == sent

    run.rerun_all()  # plans from the newest state: what may have run needs attention
    assert max(flow.count().values()) == 1
    assert 0 < len(flow.unsettled()) <= 2  # at most the batch the runner died in
    assert "of earlier submissions still need attention" in run["apply"].summary
    flow.settle_all()
    flow.apply_by_hand().execute()
    flow.assert_exactly_once()


def test_a_refused_push_sends_nothing_and_says_why(flow: Flow) -> None:
    flow.start_state()
    run = flow.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-03"))
    flow.github.protect(flow.state_branch)

    run.execute()

    assert not run.ok
    log = run["apply"].step("Apply").log
    assert "refused the push" in log
    assert "GH006" in log
    assert "moved" not in log
    assert flow.count() == Counter()
    flow.github.unprotect()
    run.rerun_all()
    assert run.ok, run["apply"].log
    flow.assert_exactly_once()


# --- unknown outcomes ---------------------------------------------------------------------------


def test_unknown_outcomes_fail_the_apply_saying_why_and_are_settled_through_the_workflow(
    flow: Flow,
) -> None:
    flow.start_state()
    flow.github.variables["BACKFILL_TIMEOUT"] = "1"
    # replies lost after the create ran, then 5xx before anything ran: unknown either way
    flow.emulator.faults.configure(FaultConfig(timeout_after_commit_rate=1.0, hang_ms=3000))
    lost = flow.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-02")).execute()
    flow.emulator.faults.configure(FaultConfig(error_rate=1.0))
    failed = flow.merge(flow.add_plan("returns", ["201"], "2025-09-01", "2025-09-02")).execute()
    flow.emulator.faults.configure(FaultConfig())

    assert not lost.ok
    assert "2 unknown" in lost["apply"].summary
    # the next apply submits its own calls and still goes red, saying why
    later = flow.merge(flow.add_plan("refunds", ["301"], "2025-09-01", "2025-09-01")).execute()
    assert later["apply"].result == "failure"
    assert "1 submitted, 0 not created, 0 unknown" in later["apply"].summary
    assert "4 cells of earlier submissions still need attention" in later["apply"].summary
    assert len(flow.unsettled()) == 4
    assert not failed.ok

    flow.settle_all()
    done = flow.apply_by_hand().execute()

    assert done.ok, done["apply"].log
    flow.assert_exactly_once()
    verdicts = [e for e in flow.journal() if e["type"] in ("imported", "forgotten")]
    assert {e["type"] for e in verdicts} == {"imported", "forgotten"}
    assert all(e["data"]["reason"] and e["actor"]["approved_by"] == ["alice"] for e in verdicts)


# --- the composite action -----------------------------------------------------------------------

CALLER = """\
name: backfills
on: workflow_dispatch
permissions: {}
jobs:
  backfill:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    environment: backfill
    permissions:
      contents: write
    env:
      GIT_AUTHOR_NAME: ci
      GIT_AUTHOR_EMAIL: ci@example.com
      GIT_COMMITTER_NAME: ci
      GIT_COMMITTER_EMAIL: ci@example.com
      BACKFILL_ENDPOINT: ${{ vars.BACKFILL_ENDPOINT }}
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0
        with:
          persist-credentials: false
      - id: plan
        uses: ./
        with:
          command: plan
          format: json
          state-branch: backfill-state
          token: ${{ github.token }}
      - id: apply
        uses: ./
        env:
          TENCENTCLOUD_SECRET_ID: ${{ secrets.TENCENTCLOUD_SECRET_ID }}
          TENCENTCLOUD_SECRET_KEY: ${{ secrets.TENCENTCLOUD_SECRET_KEY }}
        with:
          command: apply
          state-branch: backfill-state
          token: ${{ github.token }}
      - id: again
        uses: ./
        with:
          command: plan
          state-branch: backfill-state
      - name: Outputs
        env:
          PLAN_FILE: ${{ steps.plan.outputs.output-file }}
          APPLY_FILE: ${{ steps.apply.outputs.output-file }}
          AGAIN_FILE: ${{ steps.again.outputs.output-file }}
          APPLY_CODE: ${{ steps.apply.outputs.exit-code }}
          AGAIN_CODE: ${{ steps.again.outputs.exit-code }}
        run: |
          echo "plan=$PLAN_FILE apply=$APPLY_FILE again=$AGAIN_FILE"
          echo "codes apply=$APPLY_CODE again=$AGAIN_CODE"
"""


def test_the_action_plans_applies_and_publishes_the_state_as_the_workflow_does(
    flow: Flow,
) -> None:
    if not flow.operations:
        pytest.skip("this flow's action has no state-branch")
    flow.start_state()
    flow.github.merge(flow.add_plan("orders", ["101"], "2025-09-01", "2025-09-03"))
    flow.github.push_commit({".github/workflows/backfills.yml": CALLER}, "Use the action")

    run = flow.github.dispatch("backfills.yml").execute()

    assert run.ok, run["backfill"].log
    job = run["backfill"]
    files = {job.step(name).outputs["output-file"] for name in ("plan", "apply", "again")}
    assert len(files) == 3
    assert "codes apply=0 again=0" in job.step("Outputs").log
    planned = json.loads(Path(job.step("plan").outputs["output-file"]).read_text())
    assert planned["summary"]["create_calls"] == 3
    assert "backfill: outcomes" in git(
        flow.github.origin, "log", "-1", "--format=%s", "backfill-state"
    )
    flow.assert_exactly_once()


def _latency(ms: int) -> Any:
    from reconciler.emulator.faults import Latency

    return Latency(ms, ms)


def test_the_scheduled_run_journals_what_became_of_the_backfills_on_the_state_branch(
    flow: Flow,
) -> None:
    httpx.post(f"{flow.url}/_emulator/faults", json={"instance_seconds": 0}).raise_for_status()
    flow.start_state()
    assert (
        flow.merge(flow.add_plan("orders", ["101", "102"], "2025-09-01", "2025-09-03")).execute().ok
    )

    run = flow.github.dispatch(REFRESH).execute()

    assert run.ok, run["refresh"].log
    observed = [e for e in flow.journal() if e["type"] == "observed"]
    assert observed
    cells = {
        (target, day)
        for e in observed
        for target, span, health, _ in e["data"]["cells"]
        if health == "succeeded"
        for day in days(span[:10], span[-10:])  # `first..last`, or one day
    }
    assert cells == flow.declared
    log = git(flow.github.origin, "log", "--format=%s", flow.state_branch)
    assert log.splitlines()[0] == "backfill: what the platforms said (refresh)"
    assert "orders" in run["refresh"].summary
    assert not leaks(flow, run)

    # the next scheduled run asks nothing of final cells and sends nothing again
    again = flow.github.dispatch(REFRESH).execute()
    assert again.ok, again["refresh"].log
    assert [e for e in flow.journal() if e["type"] == "observed"] == observed
    flow.assert_exactly_once()


def test_the_harness_knows_every_expression_the_workflows_use() -> None:
    """The simulation refuses what it does not implement: every `${{ }}` of the shipped
    workflows and action must parse."""
    from gitops import ROOT, Expression

    texts = [p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml")]
    texts.append((ROOT / "action.yml").read_text())
    found = [m.group(1) for text in texts for m in re.finditer(r"\$\{\{(.*?)\}\}", text)]
    found += [str(item["if"]) for text in texts for item in _with_if(yaml.safe_load(text))]
    assert found
    for expression in found:
        Expression(expression.strip().removeprefix("${{").removesuffix("}}"), {}, failed=False)


def _with_if(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    jobs = document.get("jobs") or {}
    for job in jobs.values():
        if "if" in job:
            yield job
        yield from (s for s in job.get("steps", []) if "if" in s)
    yield from (s for s in (document.get("runs") or {}).get("steps", []) if "if" in s)
