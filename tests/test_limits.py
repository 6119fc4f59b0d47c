"""What one plan may declare, and how much one API call may cover: stated in the schema where a
schema can say it, checked as rules otherwise, and never planned cell by cell before that."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from factories import dms_plan, wedata_plan, write
from scenarios import clean_env

from reconciler import pipeline
from reconciler.domain import MAX_CELLS_PER_CALL, MAX_CELLS_PER_PLAN, MAX_DAYS_PER_PLAN
from reconciler.providers import spec_models
from reconciler.state import State
from reconciler.validate import plan_schema

REPO = Path(__file__).resolve().parent.parent


def problems(tmp_path: Path, *plans: dict[str, Any]) -> list[str]:
    for index, plan in enumerate(plans):
        write(tmp_path / "plans" / f"p{index}.yaml", plan)
    return [str(d) for d in pipeline.validated([tmp_path / "plans"]).diagnostics]


def day(offset: int, first: str = "2015-01-01") -> str:
    return (date.fromisoformat(first) + timedelta(days=offset)).isoformat()


def test_plan_dates_run_from_1970_to_2099(tmp_path: Path) -> None:
    edges = [("1970-01-01", "1970-01-01"), ("2099-12-31", "2099-12-31")]
    assert problems(tmp_path / "ok", wedata_plan(dates=edges)) == []
    outside = [("1969-12-31", "1970-01-02"), ("2099-12-30", "2100-01-01")]
    found = problems(tmp_path / "outside", wedata_plan(dates=outside))
    assert len(found) == 2, found
    assert 'spec.dates[0].start: "1969-12-31" is not a date a plan takes: ' in found[0]
    assert 'spec.dates[1].end: "2100-01-01" is not a date a plan takes: ' in found[1]
    assert "from 1970-01-01 to 2099-12-31" in found[0]


def test_a_plan_declares_at_most_ten_years_of_days(tmp_path: Path) -> None:
    assert MAX_DAYS_PER_PLAN == 3653  # ten years, three of them leap years
    ranges = [(day(0), day(999)), (day(1000), day(MAX_DAYS_PER_PLAN - 1))]  # they touch
    assert problems(tmp_path / "ok", dms_plan(dags=[1], dates=ranges)) == []
    ranges = [(day(0), day(999)), (day(1001), day(MAX_DAYS_PER_PLAN + 1))]
    [problem] = problems(tmp_path / "over", dms_plan(dags=[1], dates=ranges))
    file = tmp_path / "over" / "plans" / "p0.yaml"
    line = file.read_text().splitlines().index("  dates:") + 2  # where the list starts
    assert problem.startswith(f"{file}:{line}:3: ")
    assert problem.endswith(
        "spec.dates: the ranges add up to 3,654 days; a plan declares at most 3,653 "
        "(ten years): split the dates over several plans"
    )


def test_a_plan_declares_at_most_1000_targets(tmp_path: Path) -> None:
    [tasks] = problems(tmp_path / "w", wedata_plan(tasks=[str(n) for n in range(1001)]))
    assert "spec.taskIds: lists 1,001 items; at most 1,000 are allowed" in tasks
    [dags] = problems(tmp_path / "d", dms_plan(dags=list(range(1, 1002))))
    assert "spec.dagIds: lists 1,001 items; at most 1,000 are allowed" in dags


def test_a_plan_declares_at_most_100000_cells(tmp_path: Path) -> None:
    ten_years = [(day(0), day(MAX_DAYS_PER_PLAN - 1))]
    largest = wedata_plan(tasks=[str(n) for n in range(27)], dates=ten_years)
    assert 27 * MAX_DAYS_PER_PLAN <= MAX_CELLS_PER_PLAN
    assert problems(tmp_path / "ok", largest) == []
    [problem] = problems(
        tmp_path / "over", dms_plan(dags=list(range(1, 29)), dates=ten_years, chunk=400)
    )
    assert problem.endswith(
        "spec.dates: 28 targets x 3,653 days make 102,284 cells; a plan declares at most "
        "100,000: split it into several plans, by targets or by dates"
    )


def test_the_schema_states_the_limits_the_rules_enforce() -> None:
    defs = plan_schema()["$defs"]
    for spec in spec_models():
        properties = defs[spec.__name__]["properties"]
        targets = spec.key(spec.TARGETS)
        assert properties["chunk"]["maximum"] == MAX_DAYS_PER_PLAN
        assert f"at most {MAX_DAYS_PER_PLAN} days" in properties["dates"]["description"]
        assert f"at most {MAX_CELLS_PER_PLAN} cells" in properties["dates"]["description"]
        assert f"at most {MAX_CELLS_PER_CALL} cells" in properties["chunk"]["description"]
        # One call can always hold one day of every target of a plan.
        assert properties[targets]["maxItems"] <= MAX_CELLS_PER_CALL


def calls(tmp_path: Path, plan: dict[str, Any]) -> list[tuple[int, int]]:
    """(targets, days) of each call a plan makes on an empty state."""
    write(tmp_path / "plans" / "p.yaml", plan)
    changes = pipeline.changeset(pipeline.plans([tmp_path / "plans"]), State())
    return [(len(s.targets), len(s.dates)) for s in changes.creates]


def test_no_call_covers_more_than_10000_cells_whatever_chunk_says(tmp_path: Path) -> None:
    tasks = [str(n) for n in range(1000)]
    hundred_days = [(day(0), day(99))]
    assert calls(tmp_path / "a", wedata_plan(tasks=tasks, dates=hundred_days)) == [(1000, 10)] * 10
    limited = wedata_plan(tasks=tasks, dates=hundred_days, chunk=31)
    assert calls(tmp_path / "b", limited) == [(1000, 10)] * 10
    fewer = wedata_plan(tasks=tasks[:3], dates=hundred_days, chunk=31)
    assert calls(tmp_path / "c", fewer) == [(3, 31)] * 3 + [(3, 7)]
    ten_years = [(day(0), day(MAX_DAYS_PER_PLAN - 1))]
    wide = calls(tmp_path / "d", wedata_plan(tasks=tasks[:27], dates=ten_years))
    assert max(targets * days for targets, days in wide) <= MAX_CELLS_PER_CALL
    assert sum(targets * days for targets, days in wide) == 27 * MAX_DAYS_PER_PLAN
    assert calls(tmp_path / "e", dms_plan(dags=[1], dates=ten_years)) == [(1, MAX_DAYS_PER_PLAN)]


def peak_of(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """`backfill ARGS` run by a parent that reports the child's peak resident memory (bytes),
    under an address-space limit so that a regression fails instead of exhausting the host."""
    measure = (
        "import resource, subprocess, sys\n"
        "limit = 2 * 1024 ** 3\n"
        "def cap(): resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
        "done = subprocess.run(sys.argv[1:], preexec_fn=cap, capture_output=True, text=True)\n"
        "sys.stdout.write(done.stdout)\n"
        "sys.stderr.write(done.stderr)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "sys.stderr.write(f'\\nPEAK {peak}\\n')\n"
        "sys.exit(done.returncode)\n"
    )
    command = [sys.executable, "-c", measure, sys.executable, "-m", "reconciler", *args]
    done = subprocess.run(
        command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120, check=False
    )
    peak = int(done.stderr.rsplit("PEAK ", 1)[1])
    return done, peak


ISSUE_PLAN = """\
apiVersion: backfill-reconciler/v1
kind: BackfillPlan
metadata:
  name: far-future
  owner: fuzz@example.com
  reason: "a plan of a few hundred bytes that once planned millions of cells"
spec:
  provider: tencent-wedata
  region: ap-guangzhou
  projectId: "1460947878944567296"
  taskIds: ["20250827115253729", "20250827115253730", "20250827115253731"]
  dates:
    - start: {start}
      end: 9999-12-31
  chunk: 1
"""


def test_plans_that_once_ran_plan_out_of_memory_are_refused_in_little_memory(
    tmp_path: Path,
) -> None:
    """A 739-byte plan up to 9999-12-31 with `chunk: 1` took 5.9 GB in `plan`; from
    0001-01-01 it planned one call of millions of cells; within the dates, `chunk: 1` over ten
    years of 27 DAGs planned 98,631 calls (0.5 GB as JSON). All are refused before anything is
    planned cell by cell."""
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "far-future.yaml").write_text(ISSUE_PLAN.format(start="2025-01-01"), "utf-8")
    (plans / "all-of-time.yaml").write_text(
        ISSUE_PLAN.format(start="0001-01-01").replace("far-future", "all-of-time"), "utf-8"
    )
    ten_years = [(day(0), day(MAX_DAYS_PER_PLAN - 1))]
    write(plans / "every-day.yaml", dms_plan(dags=list(range(1, 28)), dates=ten_years, chunk=1))
    for command in (["validate"], ["plan"], ["plan", "--format", "json"]):
        done, peak = peak_of(command, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "error: unexpected" not in done.stderr
        assert (
            'plans/far-future.yaml:14:12: error: spec.dates[0].end: "9999-12-31" is not a '
            "date a plan takes" in done.stderr
        )
        assert 'plans/all-of-time.yaml:13:14: error: spec.dates[0].start: "0001-01-01"' in (
            done.stderr
        )
        assert "plans/every-day.yaml:" in done.stderr
        assert "spec.chunk: the plan makes 98,631 API calls" in done.stderr
        assert peak < 200 * 1024**2, f"{command}: {peak / 1024**2:.0f} MB"
    report = json.loads(peak_of(["validate", "--format", "json"], cwd=tmp_path)[0].stdout)
    assert report["valid"] is False
    assert len(report["errors"]) == 4


def test_a_plan_makes_at_most_1000_calls(tmp_path: Path) -> None:
    """`chunk: 1` over years of many DAGs: a plan of a few hundred bytes and a hundred
    thousand calls, each planned, journaled and sent on its own."""
    ten_years = [(day(0), day(MAX_DAYS_PER_PLAN - 1))]
    [problem] = problems(
        tmp_path / "dms", dms_plan(dags=list(range(1, 28)), dates=ten_years, chunk=1)
    )
    assert problem.endswith(
        "spec.chunk: the plan makes 98,631 API calls; a plan makes at most 1,000: raise "
        "spec.chunk, or split the plan"
    )
    two_runs = [(day(0), day(0)), (day(2), day(2))]
    [problem] = problems(tmp_path / "runs", dms_plan(dags=list(range(1, 502)), dates=two_runs))
    assert problem.endswith(
        "spec.dates: the plan makes 1,002 API calls; a plan makes at most 1,000: split the plan"
    )
    assert problems(tmp_path / "ok", dms_plan(dags=list(range(1, 501)), dates=two_runs)) == []
    many_days = wedata_plan(tasks=["1"], dates=[(day(0), day(1000))], chunk=1)
    assert "makes 1,001 API calls" in problems(tmp_path / "wd", many_days)[0]


def test_the_calls_counted_for_the_limit_are_the_calls_planned(tmp_path: Path) -> None:
    from reconciler import providers

    two_windows = wedata_plan(dates=[(day(0), day(9)), (day(12), day(30))], chunk=4)
    two_windows["spec"]["dates"][1]["executionWindow"] = {"start": "01:00", "end": "02:00"}
    cases = [
        wedata_plan(tasks=[str(n) for n in range(700)], dates=[(day(0), day(40))]),
        wedata_plan(dates=[(day(0), day(9)), (day(20), day(35))], chunk=3),
        two_windows,
        dms_plan(dates=[(day(0), day(9)), (day(11), day(11)), (day(13), day(40))], chunk=7),
        dms_plan(dags=[5], dates=[(day(0), day(MAX_DAYS_PER_PLAN - 1))]),
    ]
    for index, case in enumerate(cases):
        write(tmp_path / str(index) / "p.yaml", case)
        result = pipeline.plans([tmp_path / str(index)])
        [plan] = result.plans
        planned = pipeline.changeset(result, State()).creates
        assert providers.get(plan.provider).calls(plan) == len(planned), index


def test_a_region_is_at_most_63_characters(tmp_path: Path) -> None:
    """DMS puts the region in its endpoint's host name: a longer one passed validation and
    then failed in apply, in the HTTP client's host name encoding (a UnicodeError)."""
    region = "cn-" + "a" * 60
    assert problems(tmp_path / "ok", dms_plan(region=region), wedata_plan(region=region)) == []
    found = problems(
        tmp_path / "long", dms_plan(region=region + "b"), wedata_plan(region=region + "b")
    )
    assert [p.split(": ", 1)[1] for p in found] == ["spec.region: is longer than 63 characters"] * 2
