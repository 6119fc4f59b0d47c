"""`journal.jsonl`: sealing events into hash-chained lines, reading them back, appending durably.

One event a line, `canonical_json` of the event; `hash` is the sha256 of the event without it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.domain import JSON, canonical_json, digest
from reconciler.errors import Location, StateError
from reconciler.state import schema
from reconciler.state.fold import Event, FoldError
from reconciler.state.records import EventType

JOURNAL_VERSION = schema.version("Event", "v")
EVENT_FIELDS = schema.fields("Event")

_DAMAGE_HINT = (
    "the journal is the audit trail and is never edited by hand: restore it from git"
    " (`git log -p -- <state dir>/journal.jsonl` shows who changed what)"
)


JOURNAL_FILE = "journal.jsonl"


class NewerVersion(StateError):
    """The state was written by a newer version of the tool: not damage, but unreadable here."""


def timestamp(moment: datetime) -> str:
    """UTC with milliseconds, `2026-11-21T06:40:00.123Z`; a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def plain(value: Any) -> JSON:
    """A copy made of dicts, lists and plain scalars: it serialises, and nothing else aliases it."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, str) and type(value) is not str:  # a StrEnum member reads back as str
        return str(value)
    return value


def seal(
    *, seq: int, time: str, kind: EventType, actor: JSON, data: JSON, prev: str
) -> dict[str, JSON]:
    event: dict[str, JSON] = {
        "v": JOURNAL_VERSION,
        "seq": seq,
        "time": time,
        "type": str(kind),
        "actor": actor,
        "data": data,
        "prev": prev,
    }
    event["hash"] = digest(event)
    return event


def line_of(event: Event) -> bytes:
    return (canonical_json(event) + "\n").encode()


def damage(where: Location, what: str) -> StateError:
    return StateError(what, location=where, hint=_DAMAGE_HINT)


def parse_event(raw: bytes, where: Location) -> dict[str, JSON]:
    """One line as an event whose fields, data and own hash are right; StateError otherwise."""
    event = decode_event(raw, where)
    check_hash(event, where)
    return event


def decode_event(raw: bytes, where: Location) -> dict[str, JSON]:
    """One line as an event with the right fields and data, its hash not yet checked."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        raise damage(where, "is not valid JSON") from None
    if not isinstance(event, dict):
        raise damage(where, "is not a JSON object")
    if event.keys() != EVENT_FIELDS:
        missing = sorted(EVENT_FIELDS - event.keys())
        extra = sorted(event.keys() - EVENT_FIELDS)
        what = [f"has no {', '.join(f'`{name}`' for name in missing)}"] if missing else []
        what += [f"has unexpected {', '.join(f'`{name}`' for name in extra)}"] if extra else []
        raise damage(where, f"the event {' and '.join(what)}")
    version = event["v"]
    if version != JOURNAL_VERSION:
        if isinstance(version, int) and version > JOURNAL_VERSION:
            raise NewerVersion(
                f"the event has version {version}: it was written by a newer version of"
                " backfill-reconciler",
                location=where,
                hint="upgrade backfill-reconciler to read this state",
            )
        raise damage(where, f"the event has an invalid version {version!r}")
    seq = event["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise damage(where, f"`seq` is {seq!r}, not a positive integer")
    for name in ("time", "prev", "hash"):
        if not isinstance(event[name], str):
            raise damage(where, f"`{name}` is not a string")
    try:
        kind = EventType(event["type"])
    except ValueError:
        raise damage(where, f"unknown event type {event['type']!r}") from None
    if not isinstance(event["actor"], dict):
        raise damage(where, "`actor` is not a JSON object")
    try:
        schema.check_data(kind, event["data"])
    except FoldError as error:
        raise damage(where, str(error)) from None
    return event


def check_hash(event: Event, where: Location) -> None:
    if digest({name: value for name, value in event.items() if name != "hash"}) != event["hash"]:
        raise damage(where, "the event's hash does not match its content: the line was edited")


def check_link(where: Location, seq: int, prev: str, expected_seq: int, expected_prev: str) -> None:
    """An event numbered `seq` whose `prev` is `prev` is the next of a chain whose next number is
    `expected_seq` and whose last hash is `expected_prev`."""
    if seq != expected_seq:
        raise damage(
            where,
            f"`seq` is {seq} where {expected_seq} was expected:"
            " a line was deleted, duplicated or moved",
        )
    if prev != expected_prev:
        raise damage(
            where,
            "`prev` is not the hash of the event before it: the chain is broken"
            " (an earlier line was edited, deleted or replaced)",
        )


class Journal:
    """The open journal of a writer: each `append` is one `os.write`, then `fsync`, so O(1).

    It only ever appends: a writer never rewrites or truncates lines it did not just write
    (a damaged tail is acknowledged by an event, never cut off).
    """

    def __init__(
        self, path: Path, size: int, *, needs_newline: bool, content: hashlib._Hash
    ) -> None:
        """Opens for appending after the `size` bytes the reader saw, of sha256 `content`
        (kept up to date with every append); `needs_newline`: the file ends without one, so
        the first append starts with one."""
        self.path = path
        self.content = content
        self.broken = False
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if os.fstat(self._fd).st_size != size:
                raise StateError(
                    f"{path} changed while it was being read",
                    hint="another process wrote it without the lock; run again",
                )
        except BaseException:
            os.close(self._fd)
            raise
        self.size = size
        self._separator = b"\n" if needs_newline else b""

    def append(self, line: bytes) -> None:
        """Raises OSError when the line is not durably on disk; the file is then as it was."""
        line = self._separator + line
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(self._fd)
        except OSError:
            self._cut_back()
            raise
        self.size += len(line)
        self.content.update(line)
        self._separator = b""

    def _cut_back(self) -> None:
        try:
            os.ftruncate(self._fd, self.size)
            os.fsync(self._fd)
        except OSError:
            # a partial line may remain: later appends would bury it mid-file, so stop here
            # and let the next writer see it as a torn last line
            self.broken = True

    def close(self) -> None:
        os.close(self._fd)


def fsync_directory(directory: Path) -> None:
    """Makes a created or renamed entry in `directory` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
