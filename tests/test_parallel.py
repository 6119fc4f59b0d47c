"""Work shared with forked helpers: the same results as one process would get, in order, and
whatever goes wrong in a helper ends up done, or raised, by the process that asked."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from factories import dms_plan, wedata_plan, write
from pydantic import BaseModel, ConfigDict, PrivateAttr

from reconciler import parallel, pipeline
from reconciler.errors import InvalidPlans, StateError
from reconciler.load import load_file
from reconciler.parallel import Shared
from reconciler.state import State

T = TypeVar("T")
R = TypeVar("R")


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Helpers are forked whatever the machine running the tests has; and never while another
    thread runs, so a thread an earlier test left running is named here instead of a helper
    being waited for in vain."""
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    others = [
        thread for thread in threading.enumerate() if thread is not threading.current_thread()
    ]
    assert not others, f"threads left running by an earlier test: {others}"


@dataclass(frozen=True, slots=True)
class Doubled:
    value: int
    by: int


def doubled(chunk: Sequence[int]) -> list[Doubled]:
    return [Doubled(item * 2, os.getpid()) for item in chunk]


def waiting_for_a_helper(work: Callable[[T], R]) -> Callable[[T], R]:
    """`work`, but after its first call (before the helpers are forked) this process waits for
    a helper to do some: on a busy machine a helper may start when every chunk is taken."""
    parent = os.getpid()
    helped = multiprocessing.get_context("fork").Event()
    calls = [0]

    def waiting(item: T) -> R:
        if os.getpid() != parent:
            helped.set()
        else:
            calls[0] += 1
            if calls[0] > 1:
                helped.wait(timeout=300)  # not a measure: a bound on a hang
        return work(item)

    return waiting


def test_helpers_share_the_work_and_the_results_come_back_in_order(two_cores: None) -> None:
    results = Shared(waiting_for_a_helper(doubled), range(1000), per_process=10).results()
    flat = [item for chunk in results for item in chunk]
    assert [item.value for item in flat] == [item * 2 for item in range(1000)]
    assert len({item.by for item in flat}) == 2  # this process and one helper


def test_a_helper_goes_on_while_this_process_is_busy_with_a_chunk_of_its_own(
    two_cores: None,
) -> None:
    """A chunk's results are more than a pipe holds, and this process takes them in only
    between chunks of its own (`plan` loads the state first): the helper goes on meanwhile."""
    parent = os.getpid()
    context = multiprocessing.get_context("fork")
    helped = context.Value("i", 0)
    three = context.Event()
    calls = [0]

    def large(chunk: Sequence[int]) -> list[bytes]:
        if os.getpid() != parent:
            with helped.get_lock():
                helped.value += 1
                if helped.value == 3:
                    three.set()
        else:
            calls[0] += 1
            if calls[0] == 2:  # the first chunk here after the helper was forked
                # not a measure: a bound on a helper that waits for this process
                assert three.wait(timeout=120), "the helper stopped at its first results"
        return [bytes([item % 256]) * 200_000 for item in chunk]

    results = Shared(large, range(100), per_process=10).results()
    assert [blob[0] for chunk in results for blob in chunk] == [n % 256 for n in range(100)]


def test_too_few_items_are_done_here_without_a_helper(two_cores: None) -> None:
    results = Shared(doubled, range(19), per_process=10).results()
    assert {item.by for chunk in results for item in chunk} == {os.getpid()}


def test_no_helper_is_forked_while_other_threads_run(two_cores: None) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        results = Shared(doubled, range(1000), per_process=10).results()
    finally:
        stop.set()
        thread.join()
    assert {item.by for chunk in results for item in chunk} == {os.getpid()}


def test_what_a_dead_helper_took_is_done_here(two_cores: None) -> None:
    parent = os.getpid()

    def dies(chunk: Sequence[int]) -> list[Doubled]:
        if os.getpid() != parent:
            os._exit(9)
        return doubled(chunk)

    results = Shared(dies, range(1000), per_process=10).results()
    assert [item.value for chunk in results for item in chunk] == [n * 2 for n in range(1000)]


def test_an_error_in_a_helper_is_raised_here_and_printed_by_nobody(
    two_cores: None, capfd: pytest.CaptureFixture[str]
) -> None:
    def fails(chunk: Sequence[int]) -> list[int]:
        if 500 in chunk:
            raise ValueError("item 500")
        return list(chunk)

    with pytest.raises(ValueError, match="item 500"):
        Shared(fails, range(1000), per_process=10).results()
    assert capfd.readouterr().err == ""


def test_ctrl_c_in_a_helper_is_ignored_quietly(
    two_cores: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C signals every process of the terminal's group: a helper goes on, without a
    traceback of its own (the process that forked it is the one that answers)."""
    parent = os.getpid()

    def interrupted(chunk: Sequence[int]) -> list[Doubled]:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGINT)
        return doubled(chunk)

    results = Shared(interrupted, range(1000), per_process=10).results()
    assert [item.value for chunk in results for item in chunk] == [n * 2 for n in range(1000)]
    assert capfd.readouterr().err == ""


def test_ctrl_c_here_stops_the_helpers_and_leaves_none_behind(
    two_cores: None, capfd: pytest.CaptureFixture[str]
) -> None:
    parent = os.getpid()

    def interrupted(chunk: Sequence[int]) -> list[Doubled]:
        if os.getpid() == parent and 0 not in chunk:  # the first chunk after forking
            raise KeyboardInterrupt
        return doubled(chunk)

    with pytest.raises(KeyboardInterrupt):
        Shared(interrupted, range(1000), per_process=10).results()
    assert multiprocessing.active_children() == []  # stopped and reaped: no zombie
    assert capfd.readouterr().err == ""


# --- the pipeline on a repo big enough to share -------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Plans and problems spread over many files: two plans of one name far apart, two plans
    declaring the same DAG, files that do not load and plans the schema rejects."""
    plans = tmp_path / "plans"
    plans.mkdir()
    for n in range(120):
        if n % 17 == 0:
            (plans / f"p{n:03d}.yaml").write_text("spec: [unclosed\n", encoding="utf-8")
        elif n % 23 == 0:
            write(plans / f"p{n:03d}.yaml", wedata_plan(f"plan-{n}", tasks=[]))
        elif n % 2:
            write(plans / f"p{n:03d}.yaml", wedata_plan(f"plan-{n}", tasks=[str(1000 + n)]))
        else:
            write(plans / f"p{n:03d}.yaml", dms_plan(f"plan-{n}", dags=[16000 + n]))
    write(plans / "p200.yaml", dms_plan("plan-3", dags=[17000]))
    write(plans / "p201.yaml", dms_plan("plan-201", dags=[16002]))
    return plans


def read_by_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 10**9)


def test_a_repo_read_by_helpers_validates_exactly_as_read_by_one_process(
    repo: Path, two_cores: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    readers = tmp_path / "readers"

    def noting_the_reader(path: Path) -> Any:
        with readers.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return load_file(path)

    monkeypatch.setattr(pipeline, "load_file", waiting_for_a_helper(noting_the_reader))
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 5)
    shared = pipeline.validated([repo], changed=frozenset({(repo / "p001.yaml").resolve()}))
    assert len(set(readers.read_text().split())) == 2
    read_by_one_process(monkeypatch)
    alone = pipeline.validated([repo], changed=frozenset({(repo / "p001.yaml").resolve()}))
    assert [str(d) for d in shared.diagnostics] == [str(d) for d in alone.diagnostics]
    assert any("already used" in d.message for d in shared.diagnostics)
    assert any("the same work" in d.message for d in shared.diagnostics)
    assert [p.name for p in shared.plans] == [p.name for p in alone.plans]
    assert (shared.files, shared.documents) == (alone.files, alone.documents)


def test_a_repo_read_by_helpers_plans_exactly_as_read_by_one_process(
    tmp_path: Path, two_cores: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(60):
        write(tmp_path / f"p{n:02d}.yaml", wedata_plan(f"plan-{n}", tasks=[str(1000 + n)]))
    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 5)
    shared = pipeline.changeset(pipeline.plans([tmp_path]), State())
    read_by_one_process(monkeypatch)
    alone = pipeline.changeset(pipeline.plans([tmp_path]), State())
    assert shared == alone
    assert len(shared.creates) == 60


def test_invalid_plans_are_the_news_whatever_the_state_load_beside_them_raised(
    repo: Path, two_cores: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged() -> State:
        raise StateError("state/journal.jsonl:3: damaged")

    monkeypatch.setattr(pipeline, "FILES_PER_PROCESS", 5)
    with pytest.raises(InvalidPlans):
        pipeline.plans_while([repo], damaged)
    valid = repo.parent / "valid"
    write(valid / "p.yaml", wedata_plan())
    with pytest.raises(StateError, match="damaged"):
        pipeline.plans_while([valid], damaged)


class Loose(BaseModel):
    """A model pickle's default way must carry: fields it does not declare, a private one."""

    model_config = ConfigDict(extra="allow")
    _seen: int = PrivateAttr(default=0)
    name: str


def test_a_typed_plan_sent_by_a_helper_comes_back_as_it_was_read(tmp_path: Path) -> None:
    written = wedata_plan(
        "typed",
        dates=[("2025-09-01", "2025-09-03"), ("2025-09-07", "2025-09-08")],
        executionWindow={"start": "01:00", "end": "06:00"},
        parameters={"mode": "repair"},
    )
    write(tmp_path / "p.yaml", written)
    (read,) = pipeline._read([str(tmp_path / "p.yaml")], expanding=True, typed=True)
    (checked,) = read.checked
    assert checked.plan is not None

    back = pickle.loads(parallel._dumps(read))

    assert back == read
    spec, sent = checked.plan.spec, back.checked[0].plan.spec
    assert type(sent) is type(spec)
    assert sent.model_fields_set == spec.model_fields_set
    assert sent.model_dump(mode="json") == spec.model_dump(mode="json")
    assert sent.dates[1].model_fields_set == spec.dates[1].model_fields_set
    assert back.checked[0].plan.locate("spec", "taskIds") == checked.plan.locate("spec", "taskIds")
    loose = Loose.model_validate({"name": "x", "other": 1})
    loose._seen = 2
    again = pickle.loads(parallel._dumps(loose))
    assert (again, again.model_extra, again._seen) == (loose, {"other": 1}, 2)
