"""The command line as users and CI drive it: settings from the environment and flags, and the
commands no other test drives."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan, write
from harness import cli

from reconciler import pipeline
from reconciler.cli import main
from reconciler.emulator.app import Emulator
from reconciler.providers import ALL, dms, endpoint, wedata
from reconciler.state import (
    LockHolder,
    init_state,
    intent_details,
    load_state,
    open_state,
    read_lock_holder,
)


def test_each_provider_has_its_own_endpoint_an_override_for_all_and_a_default() -> None:
    assert endpoint(wedata.PROVIDER, "ap-guangzhou", {}) == wedata.DEFAULT_ENDPOINT
    assert endpoint(dms.PROVIDER, "cn-shanghai", {}) == (
        "https://dms-enterprise.cn-shanghai.aliyuncs.com"
    )
    both = {ALL: "http://127.0.0.1:1", "aliyun-dms": "http://127.0.0.1:2"}
    assert endpoint(wedata.PROVIDER, "ap-guangzhou", both) == "http://127.0.0.1:1"
    assert endpoint(dms.PROVIDER, "cn-shanghai", both) == "http://127.0.0.1:2"


def test_endpoints_and_the_state_directory_come_from_the_environment(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "w.yaml", wedata_plan("w"))
    write(tmp_path / "plans" / "d.yaml", dms_plan("d", dags=[15001]))
    env = {
        **cli_env,
        "BACKFILL_TENCENT_ENDPOINT": emulator_url,
        "BACKFILL_ALIYUN_ENDPOINT": emulator_url,
        "BACKFILL_STATE_DIR": "elsewhere",
    }
    assert cli("init", cwd=tmp_path, env=env).returncode == 0
    done = cli("apply", "--yes", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(c["provider"] for c in emulator.calls.all()) == ["aliyun-dms", "tencent-wedata"]
    assert not (tmp_path / "state").exists()
    assert len(load_state(tmp_path / "elsewhere").submissions) == 2


def test_a_provider_flag_overrides_its_environment_variable(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> None:
    write(tmp_path / "plans" / "w.yaml", wedata_plan("w"))
    # The variable names a port nothing listens on; the flag, the emulator.
    env = {**cli_env, "BACKFILL_TENCENT_ENDPOINT": "http://127.0.0.1:9"}
    assert cli("init", cwd=tmp_path, env=env).returncode == 0
    done = cli("apply", "--yes", "--tencent-endpoint", emulator_url, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert len(emulator.calls.all()) == 1
    state = load_state(tmp_path / "state")
    [record] = state.submissions.values()
    assert intent_details(state, [record])[record.key].endpoint == emulator_url


def journaled(state: Path) -> str:
    journal = state / "journal.jsonl"
    return journal.read_text() if journal.exists() else ""


@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--endpoint", "127.0.0.1:{port}"),
        ("--endpoint", "file:///tmp/emulator"),
        ("--aliyun-endpoint", "ftp://127.0.0.1:{port}/"),
        ("--tencent-endpoint", "http://127.0.0.1:{port}/?region=x"),
        ("--endpoint", "http://127.0.0.1:99999"),
    ],
    ids=["no-scheme", "file", "ftp", "query", "port"],
)
def test_an_endpoint_requests_cannot_go_to_is_refused_before_anything_is_journaled(
    tmp_path: Path,
    serve_emulator: Callable[..., tuple[Emulator, str]],
    cli_env: dict[str, str],
    flag: str,
    url: str,
) -> None:
    emulator, served = serve_emulator()
    write(tmp_path / "plans" / "w.yaml", wedata_plan("w"))
    write(tmp_path / "plans" / "d.yaml", dms_plan("d", dags=[15001]))
    port = served.rsplit(":", 1)[1]
    # The other provider goes to the emulator: a bad endpoint stops the run, not just its calls.
    others = ["--endpoint", served] if flag != "--endpoint" else []
    done = cli("apply", "--yes", *others, flag, url.format(port=port), cwd=tmp_path, env=cli_env)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {flag} (or BACKFILL_")
    assert "Traceback" not in done.stderr
    assert emulator.calls.all() == []
    assert journaled(tmp_path / "state") == ""


@pytest.mark.parametrize("command", ["apply", "recover", "status"])
def test_an_endpoint_with_a_password_is_refused_and_the_password_is_never_repeated(
    tmp_path: Path,
    serve_emulator: Callable[..., tuple[Emulator, str]],
    cli_env: dict[str, str],
    command: str,
) -> None:
    emulator, served = serve_emulator()
    write(tmp_path / "plans" / "d.yaml", dms_plan("d", dags=[15001]))
    with_password = served.replace("http://", "http://user:secret@")
    extra = ["--yes"] if command == "apply" else []
    by_flag = cli(command, *extra, "--endpoint", with_password, cwd=tmp_path, env=cli_env)
    env = {**cli_env, "BACKFILL_ALIYUN_ENDPOINT": with_password}
    by_variable = cli(command, *extra, cwd=tmp_path, env=env)

    for done, option in ((by_flag, "--endpoint"), (by_variable, "--aliyun-endpoint")):
        assert done.returncode == 1
        assert f"error: {option} (or BACKFILL_" in done.stderr
        assert "pass credentials through the environment" in done.stderr
        everything = done.stdout + done.stderr + journaled(tmp_path / "state")
        assert "secret" not in everything
    assert emulator.calls.all() == []
    assert not (tmp_path / "state").exists() or "secret" not in "".join(
        p.read_text() for p in (tmp_path / "state").iterdir() if p.is_file()
    )


def stale_lock(state: Path) -> LockHolder:
    """The record a holder killed with -9 leaves: no process holds the flock any more."""
    state.mkdir(parents=True)
    holder = LockHolder("0badc0de", 4242, "ci-runner", "ci", "backfill apply", "2026-01-01")
    (state / "lock").write_text(json.dumps(dataclasses.asdict(holder)) + "\n")
    return holder


def test_state_unlock_clears_the_record_of_a_holder_that_is_gone(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    holder = stale_lock(tmp_path / "state")
    done = cli("state", "unlock", holder.id, cwd=tmp_path, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "Unlocked state." in done.stdout
    assert done.stderr == ""
    assert read_lock_holder(tmp_path / "state") is None


def test_state_unlock_with_another_id_warns_and_a_live_holder_is_never_unlocked(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    stale_lock(tmp_path / "state")
    done = cli("state", "unlock", "12345678", cwd=tmp_path, env=cli_env)
    assert done.returncode == 0
    assert "warning: state/ was last locked by" in done.stderr
    assert "with id 0badc0de, not 12345678" in done.stderr

    # A live holder (a process inside open_state) keeps its lock whatever id is given.
    waiting = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "state")],
        env=cli_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline().strip() == "holding"
        refused = cli("state", "unlock", "whatever", cwd=tmp_path, env=cli_env)
        assert refused.returncode == 1
        assert "which is still running" in refused.stderr
        assert read_lock_holder(tmp_path / "state") is not None
    finally:
        waiting.send_signal(signal.SIGTERM)
        waiting.wait(timeout=30)


_HOLD = """
import sys, time
from pathlib import Path
from reconciler.state import init_state, open_state
init_state(Path(sys.argv[1]), actor={"user": "t"})
with open_state(Path(sys.argv[1]), actor={"user": "t"}, command="backfill apply"):
    print("holding", flush=True)
    time.sleep(60)
"""


# --- outcomes nobody knows: one name for them, and settled many at a time ---------------------


def with_unknown_outcomes(root: Path, dates: list[str], *, pending: int) -> list[str]:
    """A state whose `orders-backfill` submissions, one a date, all have an unknown outcome:
    the first `pending` of them journaled as intended only (the run stopped after sending)."""
    write(root / "plans" / "orders.yaml", wedata_plan(dates=[(dates[0], dates[-1])]))
    init_state(root / "state", actor={"user": "t"})
    keys = [f"k{n:02}" for n in range(len(dates))]
    with open_state(root / "state", actor={"user": "t"}, command="test") as writer:
        for number, (key, day) in enumerate(zip(keys, dates, strict=True)):
            writer.append(
                "intent",
                {
                    "key": key,
                    "plan": "orders-backfill",
                    "revision": 1,
                    "provider": "tencent-wedata",
                    "action": "CreateDataBackfillPlan",
                    "region": "ap-guangzhou",
                    "endpoint": "http://127.0.0.1:9",
                    "targets": ["20250827115253729", "20250827115253730"],
                    "dates": [day],
                    "fingerprint": "f",
                    "params": {},
                    "request": {},
                },
            )
            if number >= pending:
                writer.append("unknown", {"key": key, "code": "ReadTimeout", "message": "-"})
    return keys


def test_an_outcome_nobody_knows_is_called_unknown_wherever_a_person_looks(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    keys = with_unknown_outcomes(tmp_path, ["2025-09-01", "2025-09-02"], pending=1)

    listed = cli("state", "list", cwd=tmp_path, env=cli_env)
    selected = cli(
        "state", "list", "--status", "unknown", "--format", "json", cwd=tmp_path, env=cli_env
    )
    shown = cli("state", "show", keys[0], cwd=tmp_path, env=cli_env)
    logged = cli("audit", "log", "--format", "json", cwd=tmp_path, env=cli_env)
    planned = cli("plan", "--detailed-exitcode", cwd=tmp_path, env=cli_env)

    assert "pending" not in listed.stdout + shown.stdout + logged.stdout
    assert [row.split()[3] for row in listed.stdout.splitlines()[1:]] == ["unknown", "unknown"]
    assert [r["key"] for r in json.loads(selected.stdout)["submissions"]] == keys
    assert json.loads(shown.stdout)["status"] == "unknown"
    assert {a["outcome"] for a in json.loads(logged.stdout)["attempts"]} == {"unknown"}
    assert planned.returncode == 3  # cells need attention
    assert planned.stdout.count("needs attention: ") == 2


def test_many_unknown_outcomes_are_settled_at_once_all_or_nothing(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    days = [f"2025-09-0{n}" for n in range(1, 7)]
    keys = with_unknown_outcomes(tmp_path, days, pending=2)
    verdicts = tmp_path / "ran.txt"
    verdicts.write_text(f"# seen in the console\n{keys[0]} plan-100\n\n{keys[1]} plan-101\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli("state", *args, "--reason", "checked the console", cwd=tmp_path, env=cli_env)

    imported = run("import", "--from", str(verdicts))
    forgotten = run("forget", keys[2], keys[3])
    again = run("forget", keys[3], keys[4])  # keys[3] is settled now: nothing is recorded
    rest = run("forget", "--plan", "orders-backfill")

    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines() == [
        f"{keys[0]}: imported as submitted (plan-100).",
        f"{keys[1]}: imported as submitted (plan-101).",
    ]
    assert forgotten.returncode == 0, forgotten.stderr
    assert again.returncode == 1
    assert f"{keys[3]} is forgotten: only an unknown outcome" in again.stderr
    assert rest.returncode == 0, rest.stderr
    assert [line.split(":")[0] for line in rest.stdout.splitlines()] == keys[4:]
    state = load_state(tmp_path / "state")
    assert [state.submissions[k].status for k in keys] == [
        "submitted",
        "submitted",
        *["forgotten"] * 4,
    ]
    assert {state.submissions[k].message for k in keys} == {"checked the console"}


def test_a_malformed_verdicts_file_is_refused_naming_its_line(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    keys = with_unknown_outcomes(tmp_path, ["2025-09-01"], pending=0)
    verdicts = tmp_path / "ran.txt"
    verdicts.write_text(f"{keys[0]}\n")
    journal = (tmp_path / "state" / "journal.jsonl").read_bytes()

    done = cli("state", "import", "--from", "ran.txt", "--reason", "x", cwd=tmp_path, env=cli_env)

    assert done.returncode == 1
    assert f"ran.txt:1: expected KEY REMOTE_ID, got '{keys[0]}'" in done.stderr
    assert (tmp_path / "state" / "journal.jsonl").read_bytes() == journal


def loaded_modules(run: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a run imported, from Python's `-X importtime` report on its stderr."""
    return {
        line.rpartition("|")[2].strip()
        for line in run.stderr.splitlines()
        if line.startswith("import time:")
    }


CALLING_THE_APIS = ("httpx", "reconciler.providers.tc3", "reconciler.providers.acs3")
"""What only the commands that call an API need: an HTTP client and the signers."""


def test_validate_of_valid_plans_loads_no_models_http_client_state_store_or_emulator(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    # A pre-commit hook or a pull request check over a few plans is mostly start-up.
    write(tmp_path / "plans" / "w.yaml", wedata_plan("w"))
    write(tmp_path / "plans" / "d.yaml", dms_plan("d", dags=[15001]))
    env = {**cli_env, "PYTHONPROFILEIMPORTTIME": "1"}

    checked = cli("validate", "plans", cwd=tmp_path, env=env)

    assert checked.returncode == 0, checked.stderr
    loaded = loaded_modules(checked)
    assert "reconciler.validate" in loaded
    unwanted = (
        *CALLING_THE_APIS,
        *("reconciler.state", "reconciler.diff", "reconciler.planning", "reconciler.execute"),
        # The emulated APIs, and its fault settings (the `emulator` command's flags, made when
        # that command runs); the reports of the commands that go on with the plans.
        *("reconciler.emulator.app", "reconciler.emulator.server", "reconciler.emulator.faults"),
        *("reconciler.emulator.wedata", "reconciler.emulator.dms", "reconciler.reports"),
        "jsonschema",  # the reference validator explains rejected documents only
        "_hashlib",  # OpenSSL: a file's digest is BLAKE2's own, and validate hashes nothing else
        *("queue", "signal"),  # what a forked helper needs: a few files fork none
        "reconciler.domain",  # the records of plan and apply (validate needs their vocabulary)
        # The contract's models: valid plans are judged by the checks compiled from the schema
        # generated from them, committed (building the models takes longer than a small repo's
        # checks); the providers load with them.
        *("pydantic", "pydantic_core", "reconciler.contract"),
        *("reconciler.providers.wedata", "reconciler.providers.dms"),
    )
    assert loaded.isdisjoint(unwanted), sorted(loaded.intersection(unwanted))


def test_plan_loads_no_http_client_it_needs_no_credentials(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    # A pull request's check over a few plans is mostly start-up: what only --recover,
    # --refresh, --out, --changed-since or another command uses stays unloaded.
    write(tmp_path / "plans" / "w.yaml", wedata_plan("w"))
    write(tmp_path / "plans" / "d.yaml", dms_plan("d", dags=[15001]))
    assert cli("init", cwd=tmp_path, env=cli_env).returncode == 0
    env = {**cli_env, "PYTHONPROFILEIMPORTTIME": "1"}

    planned = cli("plan", cwd=tmp_path, env=env)

    assert planned.returncode == 0, planned.stderr
    loaded = loaded_modules(planned)
    assert {"reconciler.diff", "reconciler.reports.plan", "reconciler.state.store"} <= loaded
    unwanted = (
        *CALLING_THE_APIS,
        # --recover's lookups and state writer, with the actor it journals (and the package's
        # version, read through importlib.metadata); --refresh's reads; --out's saved-plan
        # models; --changed-since's git.
        *("reconciler.commands.recover", "reconciler.commands.branch", "reconciler.actor"),
        *("reconciler.version", "reconciler.commands.refresh", "reconciler.commands.saved"),
        "reconciler.git",
        # Reading the state takes no lock and audits nothing; the writer's event models.
        *("reconciler.state.lock", "reconciler.state.audit", "reconciler.state.formats"),
        # The other commands' reports (and the grid's marks, status's), and the Markdown view.
        *(f"reconciler.reports.{name}" for name in ("apply", "audit_report", "init")),
        *(f"reconciler.reports.{name}" for name in ("refresh", "state", "status", "wait")),
        *("reconciler.grid", "reconciler.views.markdown"),
    )
    assert loaded.isdisjoint(unwanted), sorted(loaded.intersection(unwanted))


def run_main(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0)


def test_an_unexpected_error_is_one_line_and_debug_adds_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken_stage(*paths: object, **options: object) -> None:
        raise RuntimeError("the disk said no")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "validation", broken_stage)

    assert run_main("validate") == 1
    quiet = capsys.readouterr().err
    assert run_main("--debug", "validate") == 1
    loud = capsys.readouterr().err
    assert run_main("validate", "--", "--debug") == 1  # a plan file of that name
    named = capsys.readouterr().err

    assert quiet == named
    assert quiet.splitlines() == [
        "error: unexpected RuntimeError: the disk said no (run with --debug for the traceback)"
    ]
    assert "broken_stage" not in quiet
    assert "broken_stage" in loud  # the frame that raised
    assert loud.splitlines()[-1] == "error: unexpected RuntimeError: the disk said no"
