"""Reading `journal.jsonl` back: one pass over its lines with every link of the hash chain
checked. The one reader of the journal: loading, the audit log and `audit verify` all walk it.

Each line is checked cheaply from its bytes where it is the canonical JSON the writer made (the
sha256 of the line without its `hash` member is that member); only lines that are not, and the
events a caller folds, are decoded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from reconciler.domain import JSON
from reconciler.errors import Location, StateError
from reconciler.state import journal
from reconciler.state.records import ZERO_HASH, EventType

_HASH_MEMBER = b',"hash":"'
_PREV_MEMBER = b'","prev":"'
_SEQ_MEMBER = b'","seq":'


def fast_link(raw: bytes) -> tuple[int, str, str] | None:
    """(seq, prev, hash) of a canonical line whose own hash is right, read from its bytes; None
    when the line is not canonical or its hash is wrong (decoding then says which).

    In canonical JSON the event's top-level `hash` is the last `,"hash":"` of the line (every
    member after it, `prev`, `seq`, `time`, `type`, `v`, is a hash, a number or a plain string,
    and quotes inside strings are escaped), and removing that member leaves exactly the
    canonical JSON the hash was computed over.
    """
    at = raw.rfind(_HASH_MEMBER)
    if at < 0:
        return None
    own = raw[at + 9 : at + 73]
    tail = raw[at + 73 :]
    if not tail.startswith(_PREV_MEMBER) or tail[74:82] != _SEQ_MEMBER:
        return None
    end = tail.find(b",", 82)
    number = tail[82:end]
    if end < 0 or not number.isdigit() or number.startswith(b"0"):
        return None
    if hashlib.sha256(raw[:at] + raw[at + 74 :]).hexdigest().encode() != own:
        return None
    return int(number), tail[10:74].decode(), own.decode()


@dataclass(frozen=True, slots=True)
class Entry:
    """One event of the chain, where it stands in the file."""

    line: int
    """The 1-based line number, as an editor shows it (blank and acknowledged torn lines
    count, so it may differ from `seq`)."""
    seq: int
    hash: str
    event: dict[str, JSON] | None
    """The decoded event; None for events the caller asked only to have checked."""


@dataclass(frozen=True, slots=True)
class TornLine:
    """The last line, without a newline, that is not an event: a write cut short by a crash or a
    full disk. A writer acknowledges it with a `torn` event before appending anything."""

    line: int
    raw: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def torn_data(raw: bytes) -> dict[str, JSON]:
    """What a `torn` event records of the line it acknowledges."""
    return {"length": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


@dataclass(frozen=True, slots=True)
class Vouched:
    """What a snapshot vouches for: the journal's first `size` bytes, of sha256 `sha256`, end
    with event `seq`, of hash `hash`. The writer that recorded it had checked every line of
    them, so bytes that still have that digest need no second look."""

    size: int
    sha256: str
    seq: int
    hash: str


_BLOCK = 1 << 20


@dataclass(slots=True)
class Chain:
    """Walks `path` once. Iterating yields every event in order and raises StateError naming the
    line at the first damage; afterwards the attributes describe what the file held.

    With `vouched`, the bytes a snapshot vouches for are only hashed, in blocks: if they are
    still what the snapshot's writer saw, their events are not yielded and the walk goes on
    after them; if not, every line is checked from line 1, the events up to the snapshot's
    yielded undecoded (`event` None) so that the caller can name the damage. `prefixes` are
    byte sizes whose git blob id (`object_format` sha1 or sha256) of the file's first
    that-many bytes is wanted, to compare with the committed versions of the journal without
    reading them from git. With `decode`, only the events whose seq it holds are decoded (the
    others are checked from their bytes and yielded undecoded): a reader of a few events does
    not pay for parsing all of them.
    """

    path: Path
    vouched: Vouched | None = None
    prefixes: Sequence[int] = ()
    object_format: str = "sha1"
    decode: Container[int] | None = None
    seq: int = 0
    head_hash: str = ZERO_HASH
    lines: int = 0
    size: int = 0
    """The file's size in bytes: where the next line goes."""
    needs_newline: bool = False
    """The file ends without a newline: the next append starts with one."""
    torn: TornLine | None = None
    prefix_ids: dict[int, str] = field(default_factory=dict)
    content: hashlib._Hash = field(default_factory=hashlib.sha256)
    """The sha256 of every byte read: what a snapshot of this journal records it vouches for."""
    exists: bool = False
    _checked_only: int = 0
    vouch_broken: bool = False
    """The journal no longer begins with the bytes the snapshot vouches for (a blank line or a
    torn line added before them, or damage the line checks then find): every line was checked,
    and the next writer rewrites the snapshot."""
    _hashers: dict[int, hashlib._Hash] = field(default_factory=dict)

    def where(self, line: int) -> Location:
        return Location(str(self.path), line)

    def __iter__(self) -> Iterator[Entry]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise StateError(
                f"{self.path} is a directory, not the journal",
                hint="the journal is a file; restore the state directory from git",
            ) from None
        except OSError as error:
            raise StateError(f"cannot read {self.path}: {error.strerror or error}") from None
        self.exists = True
        with handle:
            yield from self._walk(handle, self._skip_vouched(handle))
        self.prefix_ids = {
            size: hasher.hexdigest() for size, hasher in self._hashers.items() if self.size >= size
        }

    def _restart(self) -> None:
        self.content = hashlib.sha256()
        self._hashers = {
            size: _blob_hasher(self.object_format, size)
            for size in sorted(set(self.prefixes))
            if size > 0
        }
        self.size = 0

    def _feed(self, data: bytes) -> None:
        """Hashes the next bytes of the file into every digest that wants them."""
        self.content.update(data)
        for size, hasher in self._hashers.items():
            if self.size < size:
                hasher.update(data[: size - self.size])
        self.size += len(data)

    def _skip_vouched(self, handle: BinaryIO) -> int:
        """Hashes the vouched bytes in blocks; the number of lines they hold if they are still
        what the snapshot's writer saw, else 0 (from the start again, every line checked)."""
        self._restart()
        vouched = self.vouched
        if vouched is None or not vouched.size:
            return 0
        newlines, last = 0, b""
        while self.size < vouched.size:
            block = handle.read(min(_BLOCK, vouched.size - self.size))
            if not block:
                break
            self._feed(block)
            newlines += block.count(b"\n")
            last = block[-1:]
        if (
            self.size == vouched.size
            and last == b"\n"
            and self.content.hexdigest() == vouched.sha256
            and _ends_with(handle, vouched)
        ):
            self.seq, self.head_hash, self.lines = vouched.seq, vouched.hash, newlines
            return newlines
        handle.seek(0)
        self._restart()
        self._checked_only = vouched.seq
        self.vouch_broken = True
        return 0

    def _walk(self, handle: BinaryIO, skipped: int) -> Iterator[Entry]:
        """Every line after the `skipped` ones, checked; the events yielded."""
        suspect: tuple[int, bytes] | None = None
        """A complete line that is not an event: damage, unless a `torn` event follows it."""
        for number, chunk in enumerate(handle, skipped + 1):
            self._feed(chunk)
            self.lines = number
            complete = chunk.endswith(b"\n")
            raw = chunk.rstrip(b"\r\n") if complete else chunk
            if not raw.strip():
                self.needs_newline = not complete
                continue
            entry = self._entry(number, raw, suspect)
            if entry is None:
                if complete:
                    if suspect is not None:
                        raise self._bad_line(*suspect)
                    suspect = (number, raw)
                    continue
                if suspect is not None:
                    raise self._bad_line(*suspect)
                self.torn = TornLine(number, raw)
                self.needs_newline = True
                return
            suspect = None
            self.seq, self.head_hash = entry.seq, entry.hash
            self.needs_newline = not complete
            yield entry
        if suspect is not None:
            raise self._bad_line(*suspect)

    def _entry(self, number: int, raw: bytes, suspect: tuple[int, bytes] | None) -> Entry | None:
        """The line as the next event of the chain; None if it is no event at all (damage or a
        torn line, which the caller tells apart); StateError if it is an event that does not
        follow the chain."""
        where = self.where(number)
        link = fast_link(raw)
        event: dict[str, JSON] | None = None
        try:
            if link is None:  # not canonical, or edited: only decoding can say which
                event = journal.parse_event(raw, where)
                link = (event["seq"], event["prev"], event["hash"])
            elif self._wanted(link[0]) or suspect is not None:
                event = journal.decode_event(raw, where)
                if (event["seq"], event["prev"], event["hash"]) != link:
                    raise journal.damage(where, "is not canonical JSON of one event")
        except journal.NewerVersion:
            raise
        except StateError:
            if suspect is not None:
                raise self._bad_line(*suspect) from None
            if link is None:
                return None
            raise
        seq, prev, own = link
        if suspect is not None:
            assert event is not None
            self._acknowledges(event, *suspect)
        journal.check_link(where, seq, prev, self.seq + 1, self.head_hash)
        return Entry(number, seq, own, event if self._wanted(seq) else None)

    def _wanted(self, seq: int) -> bool:
        return seq > self._checked_only and (self.decode is None or seq in self.decode)

    def _acknowledges(self, event: dict[str, JSON], line: int, raw: bytes) -> None:
        if event["type"] != EventType.TORN or event["data"] != torn_data(raw):
            raise self._bad_line(line, raw)

    def _bad_line(self, line: int, raw: bytes) -> StateError:
        """Why a complete line that is no event is damage, in the decoder's words."""
        where = self.where(line)
        try:
            journal.parse_event(raw, where)
        except StateError as error:
            return error
        return journal.damage(where, "is not an event of this chain")


def _ends_with(handle: BinaryIO, vouched: Vouched) -> bool:
    """The vouched bytes end with the line of event `seq` whose hash is `hash` (a snapshot
    could name another event than the bytes it vouches for); leaves `handle` after them."""
    start = vouched.size - 1
    line = b""
    while start > 0 and b"\n" not in line:
        step = min(_BLOCK, start)
        start -= step
        handle.seek(start)
        line = handle.read(step) + line
    handle.seek(vouched.size)
    link = fast_link(line.rpartition(b"\n")[2] if b"\n" in line else line)
    return link is not None and (link[0], link[2]) == (vouched.seq, vouched.hash)


def _blob_hasher(object_format: str, size: int) -> hashlib._Hash:
    """Git's object id of a blob of `size` bytes, fed with the bytes."""
    hasher = hashlib.new("sha256" if object_format == "sha256" else "sha1")
    hasher.update(b"blob %d\0" % size)
    return hasher
