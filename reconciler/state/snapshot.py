"""`snapshot.json`: the journal folded up to one event, replaced atomically, laid out for git.

It is a cache: deleting it only makes the next load replay the whole journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from reconciler.domain import JSON
from reconciler.errors import Location, StateError
from reconciler.state.journal import JOURNAL_FILE, fsync_directory
from reconciler.state.records import (
    ZERO_HASH,
    State,
    SubmissionRecord,
    record_from_json,
    record_to_json,
)

SNAPSHOT_FORMAT = 1

TEMP_PREFIX = ".snapshot.json."
TEMP_SUFFIX = ".tmp"

_CACHE_HINT = (
    "the snapshot is only a cache of the journal: delete snapshot.json to rebuild it from"
    " journal.jsonl, or restore both from git"
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    hash: str
    """The hash of journal event `seq`: what ties this snapshot to its line."""
    emulator: bool
    submissions: dict[str, SubmissionRecord]
    offset: int | None = None
    """Where line `seq` begins in the journal, so that loading need not read the lines before."""

    def state(self) -> State:
        return State(
            seq=self.seq,
            head_hash=self.hash,
            emulator=self.emulator,
            submissions=MappingProxyType(self.submissions),
        )


def document(
    seq: int,
    head_hash: str,
    emulator: bool,
    records: Iterable[SubmissionRecord],
    offset: int,
) -> dict[str, JSON]:
    return {
        "format": SNAPSHOT_FORMAT,
        "seq": seq,
        "hash": head_hash,
        "offset": offset,
        "emulator": emulator,
        "submissions": {record.key: record_to_json(record) for record in records},
    }


def render(value: dict[str, JSON]) -> bytes:
    """One submission per line, sorted by key: a commit of the state shows exactly which
    submissions changed, one line each, and the file stays valid JSON. It is also what lets
    `read` parse a repo-scale snapshot line by line instead of all at once."""
    submissions = value["submissions"]
    assert isinstance(submissions, dict)
    header = {k: v for k, v in value.items() if k != "submissions"}
    head = json.dumps(header, sort_keys=True, ensure_ascii=False)[:-1] + ',"submissions":{'
    lines = [
        json.dumps(key, ensure_ascii=False)
        + ":"
        + json.dumps(submissions[key], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for key in sorted(submissions)
    ]
    return (head + "\n" + ",\n".join(lines) + ("\n" if lines else "") + "}}\n").encode()


def write(path: Path, value: dict[str, JSON]) -> None:
    """Replaces `path` atomically: a crash leaves the old snapshot or the new one, never a mix.

    Raises OSError after removing its temp file; a temp file left by a crash is harmless
    (`remove_stale_temp_files`).
    """
    data = render(value)
    temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def remove_stale_temp_files(directory: Path) -> None:
    """Temp files of writers that crashed mid-checkpoint; only a lock holder may call this."""
    for temp in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)


_OPENING = b',"submissions":{'
_BATCH = 500
"""Submissions parsed per `json.loads`: enough that the decoder shares the key strings among
them, few enough that the text and its objects never exist whole at once."""


def _by_line(path: Path) -> dict[str, JSON] | None:
    """The snapshot as `render` lays it out, parsed a batch of lines at a time (a fraction of
    the memory of one `json.loads`); None if the file is laid out otherwise."""
    submissions: dict[str, JSON] = {}
    batch: list[bytes] = []

    def flush() -> None:
        if batch:
            submissions.update(json.loads(b"{" + b",".join(batch) + b"}"))
            batch.clear()

    with path.open("rb") as lines:
        head = lines.readline().rstrip()
        if not head.endswith(_OPENING):
            return None
        try:
            value = json.loads(head.removesuffix(_OPENING) + b"}")
            for raw in lines:
                line = raw.rstrip()
                if line == b"}}":
                    flush()
                    value["submissions"] = submissions
                    return value if isinstance(value, dict) else None
                batch.append(line.removesuffix(b","))
                if len(batch) >= _BATCH:
                    flush()
        except ValueError:
            return None
    return None


def read(path: Path) -> Snapshot | None:
    """The snapshot at `path`, None when there is none; StateError when it cannot be trusted."""
    where = Location(str(path))
    try:
        value = _by_line(path)
        if value is None:  # laid out by hand or by another tool: read it whole
            value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise StateError(
            "is not valid JSON (an unresolved merge conflict?)", location=where, hint=_CACHE_HINT
        ) from None
    if not isinstance(value, dict):
        raise StateError("is not a JSON object", location=where, hint=_CACHE_HINT)
    version = value.get("format")
    if version != SNAPSHOT_FORMAT:
        if isinstance(version, int) and version > SNAPSHOT_FORMAT:
            raise StateError(
                f"has format {version}: the state was written by a newer version of"
                " backfill-reconciler",
                location=where,
                hint="upgrade backfill-reconciler to read this state",
            )
        raise StateError(f"has an unknown format {version!r}", location=where, hint=_CACHE_HINT)
    seq, head_hash = value.get("seq"), value.get("hash")
    emulator, submissions = value.get("emulator"), value.get("submissions")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise StateError("`seq` is not a count of events", location=where, hint=_CACHE_HINT)
    if not isinstance(head_hash, str) or (seq == 0 and head_hash != ZERO_HASH):
        raise StateError(f"`hash` {head_hash!r} is not right", location=where, hint=_CACHE_HINT)
    if not isinstance(emulator, bool) or not isinstance(submissions, dict):
        raise StateError(
            "`emulator` or `submissions` is missing or mistyped", location=where, hint=_CACHE_HINT
        )
    records: dict[str, SubmissionRecord] = {}
    journal = path.with_name(JOURNAL_FILE)  # holds what the snapshot leaves out
    for key, item in submissions.items():
        try:
            record = record_from_json(item, journal)
        except ValueError as error:
            raise StateError(
                f"submission {key}: {error}", location=where, hint=_CACHE_HINT
            ) from None
        if record.key != key:
            raise StateError(
                f"submission {key} is filed under another key ({record.key})",
                location=where,
                hint=_CACHE_HINT,
            )
        records[key] = record
    offset = value.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        offset = None  # a hint only: without it the journal is read from its first line
    return Snapshot(seq, head_hash, emulator, records, offset)
