"""The values the stages exchange: days and runs of days, the canonical JSON every hash is
computed over, parameter fingerprints and submission keys."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from reconciler.domain import (
    Batch,
    Cell,
    CellGroup,
    Plan,
    Submission,
    canonical_json,
    contiguous_runs,
    day,
    days,
    digest,
    fingerprint,
    merge_spans,
    ordinal,
    range_span,
    runs,
    submission_key,
)
from reconciler.errors import Location


def test_a_day_and_its_ordinal_name_each_other_and_each_day_is_one_string() -> None:
    number = ordinal("2025-09-01")

    assert day(number) == "2025-09-01"
    assert day(number + 30) == "2025-10-01"
    # shared, so that millions of cells naming a few thousand days hold a few thousand strings
    assert day(number) is day(ordinal("2025-09-01"))


def refuses(function: Callable[[Any], object], value: Any) -> bool:
    """`function` raises ValueError for `value` (the stages turn it into their own message)."""
    try:
        function(value)
    except ValueError:
        return True
    return False


def test_what_is_no_calendar_date_has_no_ordinal() -> None:
    assert refuses(ordinal, "2025-02-30")
    assert not refuses(ordinal, "2024-02-29")


def test_days_are_inclusive_and_know_leap_years() -> None:
    assert days("2024-02-28", "2024-03-01") == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert days("2025-02-28", "2025-03-01") == ["2025-02-28", "2025-03-01"]
    assert days("2025-09-01", "2025-09-01") == ["2025-09-01"]
    assert days("2025-09-02", "2025-09-01") == []


def test_dates_in_any_order_with_repeats_become_sorted_runs_of_consecutive_days() -> None:
    dates = ["2025-09-03", "2025-09-01", "2025-09-02", "2025-09-02", "2025-09-07", "2025-08-31"]

    assert contiguous_runs(dates) == [("2025-08-31", "2025-09-03"), ("2025-09-07", "2025-09-07")]
    assert runs(dates) == [
        (ordinal("2025-08-31"), ordinal("2025-09-03")),
        (ordinal("2025-09-07"), ordinal("2025-09-07")),
    ]
    assert contiguous_runs([]) == []


def test_runs_of_days_merge_where_they_overlap_or_touch_and_stay_apart_across_a_gap() -> None:
    assert merge_spans([(10, 12), (1, 3), (4, 5), (11, 20), (22, 22)]) == [
        (1, 5),
        (10, 20),
        (22, 22),
    ]
    assert merge_spans([(1, 10), (2, 3)]) == [(1, 10)]


def test_a_range_is_the_run_of_its_first_and_last_day() -> None:
    first, last = range_span("2025-09-01", "2025-09-14")

    assert last - first + 1 == 14
    assert (day(first), day(last)) == ("2025-09-01", "2025-09-14")


def test_canonical_json_ignores_key_order_keeps_text_as_written_and_refuses_what_json_is_not() -> (
    None
):
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"a": "é"}) == '{"a":"é"}'
    assert refuses(canonical_json, {"a": math.nan})
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})


def test_any_parameter_changes_the_fingerprint_and_the_order_written_does_not() -> None:
    params = {"TimeZone": "UTC+8", "RedefineParallelNum": 2, "CheckParentType": "NONE"}

    assert fingerprint(params) == fingerprint(dict(reversed(params.items())))
    assert fingerprint({**params, "RedefineParallelNum": 4}) != fingerprint(params)
    assert fingerprint({**params, "SchedulerResourceGroupId": "rg"}) != fingerprint(params)


def test_a_submission_key_is_the_same_for_the_same_cells_whatever_their_order() -> None:
    key = submission_key("orders", 1, ("t2", "t1"), ("2025-09-02", "2025-09-01"), "fp")

    assert key == submission_key("orders", 1, ("t1", "t2"), ("2025-09-01", "2025-09-02"), "fp")
    assert len(key) == 20
    others = {
        submission_key("orders", 2, ("t1", "t2"), ("2025-09-01", "2025-09-02"), "fp"),
        submission_key("orders", 1, ("t1",), ("2025-09-01", "2025-09-02"), "fp"),
        submission_key("orders", 1, ("t1", "t2"), ("2025-09-01",), "fp"),
        submission_key("orders", 1, ("t1", "t2"), ("2025-09-01", "2025-09-02"), "fp2"),
        submission_key("refunds", 1, ("t1", "t2"), ("2025-09-01", "2025-09-02"), "fp"),
    }
    assert key not in others
    assert len(others) == 5


def test_a_cell_group_spells_its_runs_out_as_dates_only_when_asked() -> None:
    group = CellGroup(
        plan="orders",
        revision=1,
        targets=("t1", "t2"),
        spans=(range_span("2025-09-01", "2025-09-03"), range_span("2025-09-20", "2025-09-21")),
        params={},
        fingerprint="fp",
    )

    assert group.days == 5
    assert group.dates == (
        *("2025-09-01", "2025-09-02", "2025-09-03"),
        *("2025-09-20", "2025-09-21"),
    )


def test_a_submission_covers_every_target_on_every_date() -> None:
    batch = Batch(targets=("t1", "t2", "t3"), dates=("2025-09-01", "2025-09-02"))
    submission = Submission(
        key="k",
        plan="orders",
        revision=1,
        provider="tencent-wedata",
        action="CreateDataBackfillPlan",
        region="ap-guangzhou",
        targets=batch.targets,
        dates=batch.dates,
        fingerprint="fp",
        params={},
        request={},
    )

    assert submission.size == 6


def test_a_plan_points_at_its_document_until_it_can_point_at_the_field() -> None:
    where = Location("plans/orders.yaml", 3, 1)
    plan = Plan(name="orders", provider="tencent-wedata", revision=1, spec={}, location=where)
    located = Plan(
        name="orders",
        provider="tencent-wedata",
        revision=1,
        spec={},
        location=where,
        locator=lambda path: Location("plans/orders.yaml", 9, len(path)),
    )

    assert plan.locate("spec", "dates", 0) == where
    assert located.locate("spec", "dates", 0) == Location("plans/orders.yaml", 9, 3)


def test_a_cell_reads_as_plan_revision_target_and_date() -> None:
    assert str(Cell("orders", 2, "t1", "2025-09-01")) == "orders@r2:t1:2025-09-01"
