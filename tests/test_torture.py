"""Torture: exactly-once under kill -9, injected faults, concurrent applies, a full or read-only
state directory, and recovery lookups made ambiguous by other backfills of the same DAGs and
dates, with the real `backfill apply` in a subprocess against the emulator on loopback.

Each test prints its figures (`pytest -s` shows them). BACKFILL_TORTURE_SCALE=10 makes every test
ten times larger; BACKFILL_TORTURE_SEED changes the random moments and faults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from click.testing import CliRunner
from factories import dms_plan, wedata_plan, write
from figures import report
from harness import created_cells, dms_span

from reconciler.cli import cli
from reconciler.domain import days
from reconciler.emulator.app import Emulator
from reconciler.emulator.dms import DmsService
from reconciler.emulator.faults import FaultConfig, Latency
from reconciler.emulator.server import EmulatorServer, start_in_thread
from reconciler.errors import StateError
from reconciler.providers import dms, wedata
from reconciler.state import (
    LockHolder,
    State,
    SubmissionRecord,
    SubmissionStatus,
    init_state,
    intent_details,
    load_state,
    open_state,
    read_lock_holder,
    verify_journal,
)

pytestmark = pytest.mark.torture

SCALE = max(1, int(os.environ.get("BACKFILL_TORTURE_SCALE", "1")))
SEED = int(os.environ.get("BACKFILL_TORTURE_SEED", "20251107"))
FIRST_DAY = date(2025, 1, 1)
RUN_TIMEOUT = 120.0 * SCALE
"""No subprocess of these tests may run longer than this."""

Cell = tuple[str, str]
"""(target, date): targets are unique across the plans of a test, so this names one backfill."""

UNSETTLED = (SubmissionStatus.PENDING, SubmissionStatus.UNKNOWN)
MAY_HAVE_RUN = (SubmissionStatus.SUBMITTED, *UNSETTLED)


# --- what the emulator created, and what the state says ---------------------------------------


def identity(provider: str, request: Mapping[str, Any]) -> str:
    """One submission as both sides can name it: WeData by its traceable plan name (it carries
    the submission key), DMS by DAG and dates."""
    if provider == wedata.NAME:
        return f"wedata:{request['DataBackfillPlanName']}"
    first, last = dms_span(request)
    return f"dms:{request['DagId']}:{first}:{last}"


def identities(state: State) -> dict[str, str]:
    """Submission key -> the identity of the request its latest intent journaled."""
    sent = intent_details(state, state.submissions.values())
    return {r.key: identity(r.provider, sent[r.key].request) for r in state.submissions.values()}


@dataclass
class Figures:
    """What a test measured; printed, then asserted."""

    name: str
    trials: int = 0
    kills: int = 0
    submissions: int = 0
    creates: int = 0
    duplicates: int = 0
    """Cells the emulator created more than once."""
    lost: int = 0
    """Creates the emulator accepted that the state does not account for."""
    phantoms: int = 0
    """Submitted records of the state that the emulator never created."""
    unsettled: set[tuple[str, int]] = field(default_factory=set)
    """Attempts (key, intent) that kills and faults left pending or unknown."""
    looked_up: int = 0
    imported: int = 0
    forgotten: int = 0
    applies: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def show(self) -> None:
        shown = {k: v for k, v in vars(self).items() if k not in ("name", "extra", "started")}
        shown["unsettled"] = len(self.unsettled)
        shown.update(self.extra)
        shown["seconds"] = round(time.monotonic() - self.started, 1)
        shown.update(seed=SEED, scale=SCALE)
        report(f"[torture] {self.name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


# --- a plans directory, a state directory and the emulator, driven through the CLI ------------


@dataclass(frozen=True)
class Limits:
    """What the apply subprocess may not do: write files beyond `file_size` bytes, or (as root)
    override file modes."""

    file_size: int | None = None
    no_root_overrides: bool = False


LIMITED = """
import ctypes, json, os, resource, sys
limits = json.loads(sys.argv[1])
if limits["file_size"] is not None:
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG as on a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size"], limits["file_size"]))
if limits["no_root_overrides"] and os.geteuid() == 0:
    # Root ignores file modes; without these capabilities (dropped for the exec) it does not.
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.executable, [sys.executable, "-m", "reconciler", *sys.argv[2:]])
"""
"""Applies `Limits` in a fresh process, then execs the CLI: no preexec_fn in a threaded pytest."""


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


class Apply:
    """A `backfill apply` running in the background; output goes to files (no pipe to fill)."""

    def __init__(self, process: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes]) -> None:
        self.process, self._out, self._err = process, out, err

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no handler, no cleanup, no last journal line

    def wait(self) -> Done:
        code = self.process.wait(timeout=RUN_TIMEOUT)
        texts = []
        for stream in (self._out, self._err):
            stream.seek(0)
            texts.append(stream.read().decode(errors="replace"))
            stream.close()
        return Done(code, *texts)


class Workspace:
    def __init__(self, root: Path, emulator: Emulator, url: str, env: dict[str, str]) -> None:
        self.root, self.emulator, self.url, self.env = root, emulator, url, env
        self.plans = root / "plans"
        self.state = root / "state"
        self.declared: set[Cell] = set()
        self.apply_seconds: list[float] = []
        init_state(self.state, actor={"user": "torture"})

    # plans

    # Files sort WeData and DMS plans alternately, so that both providers' calls are in flight
    # at any moment of a run (apply works through the plans in file order).

    def declare_wedata(self, plans: int, days_each: int, tasks: int = 2) -> None:
        """Plans whose every date is its own call (spec.chunk 1): many submissions."""
        last = (FIRST_DAY + timedelta(days=days_each - 1)).isoformat()
        for index in range(plans):
            targets = [str(7_100_000 + 100 * index + t) for t in range(tasks)]
            plan = wedata_plan(
                f"wd-{index}", tasks=targets, dates=[(FIRST_DAY.isoformat(), last)], chunk=1
            )
            write(self.plans / f"{2 * index:03d}-wd-{index}.yaml", plan)
            self.declared |= {(t, d) for t in targets for d in days(FIRST_DAY.isoformat(), last)}

    def declare_dms(self, plans: int, days_each: int, dags: int = 2) -> None:
        last = (FIRST_DAY + timedelta(days=days_each - 1)).isoformat()
        for index in range(plans):
            targets = [15_000 + 100 * index + d for d in range(dags)]
            plan = dms_plan(
                f"dms-{index}", dags=targets, dates=[(FIRST_DAY.isoformat(), last)], chunk=1
            )
            write(self.plans / f"{2 * index + 1:03d}-dms-{index}.yaml", plan)
            self.declared |= {
                (str(t), d) for t in targets for d in days(FIRST_DAY.isoformat(), last)
            }

    # the CLI

    def args(self, command: str, *extra: str) -> list[str]:
        common = ["--state-dir", str(self.state)]
        if command in ("apply", "plan"):
            common += ["--plans", str(self.plans)]
        if command in ("apply", "recover"):
            common += ["--endpoint", self.url]
        return [command, *common, *extra]

    def start(self, command: str, *extra: str, limits: Limits | None = None) -> Apply:
        argv = self.args(command, *extra)
        if limits is None:
            line = [sys.executable, "-m", "reconciler", *argv]
        else:
            line = [sys.executable, "-c", LIMITED, json.dumps(vars(limits)), *argv]
        out = (self.root / f"{command}.out").open("w+b")
        err = (self.root / f"{command}.err").open("w+b")
        process = subprocess.Popen(line, cwd=self.root, env=self.env, stdout=out, stderr=err)
        return Apply(process, out, err)

    def backfill(self, command: str, *extra: str, limits: Limits | None = None) -> Done:
        done = self.start(command, *extra, limits=limits).wait()
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def apply(self, *extra: str, limits: Limits | None = None) -> Done:
        started = time.monotonic()
        done = self.backfill("apply", "--yes", "--quiet", *extra, limits=limits)
        self.apply_seconds.append(round(time.monotonic() - started, 1))
        assert done.returncode in (0, 1), done.stderr
        return done

    def person(self, *args: str) -> None:
        """A person's `backfill state ...` command (in-process: one per unknown submission)."""
        result = CliRunner().invoke(
            cli, [*args, "--state-dir", str(self.state)], standalone_mode=False
        )
        assert result.exception is None, result.output
        assert result.return_value == 0, result.output

    # the emulator

    def calls(self) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/_emulator/calls", timeout=10)
        reply.raise_for_status()
        calls: list[dict[str, Any]] = reply.json()["calls"]
        return calls

    def stats(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.url}/_emulator/stats", timeout=10)
        reply.raise_for_status()
        stats: dict[str, Any] = reply.json()
        return stats

    def quiesce(self) -> None:
        """Wait until no request is being handled and none has arrived for a while: a killed
        client's last request may still be on its way in, and could still create a backfill."""
        # No deadline: every request the emulator holds is released after the delay its fault
        # configuration set, however slow the machine, so this ends; a server that never lets
        # one go is a bug the CI job's timeout-minutes bounds, not a figure a test asserts.
        quiet, last = 0, None
        while quiet < 3:
            # The server accepts every 20 ms: three quiet looks 30 ms apart cannot miss one.
            time.sleep(0.03)
            stats = self.stats()
            now = (stats["requests"], stats["in_flight"])
            quiet = quiet + 1 if stats["in_flight"] == 0 and now == last else 0
            last = now


# --- the checks -------------------------------------------------------------------------------


def audit(ws: Workspace, figures: Figures, *, final: bool = False) -> None:
    """Count duplicates, lost and phantom creates now; with `final`, also demand that every
    outcome is settled and that state and emulator cover exactly the declared cells."""
    ws.quiesce()
    calls = ws.calls()
    state = load_state(ws.state)
    records: dict[str, list[SubmissionRecord]] = defaultdict(list)
    named = identities(state)
    for record in state.submissions.values():
        records[named[record.key]].append(record)

    created = Counter(cell for call in calls for cell in created_cells(call))
    figures.creates = len(calls)
    figures.submissions = len(state.submissions)
    figures.duplicates = sum(1 for count in created.values() if count > 1)
    lost = []
    for call in calls:
        accounted = [
            r
            for r in records[identity(call["provider"], call["params"])]
            if r.status in UNSETTLED
            or (r.status is SubmissionStatus.SUBMITTED and r.remote_id == call["remote_id"])
        ]
        if not accounted:
            lost.append(call)
    figures.lost = len(lost)
    remote_ids = {call["remote_id"] for call in calls}
    submitted = [r for r in state.submissions.values() if r.status is SubmissionStatus.SUBMITTED]
    figures.phantoms = sum(1 for r in submitted if r.remote_id not in remote_ids)
    unsettled = [r for r in state.submissions.values() if r.status in UNSETTLED]
    figures.unsettled |= {(r.key, r.intent_seq) for r in unsettled}

    assert figures.duplicates == 0, [c for c, n in created.items() if n > 1][:10]
    assert not lost, lost[:3]
    assert figures.phantoms == 0
    # A kill mid-append leaves a torn last line: tolerated, and the next writer drops it.
    assert all("torn last line" in warning for warning in state.warnings), state.warnings
    if final:
        assert not unsettled
        covered = {
            (target, day)
            for r in state.submissions.values()
            if r.status in MAY_HAVE_RUN
            for target in r.targets
            for day in r.dates
        }
        assert covered == ws.declared
        assert set(created) == ws.declared
        assert verify_journal(ws.state) == []


def verdicts(ws: Workspace) -> Counter[str]:
    """How the unknown outcomes were settled, from the journal: `resolved:<status>` by a remote
    lookup, `imported` or `forgotten` by a person."""
    found: Counter[str] = Counter()
    for line in (ws.state / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "resolved":
            found[f"resolved:{event['data']['status']}"] += 1
        elif event["type"] in ("imported", "forgotten"):
            found[event["type"]] += 1
    return found


def settle(ws: Workspace, figures: Figures) -> None:
    """What a person does about unknown outcomes: `backfill recover` first (DMS looks them up),
    then, with the emulator's call log as the console to check, import or forget the rest."""
    ws.quiesce()
    before = sum(r.status in UNSETTLED for r in load_state(ws.state).submissions.values())
    recovered = ws.backfill("recover")
    assert recovered.returncode == 0, recovered.stderr
    state = load_state(ws.state)
    named = identities(state)
    left = [r for r in state.submissions.values() if r.status in UNSETTLED]
    figures.looked_up += before - len(left)
    created = {identity(c["provider"], c["params"]): c for c in ws.calls()}
    for record in sorted(left, key=lambda r: r.intent_seq):
        call = created.get(named[record.key])
        if call is not None:
            reason = f"the emulator's call log has it as {call['remote_id']}"
            ws.person(
                "state", "import", record.key, "--remote-id", call["remote_id"], "--reason", reason
            )
            figures.imported += 1
        else:
            ws.person("state", "forget", record.key, "--reason", "not in the emulator's call log")
            figures.forgotten += 1


def converge(ws: Workspace, figures: Figures, *extra: str, rounds: int = 20) -> None:
    """Settle, then apply again, until the plan has nothing left to do."""
    for _ in range(rounds):
        settle(ws, figures)
        planned = ws.backfill("plan", "--detailed-exitcode")
        if planned.returncode == 0:
            return
        assert planned.returncode == 2, planned.stderr
        ws.apply(*extra)
        figures.applies += 1
    pytest.fail(f"no convergence after {rounds} rounds: {figures}")


class Catch:
    """The emulator, able to hold back the reply to the next request for one action until
    released. A kill -9 then surely lands while that call is in flight (its intent journaled,
    its create made, its reply never heard), however slowly the machine runs the apply."""

    def __init__(self, app: Emulator) -> None:
        self.app = app
        self.caught = threading.Event()
        self._released = threading.Event()
        self._action: str | None = None
        self._lock = threading.Lock()

    def arm(self, action: str) -> None:
        with self._lock:
            self._action = action
            self.caught.clear()
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._action = None
        self._released.set()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        reply = self.app(environ, start_response)
        # Both signing schemes name the action in a header: TC3 for WeData, ACS3 for DMS.
        action = environ.get("HTTP_X_TC_ACTION") or environ.get("HTTP_X_ACS_ACTION")
        with self._lock:
            hold = action == self._action and not self.caught.is_set()
            if hold:
                self.caught.set()
        if hold:
            self._released.wait(RUN_TIMEOUT)
        return reply


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def cli_env(cli_env: dict[str, str]) -> dict[str, str]:
    # DMS at the same pace as WeData, so that mixed runs take no longer than needed.
    return {**cli_env, "BACKFILL_ALIYUN_RATE_LIMIT": "20"}


@pytest.fixture
def workspace(
    tmp_path: Path, serve_emulator: Callable[..., tuple[Emulator, str]], cli_env: dict[str, str]
) -> Callable[[FaultConfig], Workspace]:
    def make(faults: FaultConfig) -> Workspace:
        # DMS has no documented limit: the emulator enforces none, the client paces at 20/s.
        emulator, url = serve_emulator(faults=faults, rate_limits={dms.NAME: None})
        return Workspace(tmp_path, emulator, url, cli_env)

    return make


@pytest.fixture
def catching(
    workspace: Callable[[FaultConfig], Workspace],
) -> Iterator[Callable[[FaultConfig], tuple[Workspace, Catch]]]:
    """A workspace whose emulator is served behind a `Catch`."""
    served: list[tuple[EmulatorServer, Catch]] = []

    def make(faults: FaultConfig) -> tuple[Workspace, Catch]:
        ws = workspace(faults)
        catch = Catch(ws.emulator)
        server, ws.url = start_in_thread(catch)  # type: ignore[arg-type]
        served.append((server, catch))
        return ws, catch

    yield make
    for server, catch in served:
        catch.release()
        server.shutdown()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


# --- kill -9 ----------------------------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing_and_duplicates_nothing(
    catching: Callable[[FaultConfig], tuple[Workspace, Catch]], rng: random.Random
) -> None:
    ws, catch = catching(FaultConfig(latency=Latency(5, 40), seed=SEED))
    ws.declare_wedata(plans=5 * SCALE, days_each=20)
    ws.declare_dms(plans=5 * SCALE, days_each=10)
    figures = Figures("kill -9")
    # Two trials in ten catch a call of one provider in flight before the kill; the others kill
    # at a random moment after the run's first request, however long the start-up took.
    caught_in = {0: wedata.ACTION, 1: dms.ACTION}

    for trial in range(10 * SCALE):
        action = caught_in.get(trial % 10)
        if action is not None:
            catch.arm(action)
        requests = ws.emulator.stats()["requests"]
        running = ws.start("apply", "--yes", "--quiet")
        if action is not None:
            while not catch.caught.wait(0.01) and running.running():
                pass
            time.sleep(rng.uniform(0, 0.3))
        else:
            while ws.emulator.stats()["requests"] == requests and running.running():
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.6))
        if running.running():
            running.kill()
            figures.kills += 1
        catch.release()
        done = running.wait()
        assert done.returncode in (0, 1, -9), done.stderr
        assert "Traceback" not in done.stderr
        figures.trials += 1
        audit(ws, figures)
        if trial % 5 == 4:
            # Settled now and then, so that forgotten submissions are resubmitted under fire.
            settle(ws, figures)

    converge(ws, figures)
    audit(ws, figures, final=True)
    figures.show()
    assert figures.kills >= 5 * SCALE
    assert figures.creates == figures.submissions  # one create per submission, no more
    # Kills caught calls in flight (surely in the trials that hold one): a lookup settles the
    # DMS ones it can tell apart, a person the rest (the fault tests settle many by lookup).
    assert figures.imported + figures.forgotten + figures.looked_up > 0


def test_recover_at_once_after_a_kill_does_not_race_a_create_still_in_flight(
    workspace: Callable[[FaultConfig], Workspace],
) -> None:
    # Every create takes 1.5 s at the server: the kill comes while it is being handled.
    ws = workspace(FaultConfig(slow_rate=1.0, slow_ms=1_500, seed=SEED))
    ws.declare_dms(plans=1, days_each=1, dags=1)
    figures = Figures("recover at once after a kill")
    running = ws.start("apply", "--yes", "--quiet")
    # until the create is in flight (however busy the machine), or the apply ended without one
    while ws.stats()["in_flight"] == 0 and running.running():
        time.sleep(0.01)
    running.kill()
    running.wait()
    figures.kills = 1

    # No waiting for the server to go quiet: what an impatient person or the next CI run does.
    assert ws.backfill("recover").returncode == 0
    httpx.post(f"{ws.url}/_emulator/faults", json={"seed": SEED}).raise_for_status()
    ws.apply()
    figures.applies = 1
    audit(ws, figures)
    figures.show()


# --- injected faults --------------------------------------------------------------------------


def test_fault_rates_converge_over_reruns_with_zero_duplicates(
    workspace: Callable[[FaultConfig], Workspace], rng: random.Random
) -> None:
    faults = FaultConfig(
        latency=Latency(10, 60),
        throttle_rate=0.2,
        error_rate=0.1,
        timeout_after_commit_rate=0.05,
        reset_after_commit_rate=0.05,
        slow_rate=0.05,
        slow_ms=300,
        hang_ms=3_000,
        seed=rng.randrange(2**32),
    )
    ws = workspace(faults)
    ws.declare_wedata(plans=2 * SCALE, days_each=12)
    ws.declare_dms(plans=1 * SCALE, days_each=12)
    figures = Figures("fault rates")

    first = ws.apply("--timeout", "1")
    figures.applies += 1
    assert first.returncode == 1  # some outcomes are unknown: they need a person
    audit(ws, figures)
    converge(ws, figures, "--timeout", "1")
    audit(ws, figures, final=True)
    settled = verdicts(ws)
    figures.extra = {
        "injected": ws.stats()["faults"],
        "verdicts": dict(settled),
        "fault_seed": faults.seed,
        "apply_seconds": ws.apply_seconds,
    }
    figures.show()
    injected = ws.stats()["faults"]
    assert injected["throttle"] > 0
    assert injected["error"] > 0
    assert injected["timeout_after_commit"] + injected["reset_after_commit"] > 0
    # 503s before commit were settled as not run, lost replies after commit as run.
    assert settled["resolved:missing"] + settled["forgotten"] > 0
    assert settled["resolved:submitted"] + settled["imported"] > 0


# --- ambiguous lookups: several state directories back-fill the same DAGs and dates -----------


@dataclass
class Window:
    """What one apply of one state directory did: the journal lines it wrote and the creates
    the emulator accepted meanwhile. Applies run one at a time, so this is who made what, which
    the test knows and the lookups must not guess wrong."""

    state: str
    revision: int
    seqs: range
    calls: list[dict[str, Any]]


class Backfills:
    """State directories that back-fill the same DMS DAGs and dates, one apply at a time."""

    def __init__(self, root: Path, emulator: Emulator, url: str, env: dict[str, str]) -> None:
        self.root, self.emulator, self.url, self.env = root, emulator, url, env
        self.states: dict[str, Workspace] = {}
        self.revisions: dict[str, int] = {}
        self.windows: list[Window] = []
        self.unclear: Counter[str] = Counter()
        self.scheduled = 0
        [self.dms] = [s for s in emulator.services if isinstance(s, DmsService)]

    def declare(self, state: str, revision: int, dags: list[int], last: str) -> Workspace:
        """`state` back-fills every DAG for FIRST_DAY..last, two days a call."""
        ws = self.states.get(state) or Workspace(self.root, self.emulator, self.url, self.env)
        ws.plans, ws.state = self.root / f"plans-{state}", self.root / state
        init_state(ws.state, actor={"user": "torture"})  # once: a second init changes nothing
        ws.declared = set()
        for index, dag in enumerate(dags):
            dates = [(FIRST_DAY.isoformat(), last)]
            plan = dms_plan(f"dms-{index}", dags=[dag], dates=dates, chunk=2, revision=revision)
            write(ws.plans / f"dms-{index}.yaml", plan)
            ws.declared |= {(str(dag), d) for d in days(FIRST_DAY.isoformat(), last)}
        self.states[state], self.revisions[state] = ws, revision
        return ws

    def faults(self, config: FaultConfig) -> None:
        reply = httpx.post(f"{self.url}/_emulator/faults", json=config.to_json(), timeout=10)
        reply.raise_for_status()

    def apply(self, state: str) -> None:
        ws = self.states[state]
        ws.quiesce()
        before, first = len(ws.calls()), load_state(ws.state).seq
        ws.apply("--timeout", "1")
        ws.quiesce()
        last = load_state(ws.state).seq
        calls = ws.calls()[before:]
        self.windows.append(Window(state, self.revisions[state], range(first + 1, last + 1), calls))

    def schedule_a_run(self, rng: random.Random) -> None:
        """DMS runs a DAG of the test on its own schedule, for one of the dates back-filled."""
        target, day = rng.choice(sorted(next(iter(self.states.values())).declared))
        self.dms.run_on_schedule(int(target), date.fromisoformat(day))
        self.scheduled += 1

    def recover(self, state: str, figures: Figures) -> None:
        ws = self.states[state]
        ws.quiesce()
        before = sum(r.status in UNSETTLED for r in load_state(ws.state).submissions.values())
        recovered = ws.backfill("recover")
        assert recovered.returncode == 0, recovered.stderr
        for line in recovered.stdout.splitlines():
            if line.startswith("still unknown: "):
                self.unclear[_why_unclear(line)] += 1
        after = sum(r.status in UNSETTLED for r in load_state(ws.state).submissions.values())
        figures.looked_up += before - after

    def settle(self, state: str, figures: Figures) -> None:
        """A person settles what the lookup left, knowing which creates the state's own applies
        made (the console shows who started a run; here, the windows do)."""
        ws = self.states[state]
        current = load_state(ws.state)
        named = identities(current)
        for record in sorted(current.submissions.values(), key=lambda r: r.intent_seq):
            if record.status not in UNSETTLED:
                continue
            [window] = [w for w in self.windows if w.state == state and record.intent_seq in w.seqs]
            made = [
                c for c in window.calls if identity(c["provider"], c["params"]) == named[record.key]
            ]
            if made:
                [call] = made
                reason = f"this state's apply made {call['remote_id']}"
                ws.person(
                    "state",
                    "import",
                    record.key,
                    "--remote-id",
                    call["remote_id"],
                    "--reason",
                    reason,
                )
                figures.imported += 1
            else:
                ws.person("state", "forget", record.key, "--reason", "its apply made no such run")
                figures.forgotten += 1

    def converge(self, state: str, figures: Figures, rng: random.Random) -> None:
        """Apply, look up, settle, until the state covers every declared cell."""
        for _ in range(20):
            self.schedule_a_run(rng)
            self.recover(state, figures)
            self.settle(state, figures)
            if self.states[state].backfill("plan", "--detailed-exitcode").returncode == 0:
                return
            self.apply(state)
            figures.applies += 1
        pytest.fail(f"{state} did not converge: {figures}")

    def audit(self, figures: Figures, *, final: bool = False) -> None:
        """Per state directory, against the creates its own applies made: none created twice,
        none the state does not account for, no remote id the state holds that is not one of
        its own creates (another directory's run taken for its own is a phantom)."""
        figures.creates = len(self.emulator.calls.all())
        figures.submissions = figures.duplicates = figures.lost = figures.phantoms = 0
        for name, ws in self.states.items():
            state = load_state(ws.state)
            records = list(state.submissions.values())
            named = identities(state)
            figures.submissions += len(records)
            figures.unsettled |= {(r.key, r.intent_seq) for r in records if r.status in UNSETTLED}
            windows = [w for w in self.windows if w.state == name]
            made = [c for w in windows for c in w.calls]
            created = Counter(
                (w.revision, cell) for w in windows for c in w.calls for cell in created_cells(c)
            )
            figures.duplicates += sum(1 for count in created.values() if count > 1)
            for call in made:
                made_as = identity(call["provider"], call["params"])
                if not any(
                    named[r.key] == made_as
                    and (
                        r.status in UNSETTLED
                        or (
                            r.status is SubmissionStatus.SUBMITTED
                            and r.remote_id == call["remote_id"]
                        )
                    )
                    for r in records
                ):
                    figures.lost += 1
            own = {(identity(c["provider"], c["params"]), c["remote_id"]) for c in made}
            held = Counter(r.remote_id for r in records if r.status is SubmissionStatus.SUBMITTED)
            figures.phantoms += sum(
                1
                for r in records
                if r.status is SubmissionStatus.SUBMITTED
                and ((named[r.key], r.remote_id) not in own or held[r.remote_id] > 1)
            )
            if final:
                assert not [r for r in records if r.status in UNSETTLED]
                revision = self.revisions[name]
                covered = {
                    (target, day)
                    for r in records
                    if r.status in MAY_HAVE_RUN and r.revision == revision
                    for target in r.targets
                    for day in r.dates
                }
                assert covered == ws.declared, name
                assert {cell for (rev, cell) in created if rev == revision} == ws.declared, name
                assert verify_journal(ws.state) == []
        assert figures.duplicates == 0
        assert figures.lost == 0
        assert figures.phantoms == 0


def _why_unclear(line: str) -> str:
    """The reason a lookup gave for leaving a submission unknown, in a word."""
    reasons = {
        "may also be submission": "another unknown could have made it",
        "instances for": "runs for some dates only",
        "since the intent (": "two runs of a date",
        "may or may not be this request's": "a run close to the intent",
        "has not started yet": "first run not started",
        "may still be running": "too early to say",
    }
    return next((word for text, word in reasons.items() if text in line), "other")


def test_ambiguous_lookups_across_state_directories_never_settle_on_another_run(
    tmp_path: Path,
    serve_emulator: Callable[..., tuple[Emulator, str]],
    cli_env: dict[str, str],
    rng: random.Random,
    emulator_clock: Any,
) -> None:
    emulator, url = serve_emulator(clock=emulator_clock, rate_limits={dms.NAME: None})
    backfills = Backfills(tmp_path, emulator, url, cli_env)
    # Four groups of DAGs; the state directories below back-fill overlapping sets of them.
    one, two, three, four = ([16_000 + 10 * g + d for d in range(SCALE)] for g in range(1, 5))
    last = (FIRST_DAY + timedelta(days=7)).isoformat()
    figures = Figures("ambiguous lookups")
    faulty = FaultConfig(
        latency=Latency(5, 30),
        error_rate=0.25,  # 503 before anything runs: unknown, and nothing to find
        timeout_after_commit_rate=0.5,  # it ran, the reply is lost: unknown, a run to find
        hang_ms=3_000,
        seed=rng.randrange(2**32),
    )

    # Five minutes ago (by DMS's clock), one state directory back-filled three of them.
    backfills.declare("earlier", 1, [*one, *two, *three], last)
    emulator_clock.advance(-300)
    backfills.apply("earlier")
    emulator_clock.advance(300)

    # Now another: every call of its revision 1 meets a 503 (unknown, nothing ran); unsettled,
    # it moves to revision 2 of the same dates (plus a DAG only the earlier one ran), where
    # replies are lost after the run. The runs of one revision must not settle the other's.
    backfills.faults(dataclasses.replace(faulty, error_rate=1.0, timeout_after_commit_rate=0))
    backfills.declare("now", 1, [*one, *two], last)
    backfills.apply("now")
    backfills.recover("now", figures)
    backfills.faults(faulty)
    backfills.declare("now", 2, [*one, *two, *three], last)
    backfills.apply("now")
    backfills.audit(figures)
    backfills.converge("now", figures, rng)

    # A third, seconds after the second's runs of two of its groups, and a group of its own.
    backfills.declare("later", 1, [*three, *four], last)
    backfills.apply("later")
    backfills.audit(figures)
    backfills.converge("later", figures, rng)

    backfills.audit(figures, final=True)
    figures.applies += 4
    settled = Counter[str]()
    for ws in backfills.states.values():
        settled.update(verdicts(ws))
    figures.trials = len(backfills.states)
    figures.extra = {
        "verdicts": dict(settled),
        "unclear": dict(backfills.unclear),
        "scheduled_runs": backfills.scheduled,
        "injected": backfills.states["now"].stats()["faults"],
        "fault_seed": faulty.seed,
    }
    figures.show()
    # Lost replies were settled by lookup, and lookups met ambiguity they refused to settle.
    assert settled["resolved:submitted"] > 0
    assert sum(n for why, n in backfills.unclear.items() if why != "too early to say") > 0


# --- concurrent applies -----------------------------------------------------------------------

LOCKED = re.compile(r"is (?:still )?locked by `backfill apply` \(pid (\d+), user ")


# --- damaged state between runs ---------------------------------------------------------------


def committed(ws: Workspace, *args: str) -> str:
    """git in the workspace, which is a repository whose commits hold the plans and the state."""
    done = subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args],
        cwd=ws.root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _snapshot_lines(ws: Workspace, edit: Callable[[list[str]], list[str]]) -> None:
    path = ws.state / "snapshot.json"
    if not path.exists():
        return  # a run killed before its first checkpoint leaves none
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], *edit(lines[1:-1]), lines[-1]]))


def _mangle_a_snapshot_line(ws: Workspace, rng: random.Random) -> None:
    """A merge that dropped a submission, shrank its dates or changed its status."""

    def edit(lines: list[str]) -> list[str]:
        if len(lines) < 2:
            return lines
        at = rng.randrange(len(lines))
        how = rng.randrange(3)
        if how == 0:
            kept = [line for i, line in enumerate(lines) if i != at]
            return [
                *(line.rstrip(",\n") + ",\n" for line in kept[:-1]),
                kept[-1].rstrip(",\n") + "\n",
            ]
        if how == 1:
            lines[at] = re.sub(r'"dates":\["[^"]*"', '"dates":["2025-01-01"', lines[at])
            return lines
        lines[at] = lines[at].replace('"status":"submitted"', '"status":"forgotten"')
        return lines

    _snapshot_lines(ws, edit)


def _delete_the_snapshot(ws: Workspace, rng: random.Random) -> None:
    (ws.state / "snapshot.json").unlink(missing_ok=True)


def _tear_the_journal(ws: Workspace, rng: random.Random) -> None:
    """A write cut short: part of a line, no newline."""
    with (ws.state / "journal.jsonl").open("ab") as handle:
        handle.write(b'{"actor":{"user":"ci"},"data":{"key":"'[: rng.randrange(5, 38)])


def _insert_blank_lines(ws: Workspace, rng: random.Random) -> None:
    path = ws.state / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    at = rng.randrange(len(lines) + 1)
    path.write_bytes(b"".join([*lines[:at], b"\n", *lines[at:]]))


def _edit_a_journal_line(ws: Workspace, rng: random.Random) -> None:
    path = ws.state / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    at = rng.randrange(len(lines))
    lines[at] = lines[at].replace(b'"submitted"', b'"forgotten"', 1).replace(b"7", b"8", 1)
    path.write_bytes(b"".join(lines))


def _swap_journal_lines(ws: Workspace, rng: random.Random) -> None:
    path = ws.state / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    at = rng.randrange(len(lines) - 1)
    lines[at], lines[at + 1] = lines[at + 1], lines[at]
    path.write_bytes(b"".join(lines))


def _cut_the_journal_and_its_snapshot(ws: Workspace, rng: random.Random) -> None:
    """A bad merge or a restore that took an older journal (and no snapshot): events lost."""
    path = ws.state / "journal.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data) // 3, len(data))])
    (ws.state / "snapshot.json").unlink(missing_ok=True)


def _an_older_state_wholesale(ws: Workspace, rng: random.Random) -> None:
    """Journal and snapshot both from an earlier commit: consistent, but events are missing."""
    commits = committed(ws, "log", "--format=%H", "--", "state/journal.jsonl").split()
    if len(commits) > 1:
        older = rng.choice(commits[1:])
        (ws.state / "snapshot.json").unlink(missing_ok=True)
        listed = committed(ws, "ls-tree", "--name-only", older, "state/")
        committed(ws, "checkout", older, "--", *listed.split())


DAMAGES: tuple[Callable[[Workspace, random.Random], None], ...] = (
    _mangle_a_snapshot_line,
    _delete_the_snapshot,
    _tear_the_journal,
    _insert_blank_lines,
    _edit_a_journal_line,
    _swap_journal_lines,
    _cut_the_journal_and_its_snapshot,
    _an_older_state_wholesale,
)


def test_a_state_damaged_between_runs_is_refused_or_rebuilt_and_never_sends_twice(
    workspace: Callable[[FaultConfig], Workspace], rng: random.Random
) -> None:
    ws = workspace(FaultConfig(latency=Latency(5, 30), seed=SEED))
    ws.declare_wedata(plans=3 * SCALE, days_each=8)
    ws.declare_dms(plans=3 * SCALE, days_each=6)
    committed(ws, "init", "-q")
    committed(ws, "add", "-A")
    committed(ws, "commit", "-q", "-m", "plans and an empty state")
    figures = Figures("damaged state")
    outcomes: Counter[str] = Counter()
    for trial in range(len(DAMAGES) * SCALE):
        # some of the work, then the state committed as the flow (or a person) does
        running = ws.start("apply", "--yes", "--quiet")
        time.sleep(rng.uniform(0.5, 2.0))
        if running.running():
            running.kill()
            figures.kills += 1
        running.wait()
        audit(ws, figures)
        committed(ws, "add", "-A", "state")
        committed(ws, "commit", "-q", "--allow-empty", "-m", f"state after trial {trial}")
        damage = DAMAGES[trial] if trial < len(DAMAGES) else rng.choice(DAMAGES)
        damage(ws, rng)
        done = ws.apply()
        figures.applies += 1
        refused = "error: " in done.stderr and str(ws.state) in done.stderr
        outcomes[f"{damage.__name__.strip('_')}:{'refused' if refused else 'went on'}"] += 1
        if refused:
            # what the refusal says to do: restore the state from git
            committed(ws, "checkout", "HEAD", "--", "state")
        audit(ws, figures)
        figures.trials += 1
        if trial % 4 == 3:
            settle(ws, figures)
    converge(ws, figures)
    audit(ws, figures, final=True)
    figures.extra["outcomes"] = dict(sorted(outcomes.items()))
    figures.show()
    assert not any(
        k.startswith(("edit_a", "swap_", "cut_", "an_older")) and k.endswith("went on")
        for k in outcomes
    ), outcomes
    assert not any(
        k.startswith(("mangle", "delete_the", "tear_", "insert_")) and k.endswith("refused")
        for k in outcomes
    ), outcomes


def test_concurrent_applies_take_turns_on_one_state_directory(
    workspace: Callable[[FaultConfig], Workspace],
) -> None:
    ws = workspace(FaultConfig(latency=Latency(50, 100), seed=SEED))
    ws.declare_wedata(plans=1 * SCALE, days_each=30)
    ws.declare_dms(plans=1 * SCALE, days_each=15)
    figures = Figures("concurrent applies")

    timeouts = ["0", "0", "60", "60"] * SCALE
    runs = [ws.start("apply", "--yes", "--quiet", "--lock-timeout", t) for t in timeouts]
    pids = {run.pid for run in runs}
    results = [(t, run.wait()) for t, run in zip(timeouts, runs, strict=True)]
    figures.trials = len(runs)

    refused = 0
    for lock_timeout, done in results:
        assert "Traceback" not in done.stderr
        if done.returncode == 0:
            continue
        assert lock_timeout == "0", done.stderr
        refused += 1
        # Without --lock-timeout a loser fails at once, naming the apply that holds the lock.
        match = LOCKED.search(done.stderr)
        assert match is not None, done.stderr
        assert int(match[1]) in pids
    worked = [d for _t, d in results if d.returncode == 0 and "Apply complete" in d.stdout]
    assert len(worked) >= 1
    audit(ws, figures, final=True)
    figures.extra = {"refused": refused, "worked": len(worked)}
    figures.show()
    assert ws.backfill("plan", "--detailed-exitcode").returncode == 0
    assert read_lock_holder(ws.state) is None


def test_a_refused_writer_names_the_holder_even_in_the_instant_it_took_the_lock(
    tmp_path: Path,
) -> None:
    holder = LockHolder("0badc0de", 4242, "ci-runner", "ci", "backfill apply", "2026-01-01")
    init_state(tmp_path, actor={"user": "t"})
    fd = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # The holder writes its record right after taking the flock, as Lock.acquire does.
        record = json.dumps(dataclasses.asdict(holder)).encode() + b"\n"
        writing = threading.Timer(0.05, os.pwrite, (fd, record, 0))
        writing.start()
        with pytest.raises(StateError) as refused:
            open_state(tmp_path, actor={"user": "t"}, command="backfill apply", lock_timeout=0)
        writing.join()
    finally:
        os.close(fd)
    assert "pid 4242" in str(refused.value)


def test_killing_the_lock_holder_lets_a_waiting_apply_take_over(
    workspace: Callable[[FaultConfig], Workspace],
) -> None:
    ws = workspace(FaultConfig(latency=Latency(20, 60), seed=SEED))
    ws.declare_wedata(plans=1 * SCALE, days_each=20)
    ws.declare_dms(plans=1 * SCALE, days_each=10)
    figures = Figures("kill the lock holder")

    runs = {}
    for _ in range(3):
        run = ws.start("apply", "--yes", "--quiet", "--lock-timeout", "60")
        runs[run.pid] = run
    # until one holds the lock and has called (however busy the machine), or none runs
    holder = read_lock_holder(ws.state)
    while (holder is None or not ws.calls()) and any(r.running() for r in runs.values()):
        time.sleep(0.05)
        holder = read_lock_holder(ws.state)
    assert holder is not None
    assert holder.pid in runs
    runs[holder.pid].kill()
    figures.kills = 1
    results = {pid: run.wait() for pid, run in runs.items()}
    figures.trials = len(runs)
    assert results[holder.pid].returncode == -9
    others = [done for pid, done in results.items() if pid != holder.pid]
    assert all("Traceback" not in d.stderr for d in others)
    # The next one in line got the lock; the killed one's calls in flight need a person.
    assert any("Apply complete" in d.stdout for d in others)
    audit(ws, figures)
    converge(ws, figures)
    audit(ws, figures, final=True)
    figures.show()


# --- full disk, read-only state directory -----------------------------------------------------


def state_files(ws: Workspace) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in ws.state.iterdir() if p.is_file() and p.name != "lock"}


def assert_no_torn_snapshot(ws: Workspace) -> None:
    assert not list(ws.state.glob(".snapshot.json.*")), "a snapshot temp file was left behind"
    assert verify_journal(ws.state) == []
    load_state(ws.state)


def test_a_full_disk_during_apply_is_a_clear_error_and_nothing_is_sent_unjournaled(
    workspace: Callable[[FaultConfig], Workspace],
) -> None:
    ws = workspace(FaultConfig(latency=Latency(5, 20), seed=SEED))
    ws.declare_wedata(plans=1 * SCALE, days_each=20)
    ws.declare_dms(plans=1 * SCALE, days_each=10)
    figures = Figures("full disk")

    journal = ws.state / "journal.jsonl"
    for _ in range(2):
        # Room for a dozen more events or so: the disk fills up in the middle of the run.
        limit = (journal.stat().st_size if journal.exists() else 0) + 12_000
        done = ws.apply(limits=Limits(file_size=limit))
        figures.trials += 1
        assert done.returncode == 1
        assert "no space left on the device" in done.stderr, done.stderr
        assert "journal.jsonl" in done.stderr or "snapshot.json" in done.stderr
        assert journal.stat().st_size <= limit
        assert_no_torn_snapshot(ws)
        # Every create the emulator accepted has its intent in the journal.
        audit(ws, figures)
    figures.extra = {"calls_before_space": figures.creates}
    converge(ws, figures)
    audit(ws, figures, final=True)
    figures.show()


def test_a_read_only_state_directory_refuses_apply_before_any_call(
    workspace: Callable[[FaultConfig], Workspace],
) -> None:
    ws = workspace(FaultConfig(seed=SEED))
    ws.declare_wedata(plans=1, days_each=3)
    assert ws.apply().returncode == 0
    ws.declare_dms(plans=1, days_each=3)
    before, calls_before = state_files(ws), len(ws.calls())

    with read_only(ws.state):
        done = ws.apply(limits=Limits(no_root_overrides=True))
    assert done.returncode == 1
    assert "the state directory is not writable" in done.stderr, done.stderr
    assert len(ws.calls()) == calls_before
    assert state_files(ws) == before


def test_a_state_directory_made_read_only_during_apply_keeps_its_snapshot_whole(
    workspace: Callable[[FaultConfig], Workspace],
) -> None:
    ws = workspace(FaultConfig(latency=Latency(50, 100), seed=SEED))
    ws.declare_wedata(plans=1, days_each=3)
    assert ws.apply().returncode == 0
    ws.declare_wedata(plans=1 * SCALE, days_each=30)
    ws.declare_dms(plans=1 * SCALE, days_each=15)
    snapshot = (ws.state / "snapshot.json").read_bytes()
    figures = Figures("read-only during apply")

    running = ws.start("apply", "--yes", "--quiet", limits=Limits(no_root_overrides=True))
    # until it is well into its calls (however busy the machine), or it ended
    while len(ws.calls()) < 5 and running.running():
        time.sleep(0.05)
    with read_only(ws.state):
        done = running.wait()
    figures.trials = 1
    # The journal was open already and took every event; the snapshot could not be replaced.
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "snapshot.json: the state directory is not writable" in done.stderr, done.stderr
    assert (ws.state / "snapshot.json").read_bytes() == snapshot
    assert_no_torn_snapshot(ws)
    audit(ws, figures)
    converge(ws, figures)
    audit(ws, figures, final=True)
    figures.show()


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """The directory and its files read-only (r-x, r--) for the duration."""
    paths = [directory, *directory.iterdir()]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)
