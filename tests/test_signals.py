"""SIGINT/SIGTERM during apply: stop dispatching, finish and journal what is in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from factories import wedata_plan, write

from reconciler.emulator.app import Emulator
from reconciler.emulator.server import start_in_thread
from reconciler.providers.tc3 import TencentCredentials
from reconciler.state import SubmissionStatus, init_state, load_state


class Gate:
    """The emulator behind a gate that lets a given number of API requests through and holds
    the rest, in flight as far as the client knows, until it opens. So a signal surely comes
    while calls are in flight, however slowly the machine runs the apply."""

    def __init__(self, app: Emulator, passes: int) -> None:
        self.app = app
        self._passes = passes
        self._open = False
        self._held = 0
        self._inside = 0
        self._changed = threading.Condition()
        self.url = ""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._changed:
            self._inside += 1
            if not self._open and self._passes == 0:
                self._held += 1
                self._changed.notify_all()
                self._changed.wait_for(lambda: self._open)
                self._held -= 1
            elif not self._open:
                self._passes -= 1
        try:
            return self.app(environ, start_response)
        finally:
            with self._changed:
                self._inside -= 1
                self._changed.notify_all()

    def wait_until_holding(self) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self._held > 0, timeout=60), "nothing held"

    def open(self) -> None:
        with self._changed:
            self._open = True
            self._changed.notify_all()

    def wait_until_idle(self) -> None:
        """Until every request that came in has been answered (so its create, if any, is made)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._inside == 0, timeout=60), "still busy"


@pytest.fixture
def gate(emulator: Emulator) -> Iterator[Gate]:
    gate = Gate(emulator, passes=2)
    server, gate.url = start_in_thread(gate)  # type: ignore[arg-type]
    yield gate
    gate.open()
    server.shutdown()


class Apply:
    """`backfill apply` in a subprocess, its output read as it comes."""

    def __init__(self, root: Path, url: str, creds: TencentCredentials) -> None:
        if not (root / "state").exists():
            init_state(root / "state", actor={"user": "test"})
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("BACKFILL_", "TENCENTCLOUD_"))
        }
        env.update(TENCENTCLOUD_SECRET_ID=creds.secret_id, TENCENTCLOUD_SECRET_KEY=creds.secret_key)
        command = ["apply", "--yes", "--parallel", "2", "--endpoint", url]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *command],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._seen = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self._seen:
                lines.append(line)
                self._seen.notify_all()
        with self._seen:
            lines.append("")  # the end of the stream
            self._seen.notify_all()

    def wait_for(self, lines: list[str], start: str) -> None:
        """Until `lines` (self.out or self.err) has a line starting with `start`."""

        def found() -> bool:
            return any(line.startswith(start) for line in lines)

        with self._seen:
            self._seen.wait_for(lambda: found() or "" in lines, timeout=60)
            assert found(), f"no line starting {start!r}: {lines}"

    def finish(self) -> int:
        code = self.process.wait(timeout=60)
        for reader in self._readers:
            reader.join(timeout=60)
        return code

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)


def plan_of_twenty(root: Path) -> None:
    write(root / "plans" / "p.yaml", wedata_plan(dates=[("2025-09-01", "2025-09-20")], chunk=1))


def interrupt(tmp_path: Path, gate: Gate, creds: TencentCredentials, signum: int) -> Apply:
    """An apply of twenty calls, signalled once while calls are held in flight, and seen to
    take the signal."""
    plan_of_twenty(tmp_path)
    running = Apply(tmp_path, gate.url, creds)
    running.wait_for(running.out, "[1/")
    gate.wait_until_holding()
    running.send(signal.Signals(signum))
    running.wait_for(running.err, f"{signal.Signals(signum).name}: dispatching nothing more")
    return running


def test_sigint_finishes_the_calls_in_flight_and_exits_130(
    tmp_path: Path, emulator: Emulator, gate: Gate, tencent_credentials: TencentCredentials
) -> None:
    running = interrupt(tmp_path, gate, tencent_credentials, signal.SIGINT)
    gate.open()  # the calls in flight are answered
    assert running.finish() == 130, running.err
    err = "".join(running.err)
    assert "Interrupted by SIGINT" in err
    assert "Traceback" not in err
    records = load_state(tmp_path / "state").submissions.values()
    assert {r.status for r in records} == {SubmissionStatus.SUBMITTED}
    assert len(records) == len(emulator.calls.all()) < 20
    # The next apply makes exactly the rest.
    again = Apply(tmp_path, gate.url, tencent_credentials)
    assert again.finish() == 0, again.err
    names = [c["params"]["DataBackfillPlanName"] for c in emulator.calls.all()]
    assert len(names) == len(set(names)) == 20


def test_a_second_sigterm_exits_at_once_and_leaves_unknowns_that_are_not_resubmitted(
    tmp_path: Path, emulator: Emulator, gate: Gate, tencent_credentials: TencentCredentials
) -> None:
    running = interrupt(tmp_path, gate, tencent_credentials, signal.SIGTERM)
    running.send(signal.SIGTERM)  # while the calls in flight are still held
    assert running.finish() == 143, running.err
    gate.open()
    gate.wait_until_idle()  # the requests that were in flight reach the emulator
    state = load_state(tmp_path / "state")
    attention = [r for r in state.submissions.values() if r.needs_attention]
    created_before = len(emulator.calls.all())
    assert attention, "calls were in flight: their outcome is unknown"
    again = Apply(tmp_path, gate.url, tencent_credentials)
    assert again.finish() == 1  # the unknowns need a person
    assert "needs attention" in "".join(again.out)
    names = [c["params"]["DataBackfillPlanName"] for c in emulator.calls.all()]
    assert len(names) == len(set(names))
    assert len(names) == created_before + 20 - len(state.submissions)
