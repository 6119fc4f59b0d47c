"""Pacing under the API's limit, and the progress a person sees while apply runs."""

from __future__ import annotations

import dataclasses
import io
import itertools
import threading

from reconciler.domain import Outcome, OutcomeKind, Submission
from reconciler.execute import UNSENT_PAUSES, Pacer, Result, Route, execute, interleave
from reconciler.reports.apply import Tally
from reconciler.views.progress import Progress
from reconciler.views.text import styler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_calls_leave_evenly_spaced_just_under_the_limit() -> None:
    clock = Clock()
    pacer = Pacer(20.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(100):
        pacer.acquire()
        sent.append(clock.now)
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(sent)}
    assert gaps == {round(1 / (20 * 0.97), 6)}
    in_any_second = max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent)
    assert in_any_second <= 20


def test_a_throttled_reply_slows_the_pace_and_successes_win_it_back() -> None:
    clock = Clock()
    pacer = Pacer(20.0, clock=clock, sleep=clock.sleep)
    full = pacer.rate
    pacer.throttled()
    assert pacer.rate == full / 2
    for _ in range(100):
        pacer.succeeded()
    assert pacer.rate == full


def result(kind: OutcomeKind, key: str = "k") -> Result:
    submission = Submission(
        key=key,
        plan="p",
        revision=1,
        provider="tencent-wedata",
        action="A",
        region="r",
        targets=("t",),
        dates=("2025-09-01",),
        fingerprint="f",
        params={},
        request={},
    )
    return Result(submission, Outcome(kind, remote_id="rid", code="Code", message="why"), 1)


def test_on_a_terminal_one_live_line_counts_and_problems_get_their_own_line() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(3, mode="tty", style=styler(False), stream=stream, clock=clock)
    clock.now += 1.0
    progress.update(result(OutcomeKind.SUBMITTED, "a"))
    progress.update(result(OutcomeKind.REJECTED, "b"))
    progress.finish()
    out = stream.getvalue()
    assert "\r[1/3] 1.0 calls/s  submitted 1  failed 0  unknown 0  ETA 2s" in out
    assert "[2/3] rejected b p Code: why\n" in out
    assert "submitted a" not in out


def test_quiet_shows_only_the_problems() -> None:
    stream = io.StringIO()
    progress = Progress(2, mode="quiet", style=styler(False), stream=stream)
    progress.update(result(OutcomeKind.SUBMITTED, "a"))
    progress.update(result(OutcomeKind.UNKNOWN, "b"))
    assert stream.getvalue() == "[2/2] UNKNOWN b p Code: why\n"


def test_in_a_log_every_call_is_a_line() -> None:
    stream = io.StringIO()
    progress = Progress(2, mode="lines", style=styler(False), stream=stream)
    progress.update(result(OutcomeKind.SUBMITTED, "a"))
    progress.update(result(OutcomeKind.SUBMITTED, "b"))
    assert stream.getvalue().splitlines() == [
        "[1/2] submitted a p -> rid (RequestId -)",
        "[2/2] submitted b p -> rid (RequestId -)",
    ]


class Journal:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def append(self, type: str, data: dict[str, object]) -> None:
        self.events.append((type, data))


class Throttled:
    """A client the API always throttles; it stops the run after the first reply."""

    credential_id = "AKID"

    def __init__(self, stop: threading.Event) -> None:
        self.stop, self.calls = stop, 0

    def submit(self, submission: Submission) -> Outcome:
        self.calls += 1
        self.stop.set()
        return Outcome(OutcomeKind.RETRYABLE, code="RequestLimitExceeded", message="slow down")

    def close(self) -> None:
        pass


def test_a_stopped_run_does_not_retry_and_journals_the_call_as_not_created() -> None:
    stop = threading.Event()
    client, journal, clock = Throttled(stop), Journal(), Clock()
    route = Route(client, Pacer(20.0, clock=clock, sleep=clock.sleep), "http://127.0.0.1:9")
    [done] = execute(
        [result(OutcomeKind.SUBMITTED).submission],
        route=lambda s: route,
        journal=journal,
        sleep=clock.sleep,
        stop=stop,
    )
    assert client.calls == 1
    assert [t for t, _ in journal.events] == ["intent", "rejected"]
    assert done.outcome.message == (
        "slow down (stopped before trying again); nothing was created: the next apply tries again"
    )


class Refusing:
    """A client whose endpoint never takes a call: every submit gets `outcome`. The first one
    is held back a while, so that calls not waiting for it would go out meanwhile."""

    credential_id = "AKID"

    def __init__(self, outcome: Outcome) -> None:
        self.outcome, self.calls = outcome, 0
        self._hold = threading.Event()

    def submit(self, submission: Submission) -> Outcome:
        self.calls += 1
        if self.calls == 1:
            self._hold.wait(0.5)
        return self.outcome

    def close(self) -> None:
        pass


NO_CONNECTION = Outcome(
    OutcomeKind.UNSENT,
    code="ConnectError",
    message="[Errno 111] Connection refused",
    halt="no connection could be made; check the endpoint",
)
REFUSED_KEY = Outcome(
    OutcomeKind.REJECTED,
    code="AuthFailure.SignatureFailure",
    message="The provided credentials could not be validated.",
    halt="the credentials were refused; check the key",
)


def test_a_call_without_a_connection_is_retried_briefly_then_journaled_unsent() -> None:
    client, journal, clock = Refusing(NO_CONNECTION), Journal(), Clock()
    route = Route(client, Pacer(20.0, clock=clock, sleep=clock.sleep), "http://127.0.0.1:9")
    submissions = [result(OutcomeKind.SUBMITTED, f"k{i}").submission for i in range(5)]
    [done] = execute(
        submissions, route=lambda s: route, journal=journal, parallel=8, sleep=clock.sleep
    )
    assert [t for t, _ in journal.events] == ["intent", "unsent"]
    assert client.calls == len(UNSENT_PAUSES) + 1
    assert done.outcome.kind is OutcomeKind.UNSENT
    assert done.outcome.message == (
        "[Errno 111] Connection refused (5 attempts); nothing was created: the next apply "
        "tries again"
    )
    assert done.stopped == (
        "stopped sending to http://127.0.0.1:9 (tencent-wedata): no connection could be made; "
        "check the endpoint"
    )
    assert Tally.of([done], len(submissions)).not_attempted == 4


def test_refused_credentials_stop_the_endpoint_after_one_call() -> None:
    client, journal = Refusing(REFUSED_KEY), Journal()
    route = Route(client, Pacer(20.0), "http://127.0.0.1:9")
    submissions = [result(OutcomeKind.SUBMITTED, f"k{i}").submission for i in range(5)]
    [done] = execute(submissions, route=lambda s: route, journal=journal, parallel=8)
    assert client.calls == 1
    assert [t for t, _ in journal.events] == ["intent", "rejected"]
    assert done.stopped.endswith("the credentials were refused; check the key")


def test_an_endpoint_that_answered_once_takes_calls_in_parallel() -> None:
    class Counting:
        credential_id = "AKID"

        def __init__(self) -> None:
            self.lock, self.now, self.most = threading.Lock(), 0, 0
            self.barrier = threading.Barrier(4, timeout=10)

        def submit(self, submission: Submission) -> Outcome:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            if submission.key != "k0":
                self.barrier.wait()  # only returns once four calls are in flight at once
            with self.lock:
                self.now -= 1
            return Outcome(OutcomeKind.SUBMITTED, remote_id="r")

        def close(self) -> None:
            pass

    client, journal = Counting(), Journal()
    route = Route(client, Pacer(1000.0), "http://127.0.0.1:9")
    submissions = [result(OutcomeKind.SUBMITTED, f"k{i}").submission for i in range(5)]
    done = execute(submissions, route=lambda s: route, journal=journal, parallel=8)
    assert len(done) == 5
    assert client.most == 4


def test_calls_of_several_apis_are_interleaved_so_one_pace_does_not_hold_back_another() -> None:
    wedata = [result(OutcomeKind.SUBMITTED, f"w{i}").submission for i in range(3)]
    dms = [
        dataclasses.replace(
            result(OutcomeKind.SUBMITTED, f"d{i}").submission, provider="aliyun-dms"
        )
        for i in range(2)
    ]
    assert [s.key for s in interleave([*wedata, *dms])] == ["w0", "d0", "w1", "d1", "w2"]
