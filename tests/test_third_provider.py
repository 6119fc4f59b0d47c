"""The README's recipe for a third provider, followed: `third_provider` holds a provider module,
its signer, its emulated API and its spec schema, and registering it is all the wiring there
is. Plans of it are validated, planned, applied, recovered and followed end to end against the
emulator, with the same guarantees as the built-in providers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import third_provider
from conftest import FakeClock
from factories import write
from harness import Crash, Repo

from reconciler import git, providers
from reconciler.commands.status import report
from reconciler.emulator.app import create_app
from reconciler.pipeline import validated
from reconciler.providers import ALL
from reconciler.state import SubmissionStatus, load_state
from reconciler.views import text

TOKEN = "acme-test-token"


def acme_plan(name: str = "nightly-rerun", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backfill-reconciler/v1",
        "kind": "BackfillPlan",
        "metadata": {"name": name, "owner": "jobs@example.com", "reason": "test"},
        "spec": {
            "provider": third_provider.NAME,
            "jobIds": ["ingest", "rollup"],
            "dates": [{"start": "2025-09-01", "end": "2025-09-03"}],
            **spec,
        },
    }


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry entry: the only line of product code a new provider adds outside its own
    modules (here for this test alone)."""
    monkeypatch.setitem(providers.registry(), third_provider.NAME, third_provider.PROVIDER)
    monkeypatch.setenv(third_provider.TOKEN_VARIABLE, TOKEN)


@pytest.fixture
def acme(registered: None, tmp_path: Path, emulator_clock: FakeClock) -> Repo:
    emulator = create_app(environ={third_provider.TOKEN_VARIABLE: TOKEN}, clock=emulator_clock)
    return Repo(tmp_path, emulator)


def test_unregistered_its_plans_are_refused_naming_the_providers_there_are(
    tmp_path: Path,
) -> None:
    [problem] = validated([write(tmp_path / "p.yaml", acme_plan())]).diagnostics
    assert f"must be one of: {', '.join(providers.registry())}" in problem.message


def test_registered_its_spec_is_checked_against_its_own_schema(
    registered: None, tmp_path: Path
) -> None:
    assert validated([write(tmp_path / "ok.yaml", acme_plan())]).ok
    [problem] = validated([write(tmp_path / "p.yaml", acme_plan(jobId=["x"]))]).diagnostics
    assert problem.field == "spec.jobId"
    assert "did you mean 'jobIds'?" in problem.message


def test_apply_creates_each_missing_cell_once_and_a_rerun_nothing(acme: Repo) -> None:
    acme.write("jobs", acme_plan())
    assert acme.apply() == 0
    assert sorted((c["params"]["JobId"], tuple(c["params"]["Dates"])) for c in acme.calls()) == [
        ("ingest", ("2025-09-01", "2025-09-02", "2025-09-03")),
        ("rollup", ("2025-09-01", "2025-09-02", "2025-09-03")),
    ]
    assert acme.apply() == 0
    assert len(acme.calls()) == 2

    acme.write("jobs", acme_plan(dates=[{"start": "2025-09-01", "end": "2025-09-05"}]))
    assert [c.dates for c in acme.changes().creates] == [("2025-09-04", "2025-09-05")] * 2
    assert acme.apply() == 0
    assert len(acme.calls()) == 4
    records = load_state(acme.state).submissions.values()
    assert {(r.provider, r.status) for r in records} == {
        (third_provider.NAME, SubmissionStatus.SUBMITTED)
    }


def test_an_edited_parameter_is_a_conflict_naming_the_field(acme: Repo) -> None:
    acme.write("jobs", acme_plan())
    assert acme.apply() == 0
    acme.write("jobs", acme_plan(priority="high"))

    conflicts = acme.changes().conflicts
    assert len(conflicts) == 2  # one per job's submission
    assert {(c.field, c.old, c.new) for x in conflicts for c in x.changes} == {
        ("priority", "low", "high")
    }


def test_an_unknown_outcome_is_never_resubmitted_and_its_lookup_settles_it(acme: Repo) -> None:
    acme.write("jobs", acme_plan(jobIds=["ingest"]))
    with pytest.raises(KeyboardInterrupt):
        acme.apply(connect=lambda p, c: Crash(acme.connect(p, c), sent=True))
    [call] = acme.calls()

    changes = acme.changes()
    [attention] = changes.attention
    assert (changes.creates, attention.remote_name) == ((), call["params"]["Label"])
    advice = text.changeset(changes)
    assert f"a backfill named `{call['params']['Label']}`" in advice
    assert "WeData" not in advice
    [finding] = acme.recover()
    assert (finding.lookup.verdict, finding.lookup.remote_id) == ("submitted", call["remote_id"])
    assert acme.apply() == 0
    assert len(acme.calls()) == 1


def test_status_follows_every_page_of_its_runs(acme: Repo, emulator_clock: FakeClock) -> None:
    emulator_clock.freeze()
    acme.write("jobs", acme_plan(jobIds=["ingest"]))
    assert acme.apply() == 0

    [started] = report(
        load_state(acme.state), {ALL: "http://127.0.0.1:9"}, ask=acme.progress
    ).tracked
    assert [i.date for i in started.progress.instances] == [
        "2025-09-01",
        "2025-09-02",
        "2025-09-03",
    ]
    assert started.progress.phase == "running"
    emulator_clock.advance(60)
    [done] = report(load_state(acme.state), {ALL: "http://127.0.0.1:9"}, ask=acme.progress).tracked
    assert done.progress.phase == "succeeded"


def test_its_credentials_are_kept_from_git_and_its_hooks(registered: None, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    seen = tmp_path / "seen"
    hook = tmp_path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\nenv > {seen}\n")
    hook.chmod(0o755)
    assert os.environ[third_provider.TOKEN_VARIABLE] == TOKEN

    committed = git.run(
        tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--allow-empty", "-m", "x"
    )
    assert committed.returncode == 0, committed.stderr
    assert seen.read_text()  # the hook ran
    assert TOKEN not in seen.read_text()
