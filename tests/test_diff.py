"""The diff: declared cells against the state's coverage. Here, cells another plan's submission
covers (a rename, or a second plan for the same work), and the advice every finding prints."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from factories import dms_plan, wedata_plan
from harness import Crash, Repo, cli

from reconciler.errors import BackfillError
from reconciler.remedies import REMOTE_ID


def renamed(name: str = "orders-2025-09", **spec: Any) -> dict[str, Any]:
    """The applied `orders-backfill`, as someone renamed it: the same tasks and dates."""
    return wedata_plan(name, **spec)


@pytest.fixture
def applied(repo: Repo) -> Repo:
    repo.write("orders", wedata_plan())
    assert repo.apply() == 0
    assert len(repo.calls()) == 1
    return repo


def test_a_renamed_plan_is_a_conflict_naming_the_other_plan_and_apply_sends_nothing(
    applied: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    applied.write("orders", renamed())

    changes = applied.changes()
    [conflict] = changes.conflicts
    capsys.readouterr()
    with pytest.raises(BackfillError, match="1 conflict"):
        applied.apply()

    assert (conflict.plan, conflict.other_plan, conflict.cells) == (
        "orders-2025-09",
        "orders-backfill",
        6,
    )
    assert conflict.changes == ()
    assert not changes.creates
    assert len(applied.calls()) == 1
    out = capsys.readouterr().out
    assert "already submitted by plan `orders-backfill`" in out
    assert "`takeover: [{plan: orders-backfill, mode: rename}]`" in out


def test_a_declared_rename_takes_the_submissions_over_and_sends_nothing(applied: Repo) -> None:
    applied.write("orders", renamed(takeover=[{"plan": "orders-backfill", "mode": "rename"}]))

    changes = applied.changes()

    assert (changes.creates, changes.conflicts, changes.orphans) == ((), (), ())
    assert changes.count("in_sync_cells") == 6
    assert applied.apply() == 0
    assert len(applied.calls()) == 1


def test_a_rename_that_also_changes_a_parameter_is_a_conflict_of_parameters(
    applied: Repo,
) -> None:
    applied.write(
        "orders",
        renamed(parallelism=4, takeover=[{"plan": "orders-backfill", "mode": "rename"}]),
    )

    [conflict] = applied.changes().conflicts

    assert conflict.other_plan == ""
    assert [(c.field, c.old, c.new) for c in conflict.changes] == [("parallelism", None, 4)]


def test_a_rename_at_a_later_revision_runs_its_dates_again_once(applied: Repo) -> None:
    applied.write(
        "orders",
        renamed(revision=2, takeover=[{"plan": "orders-backfill", "mode": "rename"}]),
    )

    assert len(applied.changes().creates) == 1
    assert applied.apply() == 0
    assert applied.apply() == 0
    assert len(applied.calls()) == 2


def test_a_deliberate_rerun_under_a_new_plan_submits_exactly_its_cells_once(
    applied: Repo,
) -> None:
    applied.write("orders", wedata_plan(dates=[("2025-09-01", "2025-09-02")]))  # keeps 09-01..02
    applied.write(
        "again",
        wedata_plan(
            "orders-again",
            dates=[("2025-09-03", "2025-09-03")],
            takeover=[{"plan": "orders-backfill", "mode": "rerun"}],
        ),
    )

    [create] = applied.changes().creates

    assert (create.plan, create.dates) == ("orders-again", ("2025-09-03",))
    assert applied.apply() == 0
    assert applied.apply() == 0
    assert [c["params"]["DataBackfillRangeList"][0]["StartDate"] for c in applied.calls()] == [
        "2025-09-01",
        "2025-09-03",
    ]


def test_cells_the_renamed_plan_no_longer_declares_are_orphans(applied: Repo) -> None:
    applied.write(
        "orders",
        renamed(
            dates=[("2025-09-01", "2025-09-02")],
            takeover=[{"plan": "orders-backfill", "mode": "rename"}],
        ),
    )

    changes = applied.changes()

    assert not changes.creates
    assert [(o.plan, o.cells, o.plan_removed) for o in changes.orphans] == [
        ("orders-backfill", 2, False)
    ]


def test_another_plans_dms_submission_needs_the_same_decision(repo: Repo) -> None:
    repo.write("dms", dms_plan(dags=[15001]))
    assert repo.apply() == 0
    (repo.plans / "dms.yaml").unlink()
    repo.write("nightly", dms_plan("nightly", dags=[15001, 15002]))

    changes = repo.changes()

    [conflict] = changes.conflicts
    assert (conflict.other_plan, conflict.cells) == ("dms-backfill", 3)
    assert [(c.targets, len(c.dates)) for c in changes.creates] == [(("15002",), 3)]


# --- advice that runs when pasted -------------------------------------------------------------


def test_the_settle_commands_printed_for_an_unknown_outcome_run_when_pasted(
    repo: Repo, cli_env: dict[str, str]
) -> None:
    repo.write("orders", wedata_plan())
    repo.write("dms", dms_plan(dags=[15001]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=True), parallel=1)
    root = repo.plans.parent

    planned = cli("plan", cwd=root, env=cli_env)
    commands = re.findall(r"`(backfill state (?:import|forget) [^`]+)`", planned.stdout)
    imports = [c for c in commands if c.startswith("backfill state import ")]
    forgets = [c for c in commands if c.startswith("backfill state forget ")]

    assert imports
    assert len(imports) == len(forgets) == planned.stdout.count("needs attention: ")
    assert all(REMOTE_ID in c and "--reason" in c for c in imports)
    for forget in forgets:
        done = cli(*shlex.split(forget)[1:], cwd=root, env=cli_env)
        assert done.returncode == 0, done.stderr
    again = cli("plan", cwd=root, env=cli_env)
    assert again.returncode == 0
    assert "needs attention" not in again.stdout
