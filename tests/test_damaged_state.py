"""A damaged, edited or missing state never makes the CLI send a backfill twice: the real
`backfill` as a subprocess against the emulator on loopback, counting creates at the emulator.

Each case is what a person, a broken disk or a bad merge does to the files a repo commits.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan, write
from harness import cli

from reconciler.emulator.app import Emulator


class Checkout:
    """A repo as a team keeps it: plans and an initialised state, applied once, committed."""

    def __init__(self, root: Path, emulator: Emulator, url: str, env: dict[str, str]) -> None:
        self.root, self.emulator, self.url, self.env = root, emulator, url, env
        self.state = root / "state"
        self.journal = self.state / "journal.jsonl"
        self.snapshot = self.state / "snapshot.json"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, cwd=self.root, env=self.env)

    def apply(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "--yes", "--endpoint", self.url, *args)

    def creates(self) -> int:
        return len(self.emulator.calls.all())

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


@pytest.fixture
def checkout(
    tmp_path: Path, emulator: Emulator, emulator_url: str, cli_env: dict[str, str]
) -> Checkout:
    repo = Checkout(tmp_path, emulator, emulator_url, cli_env)
    write(tmp_path / "plans" / "orders.yaml", wedata_plan(dates=[("2025-09-01", "2025-09-03")]))
    write(tmp_path / "plans" / "dms.yaml", dms_plan(dags=[15001, 15002]))
    assert repo.run("init").returncode == 0
    applied = repo.apply()
    assert applied.returncode == 0, applied.stderr
    assert repo.creates() == 3
    return repo


def assert_nothing_sent_again(repo: Checkout) -> None:
    assert repo.creates() == 3


# --- the snapshot: a cache, never believed over the journal -----------------------------------


def _without_a_submission(lines: list[str]) -> list[str]:
    return [
        lines[0],
        *(line for line in lines[1:-1] if '"plan":"dms-backfill"' not in line),
        "}}\n",
    ]


def _with_fewer_dates(lines: list[str]) -> list[str]:
    return [line.replace('"2025-09-01..2025-09-03"', '"2025-09-01"') for line in lines]


def _with_another_status(lines: list[str]) -> list[str]:
    return [line.replace('"status":"submitted"', '"status":"rejected"', 1) for line in lines]


@pytest.mark.parametrize("mangle", [_without_a_submission, _with_fewer_dates, _with_another_status])
def test_a_snapshot_mangled_as_a_bad_merge_would_is_rebuilt_from_the_journal_and_nothing_sent(
    checkout: Checkout, mangle: Callable[[list[str]], list[str]]
) -> None:
    lines = checkout.snapshot.read_text().splitlines(keepends=True)
    mangled = "".join(mangle(lines))
    assert mangled != "".join(lines)
    checkout.snapshot.write_text(mangled)

    planned = checkout.run("plan", "--detailed-exitcode")
    applied = checkout.apply()

    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "state/snapshot.json: does not match its digest" in planned.stdout
    assert applied.returncode == 0, applied.stderr
    assert_nothing_sent_again(checkout)
    assert checkout.run("audit", "verify").returncode == 0  # the apply rewrote it


# --- the journal: damage anywhere is refused, naming the line --------------------------------


def first(kind: str, lines: list[bytes]) -> int:
    return next(i for i, line in enumerate(lines) if json.loads(line)["type"] == kind)


def _edit_a_line(lines: list[bytes]) -> list[bytes]:
    at = first("submitted", lines)
    return [*lines[:at], lines[at].replace(b'"submitted"', b'"rejected"'), *lines[at + 1 :]]


def _swap_two_lines(lines: list[bytes]) -> list[bytes]:
    return [*lines[:1], lines[2], lines[1], *lines[3:]]


def _reseal_an_edited_line(lines: list[bytes]) -> list[bytes]:
    from reconciler.domain import canonical_json, digest

    at = first("submitted", lines)
    event = json.loads(lines[at])
    event["data"]["remote_id"] = "someone-elses"
    del event["hash"]
    event["hash"] = digest(event)
    return [*lines[:at], (canonical_json(event) + "\n").encode(), *lines[at + 1 :]]


@pytest.mark.parametrize(
    ("damage", "after"),
    [(_edit_a_line, 0), (_swap_two_lines, 0), (_reseal_an_edited_line, 1)],
)
@pytest.mark.parametrize("snapshot", ["kept", "deleted"])
def test_a_damaged_journal_line_stops_plan_and_apply_naming_it(
    checkout: Checkout,
    damage: Callable[[list[bytes]], list[bytes]],
    after: int,
    snapshot: str,
) -> None:
    if snapshot == "deleted":
        checkout.snapshot.unlink()
    lines = checkout.journal.read_bytes().splitlines(keepends=True)
    edited = damage(lines)
    changed = next(i for i, (old, new) in enumerate(zip(lines, edited, strict=True)) if old != new)
    line = changed + 1 + after  # a re-sealed line breaks the link of the line after it
    damaged = b"".join(edited)
    checkout.journal.write_bytes(damaged)

    for done in (checkout.run("plan"), checkout.apply(), checkout.run("recover")):
        assert done.returncode == 1
        assert f"state/journal.jsonl:{line}: " in done.stderr
        assert "Traceback" not in done.stderr
    assert checkout.journal.read_bytes() == damaged  # never rewritten
    assert_nothing_sent_again(checkout)


def test_a_journal_cut_mid_line_is_not_taken_for_a_torn_write_when_the_snapshot_knows_more(
    checkout: Checkout,
) -> None:
    data = checkout.journal.read_bytes()
    cut = data[: data.index(b"\n", len(data) // 3) + 40]  # some lines, then half a line
    checkout.journal.write_bytes(cut)

    for done in (checkout.run("plan"), checkout.apply()):
        assert done.returncode == 1
        assert "state/snapshot.json: snapshot does not match the journal" in done.stderr
    assert checkout.journal.read_bytes() == cut
    assert_nothing_sent_again(checkout)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: data.index(b"\n", len(data) // 3) + 40], id="cut"),
        pytest.param(lambda data: b"", id="emptied"),
        pytest.param(lambda data: b"".join(data.splitlines(keepends=True)[:3]), id="shortened"),
    ],
)
def test_a_journal_that_lost_committed_events_is_refused_even_without_its_snapshot(
    checkout: Checkout, damage: Callable[[bytes], bytes]
) -> None:
    checkout.git("init", "-q")
    checkout.commit("state after the first apply")
    checkout.journal.write_bytes(damage(checkout.journal.read_bytes()))
    checkout.snapshot.unlink()

    for done in (checkout.run("plan"), checkout.apply()):
        assert done.returncode == 1
        assert "state/journal.jsonl: " in done.stderr
        assert "committed in" in done.stderr
        assert "git checkout" in done.stderr
    assert_nothing_sent_again(checkout)


def test_a_commit_that_removed_events_is_caught_by_the_next_run(checkout: Checkout) -> None:
    checkout.git("init", "-q")
    checkout.commit("state after the first apply")
    data = checkout.journal.read_bytes()
    checkout.journal.write_bytes(b"".join(data.splitlines(keepends=True)[:3]))
    checkout.snapshot.unlink()
    checkout.commit("a bad merge that lost journal lines")

    done = checkout.apply()

    assert done.returncode == 1
    assert "shorter than the" in done.stderr
    assert_nothing_sent_again(checkout)


def test_a_torn_last_line_is_acknowledged_not_cut_and_nothing_is_sent_twice(
    checkout: Checkout,
) -> None:
    with checkout.journal.open("ab") as handle:
        handle.write(b'{"actor":{"user":"ci"},"data":{"key":"')  # a write cut short
    before = checkout.journal.read_bytes()

    applied = checkout.apply()

    assert applied.returncode == 0, applied.stderr
    assert checkout.journal.read_bytes().startswith(before + b"\n")
    assert json.loads(checkout.journal.read_bytes().splitlines()[-1])["type"] == "torn"
    assert checkout.run("audit", "verify").returncode == 0
    assert_nothing_sent_again(checkout)


# --- a missing state is not an empty one ------------------------------------------------------


@pytest.mark.parametrize("where", ["--state-dir=staet", "BACKFILL_STATE_DIR=staet"])
def test_a_mistyped_state_directory_is_refused_and_nothing_is_sent(
    checkout: Checkout, where: str
) -> None:
    if where.startswith("--"):
        options: tuple[str, ...] = (where,)
    else:
        options = ()
        checkout.env = {**checkout.env, "BACKFILL_STATE_DIR": "staet"}

    planned = checkout.run("plan", *options)
    applied = checkout.apply(*options)

    assert planned.returncode == 0
    assert "staet does not exist: nothing was ever journaled there" in planned.stdout
    assert applied.returncode == 1
    assert "staet does not exist" in applied.stderr
    assert "backfill init --state-dir staet" in applied.stderr
    assert not (checkout.root / "staet").exists()
    assert_nothing_sent_again(checkout)


@pytest.mark.parametrize("name", ["journal.jsonl", "snapshot.json"])
def test_a_state_file_that_is_a_directory_is_a_clear_error(checkout: Checkout, name: str) -> None:
    path = checkout.state / name
    path.unlink()
    path.mkdir()

    done = checkout.apply()

    assert done.returncode == 1
    assert f"state/{name} is a directory" in done.stderr or f"state/{name}: is a directory" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert_nothing_sent_again(checkout)
