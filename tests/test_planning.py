"""The planning step: the cells diff finds missing become the calls that create them, each
missing cell in exactly one call, and nothing else."""

from __future__ import annotations

from factories import dms_plan, wedata_plan
from harness import Repo

from reconciler import planning


def test_every_missing_cell_is_in_exactly_one_call_and_no_other_cell_is(repo: Repo) -> None:
    repo.write("orders", wedata_plan(tasks=["1", "2"], dates=[("2025-09-01", "2025-09-03")]))
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-09-01", "2025-09-02")]))
    assert repo.apply() == 0
    repo.write(
        "orders",
        wedata_plan(tasks=["1", "2", "3"], dates=[("2025-09-01", "2025-09-05")], chunk=2),
    )
    repo.write("dms", dms_plan(dags=[15001], dates=[("2025-08-30", "2025-09-04")]))

    for item in repo.changes().plans:
        missing = sorted(
            (target, date)
            for gap in item.missing
            for target, dates in gap.dates.items()
            for date in dates
        )
        assert missing
        planned = sorted((t, d) for s in item.submissions for t in s.targets for d in s.dates)
        assert planned == missing
        assert item.create_cells == len(missing)
        assert planning.calls(item) == item.submissions  # a function of the changeset alone
