"""The stages composed as `plan` runs them on a big repo: each plan diffed as its file comes back
from a helper, keeping neither the documents nor the cells, with exactly the answers of the
diff over every plan at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan
from harness import Repo

from reconciler import parallel, pipeline
from reconciler.diff import Changeset
from reconciler.domain import Plan
from reconciler.errors import InvalidPlans
from reconciler.state import State, load_state


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Helpers forked whatever the machine has, each taking a few files at a time."""
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 5)
    assert threading.active_count() == 1, "a thread left running would keep helpers unforked"


def streamed(repo: Repo, changed: frozenset[Path] = frozenset()) -> tuple[State, object]:
    return pipeline.changes_while(
        [repo.plans], lambda: load_state(repo.state).indexed(), changed=changed
    )


def test_each_plan_diffed_as_it_is_read_gives_the_changeset_of_all_at_once(
    repo: Repo, shared: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(40):
        repo.write(f"w{n:02d}", wedata_plan(f"w-{n:02d}", tasks=[str(1000 + n)]))
        repo.write(f"d{n:02d}", dms_plan(f"d-{n:02d}", dags=[16000 + n]))
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 10**9)  # applied by one process
    assert repo.apply() == 0
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 5)
    # a parameter edited (a conflict), a range extended (creates), a plan removed and a plan
    # narrowed (orphans), a plan renamed by a takeover, a new one: in files far apart
    repo.write("w03", wedata_plan("w-03", tasks=["1003"], parallelism=4))
    repo.write("w17", wedata_plan("w-17", tasks=["1017"], dates=[("2025-09-01", "2025-09-09")]))
    (repo.plans / "d05.yaml").unlink()
    repo.write("d30", dms_plan("d-30", dags=[16030], dates=[("2025-09-01", "2025-09-01")]))
    repo.write(
        "w38",
        wedata_plan("w-38-renamed", tasks=["1038"], takeover=[{"plan": "w-38", "mode": "rename"}]),
    )
    repo.write("zz", dms_plan("new", dags=[17000]))

    state, streaming = streamed(repo)
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 10**9)
    at_once = pipeline.changeset(pipeline.plans([repo.plans]), load_state(repo.state))

    assert streaming == at_once
    assert state.seq == load_state(repo.state).seq
    assert [c.plan for c in at_once.conflicts] == ["w-03"]
    assert sorted({s.plan for s in at_once.creates}) == ["new", "w-17"]
    assert [(o.plan, o.plan_removed) for o in at_once.orphans] == [
        ("d-05", True),
        ("d-30", False),
    ]
    assert len(at_once.plans) == 80


def test_a_plan_in_sync_is_kept_by_what_is_shown_of_it_not_its_spec(
    repo: Repo, shared: None
) -> None:
    """A big repo's plans are mostly in sync: the changeset keeps those by name, place and
    metadata (their typed specs are most of what a plan weighs), and the full plan of each
    that has calls to make, which the planning step needs."""
    labelled = wedata_plan("kept", tasks=["1"])
    labelled["metadata"]["labels"] = {"team": "orders"}
    for n in range(12):
        repo.write(f"p{n:02d}", wedata_plan(f"p-{n:02d}", tasks=[str(100 + n)]))
    repo.write("kept", labelled)
    assert repo.apply() == 0
    repo.write("p07", wedata_plan("p-07", tasks=["107"], dates=[("2025-09-01", "2025-09-05")]))

    changes = streamed(repo)[1]
    assert isinstance(changes, Changeset)
    by_name = {p.plan.name: p for p in changes.plans}
    assert isinstance(by_name["p-07"].plan, Plan)  # two cells to create
    assert [s.dates for s in by_name["p-07"].submissions] == [("2025-09-04", "2025-09-05")]
    kept = by_name["kept"].plan
    assert not isinstance(kept, Plan)
    assert (kept.provider, kept.revision, kept.owner, kept.reason, dict(kept.labels)) == (
        "tencent-wedata",
        1,
        "data-eng@example.com",
        "test",
        {"team": "orders"},
    )
    assert (Path(kept.location.file).name, kept.location.line) == ("kept.yaml", 1)


def test_a_name_used_twice_far_apart_is_reported_on_the_changed_file_and_nothing_is_planned(
    repo: Repo, shared: None
) -> None:
    for n in range(60):
        repo.write(f"p{n:02d}", wedata_plan(f"plan-{n}", tasks=[str(1000 + n)]))
    again = repo.write("p59", wedata_plan("plan-0", tasks=["2000"]))

    with pytest.raises(InvalidPlans) as raised:
        streamed(repo, changed=frozenset({(repo.plans / "p00.yaml").resolve()}))

    [problem] = raised.value.diagnostics
    assert "already used" in problem.message
    assert Path(problem.location.file).name == "p00.yaml"
    with pytest.raises(InvalidPlans) as raised:
        streamed(repo)
    [problem] = raised.value.diagnostics
    assert Path(problem.location.file) == again


def test_plans_declaring_the_same_work_in_different_helpers_chunks_plan_nothing(
    repo: Repo, shared: None
) -> None:
    for n in range(60):
        repo.write(f"p{n:02d}", dms_plan(f"plan-{n}", dags=[16000 + n]))
    repo.write("p59", dms_plan("plan-59", dags=[16001]))  # plan-1's DAG, chunks away

    with pytest.raises(InvalidPlans) as raised:
        streamed(repo)

    assert sorted(Path(d.location.file).name for d in raised.value.diagnostics) == [
        "p01.yaml",
        "p59.yaml",
    ]
    assert all("the same work" in d.message for d in raised.value.diagnostics)


def test_a_repo_with_an_invalid_plan_plans_nothing_from_the_valid_ones(
    repo: Repo, shared: None
) -> None:
    for n in range(60):
        repo.write(f"p{n:02d}", wedata_plan(f"plan-{n}", tasks=[str(1000 + n)]))
    (repo.plans / "p45.yaml").write_text("spec: [unclosed\n", encoding="utf-8")

    with pytest.raises(InvalidPlans) as raised:
        streamed(repo)

    assert [Path(d.location.file).name for d in raised.value.diagnostics] == ["p45.yaml"]
