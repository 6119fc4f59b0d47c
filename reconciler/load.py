"""First stage: plan files in, plain data out, safely; every value can be located afterwards.

Positions are found lazily: only files with problems are parsed a second time for them, so a
repo of valid plans costs one C-parser pass per file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Diagnostic, Location

MAX_FILE_BYTES = 1024 * 1024
SUFFIXES = (".yaml", ".yml")

_STR, _INT, _FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL, _NULL = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"
_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Refusal(yaml.YAMLError):
    """Something valid YAML may say but a plan file must not."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


def _resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """PyYAML's implicit resolvers, minus what surprises people in config files: dates and
    timestamps stay strings as written, `12:30` is not the number 750, `.nan` is text."""
    dropped = {"tag:yaml.org,2002:timestamp", _INT, _FLOAT, "tag:yaml.org,2002:merge"}
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, rx) for tag, rx in entries if tag not in dropped]
        for first, entries in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }
    numbers = (
        (_INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$"), "-+0123456789"),
        (
            _FLOAT,
            re.compile(
                r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"
                r"|^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"
            ),
            "-+.0123456789",
        ),
    )
    for tag, rx, firsts in numbers:
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    return table


class _Loader(_Base):  # type: ignore[misc]
    """The C parser and composer with our resolvers; values are built by `_construct`."""

    yaml_implicit_resolvers = _resolvers()


_BOOLS = {"yes": True, "true": True, "on": True, "no": False, "false": False, "off": False}
_NULLS = frozenset({"", "~", "null"})


def _construct(node: Node, seen: set[int]) -> Any:
    """Plain data from a composed node. Walking the nodes ourselves (rather than through
    PyYAML's generic constructor) is what keeps loading close to the parser's own speed."""
    if id(node) in seen:
        # The same node twice is an alias: refuse it (this also stops "billion laughs" bombs).
        raise _Refusal(
            "YAML anchors and aliases are not allowed in plan files: write the values out "
            "so reviewers see them",
            node.start_mark,
        )
    seen.add(id(node))
    tag = node.tag
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode) and tag == _SEQ:
        return [_construct(item, seen) for item in node.value]
    if isinstance(node, MappingNode) and tag == _MAP:
        return _mapping(node, seen)
    raise _Refusal(
        f"the tag {tag!r} is not allowed: plan files hold plain YAML values", node.start_mark
    )


def _scalar(node: ScalarNode) -> Any:
    value, tag = node.value, node.tag
    try:
        if tag == _STR:
            return value
        if tag == _INT:
            digits = value.replace("_", "")
            return int(digits, 16 if digits.lstrip("+-").lower().startswith("0x") else 10)
        if tag == _BOOL:
            return _BOOLS[value.lower()]
        if tag == _NULL and value.lower() in _NULLS:
            return None
        if tag == _FLOAT:
            number = float(value.replace("_", ""))
            if math.isfinite(number):
                return number
    except (ValueError, KeyError):
        pass
    else:
        if tag not in (_NULL, _FLOAT):
            raise _Refusal(
                f"the tag {tag!r} is not allowed: plan files hold plain YAML values",
                node.start_mark,
            )
    raise _Refusal(f"{value!r} is not a valid {tag.rsplit(':', 1)[-1]}", node.start_mark)


def _mapping(node: MappingNode, seen: set[int]) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    first_line: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _STR and key_node.value == "<<":
            raise _Refusal(
                "YAML merge keys (<<) are not allowed in plan files: write the values out",
                key_node.start_mark,
            )
        key = _construct(key_node, seen)
        if isinstance(key, list | dict):
            raise _Refusal("a mapping key must be a plain value", key_node.start_mark)
        if key in first_line:
            raise _Refusal(
                f"duplicate key {key!r} (first given at line {first_line[key]}); "
                "YAML keeps only the last one, so say it once",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line + 1
        mapping[key] = _construct(value_node, seen)
    return mapping


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a plan file, as plain data, able to say where each value was."""

    file: str
    index: int
    data: Any
    location: Location

    def locate(self, path: Sequence[str | int]) -> Location:
        """Where the value at `path` was written, or its nearest ancestor that exists."""
        node, _ = _walk(self._root(), path)
        return self._at(node) if node is not None else self.location

    def locate_key(self, path: Sequence[str | int]) -> Location:
        """Where the last key of `path` was written (for "unknown field" problems)."""
        _, key = _walk(self._root(), path)
        return self._at(key) if key is not None else self.locate(path)

    def _root(self) -> Node | None:
        try:
            text = Path(self.file).read_bytes().decode("utf-8-sig")
            for index, node in enumerate(yaml.compose_all(text, Loader=_Base)):
                if index == self.index:
                    return node
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            pass  # the file changed since it was loaded: point at the document instead
        return None

    def _at(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(root: Node | None, path: Sequence[str | int]) -> tuple[Node | None, Node | None]:
    """The deepest node along `path`, and the key node of the last step if it was found."""
    node, key_node = root, None
    for part in path:
        key_node = None
        if isinstance(node, MappingNode):
            match = next((kv for kv in node.value if str(kv[0].value) == str(part)), None)
            if match is None:
                break
            key_node, node = match
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node, key_node


@dataclass(frozen=True, slots=True)
class LoadResult:
    documents: tuple[Document, ...]
    diagnostics: tuple[Diagnostic, ...]
    files: int = 0


def discover(paths: Sequence[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Plan files: every *.yaml / *.yml below the directories given (hidden ones skipped),
    and files given by name whatever their suffix. Each file once, in a stable order."""
    found: list[Path] = []
    problems: list[Diagnostic] = []
    seen: set[Path] = set()
    for given in paths:
        if given.is_dir():
            candidates = sorted(_walk_dir(given))
        elif given.is_file():
            candidates = [given]
        else:
            problems.append(
                Diagnostic(
                    Location(str(given)),
                    "no such file or directory: give a plan file or a directory of them",
                )
            )
            continue
        for path in candidates:
            resolved = Path(os.path.abspath(path))
            if resolved not in seen:
                seen.add(resolved)
                found.append(path)
    return found, problems


def _walk_dir(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in files:
            if name.endswith(SUFFIXES) and not name.startswith("."):
                yield Path(directory) / name


def load_file(path: Path) -> tuple[list[Document], list[Diagnostic]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        return [], [Diagnostic(Location(name), f"cannot read the file: {error.strerror}")]
    if len(raw) > MAX_FILE_BYTES:
        size = len(raw) / (1024 * 1024)
        return [], [
            Diagnostic(
                Location(name),
                f"is {size:.1f} MiB; plan files are limited to "
                f"{MAX_FILE_BYTES // (1024 * 1024)} MiB: split it",
            )
        ]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return [], [
            Diagnostic(
                Location(name, line, col),
                f"is not UTF-8 text (byte 0x{raw[error.start]:02x}); save the file as UTF-8",
            )
        ]
    documents: list[Document] = []
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            data = _construct(node, set())
            if data is not None:
                mark = node.start_mark
                documents.append(
                    Document(name, index, data, Location(name, mark.line + 1, mark.column + 1))
                )
            index += 1
    except _Refusal as refusal:
        return documents, [_at_mark(name, refusal.mark, refusal.message)]
    except yaml.MarkedYAMLError as error:
        return documents, [_syntax(name, error)]
    except yaml.YAMLError as error:
        return documents, [_reader(name, text, error)]
    except RecursionError:
        return documents, [Diagnostic(Location(name), "is nested too deeply to be a plan")]
    finally:
        loader.dispose()
    return documents, []


def _at_mark(name: str, mark: Any, message: str) -> Diagnostic:
    if mark is None:
        return Diagnostic(Location(name), message)
    return Diagnostic(Location(name, mark.line + 1, mark.column + 1), message)


def _syntax(name: str, error: yaml.MarkedYAMLError) -> Diagnostic:
    problem = error.problem or "invalid YAML"
    context = f" {error.context}" if error.context else ""
    mark = error.problem_mark or error.context_mark
    return _at_mark(name, mark, f"invalid YAML: {problem}{context}")


def _reader(name: str, text: str, error: yaml.YAMLError) -> Diagnostic:
    position = getattr(error, "position", None)
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        return Diagnostic(Location(name, line, col), f"invalid YAML: {error}".split("\n")[0])
    return Diagnostic(Location(name), f"invalid YAML: {error}".split("\n")[0])


def load_paths(paths: Sequence[Path]) -> LoadResult:
    """Every document of every plan file, and every problem found (not just the first)."""
    files, diagnostics = discover(paths)
    documents: list[Document] = []
    for path in files:
        docs, problems = load_file(path)
        documents.extend(docs)
        diagnostics.extend(problems)
    return LoadResult(tuple(documents), tuple(diagnostics), len(files))
