"""A plans directory, a state directory and the emulator they are applied to: in-process
(`Repo`), or served on loopback and driven through the CLI as a person does (`Served`)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from factories import write

from reconciler import pipeline
from reconciler.cli import run_apply
from reconciler.commands import recover
from reconciler.commands.apply import ApplyOptions
from reconciler.diff import Changeset
from reconciler.domain import JSON, Health, Outcome, Submission, SubmissionStatus, days
from reconciler.emulator.app import Emulator
from reconciler.providers import ALL, wedata
from reconciler.providers.acs3 import AliyunCredentials
from reconciler.providers.protocol import (
    Claim,
    Client,
    Connection,
    Lookup,
    Progress,
    Provider,
)
from reconciler.providers.tc3 import TencentCredentials
from reconciler.reports.plan import Finding
from reconciler.state import SubmissionRecord, init_state, load_state, open_state

LOOPBACK = "http://127.0.0.1:9"
"""Any loopback URL: the requests go to the emulator through WSGITransport, not the network."""


def credentials_environ(
    tencent: TencentCredentials | None = None, aliyun: AliyunCredentials | None = None
) -> dict[str, str]:
    """The variables the product and the emulator read these credentials from."""
    environ = {}
    if tencent:
        environ["TENCENTCLOUD_SECRET_ID"] = tencent.secret_id
        environ["TENCENTCLOUD_SECRET_KEY"] = tencent.secret_key
        if tencent.token:
            environ["TENCENTCLOUD_SESSION_TOKEN"] = tencent.token
    if aliyun:
        environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = aliyun.access_key_id
        environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = aliyun.access_key_secret
        if aliyun.security_token:
            environ["ALIBABA_CLOUD_SECURITY_TOKEN"] = aliyun.security_token
    return environ


class Repo:
    def __init__(self, root: Path, emulator: Emulator) -> None:
        self.plans = root / "plans"
        self.state = root / "state"
        self.emulator = emulator
        self.plans.mkdir()
        init_state(self.state, actor={"user": "test"})

    def write(self, name: str, *documents: dict[str, Any]) -> Path:
        return write(self.plans / f"{name}.yaml", *documents)

    def mount(self, connection: Connection) -> Connection:
        transport = httpx.WSGITransport(app=self.emulator)
        return dataclasses.replace(connection, transport=transport)

    def connect(self, provider: Provider, connection: Connection) -> Client:
        return provider.client(self.mount(connection))

    def look(
        self,
        provider: Provider,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
        others: Sequence[Claim],
    ) -> Lookup:
        return provider.look_up(record, request, self.mount(connection), others)

    def progress(
        self,
        provider: Provider,
        record: SubmissionRecord,
        request: Mapping[str, JSON],
        connection: Connection,
    ) -> Progress:
        return provider.progress(record, request, self.mount(connection))

    def apply(self, **options: Any) -> int:
        defaults: dict[str, Any] = {
            "paths": [self.plans],
            "state_dir": self.state,
            "endpoints": {ALL: LOOPBACK},
            "yes": True,
            "connect": self.connect,
            "look": self.look,
        }
        return run_apply(ApplyOptions(**{**defaults, **options}))

    def recover(self) -> list[Finding]:
        from reconciler.state import open_state

        with open_state(self.state, actor={"user": "test"}, command="test recover") as writer:
            found = recover.look_up(writer.state, {ALL: LOOPBACK}, look=self.look)
            recover.journal(writer, found)
        return found

    def calls(self) -> list[dict[str, Any]]:
        return self.emulator.calls.all()

    def changes(self) -> Changeset:
        return pipeline.changeset(pipeline.plans([self.plans]), load_state(self.state))


class Crash:
    """A client whose process dies around the call: after the request left (`sent`), so its
    outcome is never journaled, or before anything was sent."""

    def __init__(self, inner: Client, *, sent: bool) -> None:
        self.inner, self.sent = inner, sent
        self.credential_id = inner.credential_id

    def submit(self, submission: Submission) -> Outcome:
        if self.sent:
            self.inner.submit(submission)
        raise KeyboardInterrupt

    def close(self) -> None:
        self.inner.close()


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`backfill ARGS` as a user runs it: a subprocess in `cwd` with exactly `env`."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


Cell = tuple[str, str]
"""(target, date)."""


def dms_span(request: Mapping[str, Any]) -> tuple[str, str]:
    single = request.get("BackFillDate")
    if single:
        return str(single), str(single)
    return str(request["BackFillDateBegin"]), str(request["BackFillDateEnd"])


def created_cells(call: Mapping[str, Any]) -> list[Cell]:
    params = call["params"]
    if call["provider"] == wedata.NAME:
        dates = [
            d for r in params["DataBackfillRangeList"] for d in days(r["StartDate"], r["EndDate"])
        ]
        return [(str(task), day) for task in params["TaskIds"] for day in dates]
    return [(str(params["DagId"]), day) for day in days(*dms_span(params))]


def failing(cells: Iterable[Cell]) -> Callable[[str, str], Health]:
    """A platform on which exactly `cells` failed and every other cell succeeded."""
    bad = set(cells)
    return lambda target, date: Health.FAILED if (target, date) in bad else Health.SUCCEEDED


class Served:
    """Plans, a state and the emulator served on loopback, driven as a person does:
    `backfill ...` as a subprocess, counting the creates the emulator accepted."""

    def __init__(self, root: Path, emulator: Emulator, url: str, env: dict[str, str]) -> None:
        self.root, self.emulator, self.url, self.env = root, emulator, url, env
        self.state = root / "state"
        assert self.run("init").returncode == 0

    def plan(self, document: dict[str, Any]) -> None:
        write(self.root / "plans" / "plan.yaml", document)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = cli(*args, cwd=self.root, env={**self.env, "BACKFILL_ENDPOINT": self.url})
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def apply(self) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "--yes", "--quiet")

    def creates(self) -> list[Cell]:
        return [cell for call in self.emulator.calls.all() for cell in created_cells(call)]

    def observe(self, health: Callable[[str, str], Health]) -> None:
        """What a refresh journals: every cell of every submitted backfill not yet final, with
        the health `health(target, date)` gives it, through the state's writer under the lock."""
        with open_state(self.state, actor={"user": "refresh"}, command="test refresh") as writer:
            for record in list(writer.state.submissions.values()):
                if record.status is not SubmissionStatus.SUBMITTED or record.final:
                    continue
                cells = [
                    (target, date, health(target, date), health(target, date).upper())
                    for target in record.targets
                    for date in record.dates
                ]
                writer.record_observed(record.key, cells)
