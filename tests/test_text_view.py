"""The text view: what a person reads on a terminal or in a CI log, for every command that
prints text. What it shows comes from the real stages (plan files, the state, the emulator);
only the outcomes of calls are made up here, as the providers classify them."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from factories import TASKS, wedata_plan, write
from harness import Crash, Repo

from reconciler import pipeline, remedies
from reconciler.commands import state as state_command
from reconciler.diff import Changeset
from reconciler.domain import Outcome, OutcomeKind, Submission
from reconciler.execute import Result
from reconciler.providers.protocol import Lookup
from reconciler.reports.init import Started
from reconciler.reports.plan import Finding
from reconciler.state import State, load_state
from reconciler.views import text


def planned(tmp_path: Path, *plans: dict[str, object], state: State | None = None) -> Changeset:
    for number, plan in enumerate(plans):
        write(tmp_path / "plans" / f"plan-{number}.yaml", plan)
    return pipeline.changeset(pipeline.plans([tmp_path / "plans"]), state or State())


def only_call(changes: Changeset) -> Submission:
    [submission] = changes.creates
    return submission


# --- validate ---------------------------------------------------------------------------------


def test_valid_plans_read_as_one_line_counting_plans_and_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", wedata_plan("a"), wedata_plan("b", tasks=["1"]))

    result = pipeline.validated([tmp_path])

    assert text.validation(result) == "OK: 2 plans in 1 file valid."


def test_each_problem_is_a_line_at_its_place_and_the_last_line_counts_them(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "a.yaml", wedata_plan(dates=[("2025-09-01", "2025-02-30")]))
    write(tmp_path / "b.yaml", wedata_plan("b", tasks=["1"], dates=[("2025-09-03", "2025-09-01")]))

    lines = text.validation(pipeline.validated([tmp_path])).splitlines()

    assert lines[0].startswith(f"{path}:")
    assert ": error: spec.dates[0].end: " in lines[0]
    assert len(lines) == 3
    assert lines[-1] == "Found 2 problems in 2 files; nothing was planned or applied."


# --- plan -------------------------------------------------------------------------------------


def test_a_plan_shows_each_call_with_its_targets_and_dates_then_the_totals(
    tmp_path: Path,
) -> None:
    changes = planned(tmp_path, wedata_plan(dates=[("2025-09-01", "2025-09-03")]))
    call = only_call(changes)
    where = changes.plans[0].plan.location

    assert text.changeset(changes).splitlines() == [
        f"+ orders-backfill  tencent-wedata r1  ({where})",
        f"    + CreateDataBackfillPlan {call.key}  (6 cells)",
        f"        targets: {TASKS[0]}, {TASKS[1]}",
        "        dates:   2025-09-01..2025-09-03 (3 days)",
        "",
        "Plan: 1 call to make (6 cells). 0 cells in sync, 0 conflicts, 0 cells needing"
        " attention, 0 orphaned cells.",
    ]


def test_long_lists_of_targets_and_date_ranges_are_cut_and_say_how_much_is_left() -> None:
    dates = ["2025-09-01", "2025-09-03", "2025-09-05", "2025-09-07", "2025-09-08", "2025-09-10"]

    assert text.date_span(dates) == (
        "2025-09-01, 2025-09-03, 2025-09-05, 2025-09-07..2025-09-08, ... (+1 ranges) (6 days)"
    )
    assert text.targets_text([str(n) for n in range(7)]) == "0, 1, 2, 3, 4, ... (+2)"


def test_plans_fully_in_sync_are_only_counted_and_the_plan_says_no_changes(repo: Repo) -> None:
    for number in range(10):
        repo.write(f"plan-{number}", wedata_plan(f"plan-{number}", tasks=[str(number)]))
    assert repo.apply() == 0

    lines = text.changeset(repo.changes()).splitlines()

    assert lines == [
        "= 10 plans fully in sync: plan-0, plan-1, plan-2, plan-3, plan-4, plan-5, plan-6,"
        " plan-7, ... (+2)",
        "",
        "No changes. Every declared cell is submitted. 30 cells in sync, 0 conflicts, 0 cells"
        " needing attention, 0 orphaned cells.",
    ]


def test_a_conflict_names_its_place_its_plan_and_the_remedy(repo: Repo) -> None:
    repo.write("orders", wedata_plan())
    assert repo.apply() == 0
    repo.write("orders", wedata_plan(parallelism=4))
    changes = repo.changes()
    [conflict] = changes.conflicts

    lines = text.changeset(changes).splitlines()

    assert lines[0] == (
        f"conflict: {conflict.location}: plan 'orders-backfill' r1: "
        + remedies.conflict(conflict, value=remedies.plain_value)
    )
    assert "(parallelism: (unset) -> 4)" in lines[0]
    assert "    ! 6 cells in conflict" in lines
    assert lines[-1].startswith("Plan: 0 calls to make (0 cells). 0 cells in sync, 1 conflict,")


def test_cells_of_an_unknown_outcome_say_how_to_settle_it(repo: Repo) -> None:
    repo.write("orders", wedata_plan())
    with pytest.raises(KeyboardInterrupt):
        repo.apply(connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    changes = repo.changes()
    [attention] = changes.attention

    lines = text.changeset(changes).splitlines()

    assert lines[0] == "needs attention: " + remedies.attention(
        plan="orders-backfill",
        key=attention.key,
        cells=6,
        provider="tencent-wedata",
        remote_name=attention.remote_name,
    )
    assert "    ? 6 cells need attention" in lines
    assert lines[-1] == (
        "No calls to make, but some cells need attention. 0 cells in sync, 0 conflicts,"
        " 6 cells needing attention, 0 orphaned cells."
    )


def test_cells_no_plan_declares_any_more_are_reported_and_never_undone(repo: Repo) -> None:
    path = repo.write("orders", wedata_plan())
    assert repo.apply() == 0
    [record] = load_state(repo.state).submissions.values()
    path.unlink()
    repo.write("other", wedata_plan("other", tasks=["1"]))

    lines = text.changeset(repo.changes()).splitlines()

    assert (
        f"- orders-backfill r1: 6 cells of {record.key} (plan no longer declared): orphaned,"
        " reported only (a backfill that ran cannot be un-run)"
    ) in lines
    assert lines[-1].endswith(" 6 orphaned cells.")


# --- apply ------------------------------------------------------------------------------------


def result(
    call: Submission,
    kind: OutcomeKind,
    attempts: int = 1,
    *,
    remote_id: str = "",
    request_id: str = "",
    code: str = "",
    message: str = "",
) -> Result:
    outcome = Outcome(kind, remote_id=remote_id, request_id=request_id, code=code, message=message)
    return Result(call, outcome, attempts)


def test_each_outcome_is_one_line_numbered_in_the_run(tmp_path: Path) -> None:
    call = only_call(planned(tmp_path, wedata_plan()))
    done = result(call, OutcomeKind.SUBMITTED, 3, remote_id="bf-1", request_id="req-9")
    rejected = result(call, OutcomeKind.REJECTED, code="InvalidParameter", message="no task")
    throttled = result(
        call, OutcomeKind.RETRYABLE, 6, code="RequestLimitExceeded", message="throttled 6 times"
    )

    assert text.result_line(done, 1, 3) == (
        f"[1/3] submitted {call.key} orders-backfill -> bf-1 (RequestId req-9) (after 3 attempts)"
    )
    assert text.result_line(rejected, 2, 3) == (
        f"[2/3] rejected {call.key} orders-backfill InvalidParameter: no task"
    )
    # its message already counts the attempts
    assert text.result_line(throttled, 3, 3) == (
        f"[3/3] throttled {call.key} orders-backfill RequestLimitExceeded: throttled 6 times"
    )


def test_the_summary_counts_what_the_calls_came_to(tmp_path: Path) -> None:
    call = only_call(planned(tmp_path, wedata_plan()))
    done = result(call, OutcomeKind.SUBMITTED, remote_id="bf-1")
    lost = result(call, OutcomeKind.UNKNOWN, code="ReadTimeout", message="no reply")

    assert text.apply_summary([done], 1) == (
        "Apply complete: 1 submitted, 0 not created, 0 unknown."
    )
    assert text.apply_summary([done, lost], 3).splitlines() == [
        "Apply finished with problems: 1 submitted, 0 not created, 1 unknown; 1 of 3 not"
        " attempted (the next apply makes them).",
        remedies.unknown_outcomes(1),
    ]


def test_why_a_run_stopped_sending_comes_first_as_a_sentence(tmp_path: Path) -> None:
    call = only_call(planned(tmp_path, wedata_plan()))
    unsent = Result(
        call,
        Outcome(OutcomeKind.UNSENT, code="ConnectError", message="refused"),
        5,
        stopped="stopped sending to http://127.0.0.1:9 (tencent-wedata): no connection",
    )

    assert text.apply_summary([unsent], 2).splitlines() == [
        "Stopped sending to http://127.0.0.1:9 (tencent-wedata): no connection.",
        "Apply finished with problems: 0 submitted, 0 not created, 0 unknown, 1 not sent;"
        " 1 of 2 not attempted (the next apply makes them).",
    ]


# --- recover ----------------------------------------------------------------------------------


def test_lookups_say_what_they_found_and_what_is_left_for_a_person(repo: Repo) -> None:
    for number in range(3):
        repo.write(f"plan-{number}", wedata_plan(f"plan-{number}", tasks=[str(number)]))
    with pytest.raises(KeyboardInterrupt):
        repo.apply(parallel=1, connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    # a crash stops the run at its first call: apply again for the others, crashing each time
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            repo.apply(parallel=1, connect=lambda p, c: Crash(repo.connect(p, c), sent=True))
    ran, missing, unclear = sorted(
        load_state(repo.state).submissions.values(), key=lambda r: r.intent_seq
    )
    found = [
        Finding(ran, Lookup("submitted", remote_id="bf-7", how="one run per date")),
        Finding(missing, Lookup("missing", how="none")),
        Finding(unclear, Lookup("unclear", how="a run close to the intent")),
    ]

    lines = text.findings(found, written=True).splitlines()
    preview = text.findings(found, written=False).splitlines()

    assert lines == [
        f"ran as bf-7: {ran.key} {ran.plan} r1 - one run per date",
        f"did not run: {missing.key} {missing.plan} r1 - none",
        f"still unknown: {unclear.key} {unclear.plan} r1 - a run close to the intent",
        "2 unknown outcomes settled and journaled; 1 left for a person.",
        f"{unclear.key}: {remedies.settle(unclear.key)}.",
    ]
    assert (
        preview[3]
        == "2 unknown outcomes would be settled (plan writes nothing); 1 left for a person."
    )
    assert text.findings([], written=True) == "No submission has an unknown outcome."


# --- state ------------------------------------------------------------------------------------


def test_the_state_lists_one_submission_a_line_under_aligned_headings(repo: Repo) -> None:
    repo.write(
        "orders", wedata_plan(dates=[("2025-09-01", "2025-09-03"), ("2025-09-07", "2025-09-07")])
    )
    assert repo.apply() == 0

    everything = state_command.listing(repo.state, plan=None, status=None, details=False)
    nothing = state_command.listing(repo.state, plan="other", status=None, details=False)

    header, row = text.listing(everything).splitlines()
    [record] = everything.records
    assert header.split() == [
        "KEY",
        "PLAN",
        "REV",
        "STATUS",
        "CELLS",
        "DATES",
        "REMOTE",
        "ID",
        "UPDATED",
    ]
    assert row.split()[:6] == [
        record.key,
        "orders-backfill",
        "1",
        "submitted",
        "8",
        "2025-09-01..2025-09-03,",
    ]
    assert header.index("PLAN") == row.index("orders-backfill")
    assert text.listing(nothing) == "No submissions match."


def test_a_new_state_says_where_it_is_and_an_existing_one_is_left_alone(tmp_path: Path) -> None:
    fresh = Started(tmp_path / "state", State(state_id="5e3d", seq=1), created=True)
    there = Started(tmp_path / "state", State(seq=9), created=False)
    on_branch = Started(tmp_path / "state", None, created=False, published="origin/backfill-state")

    assert text.started(fresh) == (
        f"Initialized an empty state in {tmp_path / 'state'}/ (state id 5e3d). Commit it with the"
        " plans; `backfill plan` shows what an apply would submit."
    )
    assert (
        text.started(there)
        == f"{tmp_path / 'state'}/ already holds a state (9 events); nothing changed."
    )
    assert (
        text.started(on_branch) == "origin/backfill-state already holds a state; nothing changed."
    )


# --- style ------------------------------------------------------------------------------------


def test_colours_only_when_asked_and_the_words_are_the_same(tmp_path: Path) -> None:
    changes = planned(tmp_path, wedata_plan())

    plain = text.changeset(changes, text.styler(False))
    coloured = text.changeset(changes, text.styler(True))

    assert plain == text.changeset(changes)
    assert coloured != plain
    assert click.unstyle(coloured) == plain
