"""A damaged, edited or missing state never makes the CLI send a backfill twice: the real
`backfill` as a subprocess against the emulator on loopback, counting creates at the emulator.

Each case is what a person, a broken disk or a bad merge does to the files a repo commits.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan, write
from figures import report
from harness import cli

from reconciler.emulator.app import Emulator
from reconciler.errors import StateError
from reconciler.state import State, init_state, load_state, open_state, snapshot, verify_journal


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


def test_committed_events_are_found_again_after_harmless_changes_to_their_bytes(
    checkout: Checkout,
) -> None:
    checkout.git("init", "-q")
    checkout.commit("state after the first apply")
    lines = checkout.journal.read_bytes().splitlines(keepends=True)
    # a blank line in the middle, and line endings converted: no event lost or changed
    changed = [line.replace(b"\n", b"\r\n") for line in [*lines[:2], b"\n", *lines[2:]]]
    checkout.journal.write_bytes(b"".join(changed))

    done = checkout.apply()

    assert done.returncode == 0, done.stderr
    assert_nothing_sent_again(checkout)


def test_a_blank_line_under_the_snapshot_is_no_damage_and_the_next_writer_renews_the_snapshot(
    checkout: Checkout,
) -> None:
    """The snapshot vouches for the journal's first bytes; a blank line among them (tolerated
    everywhere) breaks that vouch, which only costs a load the check of every line: `audit
    verify` passes, and the next command that writes, even a no-op apply, renews the snapshot."""
    lines = checkout.journal.read_bytes().splitlines(keepends=True)
    checkout.journal.write_bytes(b"".join([*lines[:2], b"\n", *lines[2:]]))
    before = checkout.snapshot.read_bytes()

    verified = checkout.run("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    done = checkout.apply()
    assert done.returncode == 0, done.stderr
    assert_nothing_sent_again(checkout)
    assert checkout.snapshot.read_bytes() != before
    assert verify_journal(checkout.state) == []
    renewed = snapshot.read(checkout.snapshot)
    assert renewed is not None
    assert renewed.journal_size == len(checkout.journal.read_bytes())


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


# --- a seeded fuzz of the state files ---------------------------------------------------------

FUZZ_CASES = 200


def _populated(directory: Path) -> None:
    init_state(directory, actor={"user": "fuzz"})
    with open_state(directory, actor={"user": "fuzz"}, command="fuzz") as writer:
        for number in range(6):
            key = f"k{number}"
            writer.append(
                "intent",
                {
                    "key": key,
                    "plan": "orders",
                    "revision": 1,
                    "provider": "tencent-wedata",
                    "action": "CreateDataBackfillPlan",
                    "region": "ap-guangzhou",
                    "endpoint": "http://127.0.0.1:9",
                    "targets": [f"t{number}"],
                    "dates": ["2025-09-01", "2025-09-02"],
                    "fingerprint": "f",
                    "params": {"p": "v"},
                    "request": {"TaskIds": [f"t{number}"]},
                },
            )
            if number % 3 == 0:
                writer.append("unknown", {"key": key, "code": "ReadTimeout", "message": "-"})
            else:
                writer.append(
                    "submitted",
                    {
                        "key": key,
                        "remote_id": f"r{number}",
                        "request_id": "q",
                        "detail": {},
                        "emulator": True,
                    },
                )


def _mutate(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    at = rng.randrange(len(lines))
    kind = rng.randrange(9)
    if kind == 0:  # one byte changed
        spot = rng.randrange(len(data))
        return data[:spot] + bytes([rng.randrange(256)]) + data[spot + 1 :]
    if kind == 1:  # cut anywhere
        return data[: rng.randrange(len(data))]
    if kind == 2:
        return b"".join(lines[:at] + lines[at + 1 :])
    if kind == 3:
        return b"".join([*lines[:at], lines[at], *lines[at:]])
    if kind == 4:
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
        return b"".join(lines)
    if kind == 5:  # junk or an unrelated JSON value as a line
        junk = rng.choice(
            [b"{}", b"[]", b"null", b'{"v":1}', b"\xff\xfe", b"<<<<<<< HEAD", b"1e999"]
        )
        return b"".join([*lines[:at], junk + b"\n", *lines[at:]])
    if kind == 6:  # a value edited in place, as a hand edit would
        line = lines[at]
        for old, new in ((b'"submitted"', b'"rejected"'), (b'"t', b'"x'), (b"1,", b"2,")):
            if old in line:
                lines[at] = line.replace(old, new, 1)
                break
        return b"".join(lines)
    if kind == 7:  # a huge number or a deep structure where a value was
        return (
            data.replace(b'"q"', b"9" * 5000, 1)
            if rng.random() < 0.5
            else data.replace(b'"p":"v"', b'"p":' + b"[" * 3000 + b"]" * 3000, 1)
        )
    return data + rng.choice([b"", b"\n", b"\n\n", b'{"torn', b"  \n"])


def _same(state: State, expected: State) -> bool:
    """The same submissions, the same state: a `torn` event acknowledging junk is no change."""
    return (state.submissions, state.state_id) == (expected.submissions, expected.state_id)


@pytest.mark.parametrize("target", ["journal.jsonl", "snapshot.json"])
def test_damaged_state_files_are_refused_or_read_back_whole_never_anything_else(
    tmp_path: Path, target: str
) -> None:
    """A journal is refused or read back as written; a snapshot, a cache, is read back always
    (replaced by the journal's replay when it does not match itself)."""
    pristine = tmp_path / "pristine"
    _populated(pristine)
    expected = load_state(pristine)
    rng = random.Random(f"state-fuzz-{target}")
    outcomes: Counter[str] = Counter()
    for case in range(FUZZ_CASES):
        directory = tmp_path / f"case-{case}"
        shutil.copytree(pristine, directory)
        path = directory / target
        path.write_bytes(_mutate(path.read_bytes(), rng))
        refusal: StateError | None = None
        try:
            loaded = load_state(directory)
        except StateError as error:
            refusal = error
        if refusal is not None:
            assert refusal.location is not None, refusal  # it names the file (and line)
            outcomes["refused"] += 1
            continue
        # whatever a load accepts is the state as written: no submission lost or changed
        assert _same(loaded, expected), (case, path.read_bytes()[:300])
        outcomes["read back"] += 1
        with open_state(directory, actor={"user": "fuzz"}, command="fuzz"):
            pass  # a writer accepts it too, and leaves it whole
        assert _same(load_state(directory), expected)
        assert verify_journal(directory) == []
    if target == "journal.jsonl":
        assert outcomes["refused"], outcomes
        assert outcomes["read back"], outcomes
    else:
        assert outcomes == {"read back": FUZZ_CASES}
    report(f"[fuzz] {target}: {FUZZ_CASES} damaged copies, {dict(outcomes)}")
