"""`snapshot.json`: the journal folded up to one event, replaced atomically, laid out for git.

It is a cache: deleting it only makes the next load replay the whole journal. Its `digest`
covers everything else in it, the hash of the journal line it summarises included, so a
snapshot edited by hand or mangled by a merge is told apart from one the tool wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reconciler.bulk import bulk
from reconciler.domain import JSON
from reconciler.errors import Location, StateError
from reconciler.state import schema
from reconciler.state.journal import fsync_directory
from reconciler.state.records import (
    ZERO_HASH,
    Sharing,
    State,
    SubmissionRecord,
    record_from_json,
    record_to_json,
    records_from_json,
)

SNAPSHOT_FORMAT = schema.version("Snapshot", "format")
"""3: each record carries the health of its cells (`health`, `observed_time`). 2: `digest`,
`state_id`, `journal_size` and `journal_sha256` added, `offset` dropped."""

TEMP_PREFIX = ".snapshot.json."
TEMP_SUFFIX = ".tmp"

_CACHE_HINT = (
    "the snapshot is only a cache of the journal: delete snapshot.json to rebuild it from"
    " journal.jsonl, or restore both from git"
)


class Untrusted(StateError):
    """The snapshot cannot vouch for anything (damaged, edited, or of an older format): the
    journal is replayed instead, and the next writer rewrites it."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    hash: str
    """The hash of journal event `seq`: what ties this snapshot to its line."""
    emulator: bool
    submissions: dict[str, SubmissionRecord]
    state_id: str
    journal_size: int
    """The journal's first `journal_size` bytes, whose sha256 is `journal_sha256`, are the
    lines this snapshot folds: checked by the writer that made it."""
    journal_sha256: str

    def state(self) -> State:
        return State(
            seq=self.seq,
            head_hash=self.hash,
            state_id=self.state_id,
            emulator=self.emulator,
            submissions=MappingProxyType(self.submissions),
        )


def document(
    *,
    seq: int,
    head_hash: str,
    state_id: str,
    emulator: bool,
    records: Iterable[SubmissionRecord],
    journal: tuple[int, str],
) -> dict[str, JSON]:
    """`journal`: the size and sha256 of the journal's bytes up to and with event `seq`."""
    return {
        "format": SNAPSHOT_FORMAT,
        "seq": seq,
        "hash": head_hash,
        "state_id": state_id,
        "emulator": emulator,
        "journal_size": journal[0],
        "journal_sha256": journal[1],
        "submissions": {record.key: record_to_json(record) for record in records},
    }


def _header_text(header: dict[str, JSON]) -> str:
    return json.dumps(header, sort_keys=True, ensure_ascii=False)


def _digest(header: dict[str, JSON], body: bytes) -> str:
    """Over the header (all but `digest`) and every byte after the first line."""
    unsealed = {k: v for k, v in header.items() if k != "digest"}
    return hashlib.sha256(_header_text(unsealed).encode() + b"\n" + body).hexdigest()


def render(value: dict[str, JSON]) -> bytes:
    """One submission per line, sorted by key: a commit of the state shows exactly which
    submissions changed, one line each, and the file stays valid JSON. It is also what lets
    `read` parse a repo-scale snapshot line by line instead of all at once."""
    submissions = value["submissions"]
    assert isinstance(submissions, dict)
    header = {k: v for k, v in value.items() if k not in ("submissions", "digest")}
    lines = [
        json.dumps(key, ensure_ascii=False)
        + ":"
        + json.dumps(submissions[key], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for key in sorted(submissions)
    ]
    body = (",\n".join(lines) + ("\n" if lines else "") + "}}\n").encode()
    header["digest"] = _digest(header, body)
    return (_header_text(header)[:-1] + ',"submissions":{\n').encode() + body


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


def _as_is(parsed: dict[str, JSON]) -> Iterable[tuple[str, Any]]:
    return parsed.items()


def _by_line(
    path: Path, taking: Callable[[dict[str, JSON]], Iterable[tuple[str, Any]]] = _as_is
) -> dict[str, Any] | None:
    """The snapshot as `render` lays it out, parsed a batch of lines at a time (a fraction of
    the memory of one `json.loads`) and its digest checked as it is read; None if the file is
    laid out otherwise. Raises Untrusted when its digest does not match its content.

    Its submissions are what `taking` makes of each batch as it is parsed (key and value, in
    order): the parsed JSON of a repo-scale snapshot never exists whole, only the records made
    of it."""
    submissions: dict[str, Any] = {}
    batch: list[bytes] = []

    def flush() -> None:
        if batch:
            submissions.update(taking(json.loads(b"{" + b",".join(batch) + b"}")))
            batch.clear()

    with path.open("rb") as lines:
        head = lines.readline().rstrip()
        if not head.endswith(_OPENING):
            return None
        try:
            value = json.loads(head.removesuffix(_OPENING) + b"}")
            if not isinstance(value, dict):
                return None
            unsealed = {k: v for k, v in value.items() if k != "digest"}
            digest = hashlib.sha256(_header_text(unsealed).encode() + b"\n")
            for raw in lines:
                digest.update(raw)
                line = raw.rstrip()
                if line == b"}}":
                    flush()
                    break
                batch.append(line.removesuffix(b","))
                if len(batch) >= _BATCH:
                    flush()
            else:
                return None
            if lines.read():
                return None
        except (ValueError, RecursionError):
            return None
    if value.get("format") == SNAPSHOT_FORMAT and value.get("digest") != digest.hexdigest():
        raise Untrusted(
            "does not match its digest: it was edited, or a merge mangled it",
            location=Location(str(path)),
            hint=_CACHE_HINT,
        )
    value["submissions"] = submissions
    return value


def read(path: Path) -> Snapshot | None:
    """The snapshot at `path`, None when there is none. Raises Untrusted when it cannot vouch
    for the journal (the caller replays the journal instead), StateError when it cannot be read
    at all."""
    where = Location(str(path))
    problems: list[str] = []
    shared = Sharing()

    def record(key: str, item: JSON) -> SubmissionRecord | None:
        """The record, or None and its problem noted: raised once the digest and the header
        are found right (a mangled file is told as such, not as a bad record)."""
        try:
            made = record_from_json(item, shared)
        except ValueError as error:
            problems.append(f"submission {key}: {error}")
            return None
        if made.key != key:
            problems.append(f"submission {key} is filed under another key ({made.key})")
            return None
        return made

    def records(parsed: dict[str, JSON]) -> Iterable[tuple[str, SubmissionRecord | None]]:
        """A batch's records; made one at a time, their problems noted, when some is wrong."""
        made = records_from_json(parsed, shared)
        if made is None:
            return ((key, record(key, item)) for key, item in parsed.items())
        return zip(parsed, made, strict=True)

    try:
        with bulk():
            value = _by_line(path, records)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StateError(
            "is a directory, not the snapshot", location=where, hint=_CACHE_HINT
        ) from None
    except OSError as error:
        raise StateError(f"cannot be read: {error.strerror or error}", location=where) from None
    if value is None:
        raise Untrusted(
            "is not laid out as backfill-reconciler writes it (edited by hand, or an unresolved"
            " merge conflict?)",
            location=where,
            hint=_CACHE_HINT,
        )
    version = value.get("format")
    if version != SNAPSHOT_FORMAT:
        if isinstance(version, int) and version > SNAPSHOT_FORMAT:
            raise StateError(
                f"has format {version}: the state was written by a newer version of"
                " backfill-reconciler",
                location=where,
                hint="upgrade backfill-reconciler to read this state",
            )
        raise Untrusted(f"has format {version!r}, not {SNAPSHOT_FORMAT}", location=where)
    seq, head_hash = value.get("seq"), value.get("hash")
    emulator, submissions = value.get("emulator"), value.get("submissions")
    state_id = value.get("state_id")
    journal_size, journal_sha256 = value.get("journal_size"), value.get("journal_sha256")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise Untrusted("`seq` is not a count of events", location=where, hint=_CACHE_HINT)
    if not isinstance(head_hash, str) or (seq == 0 and head_hash != ZERO_HASH):
        raise Untrusted(f"`hash` {head_hash!r} is not right", location=where, hint=_CACHE_HINT)
    if not isinstance(emulator, bool) or not isinstance(submissions, dict):
        raise Untrusted(
            "`emulator` or `submissions` is missing or mistyped", location=where, hint=_CACHE_HINT
        )
    if not isinstance(state_id, str):
        raise Untrusted("`state_id` is not a string", location=where, hint=_CACHE_HINT)
    if (
        not isinstance(journal_size, int)
        or isinstance(journal_size, bool)
        or journal_size < 0
        or not isinstance(journal_sha256, str)
    ):
        raise Untrusted(
            "`journal_size` or `journal_sha256` is missing or mistyped",
            location=where,
            hint=_CACHE_HINT,
        )
    if problems:
        raise Untrusted(problems[0], location=where, hint=_CACHE_HINT)
    return Snapshot(seq, head_hash, emulator, submissions, state_id, journal_size, journal_sha256)
