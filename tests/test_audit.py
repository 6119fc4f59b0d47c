"""Audit: provenance in every event, `audit log` from the whole journal, `audit verify` against
tampering; on journals written by real applies to the emulator."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan
from harness import Repo

from reconciler import actor
from reconciler.cli import main
from reconciler.providers.tc3 import TencentCredentials
from reconciler.version import VERSION
from reconciler.views.audit import CSV_FIELDS

GITHUB_VARIABLES = (
    "GITHUB_ACTIONS",
    "GITHUB_ACTOR",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_EVENT_NAME",
    "GITHUB_EVENT_PATH",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
)
SHA = "5f2c1d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_.value.code
    assert isinstance(code, int)
    return code, out, err


def github_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, event: str = "push", **values: str
) -> None:
    """A GitHub Actions run of the apply workflow: a push to main after PR #42 was merged."""
    for name in GITHUB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    payload = tmp_path / "event.json"
    payload.write_text(
        json.dumps({"head_commit": {"message": "Merge pull request #42 from alice/fx\n\nFix"}})
    )
    defaults = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": "alice",
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(payload),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/backfills",
        "GITHUB_RUN_ID": "987654",
        "GITHUB_RUN_ATTEMPT": "2",
    }
    for name, value in {**defaults, **values}.items():
        monkeypatch.setenv(name, value)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


@pytest.fixture
def in_repo(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """The repo as the working directory, so the state is `state/` as in a real checkout."""
    monkeypatch.chdir(repo.state.parent)
    for name in GITHUB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return repo


@pytest.fixture
def journal(in_repo: Repo) -> Path:
    """Seven events: `initialized`, then three WeData and DMS submissions, each an intent and its
    outcome."""
    in_repo.write("orders", wedata_plan())
    in_repo.write("dms", dms_plan(dates=[("2025-09-01", "2025-09-02")]))
    assert in_repo.apply(parallel=1) == 0
    path = in_repo.state / "journal.jsonl"
    kinds = [json.loads(line)["type"] for line in lines_of(path)]
    assert kinds == ["initialized", *["intent", "submitted"] * 3]
    return path


# --- provenance -------------------------------------------------------------------------------


def test_a_push_to_main_records_actor_commit_ref_merged_pr_run_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    github_env(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # not a git checkout: the commit is GITHUB_SHA
    found = actor.current("apply")
    assert found == {
        "command": "apply",
        "tool_version": VERSION,
        "user": "alice",
        "ci": "github-actions",
        "event": "push",
        "repository": "acme/backfills",
        "commit": SHA,
        "ref": "refs/heads/main",
        "pr": 42,
        "pr_source": "merge commit message",
        "run_url": "https://github.com/acme/backfills/actions/runs/987654",
        "run_attempt": 2,
    }


def test_a_pull_request_run_takes_the_pr_from_its_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    github_env(monkeypatch, tmp_path, event="pull_request", GITHUB_REF="refs/pull/17/merge")
    found = actor.current("plan")
    assert (found["pr"], found["pr_source"]) == (17, "ref")


@pytest.mark.parametrize(
    ("payload", "pr"),
    [
        ({"head_commit": {"message": "Restate FX for July (#58)\n\n* plans"}}, 58),
        ({"pull_request": {"number": 7}}, 7),
        ({"head_commit": {"message": "Rebased commit without a number"}}, None),
        ({}, None),
    ],
)
def test_the_pr_of_a_push_comes_from_the_event_payload_where_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: dict[str, object], pr: int | None
) -> None:
    github_env(monkeypatch, tmp_path)
    Path(tmp_path / "event.json").write_text(json.dumps(payload))
    assert actor.current("apply").get("pr") == pr


def test_an_apply_of_a_newer_main_records_both_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    github_env(monkeypatch, tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True
    )
    done = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    head = done.stdout.strip()
    found = actor.current("apply", cwd=tmp_path)
    assert (found["commit"], found["event_commit"]) == (head, SHA)


def test_outside_ci_the_local_user_host_and_checkout_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in GITHUB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    found = actor.current("apply", cwd=Path(__file__).parent)
    assert found["user"]
    assert found["host"]
    assert re.fullmatch(r"[0-9a-f]{40}", str(found["commit"]))
    assert "ci" not in found
    assert "pr" not in found


def test_every_event_of_an_apply_in_actions_carries_the_provenance(
    in_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    github_env(monkeypatch, tmp_path)
    in_repo.write("orders", wedata_plan())
    assert in_repo.apply() == 0
    events = [json.loads(line) for line in lines_of(in_repo.state / "journal.jsonl")][1:]
    assert [e["type"] for e in events] == ["intent", "submitted"]
    for event in events:
        assert event["actor"]["user"] == "alice"
        assert event["actor"]["pr"] == 42
        assert event["actor"]["run_url"].endswith("/acme/backfills/actions/runs/987654")


# --- audit log --------------------------------------------------------------------------------


def test_a_rejected_then_retried_submission_shows_both_attempts_with_who_and_where(
    in_repo: Repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tencent_credentials: TencentCredentials,
) -> None:
    in_repo.write("orders", wedata_plan())
    # signed with the wrong key, the first call is refused (AuthFailure): rejected
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "not-the-secret-key")
    assert in_repo.apply() == 1
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", tencent_credentials.secret_key)
    github_env(monkeypatch, tmp_path)
    assert in_repo.apply() == 0

    code, out, _ = cli(capsys, "audit", "log", "--format", "json")
    assert code == 0
    first, second = json.loads(out)["attempts"]
    assert first["key"] == second["key"]
    assert (first["attempt"], first["outcome"]) == (1, "rejected")
    assert first["code"].startswith("AuthFailure")
    assert first["request_id"]
    assert first["intent"]["actor"].get("ci") is None
    assert (second["attempt"], second["outcome"]) == (2, "submitted")
    assert second["remote_id"] == in_repo.calls()[0]["remote_id"]
    assert second["request_id"] == in_repo.calls()[0]["request_id"]
    assert second["intent"]["actor"]["pr"] == 42
    assert [e["type"] for e in second["events"]] == ["intent", "submitted"]

    code, out, _ = cli(capsys, "audit", "log")
    header, row_1, row_2 = out.splitlines()
    assert header.split()[:7] == ["SEQ", "TIME", "PLAN", "REV", "KEY", "TRY", "OUTCOME"]
    assert "rejected (AuthFailure" in row_1
    assert " submitted " in row_2
    for provenance in ("alice", "#42", "/actions/runs/987654"):
        assert provenance in row_2


def test_a_person_verdict_on_an_attempt_is_shown_with_who_gave_it(
    in_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.state import open_state

    with open_state(in_repo.state, actor={"user": "ci"}, command="test") as writer:
        writer.append(
            "intent",
            {
                "key": "k1",
                "plan": "orders",
                "revision": 1,
                "provider": "tencent-wedata",
                "action": "CreateDataBackfillPlan",
                "region": "ap-guangzhou",
                "endpoint": "https://wedata.intl.tencentcloudapi.com",
                "targets": ["t1"],
                "dates": ["2025-09-01", "2025-09-02", "2025-09-04"],
                "fingerprint": "f",
                "params": {},
                "request": {},
            },
        )
        writer.append("unknown", {"key": "k1", "code": "ReadTimeout", "message": "no reply"})
    settler = {"user": "bob", "approved_by": ["carol"]}
    with open_state(in_repo.state, actor=settler, command="test") as writer:
        writer.append("imported", {"key": "k1", "remote_id": "plan-9", "reason": "console"})
    code, out, _ = cli(capsys, "audit", "log", "--format", "csv")
    assert code == 0
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["outcome"] == "submitted"
    who = (row["outcome_event"], row["outcome_user"], row["outcome_seq"])
    assert who == ("imported", "bob", "4")
    assert (row["outcome_reason"], row["outcome_approved_by"]) == ("console", "carol")
    assert row["dates"] == "2025-09-01..2025-09-02,2025-09-04"
    code, out, _ = cli(capsys, "audit", "log")
    assert 'submitted; imported by bob (approved by carol) at seq 4: "console"' in out
    code, out, _ = cli(capsys, "audit", "log", "--format", "markdown")
    assert 'imported by bob (approved by carol) at seq 4: "console"' in out
    code, out, _ = cli(capsys, "audit", "log", "--format", "json")
    [attempt] = json.loads(out)["attempts"]
    assert attempt["settled"]["reason"] == "console"
    assert attempt["settled"]["actor"]["approved_by"] == ["carol"]


def test_an_intent_names_its_plans_pull_request_and_the_approver_not_the_triggering_push(
    in_repo: Repo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = in_repo.plans.parent
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)

    def commit(message: str) -> None:
        subprocess.run(["git", "-C", str(root), "add", "plans"], check=True)
        subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@e",
                "commit",
                "-q",
                "-m",
                message,
            ],
            check=True,
        )

    in_repo.write("orders", wedata_plan())
    commit("Orders backfill (#7)")  # squash-merged pull request 7
    in_repo.write("other", wedata_plan("other-backfill", tasks=["9"]))
    commit("Other (#8)")
    # the run was triggered by the push of #42 (github_env's payload), approved by carol
    github_env(monkeypatch, tmp_path, BACKFILL_APPROVED_BY="carol")
    assert in_repo.apply() == 0
    _, out, _ = cli(capsys, "audit", "log", "--format", "csv")
    rows = {row["plan"]: row for row in csv.DictReader(io.StringIO(out))}
    assert (rows["orders-backfill"]["pr"], rows["other-backfill"]["pr"]) == ("7", "8")
    assert {row["approved_by"] for row in rows.values()} == {"carol"}
    assert all(len(row["plan_commit"]) == 40 for row in rows.values())


def test_plan_and_since_select_attempts(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "audit", "log", "--plan", "dms-backfill", "--format", "json")
    assert {a["plan"] for a in json.loads(out)["attempts"]} == {"dms-backfill"}
    assert len(json.loads(out)["attempts"]) == 2
    code, out, _ = cli(capsys, "audit", "log", "--since", "2000-01-01", "--format", "json")
    assert len(json.loads(out)["attempts"]) == 3
    code, out, _ = cli(capsys, "audit", "log", "--since", "2999-01-01")
    assert (code, out.strip()) == (0, "No submission attempts match.")


def test_csv_is_well_formed_and_safe_to_open_in_a_spreadsheet(
    in_repo: Repo,
    journal: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a user name that a spreadsheet would run as a formula
    github_env(monkeypatch, tmp_path, GITHUB_ACTOR='=HYPERLINK("http://evil.example","x")')
    in_repo.write("later", wedata_plan("later-backfill", tasks=["20250827115253731"]))
    assert in_repo.apply() == 0
    code, out, _ = cli(capsys, "audit", "log", "--format", "csv")
    assert code == 0
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert tuple(header) == CSV_FIELDS
    assert len(rows) == 4
    assert all(len(row) == len(header) for row in rows)
    assert {row[header.index("outcome")] for row in rows} == {"submitted"}
    assert rows[-1][header.index("user")] == "'" + '=HYPERLINK("http://evil.example","x")'


def test_markdown_is_one_table_row_per_attempt_with_user_text_escaped(
    in_repo: Repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    github_env(monkeypatch, tmp_path, GITHUB_ACTOR="mallory|<img src=x>")
    in_repo.write("orders", wedata_plan())
    in_repo.write("dms", dms_plan(dags=[15001]))
    assert in_repo.apply() == 0
    code, out, _ = cli(capsys, "audit", "log", "--format", "markdown")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    header, rule, *rows = table
    columns = len(re.split(r"(?<!\\)\|", header))
    assert len(re.split(r"(?<!\\)\|", rule)) == columns
    assert len(rows) == 2
    assert all(len(re.split(r"(?<!\\)\|", row)) == columns for row in rows)
    assert re.search(r"(?<!\\)<", out) is None  # no HTML reaches the page
    assert r"mallory\|\<img" in out
    assert "[run](https://github.com/acme/backfills/actions/runs/987654)" in out


def test_json_names_the_journal_head_it_was_read_up_to(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = cli(capsys, "audit", "log", "--format", "json")
    document = json.loads(out)
    last = json.loads(lines_of(journal)[-1])
    assert (document["seq"], document["head_hash"]) == (7, last["hash"])
    assert [a["intent"]["seq"] for a in document["attempts"]] == [2, 4, 6]


def test_log_refuses_a_broken_chain_naming_the_line(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = lines_of(journal)
    del lines[3]
    journal.write_text("".join(lines))
    code, _, err = cli(capsys, "audit", "log")
    assert code == 1
    assert "state/journal.jsonl:4: " in err


# --- audit verify -----------------------------------------------------------------------------


def test_a_clean_journal_verifies(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0
    assert out.startswith("OK: state/journal.jsonl: 7 events, hash chain intact")
    assert "snapshot.json equals the journal folded" in out


def _edit(lines: list[str]) -> list[str]:
    event = json.loads(lines[4])
    event["data"]["remote_id"] = "someone-elses-plan"
    return [*lines[:4], json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n", *lines[5:]]


def _delete(lines: list[str]) -> list[str]:
    return [*lines[:4], *lines[5:]]


def _reorder(lines: list[str]) -> list[str]:
    return [*lines[:4], lines[5], lines[4], *lines[6:]]


@pytest.mark.parametrize(
    ("tamper", "line", "why"),
    [
        (_edit, 5, "the line was edited"),
        (_delete, 5, "a line was deleted, duplicated or moved"),
        (_reorder, 5, "a line was deleted, duplicated or moved"),
    ],
    ids=["edited", "deleted", "reordered"],
)
def test_tampering_is_caught_at_the_first_bad_line(
    journal: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: object,
    line: int,
    why: str,
) -> None:
    assert callable(tamper)
    journal.write_text("".join(tamper(lines_of(journal))))
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith(f"state/journal.jsonl:{line}: error: ")
    assert why in first
    assert f"the first is at state/journal.jsonl:{line}" in err


def test_an_edit_with_a_recomputed_hash_breaks_the_link_of_the_next_line(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.domain import digest

    lines = lines_of(journal)
    event = json.loads(lines[4])
    event["data"]["remote_id"] = "someone-elses-plan"
    del event["hash"]
    event["hash"] = digest(event)
    lines[4] = json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n"
    journal.write_text("".join(lines))
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 1
    assert err.startswith("state/journal.jsonl:6: error: `prev` is not the hash")


def test_a_snapshot_that_differs_from_the_journal_folded_is_caught(
    journal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.state.snapshot import render

    snapshot = journal.parent / "snapshot.json"
    document = json.loads(snapshot.read_text())
    first = next(iter(document["submissions"].values()))
    first["remote_id"] = "someone-elses-plan"
    snapshot.write_bytes(render(document))  # forged: its digest recomputed
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 1
    assert err.startswith("state/snapshot.json: error: submission ")
    assert "differs from the fold of the journal in `remote_id`" in err

    snapshot.write_text(json.dumps(document, indent=2, sort_keys=True))  # edited by hand
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 1
    assert err.startswith("state/snapshot.json: error: is not laid out as backfill-reconciler")


def test_verify_as_json(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal.write_text("".join(_delete(lines_of(journal))))
    code, out, _ = cli(capsys, "audit", "verify", "--format", "json")
    document = json.loads(out)
    assert code == 1
    assert document["intact"] is False
    assert document["problems"][0]["file"] == "state/journal.jsonl"
    assert document["problems"][0]["line"] == 5


def test_a_directory_without_a_state_fails_verification_naming_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "audit", "verify", "--state-dir", str(tmp_path / "state"))
    assert code == 1
    assert f"{tmp_path / 'state'} does not exist" in err
    assert "backfill init" in err


def test_a_snapshot_without_its_journal_fails_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "snapshot.json").write_text("{}")
    code, _, err = cli(capsys, "audit", "verify", "--state-dir", str(tmp_path))
    assert code == 1
    assert "exists but" in err
    assert "restore journal.jsonl from git" in err
