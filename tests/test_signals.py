"""SIGINT/SIGTERM during apply: stop dispatching, finish and journal what is in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import wedata_plan, write

from reconciler.emulator.app import Emulator
from reconciler.emulator.server import start_in_thread
from reconciler.providers.tc3 import TencentCredentials
from reconciler.state import SubmissionStatus, init_state, load_state


class Slow:
    """The emulator, answering each request after a delay (calls stay in flight a while)."""

    def __init__(self, app: Emulator, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        time.sleep(self.seconds)
        return self.app(environ, start_response)


@pytest.fixture
def slow_url(emulator: Emulator) -> Iterator[str]:
    server, url = start_in_thread(Slow(emulator, 0.4))  # type: ignore[arg-type]
    yield url
    server.shutdown()


def start_apply(root: Path, url: str, creds: TencentCredentials) -> subprocess.Popen[str]:
    init_state(root / "state", actor={"user": "test"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFILL_", "TENCENTCLOUD_"))}
    env.update(TENCENTCLOUD_SECRET_ID=creds.secret_id, TENCENTCLOUD_SECRET_KEY=creds.secret_key)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            "--yes",
            "--endpoint",
            url,
            "--parallel",
            "2",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_first_result(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("[1/"):
            return
    raise AssertionError("apply ended before the first result")


def plan_of_twenty(root: Path) -> None:
    write(root / "plans" / "p.yaml", wedata_plan(dates=[("2025-09-01", "2025-09-20")], chunk=1))


def test_sigint_finishes_the_calls_in_flight_and_exits_130(
    tmp_path: Path, emulator: Emulator, slow_url: str, tencent_credentials: TencentCredentials
) -> None:
    plan_of_twenty(tmp_path)
    process = start_apply(tmp_path, slow_url, tencent_credentials)
    wait_for_first_result(process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Interrupted by SIGINT" in err
    assert "Traceback" not in err
    records = load_state(tmp_path / "state").submissions.values()
    assert {r.status for r in records} == {SubmissionStatus.SUBMITTED}
    assert len(records) == len(emulator.calls.all()) < 20
    # The next apply makes exactly the rest.
    again = start_apply(tmp_path, slow_url, tencent_credentials)
    again.communicate(timeout=60)
    assert again.returncode == 0
    names = [c["params"]["DataBackfillPlanName"] for c in emulator.calls.all()]
    assert len(names) == len(set(names)) == 20


def test_a_second_sigterm_exits_at_once_and_leaves_unknowns_that_are_not_resubmitted(
    tmp_path: Path, emulator: Emulator, slow_url: str, tencent_credentials: TencentCredentials
) -> None:
    plan_of_twenty(tmp_path)
    process = start_apply(tmp_path, slow_url, tencent_credentials)
    wait_for_first_result(process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 143
    time.sleep(1.0)  # let the requests that were in flight reach the emulator
    state = load_state(tmp_path / "state")
    attention = [r for r in state.submissions.values() if r.needs_attention]
    created_before = len(emulator.calls.all())
    assert attention, "calls were in flight: their outcome is unknown"
    again = start_apply(tmp_path, slow_url, tencent_credentials)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 1  # the unknowns need a person
    assert "needs attention" in out
    names = [c["params"]["DataBackfillPlanName"] for c in emulator.calls.all()]
    assert len(names) == len(set(names))
    assert len(names) == created_before + 20 - len(state.submissions)
