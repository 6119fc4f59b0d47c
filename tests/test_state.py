"""The state store: journal, snapshot and lock, on real files in a temporary directory."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_origin

import jsonschema
import pytest

from reconciler.domain import Cell, Health, canonical_json, ordinal
from reconciler.errors import StateError
from reconciler.state import (
    EventType,
    State,
    StateWriter,
    SubmissionStatus,
    force_unlock,
    formats,
    init_state,
    intent_details,
    journal,
    load_state,
    open_state,
    read_lock_holder,
    records,
    snapshot,
    store,
    verify_journal,
)
from reconciler.state.fold import FoldError
from reconciler.state.store import CHECKPOINT_EVERY

ACTOR = {"user": "alice", "commit": "0123abcd", "pr": 42, "tool_version": "0.1.0"}
SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "state.schema.json").read_text())
ZEROS = "0" * 64


def fixed_clock() -> datetime:
    return datetime(2026, 11, 21, 6, 40, 0, 123456, tzinfo=UTC)


def writer(directory: Path, **options: Any) -> StateWriter:
    """A writer of the state in `directory`, which is started (`backfill init`) if need be."""
    options.setdefault("clock", fixed_clock)
    if not (directory / "journal.jsonl").exists():
        init_state(directory, actor=ACTOR, clock=options["clock"])
    return open_state(directory, actor=ACTOR, command="backfill apply", **options)


def intent(
    key: str,
    *,
    plan: str = "orders",
    revision: int = 1,
    targets: tuple[str, ...] = ("task-1",),
    dates: tuple[str, ...] = ("2026-01-01",),
    fingerprint: str = "fp-1",
) -> dict[str, Any]:
    return {
        "key": key,
        "plan": plan,
        "revision": revision,
        "provider": "wedata",
        "action": "CreateDataBackfillPlan",
        "region": "ap-singapore",
        "endpoint": "https://wedata.intl.tencentcloudapi.com",
        "targets": list(targets),
        "dates": list(dates),
        "fingerprint": fingerprint,
        "params": {"ProjectId": "p-1", "CheckParentType": "NONE"},
        "request": {"ProjectId": "p-1", "TaskIds": list(targets), "DataBackfillPlanName": key},
    }


def submitted(key: str, remote_id: str = "plan-1", *, emulator: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "remote_id": remote_id,
        "request_id": "req-1",
        "detail": {"plan_id": remote_id},
        "emulator": emulator,
    }


def rejected(key: str) -> dict[str, Any]:
    return {"key": key, "code": "InvalidParameter", "message": "no such task", "request_id": "r"}


def unknown(key: str) -> dict[str, Any]:
    return {"key": key, "code": "ReadTimeout", "message": "no reply after sending"}


def journal_lines(directory: Path) -> list[bytes]:
    return (directory / "journal.jsonl").read_bytes().splitlines(keepends=True)


def write_journal(directory: Path, lines: list[bytes]) -> None:
    (directory / "journal.jsonl").write_bytes(b"".join(lines))


def populated(directory: Path, submissions: int = 5) -> State:
    """A closed state of `submissions` intents, each followed by a submitted outcome."""
    with writer(directory) as state:
        for number in range(submissions):
            state.append("intent", intent(f"k{number}", targets=(f"task-{number}",)))
            state.append("submitted", submitted(f"k{number}", f"plan-{number}"))
        return state.state


# --- journal and round trip ----------------------------------------------------------------


def test_appended_events_read_back_as_the_same_state(tmp_path: Path) -> None:
    with writer(tmp_path / "state") as state:
        state.append("intent", intent("a"))
        state.append("submitted", submitted("a", "plan-9", emulator=True))
        state.append("intent", intent("b", dates=("2026-01-02", "2026-01-03")))
        state.append("rejected", rejected("b"))
        state.append("intent", intent("c"))
        state.append("unknown", unknown("c"))
        written = state.state

    loaded = load_state(tmp_path / "state")

    assert loaded == written
    assert loaded.seq == 7  # `initialized`, then six events
    assert loaded.warnings == ()
    a = loaded.submissions["a"]
    assert (a.status, a.remote_id, a.request_id, a.emulator) == (
        "submitted",
        "plan-9",
        "req-1",
        True,
    )
    assert (a.attempts, a.intent_seq, a.updated_seq) == (1, 2, 3)
    assert a.intent_time == a.updated_time == "2026-11-21T06:40:00.123Z"
    assert intent_details(loaded, [a])["a"].actor == ACTOR
    assert a.targets == ("task-1",)
    b = loaded.submissions["b"]
    assert (b.status, b.code, b.message) == ("rejected", "InvalidParameter", "no such task")
    assert b.dates == ("2026-01-02", "2026-01-03")
    assert loaded.submissions["c"].status is SubmissionStatus.UNKNOWN


def test_each_event_is_one_canonical_line_hash_chained_to_the_one_before(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        returned = state.append("intent", intent("a"))
        state.append("submitted", submitted("a"))
        state.append("intent", intent("b"))

    lines = journal_lines(tmp_path)
    events = [json.loads(line) for line in lines]
    assert events[0]["type"] == "initialized"
    assert events[1] == returned
    assert [event["seq"] for event in events] == [1, 2, 3, 4]
    assert events[0]["prev"] == ZEROS
    for line, event in zip(lines, events, strict=True):
        assert line == (canonical_json(event) + "\n").encode()
        unsealed = {name: value for name, value in event.items() if name != "hash"}
        assert event["hash"] == hashlib.sha256(canonical_json(unsealed).encode()).hexdigest()
        assert event["v"] == 1
        assert event["actor"] == ACTOR
        assert event["time"] == "2026-11-21T06:40:00.123Z"
    assert [event["prev"] for event in events[1:]] == [event["hash"] for event in events[:-1]]
    assert load_state(tmp_path).head_hash == events[-1]["hash"]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda path: None, id="no directory"),
        pytest.param(lambda path: path.mkdir(), id="empty directory"),
        pytest.param(lambda path: (path.mkdir(), (path / "journal.jsonl").touch()), id="empty"),
    ],
)
def test_a_directory_without_a_state_is_refused_never_taken_for_an_empty_state(
    tmp_path: Path, make: Callable[[Path], object]
) -> None:
    path = tmp_path / "staet"  # a typo of the real one
    make(path)

    with pytest.raises(StateError, match="backfill init --state-dir") as raised:
        load_state(path)
    assert str(path) in str(raised.value)
    with pytest.raises(StateError, match="backfill init"):
        open_state(path, actor=ACTOR, command="backfill apply")
    assert not (path / "lock").exists()

    state = load_state(path, missing_ok=True)  # what `plan` reads: empty, and it says why
    assert (state.seq, dict(state.submissions)) == (0, {})
    assert "backfill init" in state.warnings[0]


def test_a_file_where_the_state_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("x")

    for missing_ok in (False, True):
        with pytest.raises(StateError, match="state is not a directory"):
            load_state(tmp_path / "state", missing_ok=missing_ok)
    with pytest.raises(StateError, match="state is not a directory"):
        open_state(tmp_path / "state", actor=ACTOR, command="backfill apply")


def test_init_starts_a_state_once_with_a_gitignore_for_the_lock(tmp_path: Path) -> None:
    directory = tmp_path / "repo" / "state"

    state, created = init_state(directory, actor=ACTOR, clock=fixed_clock)
    again, created_again = init_state(directory, actor=ACTOR, clock=fixed_clock)

    assert (created, created_again) == (True, False)
    assert state == again
    assert (state.seq, len(state.state_id)) == (1, 16)
    [first] = [json.loads(line) for line in journal_lines(directory)]
    assert (first["type"], first["data"], first["actor"]) == (
        "initialized",
        {"state_id": state.state_id},
        ACTOR,
    )
    assert "lock" in (directory / ".gitignore").read_text().splitlines()
    assert "journal.jsonl -text" in (directory / ".gitattributes").read_text().splitlines()
    assert init_state(tmp_path / "other", actor=ACTOR)[0].state_id != state.state_id


def test_an_initialized_event_anywhere_but_first_is_damage(tmp_path: Path) -> None:
    populated(tmp_path, submissions=1)
    (tmp_path / "snapshot.json").unlink()
    first = journal_lines(tmp_path)[0]
    event = json.loads(first)
    event.update(seq=4, prev=json.loads(journal_lines(tmp_path)[-1])["hash"])
    del event["hash"]
    event["hash"] = hashlib.sha256(canonical_json(event).encode()).hexdigest()
    write_journal(tmp_path, [*journal_lines(tmp_path), (canonical_json(event) + "\n").encode()])

    with pytest.raises(StateError, match=r"journal.jsonl:4: `initialized` is only ever the first"):
        load_state(tmp_path)


def test_a_gitignore_the_user_edited_is_left_alone(tmp_path: Path) -> None:
    populated(tmp_path, submissions=1)
    (tmp_path / ".gitignore").write_text("lock\n# ours now\n")

    with writer(tmp_path) as state:
        state.append("intent", intent("b", targets=("t2",)))

    assert (tmp_path / ".gitignore").read_text() == "lock\n# ours now\n"


def test_loading_a_snapshot_and_replaying_the_rest_equals_replaying_everything(
    tmp_path: Path,
) -> None:
    with writer(tmp_path) as state:
        for number in range(10):
            state.append("intent", intent(f"k{number}"))
        state.checkpoint()
        snapshot_at_10 = (tmp_path / "snapshot.json").read_bytes()
        for number in range(10):
            state.append(
                "submitted" if number % 2 else "unknown",
                submitted(f"k{number}") if number % 2 else unknown(f"k{number}"),
            )
        state.append("intent", intent("k10"))
        final = state.state
    (tmp_path / "snapshot.json").write_bytes(snapshot_at_10)

    from_snapshot = load_state(tmp_path)
    (tmp_path / "snapshot.json").unlink()
    from_scratch = load_state(tmp_path)

    assert json.loads(snapshot_at_10)["seq"] == 11
    assert from_snapshot == from_scratch == final
    assert from_snapshot.seq == 22


def test_the_snapshot_is_one_sorted_line_per_submission_for_readable_git_diffs(
    tmp_path: Path,
) -> None:
    populated(tmp_path, submissions=2)

    text = (tmp_path / "snapshot.json").read_text()
    value = json.loads(text)
    lines = text.splitlines()

    assert len(lines) == 4  # header, k1, k2, closing
    assert lines[1].startswith('"k0":{')
    assert lines[1].endswith("},")
    assert lines[2].startswith('"k1":{')
    assert lines[2].endswith("}")
    assert json.loads(lines[1][len('"k0":') : -1]) == value["submissions"]["k0"]
    assert (value["format"], value["seq"], value["emulator"]) == (3, 5, False)
    assert value["hash"] == json.loads(journal_lines(tmp_path)[-1])["hash"]
    assert value["submissions"]["k1"]["status"] == "submitted"


def test_a_snapshot_laid_out_by_another_tool_is_not_trusted_and_the_journal_replayed(
    tmp_path: Path,
) -> None:
    populated(tmp_path, submissions=2)
    path = tmp_path / "snapshot.json"
    expected = load_state(tmp_path)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))  # e.g. a pretty-printer

    loaded = load_state(tmp_path)

    assert loaded == expected
    assert loaded.warnings == (
        f"{path}: is not laid out as backfill-reconciler writes it (edited by hand, or an"
        f" unresolved merge conflict?); ignored it and replayed {tmp_path}/journal.jsonl (the"
        " next writer rewrites it)",
    )
    with writer(tmp_path):
        pass  # nothing appended, but the snapshot it could not trust is rewritten
    assert load_state(tmp_path).warnings == ()


def _drop_a_submission(value: dict[str, Any]) -> None:
    del value["submissions"]["k1"]


def _shrink_its_dates(value: dict[str, Any]) -> None:
    value["submissions"]["k1"]["dates"] = []


def _say_it_was_rejected(value: dict[str, Any]) -> None:
    value["submissions"]["k1"]["status"] = "rejected"


@pytest.mark.parametrize("edit", [_drop_a_submission, _shrink_its_dates, _say_it_was_rejected])
def test_a_snapshot_edited_as_a_mangled_merge_would_is_never_believed(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    expected = populated(tmp_path, submissions=2)
    path = tmp_path / "snapshot.json"
    lines = path.read_text().splitlines(keepends=True)
    value = json.loads("".join(lines))
    edit(value)
    # laid out exactly as the tool writes it, only the edit differs
    kept = [line for line in lines[1:-1] if not line.startswith('"k1"')]
    if "k1" in value["submissions"]:
        record = json.dumps(value["submissions"]["k1"], sort_keys=True, separators=(",", ":"))
        kept.append(f'"k1":{record}\n')
    path.write_text(lines[0] + ",\n".join(line.rstrip(",\n") for line in kept) + "\n" + lines[-1])

    loaded = load_state(tmp_path)

    assert loaded == expected
    assert loaded.submissions["k1"].status == "submitted"
    assert "does not match its digest" in loaded.warnings[0]
    assert [str(problem) for problem in verify_journal(tmp_path)] == [
        f"{path}: does not match its digest: it was edited, or a merge mangled it"
    ]


def test_lines_under_the_snapshot_are_checked_without_being_decoded(tmp_path: Path) -> None:
    populated(tmp_path, submissions=3)
    lines = journal_lines(tmp_path)
    lines[1] = b"not even JSON\n"
    write_journal(tmp_path, lines)

    with pytest.raises(StateError, match=r"journal.jsonl:2: is not valid JSON"):
        load_state(tmp_path)
    problems = verify_journal(tmp_path)
    assert [str(problem.location) for problem in problems] == [f"{tmp_path}/journal.jsonl:2"]


# --- folding: statuses, the exactly-once guard, coverage -------------------------------------


def test_an_intent_without_an_outcome_reads_back_pending_and_needs_attention(
    tmp_path: Path,
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))  # then the process dies before the reply

    record = load_state(tmp_path).submissions["a"]

    assert record.status is SubmissionStatus.PENDING
    assert record.needs_attention
    assert record.covers_cells


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (None, "pending"),
        ("submitted", "submitted"),
        ("unknown", "unknown"),
    ],
)
def test_a_second_intent_for_a_submission_that_may_have_run_is_refused(
    tmp_path: Path, outcome: str | None, status: str
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        if outcome == "submitted":
            state.append("submitted", submitted("a"))
        elif outcome == "unknown":
            state.append("unknown", unknown("a"))
        before = journal_lines(tmp_path)

        with pytest.raises(StateError, match=f"second intent for submission a \\({status}"):
            state.append("intent", intent("a"))

        assert journal_lines(tmp_path) == before
        assert state.state.submissions["a"].attempts == 1
    assert load_state(tmp_path).submissions["a"].status == status


@pytest.mark.parametrize(
    ("settle", "data"),
    [
        ("rejected", rejected("a")),
        ("resolved", {"key": "a", "status": "missing", "remote_id": "", "how": "lookup: none"}),
        ("forgotten", {"key": "a", "reason": "checked the console: it never ran"}),
        ("unsent", {"key": "a", "code": "ConnectError", "message": "connection refused"}),
    ],
)
def test_a_retry_after_a_submission_that_did_not_run_is_allowed_and_counted(
    tmp_path: Path, settle: str, data: dict[str, Any]
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        if settle not in ("rejected", "unsent"):
            state.append("unknown", unknown("a"))
        state.append(settle, data)
        assert not state.state.coverage()

        state.append("intent", intent("a"))

    record = load_state(tmp_path).submissions["a"]
    assert (record.status, record.attempts, record.intent_seq) == ("pending", 2, record.updated_seq)
    assert (record.code, record.message) == ("", "")


def test_an_outcome_for_a_submission_without_an_intent_is_refused(tmp_path: Path) -> None:
    with writer(tmp_path) as state, pytest.raises(StateError, match="which has no intent"):
        state.append("submitted", submitted("ghost"))

    assert [json.loads(line)["type"] for line in journal_lines(tmp_path)] == ["initialized"]


def test_outcomes_only_follow_the_statuses_they_can_follow(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        state.append("submitted", submitted("a"))

        with pytest.raises(StateError, match="`submitted` for submission a, which is submitted"):
            state.append("submitted", submitted("a"))
        with pytest.raises(StateError, match="`forgotten` for submission a, which is submitted"):
            state.append("forgotten", {"key": "a", "reason": "a ran backfill cannot be un-run"})


def test_an_unknown_is_settled_by_a_lookup_or_by_a_person(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        for key in ("looked-up", "imported", "forgotten"):
            state.append("intent", intent(key, targets=(key,)))
            state.append("unknown", unknown(key))
        state.append(
            "resolved",
            {"key": "looked-up", "status": "submitted", "remote_id": "i-7", "how": "ListTaskFlow"},
        )
        state.append("imported", {"key": "imported", "remote_id": "plan-3", "reason": "console"})
        state.append("forgotten", {"key": "forgotten", "reason": "it never ran"})

    records = load_state(tmp_path).submissions
    assert (records["looked-up"].status, records["looked-up"].remote_id) == ("submitted", "i-7")
    assert records["looked-up"].message == "ListTaskFlow"
    assert (records["imported"].status, records["imported"].remote_id) == ("submitted", "plan-3")
    assert records["forgotten"].status is SubmissionStatus.FORGOTTEN
    assert not any(record.needs_attention for record in records.values())


def test_coverage_is_every_cell_of_pending_submitted_and_unknown_submissions(
    tmp_path: Path,
) -> None:
    with writer(tmp_path) as state:
        state.append(
            "intent", intent("ok", targets=("t1", "t2"), dates=("2026-01-01", "2026-01-02"))
        )
        state.append("submitted", submitted("ok"))
        state.append("intent", intent("maybe", targets=("t3",), dates=("2026-01-01",)))
        state.append("unknown", unknown("maybe"))
        state.append("intent", intent("in-flight", targets=("t4",), dates=("2026-01-01",)))
        state.append("intent", intent("no", targets=("t5",), dates=("2026-01-01",)))
        state.append("rejected", rejected("no"))

    coverage = load_state(tmp_path).coverage()

    assert {str(cell): record.key for cell, record in coverage.items()} == {
        "orders@r1:t1:2026-01-01": "ok",
        "orders@r1:t1:2026-01-02": "ok",
        "orders@r1:t2:2026-01-01": "ok",
        "orders@r1:t2:2026-01-02": "ok",
        "orders@r1:t3:2026-01-01": "maybe",
        "orders@r1:t4:2026-01-01": "in-flight",
    }


def test_where_two_submissions_cover_a_cell_the_later_intent_wins(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("first", fingerprint="old"))
        state.append("submitted", submitted("first"))
        state.append("intent", intent("second", fingerprint="new"))

    cell = Cell("orders", 1, "task-1", "2026-01-01")
    assert load_state(tmp_path).coverage()[cell].key == "second"


def test_a_state_is_marked_emulator_once_the_emulator_accepted_a_submission(
    tmp_path: Path,
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("real"))
        state.append("submitted", submitted("real"))
        assert not state.state.emulator
        state.append("intent", intent("demo", targets=("t2",)))
        state.append("submitted", submitted("demo", emulator=True))
        assert state.state.emulator

    assert load_state(tmp_path).emulator


def test_an_event_without_its_fields_is_a_programming_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    data = intent("a")
    del data["fingerprint"]

    with writer(tmp_path) as state, pytest.raises(ValueError, match="has no `fingerprint`"):
        state.append("intent", data)

    assert [json.loads(line)["type"] for line in journal_lines(tmp_path)] == ["initialized"]


def test_states_handed_out_by_the_writer_do_not_change_after_later_appends(
    tmp_path: Path,
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        before = state.state
        returned = state.append("submitted", submitted("a"))
        returned["data"]["detail"]["plan_id"] = "tampered"

        assert before.submissions["a"].status is SubmissionStatus.PENDING
        assert state.state.submissions["a"].detail == {"plan_id": "plan-1"}


# --- damage ----------------------------------------------------------------------------------


def test_a_torn_last_line_is_ignored_and_reported(tmp_path: Path) -> None:
    expected = populated(tmp_path, submissions=2)
    with (tmp_path / "journal.jsonl").open("ab") as handle:
        handle.write(b'{"v":1,"seq":6,"ti')  # the crash cut this write short

    state = load_state(tmp_path)

    assert state == expected
    assert len(state.warnings) == 1
    assert f"{tmp_path}/journal.jsonl:6" in state.warnings[0]
    assert "torn last line (18 bytes" in state.warnings[0]


def test_the_next_writer_acknowledges_a_torn_last_line_and_never_cuts_it(tmp_path: Path) -> None:
    populated(tmp_path, submissions=2)
    torn = b'{"v":1,"seq":6,"ti'
    with (tmp_path / "journal.jsonl").open("ab") as handle:
        handle.write(torn)
    before = (tmp_path / "journal.jsonl").read_bytes()

    with writer(tmp_path) as state:
        assert "torn last line" in state.state.warnings[0]
        state.append("intent", intent("next", targets=("t9",)))

    after = (tmp_path / "journal.jsonl").read_bytes()
    assert after.startswith(before + b"\n")  # the torn bytes stay: an append-only journal
    events = [json.loads(line) for line in after.splitlines()[6:]]
    assert [(event["seq"], event["type"]) for event in events] == [(6, "torn"), (7, "intent")]
    assert events[0]["data"] == {"length": 18, "sha256": hashlib.sha256(torn).hexdigest()}
    reloaded = load_state(tmp_path)
    assert (reloaded.seq, reloaded.warnings) == (7, ())
    assert verify_journal(tmp_path) == []


def test_a_line_that_is_no_event_followed_by_anything_but_its_acknowledgement_is_damage(
    tmp_path: Path,
) -> None:
    populated(tmp_path, submissions=2)
    torn = b'{"v":1,"seq":6,"ti'
    with (tmp_path / "journal.jsonl").open("ab") as handle:
        handle.write(torn)
    with writer(tmp_path):
        pass
    lines = journal_lines(tmp_path)
    event = json.loads(lines[-1])
    event["data"]["length"] = 17  # acknowledges other bytes
    del event["hash"]
    event["hash"] = hashlib.sha256(canonical_json(event).encode()).hexdigest()
    write_journal(tmp_path, [*lines[:-1], (canonical_json(event) + "\n").encode()])
    (tmp_path / "snapshot.json").unlink()

    with pytest.raises(StateError, match=r"journal.jsonl:6: is not valid JSON"):
        load_state(tmp_path)


def test_a_complete_last_line_without_its_newline_is_an_event(tmp_path: Path) -> None:
    expected = populated(tmp_path, submissions=2)
    path = tmp_path / "journal.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # e.g. an editor's doing

    assert load_state(tmp_path) == expected
    with writer(tmp_path) as state:
        state.append("intent", intent("next", targets=("t9",)))
    assert load_state(tmp_path).seq == expected.seq + 1
    assert verify_journal(tmp_path) == []


def test_a_blank_trailing_line_is_not_damage(tmp_path: Path) -> None:
    populated(tmp_path, submissions=1)
    with (tmp_path / "journal.jsonl").open("ab") as handle:
        handle.write(b"\n")

    assert load_state(tmp_path).warnings == ()
    with writer(tmp_path) as state:
        state.append("intent", intent("next", targets=("t9",)))
    assert load_state(tmp_path).seq == 4


def _bad_json(lines: list[bytes]) -> None:
    lines[3] = b'{"v":1,"seq":4,\n'


def _edited_field(lines: list[bytes]) -> None:
    assert b'"targets":["task-1"]' in lines[3]
    lines[3] = lines[3].replace(b'"targets":["task-1"]', b'"targets":["task-9"]')


def _edited_field_with_its_hash_recomputed(lines: list[bytes]) -> None:
    event = json.loads(lines[3])
    event["data"]["targets"] = ["task-forged"]
    del event["hash"]
    event["hash"] = hashlib.sha256(canonical_json(event).encode()).hexdigest()
    lines[3] = (canonical_json(event) + "\n").encode()


def _deleted_line(lines: list[bytes]) -> None:
    del lines[3]


def _swapped_lines(lines: list[bytes]) -> None:
    lines[3], lines[4] = lines[4], lines[3]


def _missing_field(lines: list[bytes]) -> None:
    event = json.loads(lines[3])
    del event["actor"]
    lines[3] = (canonical_json(event) + "\n").encode()


@pytest.mark.parametrize(
    ("damage", "line", "what"),
    [
        (_bad_json, 4, "is not valid JSON"),
        (_edited_field, 4, "hash does not match its content"),
        (_edited_field_with_its_hash_recomputed, 5, "`prev` is not the hash of the event before"),
        (_deleted_line, 4, "`seq` is 5 where 4 was expected"),
        (_swapped_lines, 4, "`seq` is 5 where 4 was expected"),
        (_missing_field, 4, "has no `actor`"),
    ],
)
@pytest.mark.parametrize("snapshot", ["kept", "deleted"])
def test_a_damaged_line_is_an_error_naming_the_line(
    tmp_path: Path, damage: Callable[[list[bytes]], None], line: int, what: str, snapshot: str
) -> None:
    populated(tmp_path, submissions=3)
    if snapshot == "deleted":
        (tmp_path / "snapshot.json").unlink()
    lines = journal_lines(tmp_path)
    damage(lines)
    write_journal(tmp_path, lines)

    with pytest.raises(StateError) as raised:
        load_state(tmp_path)

    assert str(raised.value).startswith(f"{tmp_path}/journal.jsonl:{line}: ")
    assert what in str(raised.value)
    with pytest.raises(StateError, match=f"journal.jsonl:{line}: "):
        writer(tmp_path)
    assert b"".join(journal_lines(tmp_path)) == b"".join(lines)  # never rewritten


def test_blank_lines_are_no_events_and_a_blanked_event_breaks_the_chain(tmp_path: Path) -> None:
    expected = populated(tmp_path, submissions=2)
    lines = journal_lines(tmp_path)
    write_journal(tmp_path, [*lines[:2], b"\n", b"  \n", *lines[2:], b"\n"])
    assert load_state(tmp_path) == expected

    lines[3] = b"\n"
    write_journal(tmp_path, lines)
    with pytest.raises(StateError, match=r"journal.jsonl:5: `seq` is 5 where 4 was expected"):
        load_state(tmp_path)


@pytest.mark.parametrize(
    ("damage", "line"),
    [(_bad_json, 4), (_edited_field, 4), (_edited_field_with_its_hash_recomputed, 5)],
)
def test_the_audit_finds_damage_under_the_snapshot_and_reports_each_once(
    tmp_path: Path, damage: Callable[[list[bytes]], None], line: int
) -> None:
    populated(tmp_path, submissions=3)
    lines = journal_lines(tmp_path)
    damage(lines)
    write_journal(tmp_path, lines)

    problems = verify_journal(tmp_path)

    assert [problem.location.line for problem in problems if problem.location.line] == [line]


def resealed(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edits the snapshot and writes it as the tool would, digest included: what only someone
    who set out to forge it would do."""
    value = json.loads(path.read_text())
    edit(value)
    path.write_bytes(snapshot.render(value))


def test_the_audit_finds_a_forged_snapshot_that_is_not_the_fold_of_its_journal(
    tmp_path: Path,
) -> None:
    populated(tmp_path, submissions=2)
    resealed(
        tmp_path / "snapshot.json",
        lambda value: value["submissions"]["k1"].update(status="rejected"),
    )

    assert load_state(tmp_path).submissions["k1"].status == "rejected"  # its digest holds
    problems = [str(problem) for problem in verify_journal(tmp_path)]
    assert problems == [
        f"{tmp_path}/snapshot.json: submission k1 differs from the fold of the journal in `status`"
    ]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda r: r.update(revision="1"), "submission k8: `revision` is not a int"),
        (lambda r: r.update(attempts=True), "submission k8: `attempts` is not a int"),
        (lambda r: r.update(status="ran"), "submission k8: unknown status 'ran'"),
        (lambda r: r.pop("region"), "submission k8: missing region"),
        (lambda r: r.update(extra=1), "submission k8: unexpected extra"),
        (
            lambda r: r.update(targets=["t", 1]),
            "submission k8: `targets` or `dates` is not a list of strings",
        ),
        (
            lambda r: r.update(dates=[["2026-01-01"]]),
            "submission k8: `targets` or `dates` is not a list of strings",
        ),
        (
            lambda r: r.update(dates=["2026-01-03..2026-01-02"]),
            "submission k8: date run '2026-01-03..2026-01-02' ends before it starts",
        ),
        (lambda r: r.update(key="k9"), "submission k8 is filed under another key (k9)"),
    ],
)
def test_a_forged_snapshot_whose_record_is_no_record_is_replayed_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: Callable[[dict[str, Any]], None],
    problem: str,
) -> None:
    """Records are checked a batch at a time; the one that is wrong is named as if each had
    been read alone (k8 is in the second batch of 500)."""
    with monkeypatch.context() as setup:
        setup.setattr(os, "fsync", lambda fd: None)  # durability is not what this is about
        expected = populated(tmp_path, submissions=600)
    resealed(tmp_path / "snapshot.json", lambda value: edit(value["submissions"]["k8"]))

    loaded = load_state(tmp_path)

    assert loaded == expected
    assert loaded.warnings == (
        f"{tmp_path}/snapshot.json: {problem}; ignored it and replayed"
        f" {tmp_path}/journal.jsonl (the next writer rewrites it)",
    )


def test_an_event_or_a_snapshot_from_a_newer_version_is_refused_as_such(tmp_path: Path) -> None:
    populated(tmp_path, submissions=1)
    resealed(tmp_path / "snapshot.json", lambda value: value.update(format=4))

    with pytest.raises(StateError, match="written by a newer version"):
        load_state(tmp_path)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda value: value.update(hash="f" * 64), id="other hash"),
        pytest.param(lambda value: value.update(seq=9), id="beyond the journal"),
    ],
)
def test_a_snapshot_that_disagrees_with_the_journal_it_names_is_an_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    populated(tmp_path, submissions=2)
    resealed(tmp_path / "snapshot.json", edit)

    with pytest.raises(StateError, match=r"snapshot does not match the journal at line (5|9)"):
        load_state(tmp_path)
    assert verify_journal(tmp_path)


def test_a_snapshot_left_with_merge_conflict_markers_is_ignored_and_rebuilt(
    tmp_path: Path,
) -> None:
    expected = populated(tmp_path, submissions=1)
    (tmp_path / "snapshot.json").write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> main\n")

    loaded = load_state(tmp_path)

    assert loaded == expected
    assert "merge conflict" in loaded.warnings[0]
    assert verify_journal(tmp_path)


# --- health: what the platform said became of each cell ---------------------------------------


def observed(key: str, *cells: tuple[str, str, str, str]) -> dict[str, Any]:
    return {"key": key, "cells": [list(cell) for cell in cells]}


def test_observations_lay_the_newer_word_over_the_older_cell_by_cell(tmp_path: Path) -> None:
    days = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
    with writer(tmp_path) as state:
        state.append("intent", intent("a", targets=("t1", "t2"), dates=days))
        state.append("submitted", submitted("a"))
        updated = state.state.submissions["a"].updated_seq
        state.append(
            "observed",
            observed(
                "a",
                ("t1", "2026-01-01..2026-01-04", "running", "RUNNING"),
                ("t2", "2026-01-01..2026-01-04", "waiting", "WAIT_RUN"),
            ),
        )
        state.append(
            "observed", observed("a", ("t1", "2026-01-02..2026-01-03", "failed", "EXPIRED"))
        )
        state.append("observed", observed("a", ("t1", "2026-01-01", "failed", "EXPIRED")))

    record = load_state(tmp_path).submissions["a"]

    assert [record.health_of("t1", day) for day in days] == [
        ("failed", "EXPIRED"),
        ("failed", "EXPIRED"),
        ("failed", "EXPIRED"),
        ("running", "RUNNING"),
    ]
    assert record.health_of("t2", "2026-01-04") == ("waiting", "WAIT_RUN")
    assert [run[:3] for run in record.health] == [  # neighbours that say the same, merged
        ("t1", ordinal("2026-01-01"), ordinal("2026-01-03")),
        ("t1", ordinal("2026-01-04"), ordinal("2026-01-04")),
        ("t2", ordinal("2026-01-01"), ordinal("2026-01-04")),
    ]
    assert not record.final
    assert (record.status, record.updated_seq) == ("submitted", updated)  # no outcome
    assert record.observed_time == "2026-11-21T06:40:00.123Z"


def test_a_submission_is_final_once_every_cell_succeeded_failed_or_stopped(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        state.append(
            "intent", intent("a", targets=("t1", "t2"), dates=("2026-01-01", "2026-01-02"))
        )
        state.append("submitted", submitted("a"))
        state.append("observed", observed("a", ("t1", "2026-01-01..2026-01-02", "succeeded", "OK")))
        assert not state.state.submissions["a"].final  # t2 never observed
        state.append("observed", observed("a", ("t2", "2026-01-01", "stopped", "PAUSED")))
        state.append("observed", observed("a", ("t2", "2026-01-02", "failed", "EXPIRED")))
        assert state.state.submissions["a"].final


def test_only_a_submitted_backfill_is_observed_and_only_its_own_cells(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a", targets=("t1",), dates=("2026-01-01",)))
        with pytest.raises(StateError, match="only a submitted submission can take it"):
            state.append("observed", observed("a", ("t1", "2026-01-01", "running", "R")))
        state.append("submitted", submitted("a"))
        with pytest.raises(StateError, match="names t9 on days it does not cover"):
            state.append("observed", observed("a", ("t9", "2026-01-01", "running", "R")))
        with pytest.raises(StateError, match="names t1 on days it does not cover"):
            state.append(
                "observed", observed("a", ("t1", "2026-01-01..2026-01-02", "running", "R"))
            )
        with pytest.raises(ValueError, match="'great'"):
            state.append("observed", observed("a", ("t1", "2026-01-01", "great", "R")))


def test_record_observed_journals_only_what_is_new_as_runs_of_days(tmp_path: Path) -> None:
    days = ("2026-01-01", "2026-01-02", "2026-01-03")
    with writer(tmp_path) as state:
        state.append("intent", intent("a", targets=("t1", "t2"), dates=days))
        state.append("submitted", submitted("a"))
        said = [(t, d, Health.SUCCEEDED, "COMPLETED") for t in ("t1", "t2") for d in days]
        said[-1] = ("t2", "2026-01-03", Health.FAILED, "FAILED")
        event = state.record_observed("a", said)
        assert event is not None
        assert event["data"]["cells"] == [
            ["t1", "2026-01-01..2026-01-03", "succeeded", "COMPLETED"],
            ["t2", "2026-01-01..2026-01-02", "succeeded", "COMPLETED"],
            ["t2", "2026-01-03", "failed", "FAILED"],
        ]
        seq = state.state.seq
        assert state.record_observed("a", said) is None  # nothing new: nothing journaled
        assert state.state.seq == seq
        again = state.record_observed("a", [("t2", "2026-01-03", Health.SUCCEEDED, "COMPLETED")])
        assert again is not None
        assert again["data"]["cells"] == [["t2", "2026-01-03", "succeeded", "COMPLETED"]]
        assert state.state.submissions["a"].final
        with pytest.raises(StateError, match="no submission nope"):
            state.record_observed("nope", said)


def test_a_retry_names_the_attempts_it_replaces_in_its_intent(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        state.append("submitted", submitted("a"))
        state.append("intent", {**intent("b"), "replaces": ["a"]})
        with pytest.raises(ValueError, match="replaces"):
            state.append("intent", {**intent("c"), "replaces": []})
    loaded = load_state(tmp_path)
    sent = intent_details(loaded, loaded.submissions.values())
    assert sent["b"].replaces == ("a",)
    assert sent["a"].replaces == ()
    assert verify_journal(tmp_path) == []


def test_health_goes_through_the_snapshot_and_the_journal_alike(tmp_path: Path) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a", targets=("t1",), dates=("2026-01-01", "2026-01-02")))
        state.append("submitted", submitted("a"))
        state.append("observed", observed("a", ("t1", "2026-01-01..2026-01-02", "succeeded", "OK")))

    from_snapshot = load_state(tmp_path)
    (tmp_path / "snapshot.json").unlink()
    from_journal = load_state(tmp_path)

    assert from_snapshot == from_journal
    assert from_snapshot.submissions["a"].final
    assert verify_journal(tmp_path) == []


# --- checkpoints ---------------------------------------------------------------------------


def count_snapshot_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    writes: list[str] = []
    replace = os.replace

    def counting(source: Any, target: Any, **kwargs: Any) -> None:
        if Path(target).name == "snapshot.json":
            writes.append(str(target))
        replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", counting)
    return writes


def test_a_writer_checkpoints_on_close_only_when_it_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populated(tmp_path, submissions=1)
    writes = count_snapshot_writes(monkeypatch)

    with writer(tmp_path):
        pass
    assert writes == []

    with writer(tmp_path) as state:
        state.append("intent", intent("b", targets=("t2",)))
    assert len(writes) == 1


@pytest.mark.slow
def test_applying_ten_thousand_submissions_rewrites_the_snapshot_only_every_5000_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = count_snapshot_writes(monkeypatch)

    with writer(tmp_path) as state:
        for number in range(10_000):
            state.append("intent", intent(f"k{number}", targets=(f"t{number}",)))
            state.append("submitted", submitted(f"k{number}"))

    assert CHECKPOINT_EVERY == 5000
    assert len(writes) == 20_000 // CHECKPOINT_EVERY == 4
    assert load_state(tmp_path).seq == 20_001


def test_a_stale_temp_snapshot_is_ignored_and_cleaned_by_the_next_writer(
    tmp_path: Path,
) -> None:
    expected = populated(tmp_path, submissions=1)
    stale = tmp_path / ".snapshot.json.dead0001.tmp"
    stale.write_text('{"format": 1, "seq": 99')  # a checkpoint cut short by a crash

    assert load_state(tmp_path) == expected
    with writer(tmp_path):
        pass
    assert not stale.exists()


# --- lock ----------------------------------------------------------------------------------

HOLDER = """
import sys
from pathlib import Path
from reconciler.state import init_state, open_state

init_state(Path(sys.argv[1]), actor={"user": "bob"})
with open_state(Path(sys.argv[1]), actor={"user": "bob"}, command="backfill apply"):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Starts a process that holds the lock on `tmp_path` until its stdin gets a line."""
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()


def test_a_second_writer_fails_fast_naming_the_holder(
    tmp_path: Path, holder: Callable[[], subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    process = holder()
    recorded = read_lock_holder(tmp_path)
    assert recorded is not None
    assert (recorded.pid, recorded.command) == (process.pid, "backfill apply")

    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    with pytest.raises(StateError) as raised:
        writer(tmp_path)

    assert waits == []  # not even one poll: no lock timeout means no waiting
    message = str(raised.value)
    assert f"{tmp_path}/ is locked by `backfill apply` (pid {process.pid}, user " in message
    assert f"on host {recorded.host}, since {recorded.since})" in message
    assert (
        f"--lock-timeout, or if that process is gone run `backfill state unlock {recorded.id}`"
        in message
    )


def test_a_writer_waits_up_to_its_lock_timeout(
    tmp_path: Path, holder: Callable[[], subprocess.Popen[str]]
) -> None:
    process = holder()
    started = time.monotonic()
    with pytest.raises(StateError, match=r"is still locked after 0\.3s by `backfill apply`"):
        writer(tmp_path, lock_timeout=0.3)
    assert time.monotonic() - started >= 0.3

    threading.Timer(0.3, release, [process]).start()
    started = time.monotonic()
    with writer(tmp_path, lock_timeout=10) as state:
        assert time.monotonic() - started >= 0.25
        state.append("intent", intent("a"))


def test_a_holder_killed_with_sigkill_does_not_block_the_next_writer(
    tmp_path: Path, holder: Callable[[], subprocess.Popen[str]]
) -> None:
    process = holder()
    process.send_signal(signal.SIGKILL)
    process.wait()
    stale = read_lock_holder(tmp_path)
    assert stale is not None
    assert stale.pid == process.pid  # what it left behind is only a stale record

    with writer(tmp_path) as state:
        current = read_lock_holder(tmp_path)
        assert current is not None
        assert current.pid == os.getpid()
        assert current.id == state.lock.holder.id != stale.id

    assert read_lock_holder(tmp_path) is None


def test_force_unlock_clears_a_stale_record_and_warns_when_the_id_is_not_the_holders(
    tmp_path: Path, holder: Callable[[], subprocess.Popen[str]]
) -> None:
    process = holder()
    live = read_lock_holder(tmp_path)
    assert live is not None
    with pytest.raises(StateError, match="which is still running"):
        force_unlock(tmp_path, live.id)

    process.kill()
    process.wait()
    assert force_unlock(tmp_path, live.id) == []
    assert read_lock_holder(tmp_path) is None

    process = holder()
    process.kill()
    process.wait()
    warnings = force_unlock(tmp_path, "12345678")
    assert len(warnings) == 1
    assert "not 12345678" in warnings[0]


# --- not writable, disk full ---------------------------------------------------------------

READ_ONLY_RUN = """
import json, os, sys
from pathlib import Path
from reconciler.errors import StateError
from reconciler.state import open_state

directory = Path(sys.argv[1])
report = {}
writer = open_state(directory, actor={"user": "carol"}, command="backfill apply")
writer.append("intent", json.loads(sys.argv[2]))
for name in os.listdir(directory):
    os.chmod(directory / name, 0o444)
os.chmod(directory, 0o555)
try:
    writer.close()
except StateError as error:
    report["close"] = str(error)
try:
    open_state(directory, actor={"user": "carol"}, command="backfill apply")
except StateError as error:
    report["open"] = str(error)
print(json.dumps(report))
"""


def without_root_overrides() -> None:
    """Root ignores file modes: drop the capabilities that let it, for the exec that follows."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 24, 1, 2, 3


def test_a_read_only_state_directory_is_a_state_error_and_leaves_no_partial_snapshot(
    tmp_path: Path,
) -> None:
    populated(tmp_path, submissions=1)
    snapshot_before = (tmp_path / "snapshot.json").read_bytes()

    try:
        run = subprocess.run(
            [sys.executable, "-c", READ_ONLY_RUN, str(tmp_path), json.dumps(intent("new"))],
            capture_output=True,
            text=True,
            check=True,
            # the child has no threads yet, so the usual preexec_fn hazard does not apply
            preexec_fn=without_root_overrides if os.geteuid() == 0 else None,
        )
    finally:
        for path in (tmp_path, *tmp_path.iterdir()):
            path.chmod(0o755)
    report = json.loads(run.stdout)

    assert "snapshot.json: the state directory is not writable" in report["close"]
    assert "lock: the state directory is not writable" in report["open"]
    assert (tmp_path / "snapshot.json").read_bytes() == snapshot_before
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".gitattributes",
        ".gitignore",
        "journal.jsonl",
        "lock",
        "snapshot.json",
    ]
    assert load_state(tmp_path).submissions["new"].status == "pending"  # the journal has it


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """File name prefixes whose writes fail as on a full disk (a long write comes up short)."""
    real_open, real_write = os.open, os.write
    full: set[str] = set()
    descriptors: dict[int, str] = {}

    def opening(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        fd = real_open(path, flags, mode, **kwargs)
        descriptors[fd] = Path(path).name
        return fd

    def writing(fd: int, data: Any) -> int:
        name = descriptors.get(fd, "")
        if any(name.startswith(prefix) for prefix in full):
            if len(data) > 1:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "write", writing)
    return full


def test_a_full_disk_during_a_checkpoint_keeps_the_old_snapshot_and_no_temp_file(
    tmp_path: Path, full_disk: set[str]
) -> None:
    populated(tmp_path, submissions=1)
    snapshot_before = (tmp_path / "snapshot.json").read_bytes()
    state = writer(tmp_path)
    state.append("intent", intent("new", targets=("t9",)))
    full_disk.add(".snapshot.json.")

    with pytest.raises(StateError, match="no space left on the device"):
        state.close()

    assert (tmp_path / "snapshot.json").read_bytes() == snapshot_before
    assert not list(tmp_path.glob(".snapshot.json.*"))
    assert read_lock_holder(tmp_path) is None  # the lock was released all the same
    assert load_state(tmp_path).submissions["new"].status == "pending"


def test_a_full_disk_during_an_append_leaves_no_partial_line(
    tmp_path: Path, full_disk: set[str]
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        full_disk.add("journal.jsonl")
        with pytest.raises(StateError, match=r"cannot journal `submitted` to .*no space left"):
            state.append("submitted", submitted("a"))
        assert state.state.submissions["a"].status is SubmissionStatus.PENDING
        assert len(journal_lines(tmp_path)) == 2

        full_disk.clear()  # space was freed: the same writer carries on
        state.append("submitted", submitted("a"))

    assert [json.loads(line)["type"] for line in journal_lines(tmp_path)] == [
        "initialized",
        "intent",
        "submitted",
    ]
    assert load_state(tmp_path).warnings == ()
    assert verify_journal(tmp_path) == []


def test_a_failed_checkpoint_during_a_long_run_does_not_fail_the_append_that_caused_it(
    tmp_path: Path, full_disk: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "CHECKPOINT_EVERY", 2)
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        full_disk.add(".snapshot.json.")
        state.append("submitted", submitted("a"))  # durable: raising here would be a lie

        assert "no checkpoint at seq 3: cannot write" in state.state.warnings[0]
        full_disk.clear()

    assert json.loads((tmp_path / "snapshot.json").read_text())["seq"] == 3


def test_a_failed_run_still_checkpoints_and_releases_the_lock(tmp_path: Path) -> None:
    def apply() -> None:
        with writer(tmp_path) as state:
            state.append("intent", intent("a"))
            raise RuntimeError("provider exploded")

    with pytest.raises(RuntimeError, match="provider exploded"):
        apply()

    assert json.loads((tmp_path / "snapshot.json").read_text())["seq"] == 2
    assert read_lock_holder(tmp_path) is None


# --- schema --------------------------------------------------------------------------------


def validator(definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    )


def test_the_files_written_validate_against_the_state_schema(tmp_path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    init_state(tmp_path, actor=ACTOR, clock=fixed_clock)
    with (tmp_path / "journal.jsonl").open("ab") as journal:
        journal.write(b'{"v":1,"se')  # torn: the next writer acknowledges it
    with writer(tmp_path) as state:
        state.append("intent", intent("a"))
        state.append("submitted", submitted("a"))
        state.append("intent", intent("b", targets=("t2",)))
        state.append("rejected", rejected("b"))
        for key in ("c", "d", "e"):
            state.append("intent", intent(key, targets=(key,)))
            state.append("unknown", unknown(key))
        state.append("resolved", {"key": "c", "status": "missing", "remote_id": "", "how": "x"})
        state.append("imported", {"key": "d", "remote_id": "plan-4", "reason": "console"})
        state.append("forgotten", {"key": "e", "reason": "never ran"})
        state.append("intent", intent("f", targets=("t6",)))
        state.append("intent", intent("g", targets=("t7",)))
        state.append("unknown", unknown("g"))
        state.append("intent", intent("h", targets=("t8",)))
        state.append("unsent", {"key": "h", "code": "ConnectError", "message": "refused"})
        state.append("observed", {"key": "a", "cells": [["task-1", "2026-01-01", "failed", "X"]]})

    events = [json.loads(line) for line in journal_lines(tmp_path) if b'"se\n' not in line]
    assert {event["type"] for event in events} == set(EventType)
    for event in events:
        validator("Event").validate(event)
        jsonschema.validate(event, SCHEMA)
    snapshot = json.loads((tmp_path / "snapshot.json").read_text())
    validator("Snapshot").validate(snapshot)
    jsonschema.validate(snapshot, SCHEMA)
    assert {record["status"] for record in snapshot["submissions"].values()} == set(
        SubmissionStatus
    )


def test_the_checks_on_the_hot_paths_read_the_fields_the_models_define() -> None:
    """Every load checks events and snapshot records by hand, for speed; the models, which the
    schema is generated from, say what they must check."""
    assert set(formats.PAYLOADS) == set(EventType)
    written = snapshot.document(
        seq=0, head_hash=ZEROS, state_id="", emulator=False, records=(), journal=(0, ZEROS)
    )
    assert {*written, "digest"} == formats.Snapshot.model_fields.keys()

    def json_type(annotation: Any) -> type:
        kind: type = get_origin(annotation) or annotation
        return str if issubclass(kind, str) else kind

    expected = {
        name: json_type(field.annotation) for name, field in formats.Record.model_fields.items()
    }
    assert expected == records._RECORD_TYPES


def test_every_read_checks_an_events_data_as_its_model_does() -> None:
    """Loading checks each event's `data` with checks compiled from the generated schema, not
    with pydantic (every load reads every new line); they must answer as the models do, for
    every field of every payload and values of every kind."""
    from reconciler.state import schema

    valid: dict[EventType, dict[str, Any]] = {
        EventType.INITIALIZED: {"state_id": "0123456789abcdef"},
        EventType.TORN: {"length": 5, "sha256": ZEROS},
        EventType.INTENT: intent("k"),
        EventType.SUBMITTED: submitted("k"),
        EventType.REJECTED: rejected("k"),
        EventType.UNKNOWN: unknown("k"),
        EventType.RESOLVED: {"key": "k", "status": "missing", "remote_id": "", "how": "h"},
        EventType.IMPORTED: {"key": "k", "remote_id": "r", "reason": "x"},
        EventType.FORGOTTEN: {"key": "k", "reason": "x"},
        EventType.UNSENT: {"key": "k", "code": "c", "message": "m"},
        EventType.OBSERVED: {"key": "k", "cells": [["t", "2025-09-01..2025-09-02", "failed", "x"]]},
    }
    assert set(valid) == set(EventType)
    values: list[Any] = [None, "", "x", "submitted", "0123456789abcdef", ZEROS, "Z" * 64]
    values += [0, -1, 1, 2.0, True, False, [], ["a"], [1], [""], {}, {"a": 1}]

    def verdicts(kind: EventType, data: Any) -> tuple[bool, bool]:
        answers = []
        for check in (schema.check_data, formats.check_data):
            try:
                check(kind, data)
            except FoldError:
                answers.append(False)
            else:
                answers.append(True)
        return answers[0], answers[1]

    tried = 0
    for kind, data in valid.items():
        assert verdicts(kind, data) == (True, True), kind
        cases: list[Any] = [[], None, {**data, "extra": 1}]
        cases += [{k: v for k, v in data.items() if k != name} for name in data]
        cases += [{**data, name: value} for name in data for value in values]
        for case in cases:
            fast, model = verdicts(kind, case)
            assert fast == model, (kind, case)
            tried += 1
    assert tried > 800


# --- scale -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_thirty_thousand_events_load_from_the_snapshot_as_from_the_journal_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # How fast: `make bench` (state load) bounds it on a larger journal.
    with monkeypatch.context() as setup:
        setup.setattr(os, "fsync", lambda fd: None)  # durability is not what this is about
        with writer(tmp_path) as state:
            for number in range(15_000):
                state.append("intent", intent(f"k{number}", targets=(f"t{number}",)))
                state.append("submitted", submitted(f"k{number}"))
            final = state.state

    from_snapshot = load_state(tmp_path)
    assert json.loads((tmp_path / "snapshot.json").read_text())["seq"] == 30_001
    (tmp_path / "snapshot.json").unlink()
    from_journal = load_state(tmp_path)

    assert from_snapshot == from_journal == final
    assert from_snapshot.seq == 30_001  # `initialized`, then 30,000 events
    assert len(from_snapshot.submissions) == 15_000


def test_a_snapshot_as_written_is_read_line_by_line(tmp_path: Path) -> None:
    from reconciler.state.snapshot import _by_line

    populated(tmp_path, submissions=3)
    path = tmp_path / "snapshot.json"
    assert _by_line(path) == json.loads(path.read_text())


def test_a_snapshot_loads_one_copy_of_what_its_records_repeat(tmp_path: Path) -> None:
    """A repo-scale state spells a plan's name, fingerprint, targets and dates in every chunk it
    was submitted in, and its memory is mostly its records: loaded, each is one object, a record's
    key is the string it is filed under, and a reply without detail holds no dict of its own."""
    with writer(tmp_path) as state:
        for number in range(3):
            key = f"k{number}"
            dates = ("2026-01-01", "2026-01-02")
            state.append("intent", intent(key, targets=("t1", "t2"), dates=dates))
            reply = {**submitted(key), "detail": {}}
            state.append("submitted", reply)
        state.checkpoint()

    loaded = load_state(tmp_path)

    records = list(loaded.submissions.values())
    shared = ("plan", "provider", "action", "region", "fingerprint", "spans", "targets", "detail")
    for field in shared:
        assert len({id(getattr(record, field)) for record in records}) == 1, field
    assert all(key is record.key for key, record in loaded.submissions.items())
    assert loaded == state.state


def test_a_record_read_from_the_snapshot_is_a_record_like_any_other(tmp_path: Path) -> None:
    """Loading builds records its own way (see `records._record`): what comes out is frozen,
    copies and pickles as a record made by its class."""
    expected = populated(tmp_path, submissions=2).submissions["k1"]
    loaded = load_state(tmp_path).submissions["k1"]

    assert type(loaded) is records.SubmissionRecord
    assert loaded == expected
    assert pickle.loads(pickle.dumps(loaded)) == expected
    assert dataclasses.replace(loaded, attempts=2) == dataclasses.replace(expected, attempts=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.status = SubmissionStatus.REJECTED  # type: ignore[misc]


def test_loading_decodes_only_the_events_after_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populated(tmp_path, submissions=3)
    lagging = (tmp_path / "snapshot.json").read_bytes()
    with writer(tmp_path) as state:
        state.append("intent", intent("late", targets=("t9",)))
        state.append("submitted", submitted("late"))
    (tmp_path / "snapshot.json").write_bytes(lagging)  # as a crash before the checkpoint leaves
    expected = load_state(tmp_path)
    decoded: list[int] = []
    decode = journal.decode_event

    def counting(raw: bytes, where: Any) -> dict[str, Any]:
        event = decode(raw, where)
        decoded.append(event["seq"])
        return event

    monkeypatch.setattr(journal, "decode_event", counting)

    assert load_state(tmp_path) == expected
    assert decoded == [expected.seq - 1, expected.seq]


def test_the_snapshot_leaves_requests_and_actors_in_the_journal_and_reads_them_from_there(
    tmp_path: Path,
) -> None:
    journaled = intent("k1", targets=("t1",))
    with writer(tmp_path) as state:
        state.append("intent", journaled)
        state.append("submitted", submitted("k1", "plan-1"))
        state.append("intent", intent("k2", targets=("t2",)))
    text = (tmp_path / "snapshot.json").read_text()
    assert '"request"' not in text
    assert '"actor"' not in text
    loaded = load_state(tmp_path)

    details = intent_details(loaded, [loaded.submissions["k1"]])

    assert list(details) == ["k1"]
    sent = details["k1"]
    assert (sent.endpoint, sent.params, sent.request, sent.actor) == (
        journaled["endpoint"],
        journaled["params"],
        journaled["request"],
        ACTOR,
    )


def test_no_details_asked_for_reads_nothing(tmp_path: Path) -> None:
    populated(tmp_path)
    loaded = load_state(tmp_path)
    (tmp_path / "journal.jsonl").unlink()

    assert intent_details(loaded, []) == {}


def test_a_snapshot_pointing_at_a_line_that_is_no_intent_is_an_error_when_read(
    tmp_path: Path,
) -> None:
    with writer(tmp_path) as state:
        state.append("intent", intent("k1"))
        state.append("submitted", submitted("k1", "plan-1"))
    resealed(
        tmp_path / "snapshot.json",
        lambda value: value["submissions"]["k1"].update(intent_seq=3),
    )
    loaded = load_state(tmp_path)
    with pytest.raises(StateError, match=r"journal.jsonl: event 3 is not the intent"):
        intent_details(loaded, [loaded.submissions["k1"]])
