"""Stage 1, load: plan files in, plain data out, every problem reported at its file:line:col.

Only the JSON subset of YAML is accepted (no custom tags, anchors, merge keys or duplicate keys),
and values that YAML 1.1 would silently reinterpret (dates, times, leading zeros) keep the text
their author wrote. Source positions are worked out again only for documents someone asks about.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, NamedTuple

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from reconciler.errors import Diagnostic, Location

# hashlib's own BLAKE2 (`hashlib.blake2b` is this one), without hashlib, which loads OpenSSL:
# 3 ms of every start-up, and `validate` hashes nothing else.
try:
    from _blake2 import blake2b
except ImportError:  # a Python built without it: hashlib then has OpenSSL's
    from hashlib import blake2b

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 100
"""Plan files are a few levels deep. The limit also matters for speed: libyaml's scanner slows
down quadratically with flow nesting, and would spend minutes on a 1 MiB file of `[[[[...`."""

MAX_INT_DIGITS = 100
"""No plan field takes a longer integer (ids are at most 19 digits). Checked for every base:
Python converts hex and binary of any length, and a huge value would later fail to print."""
_INT_LIMIT = 10**MAX_INT_DIGITS

JsonPath = tuple[str | int, ...]
"""A path into a document's data: mapping keys and list indexes."""

# Only the parser is used, event by event: a loader's composer and constructor would let
# anchors through (nodes no longer say they had one) and stop at the first problem.
_PARSER: type[yaml.CSafeLoader] | type[yaml.SafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)

_MIB = 1024 * 1024
_YAML_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ = (
    _YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "map", "seq")
)
_TEXT_TAGS = frozenset(("!", _STR))
"""`!` is YAML's non-specific tag: on a scalar it means a string."""
_TYPED_TAGS: Final[dict[str, tuple[type, ...]]] = {
    _INT: (int,),
    _FLOAT: (int, float),
    _BOOL: (bool,),
    _NULL: (type(None),),
}
"""The standard scalar tags, and the types of the values they accept (bool is not an int)."""

# PyYAML's YAML 1.1 resolution minus what silently changes a value in a config file:
# timestamps (`2025-09-01` would become a date), base 60 (`12:30` would be 750), leading-zero
# octal (`0123` would be 83, while `089` is text) and non-finite floats. Those stay the text
# as written, for validation to judge. Booleans keep YAML 1.1's yes/no/on/off.
_WORDS: Final[dict[str, bool | None]] = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
}
_NUMBER_START = frozenset("-+.0123456789")
_INT_TEXT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*|0b_*[01][01_]*|0x_*[0-9a-fA-F][0-9a-fA-F_]*)")
_FLOAT_TEXT = re.compile(
    r"[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
)
# The characters YAML readers accept (PyYAML's and libyaml's alike). Checked here because
# libyaml reports a bad character's position as a byte offset.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

_NO_ANCHORS = (
    "YAML anchors and aliases are not allowed in plan files: "
    "write the values out so reviewers see them"
)
_TOO_DEEP = (
    f"values are nested more than {MAX_DEPTH} levels deep here: "
    "plan files never need that, flatten the structure"
)
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"
"""libyaml's own limit (1000 levels, since 0.2.6). Its scanner reads ahead of the parser: a run
of `[` is scanned, and hits that limit, before the first event reaches our own check."""


class _Positions(NamedTuple):
    """Where each value, and each mapping key, of one document was written (1-based)."""

    values: dict[JsonPath, tuple[int, int]]
    keys: dict[JsonPath, tuple[int, int]]


class _Source:
    """A file's text, parsed again for positions only if a later stage asks for one. Once its
    documents are judged (`Document.settled`) not even the text is kept, but its digest: a
    big repo's texts would outweigh its plans. It is read again then, and used only if it is
    still the text that was loaded (else positions fall back to where each document starts)."""

    __slots__ = ("digest", "file", "path", "positions", "text")

    def __init__(self, file: str, path: str, text: str) -> None:
        self.file = file
        self.path = path
        """Absolute: the working directory may change before a position is asked for."""
        self.text: str | None = text
        self.digest = b""
        self.positions: dict[int, _Positions] | None = None

    def forget(self) -> None:
        if self.text and self.positions is None:
            self.digest = _digest(self.text)
            self.text = None

    def _text(self) -> str | None:
        if self.text is not None:
            return self.text
        try:
            with open(os.open(self.path, _OPEN_FLAGS), "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    return None
                text = stream.read(MAX_FILE_BYTES + 1).decode("utf-8-sig")
        except (OSError, ValueError):
            return None
        return text if _digest(text) == self.digest else None

    def positions_of(self, index: int) -> _Positions | None:
        if self.positions is None:
            text = self._text()
            self.positions = {}
            if text is not None:
                reading = _Reading(self.file, track=True)
                reading.read(text)
                self.positions = {
                    parsed.number: parsed.positions
                    for parsed in reading.documents
                    if parsed.positions is not None
                }
            self.text = ""
        return self.positions.get(index)


def _digest(text: str) -> bytes:
    return blake2b(text.encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a plan file as plain data, able to say where each value was written."""

    file: str
    """The path as the user should see it: relative to the working directory when under it."""
    index: int
    """0-based position of the document in its file (empty documents count)."""
    data: Any
    """dict / list / str / int / float / bool / None; mapping keys are always strings."""
    location: Location
    """Where the document starts."""
    _source: _Source | None = field(default=None, repr=False, compare=False)

    def locate(self, path: Sequence[str | int]) -> Location:
        """Where the value at `path` was written, or else the nearest enclosing value.

        So a key that is not there (a missing required field) gives the mapping that lacks it.
        """
        positions = self._positions()
        if positions is not None:
            for end in range(len(path), -1, -1):
                found = positions.values.get(tuple(path[:end]))
                if found is not None:
                    return Location(self.file, *found)
        return self.location

    def locate_key(self, path: Sequence[str | int]) -> Location:
        """Where the key that ends `path` was written (for "unknown field" problems).

        For a path that ends in a list index, or in a key that is not there, `locate(path)`.
        """
        positions = self._positions()
        if positions is not None:
            found = positions.keys.get(tuple(path))
            if found is not None:
                return Location(self.file, *found)
        return self.locate(path)

    def _positions(self) -> _Positions | None:
        return None if self._source is None else self._source.positions_of(self.index)

    def settled(self) -> Document:
        """What is kept of the document once it is judged: where its values were written, not
        its data (nor its file's text: read again should a position be asked for)."""
        if self._source is not None:
            self._source.forget()
        return replace(self, data=None)


class LoadResult(NamedTuple):
    """What `load_paths` found. A named tuple: this module loads with every command, and making a
    frozen dataclass takes a millisecond of their start-up."""

    documents: tuple[Document, ...]
    diagnostics: tuple[Diagnostic, ...]
    files: int = 0
    """How many plan files were found, loaded cleanly or not."""


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """The plan files named by `paths`, each once, in a stable order.

    A directory stands for every *.yaml and *.yml file below it, sorted, leaving out hidden
    files and directories (`.github/`, `.pre-commit-config.yaml`); a file named explicitly is
    taken whatever its name.
    """
    files: list[Path] = []
    diagnostics: list[Diagnostic] = []
    seen: set[str] = set()
    for path in paths:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            problem = "no such file or directory: check the path"
            diagnostics.append(Diagnostic(Location(_display(path)), problem))
            continue
        except (OSError, ValueError) as error:
            problem = f"cannot be read: {_reason(error)}"
            diagnostics.append(Diagnostic(Location(_display(path)), problem))
            continue
        if stat.S_ISDIR(mode):
            found = _plan_files_below(path, diagnostics)
        elif stat.S_ISREG(mode):
            found = [path]
        else:
            problem = f"is {_kind(mode)}: give plan files or directories of them"
            diagnostics.append(Diagnostic(Location(_display(path)), problem))
            continue
        for file in found:
            key = _absolute(file)
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, diagnostics


def load_file(path: Path) -> tuple[list[Document], list[Diagnostic]]:
    """The documents of one file, and every problem found in it.

    Empty documents are skipped, and so is a document with a problem: later stages see only
    data that loaded cleanly. Nothing is raised, whatever the file holds.
    """
    file = _display(path)
    try:
        # Non-blocking: opening a named pipe for reading would otherwise wait for a writer
        # forever. What was opened is checked, not the name: a path can change in between.
        with open(os.open(path, _OPEN_FLAGS), "rb") as stream:
            status = os.fstat(stream.fileno())
            if not stat.S_ISREG(status.st_mode):
                return [], [Diagnostic(Location(file), _not_a_plan_file(status.st_mode))]
            size = status.st_size
            raw = b"" if size > MAX_FILE_BYTES else stream.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as error:
        return [], [Diagnostic(Location(file), f"cannot be read: {_reason(error)}")]
    if max(size, len(raw)) > MAX_FILE_BYTES:
        mib = math.ceil(max(size, len(raw)) * 10 / _MIB) / 10
        limit = MAX_FILE_BYTES / _MIB
        message = (
            f"the file is {mib:g} MiB; plan files are limited to {limit:g} MiB: "
            "split it into several files"
        )
        return [], [Diagnostic(Location(file), message)]
    text, problem = _decode(file, raw)
    if problem is not None:
        return [], [problem]
    reading = _Reading(file, track=False)
    reading.read(text)
    absolute = os.path.abspath(path)
    # A file named by its absolute path keeps one copy of it: a big repo holds one per file.
    source = _Source(file, file if absolute == file else absolute, text)
    documents = [
        Document(file, parsed.number, parsed.data, Location(file, *parsed.start), source)
        for parsed in reading.documents
    ]
    return documents, reading.diagnostics


def load_paths(paths: Sequence[Path]) -> LoadResult:
    """Every document of every plan file under `paths`, and every problem of every file."""
    files, diagnostics = discover(paths)
    documents: list[Document] = []
    for file in files:
        loaded, problems = load_file(file)
        documents.extend(loaded)
        diagnostics.extend(problems)
    return LoadResult(tuple(documents), tuple(diagnostics), len(files))


def _decode(file: str, raw: bytes) -> tuple[str, Diagnostic | None]:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "", Diagnostic(Location(file, 1, 1), "the file is UTF-16: save it as UTF-8")
    # Some editors on Windows write UTF-8's byte order mark first: it is not text.
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        start = bom + error.start  # where in the file, BOM included
        line_start = raw.rfind(b"\n", 0, start) + 1
        before = raw[max(line_start, bom) : start].decode("utf-8", errors="replace")
        where = Location(file, raw.count(b"\n", 0, start) + 1, len(before) + 1)
        message = f"the file is not UTF-8 (byte 0x{raw[start]:02X} here): save it as UTF-8"
        return "", Diagnostic(where, message)
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        offset = bad.start()
        column = offset - text.rfind("\n", 0, offset)
        where = Location(file, text.count("\n", 0, offset) + 1, column)
        message = f"the character U+{ord(bad.group()):04X} is not allowed in YAML: remove it"
        return "", Diagnostic(where, message)
    return text, None


class _Parsed(NamedTuple):
    number: int
    """The document's 0-based position in its file."""
    start: tuple[int, int]
    data: Any
    positions: _Positions | None


class _TooDeep(Exception):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class _Marker:
    """A mapping's state between events: waiting for a key, or skipping a rejected key's value."""


_KEY_NEXT = _Marker()
_DROP = _Marker()


class _Frame:
    """A mapping or list being filled. (A plain class: the module's records are built when a
    command starts, and every one made a dataclass costs `validate` time.)"""

    __slots__ = ("container", "key", "keys", "path")

    def __init__(
        self,
        container: dict[str, Any] | list[Any],
        path: JsonPath | None,
        keys: dict[str, Event] | None,
    ) -> None:
        self.container = container
        self.path = path
        """Where the container is, when positions are tracked."""
        self.keys = keys
        """For a mapping, the event where each key was first written; None for a list."""
        self.key: str | _Marker = _KEY_NEXT


class _Reading:
    """Turns the YAML events of one file into documents of plain data, collecting problems.

    Built on events rather than nodes: only events still show anchors, and building the data in
    one loop without recursion keeps hostile input cheap. With `track`, it also records where
    every value and key was written; that is the slow path, taken only for files with errors.
    """

    def __init__(self, file: str, *, track: bool) -> None:
        self.file = file
        self.track = track
        self.documents: list[_Parsed] = []
        self.diagnostics: list[Diagnostic] = []
        self._stack: list[_Frame] = []
        self._root: Any = None
        self._empty = False
        self._failed = False
        self._anchor_reported = False
        self._values: dict[JsonPath, tuple[int, int]] = {}
        self._keys: dict[JsonPath, tuple[int, int]] = {}

    def read(self, text: str) -> None:
        parser: yaml.CSafeLoader | yaml.SafeLoader | None = None
        try:
            parser = _PARSER(text)
            self._events(parser)
        except _TooDeep as error:
            self._problem(error.event, _TOO_DEEP)
        except yaml.MarkedYAMLError as error:
            self.diagnostics.append(_syntax_error(self.file, error))
        except yaml.YAMLError as error:
            message = " ".join(str(error).split())
            self.diagnostics.append(Diagnostic(Location(self.file), f"invalid YAML: {message}"))
        finally:
            if parser is not None:
                parser.dispose()

    def _events(self, parser: yaml.CSafeLoader | yaml.SafeLoader) -> None:
        get_event = parser.get_event
        index = -1
        start = (0, 0)
        while True:
            event = get_event()
            if isinstance(event, ScalarEvent):
                self._scalar(event)
            elif isinstance(event, MappingStartEvent):
                self._start(event, {})
            elif isinstance(event, SequenceStartEvent):
                self._start(event, [])
            elif isinstance(event, CollectionEndEvent):
                self._add(self._stack.pop().container)
            elif isinstance(event, AliasEvent):
                self._anchored(event)
                self._add(None)
            elif isinstance(event, DocumentStartEvent):
                index += 1
                start = _position(event)
                self._begin_document()
            elif isinstance(event, DocumentEndEvent):
                if not self._failed and not self._empty:
                    positions = _Positions(self._values, self._keys) if self.track else None
                    self.documents.append(_Parsed(index, start, self._root, positions))
            elif isinstance(event, StreamEndEvent):
                return

    def _begin_document(self) -> None:
        self._root = None
        self._empty = False
        self._failed = False
        self._anchor_reported = False
        if self.track:
            self._values = {}
            self._keys = {}

    def _scalar(self, event: ScalarEvent) -> None:
        if event.anchor is not None:
            self._anchored(event)
        tag = event.tag
        stack = self._stack
        if stack:
            frame = stack[-1]
            if frame.keys is not None and frame.key is _KEY_NEXT:
                self._key(frame, event)
                return
        elif not event.value and tag is None and event.implicit[0]:
            self._empty = True  # the whole document is nothing: a stray or trailing `---`
        value: Any = event.value
        if tag is None:
            if event.implicit[0]:  # a plain scalar: quoted and block ones are always text
                value = self._resolve(event)
        elif tag in _TYPED_TAGS:
            reported = len(self.diagnostics)
            value = self._resolve(event)
            if type(value) not in _TYPED_TAGS[tag] and len(self.diagnostics) == reported:
                self._problem(
                    event, f"{_cut(event.value)!r} is not a {_shown(tag)}: fix it or remove the tag"
                )
            elif tag == _FLOAT:
                value = float(value)
        elif tag not in _TEXT_TAGS:
            self._refuse_tag(event, tag)
        if self.track:
            path = self._child_path()
            if path is not None:
                self._values[path] = _position(event)
        self._add(value)

    def _resolve(self, event: ScalarEvent) -> Any:
        text = event.value
        word = _WORDS.get(text, text)
        if word is not text or not text or text[0] not in _NUMBER_START:
            return word
        if _INT_TEXT.fullmatch(text):
            try:
                integer: int | None = int(text.replace("_", ""), 0)
            except ValueError:  # a decimal of more digits than Python converts (4300)
                integer = None
            if integer is None or abs(integer) >= _INT_LIMIT:
                self._problem(
                    event,
                    f"the number {_cut(text)} is too large: no plan field takes an integer of "
                    f"more than {MAX_INT_DIGITS} digits; shorten it, or quote it if it is text",
                )
                return text
            return integer
        if _FLOAT_TEXT.fullmatch(text):
            number = float(text.replace("_", ""))
            return number if math.isfinite(number) else text
        return text

    def _key(self, frame: _Frame, event: ScalarEvent) -> None:
        key = event.value
        tag = event.tag
        keys = frame.keys
        assert keys is not None  # only mappings wait for keys
        if tag is not None and tag not in _TEXT_TAGS and tag not in _TYPED_TAGS:
            self._refuse_tag(event, tag)
        if key == "<<" and tag is None and event.implicit[0]:
            self._problem(
                event,
                "YAML merge keys (<<) are not allowed in plan files: "
                "write the values out so reviewers see them",
            )
            frame.key = _DROP
        elif key in keys:
            first = _position(keys[key])[0]
            self._problem(
                event,
                f"duplicate key {key!r}: it is already set on line {first}, and YAML would "
                "silently keep only the last one: write it once",
            )
            frame.key = _DROP
        else:
            keys[key] = event
            frame.key = key
            if self.track and frame.path is not None:
                self._keys[(*frame.path, key)] = _position(event)

    def _start(self, event: MappingStartEvent | SequenceStartEvent, container: Any) -> None:
        if event.anchor is not None:
            self._anchored(event)
        mapping = isinstance(container, dict)
        tag = event.tag
        if tag is not None and tag not in ("!", _MAP if mapping else _SEQ):
            self._refuse_tag(event, tag)
        stack = self._stack
        if stack and stack[-1].keys is not None and stack[-1].key is _KEY_NEXT:
            self._problem(event, "a mapping key must be plain text, not a mapping or a list")
        path = None
        if self.track:
            path = self._child_path()
            if path is not None:
                self._values[path] = _position(event)
        stack.append(_Frame(container, path, {} if mapping else None))
        if len(stack) > MAX_DEPTH:
            raise _TooDeep(event)

    def _child_path(self) -> JsonPath | None:
        """The path of the value about to be added; None under a rejected key."""
        if not self._stack:
            return ()
        frame = self._stack[-1]
        if frame.path is None:
            return None
        if frame.keys is None:
            return (*frame.path, len(frame.container))
        return (*frame.path, frame.key) if isinstance(frame.key, str) else None

    def _add(self, value: Any) -> None:
        stack = self._stack
        if not stack:
            self._root = value
            return
        frame = stack[-1]
        container = frame.container
        if isinstance(container, list):
            container.append(value)
        elif frame.key is _KEY_NEXT:
            frame.key = _DROP  # a mapping or list used as a key: reported, its value dropped
        else:
            if isinstance(frame.key, str):
                container[frame.key] = value
            frame.key = _KEY_NEXT

    def _refuse_tag(self, event: NodeEvent, tag: str) -> None:
        if tag in (_MAP, _SEQ, _STR, *_TYPED_TAGS):
            self._problem(event, f"the tag {_shown(tag)} does not fit this value: remove it")
        else:
            self._problem(event, f"the tag {_shown(tag)} is not allowed in plan files: remove it")

    def _anchored(self, event: NodeEvent) -> None:
        if not self._anchor_reported:
            self._anchor_reported = True
            self._problem(event, _NO_ANCHORS)
        self._failed = True

    def _problem(self, event: Event, message: str) -> None:
        self._failed = True
        self.diagnostics.append(Diagnostic(Location(self.file, *_position(event)), message))


def _position(event: Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


def _cut(text: str) -> str:
    """A value for a message: a long one cut short, so that a problem stays readable."""
    return text if len(text) <= 40 else f"{text[:16]}... ({len(text)} characters)"


def _shown(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag


def _syntax_error(file: str, error: yaml.MarkedYAMLError) -> Diagnostic:
    mark = error.problem_mark or error.context_mark
    where = Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file)
    if error.problem == _LIBYAML_TOO_DEEP:
        return Diagnostic(where, _TOO_DEEP)
    message = f"YAML syntax error: {error.problem or error.context or 'not valid YAML'}"
    context = error.context_mark
    if error.problem and error.context:
        message += f" ({error.context}"
        if context is not None and mark is not None and context.index != mark.index:
            message += f" that starts at line {context.line + 1}, column {context.column + 1}"
        message += ")"
    return Diagnostic(where, message)


def _reason(error: OSError | ValueError) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


def _absolute(path: Path) -> str:
    try:
        return os.path.abspath(path)
    except OSError:  # the working directory was removed
        return str(path)


def _display(path: Path) -> str:
    """The path relative to the working directory when below it, else absolute."""
    try:
        cwd = os.getcwd()
    except OSError:
        return str(path)
    absolute = os.path.abspath(path)
    prefix = cwd.rstrip(os.sep) + os.sep
    return absolute.removeprefix(prefix) if absolute.startswith(prefix) else absolute


def _plan_files_below(directory: Path, diagnostics: list[Diagnostic]) -> list[Path]:
    """Regular files named *.yaml / *.yml below `directory`; anything else so named (a pipe,
    a device, a socket, a directory, a dangling link) is a problem, never opened.

    Symbolic links to directories are not followed, as `os.walk` does not: a link can loop.
    """

    def problem(path: str, message: str) -> None:
        diagnostics.append(Diagnostic(Location(_display(Path(path))), message))

    found: list[Path] = []
    pending = [os.fspath(directory)]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as error:
            problem(error.filename or folder, f"cannot be read: {_reason(error)}")
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue
            plan_named = entry.name.endswith((".yaml", ".yml"))
            try:
                # The file type comes with the listing: no extra system call for most entries.
                if entry.is_dir(follow_symlinks=False) and not plan_named:
                    pending.append(entry.path)
                elif plan_named and entry.is_file():
                    found.append(Path(entry.path))
                elif plan_named:
                    problem(entry.path, _not_a_plan_file(entry.stat().st_mode))
            except OSError as error:
                problem(entry.path, f"cannot be read: {_reason(error)}")
    return sorted(found)


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _not_a_plan_file(mode: int) -> str:
    return (
        f"cannot be read: it is {_kind(mode)}, and plan files are regular files: remove it, "
        "or rename it so that its name does not end in .yaml or .yml"
    )
