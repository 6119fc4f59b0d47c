"""Loading: safe YAML in, plain data out, every problem at file:line:col, never an exception."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import load
from reconciler.errors import Location
from reconciler.load import (
    MAX_FILE_BYTES,
    Document,
    discover,
    load_file,
    load_paths,
)

PLAN = """\
# yaml-language-server: $schema=../schemas/backfill-plan.schema.json
apiVersion: backfill-reconciler/v1
kind: BackfillPlan
metadata:
  name: orders-late-arrivals
  labels: {team: orders, tier: gold}
spec:
  provider: tencent-wedata
  projectId: "1460947878944567311"
  taskIds:
    - "20250901000000101"
    - 20250827115253729
  dates:
    - start: 2025-09-01
      end: 2025-09-03
    - {start: 2025-10-01, end: 2025-10-02}
  executionStartTime: 01:30
  revision: 2
  parameters:
    mode: restate
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def load_one(path: Path) -> Document:
    documents, diagnostics = load_file(path)
    assert diagnostics == []
    [document] = documents
    return document


def problems(path: Path) -> list[str]:
    return [str(d) for d in load_file(path)[1]]


def line_of(path: Path, text: str) -> int:
    return path.read_text(encoding="utf-8").splitlines().index(text) + 1


# --- values -------------------------------------------------------------------------------------


def test_unquoted_dates_and_timestamps_stay_the_text_written(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.yaml",
        "start: 2025-09-01\n"
        "impossible: 2025-02-30\n"
        "stamp: 2025-09-01T08:00:00Z\n"
        "spaced: 2025-09-01 08:00:00\n"
        "short: 2025-9-1\n",
    )
    assert load_one(path).data == {
        "start": "2025-09-01",
        "impossible": "2025-02-30",
        "stamp": "2025-09-01T08:00:00Z",
        "spaced": "2025-09-01 08:00:00",
        "short": "2025-9-1",
    }


def test_a_time_of_day_is_text_not_a_base_60_number(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "at: 12:30\nearly: 01:30\nseconds: 1:02:03\nneg: -1:30\n")
    assert load_one(path).data == {
        "at": "12:30",
        "early": "01:30",
        "seconds": "1:02:03",
        "neg": "-1:30",
    }


def test_numbers_booleans_and_nulls_resolve_as_yaml_users_expect(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.yaml",
        "int: 42\nneg: -7\nbig: 20250827115253729\nunderscored: 1_000\nhex: 0x1F\n"
        "float: 0.75\nexp: 1.5e3\nplain_exp: 1e3\n"
        "yes: yes\nno: no\non: on\noff: Off\ntrue: true\nfalse: FALSE\n"
        "tilde: ~\nnull: null\nempty:\nquoted: '12'\nquoted_true: \"true\"\n"
        "block: |\n  12\n",
    )
    data = load_one(path).data
    assert data == {
        "int": 42,
        "neg": -7,
        "big": 20250827115253729,
        "underscored": 1000,
        "hex": 31,
        "float": 0.75,
        "exp": 1500.0,
        "plain_exp": 1000.0,
        "yes": True,
        "no": False,
        "on": True,
        "off": False,
        "true": True,
        "false": False,
        "tilde": None,
        "null": None,
        "empty": None,
        "quoted": "12",
        "quoted_true": "true",
        "block": "12\n",
    }
    assert type(data["big"]) is int
    assert type(data["yes"]) is bool


def test_values_yaml_would_silently_change_keep_their_text(tmp_path: Path) -> None:
    # 0123 is octal 83 in YAML 1.1 (and 089 text): an id must not change under the author.
    path = write(
        tmp_path / "p.yaml",
        "octal: 0123\nnot_octal: 089\ninf: .inf\nnan: .NaN\nhuge: 1e999\nhalf_hex: 0x_\neq: =\n",
    )
    assert load_one(path).data == {
        "octal": "0123",
        "not_octal": "089",
        "inf": ".inf",
        "nan": ".NaN",
        "huge": "1e999",
        "half_hex": "0x_",
        "eq": "=",
    }


def test_mapping_keys_are_always_the_text_written(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "on: push\n1: one\n~: tilde\n2025-09-01: day\n")
    assert load_one(path).data == {"on": "push", "1": "one", "~": "tilde", "2025-09-01": "day"}


def test_a_number_too_long_to_convert_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "a: " + "9" * 5000 + "\n")
    assert problems(path) == [
        f"{path}:1:4: the number 9999999999999999... (5000 characters) is too large: no plan "
        "field takes an integer of more than 100 digits; shorten it, or quote it if it is text"
    ]


@pytest.mark.parametrize(
    "literal",
    [
        "0x" + "f" * 4400,  # Python converts any hex: the value failed later, when printed
        "-0x" + "f" * 4400,
        "0b" + "1" * 20000,
        "0x_" + "f" * 84,  # the first over the limit in hex
        "1" + "0" * 100,
        "!!int 0x" + "f" * 4400,
    ],
)
def test_an_integer_beyond_100_digits_is_a_problem_in_every_base(
    tmp_path: Path, literal: str
) -> None:
    path = write(tmp_path / "p.yaml", f"a: 1\nb: {literal}\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:2:4: the number ")
    assert "no plan field takes an integer of more than 100 digits" in problem
    assert len(problem) < len(str(path)) + 200  # the value is cut short, not repeated whole


def test_an_integer_of_100_digits_in_any_base_loads(tmp_path: Path) -> None:
    largest = 10**100 - 1
    path = write(tmp_path / "p.yaml", f"a: {largest}\nb: {hex(largest)}\nc: {-largest}\n")
    assert load_one(path).data == {"a": largest, "b": largest, "c": -largest}


def test_a_mapping_or_list_as_a_key_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "? [a, b]\n: 1\n{c: 1}: 2\nd: 3\n")
    assert problems(path) == [
        f"{path}:1:3: a mapping key must be plain text, not a mapping or a list",
        f"{path}:3:1: a mapping key must be plain text, not a mapping or a list",
    ]


# --- what a plan file must not say ----------------------------------------------------------------


def test_a_duplicate_key_is_reported_at_the_second_naming_the_line_of_the_first(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "p.yaml",
        "spec:\n  revision: 1\n  chunk: 7\n  revision: 2\nkind: A\nkind: B\n",
    )
    documents, diagnostics = load_file(path)
    assert documents == []
    assert [str(d) for d in diagnostics] == [
        f"{path}:4:3: duplicate key 'revision': it is already set on line 2, "
        "and YAML would silently keep only the last one: write it once",
        f"{path}:6:1: duplicate key 'kind': it is already set on line 5, "
        "and YAML would silently keep only the last one: write it once",
    ]


def test_the_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "dates:\n  - start: a\n  - start: b\nstart: c\n")
    assert load_one(path).data == {"dates": [{"start": "a"}, {"start": "b"}], "start": "c"}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("base: &base\n  mode: x\nother: *base\n", "1:7"),
        ("a: &only 1\n", "1:4"),
        ("a: 1\nb: *nowhere\n", "2:4"),
        ("- &item {x: 1}\n", "1:3"),
    ],
    ids=["anchor-and-alias", "anchor-alone", "alias-alone", "anchored-mapping"],
)
def test_anchors_and_aliases_are_rejected(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path / "p.yaml", text)
    assert problems(path) == [
        f"{path}:{where}: YAML anchors and aliases are not allowed in plan files: "
        "write the values out so reviewers see them"
    ]


def test_a_merge_key_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "defaults: {mode: x}\nspec:\n  <<: {mode: y}\n  '<<': ok\n")
    assert problems(path) == [
        f"{path}:3:3: YAML merge keys (<<) are not allowed in plan files: "
        "write the values out so reviewers see them"
    ]


def test_a_billion_laughs_file_is_rejected_at_its_first_anchor(tmp_path: Path) -> None:
    # Nothing is expanded (`make bench` measures how fast that makes it).
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    path = write(tmp_path / "lol.yaml", "\n".join(lines) + "\n")
    documents, diagnostics = load_file(path)
    assert documents == []
    assert [str(d) for d in diagnostics] == [
        f"{path}:1:4: YAML anchors and aliases are not allowed in plan files: "
        "write the values out so reviewers see them"
    ]


@pytest.mark.parametrize("unit", ["[", "{a: ", "- "])
def test_nesting_too_deep_is_one_problem_past_the_limit(tmp_path: Path, unit: str) -> None:
    # Stopped by our limit, or by libyaml's own where its scanner reads that far ahead (a run of
    # `[`): either way one problem, in our words, where the nesting is already too deep. That the
    # limit also keeps such a file fast is measured by `make bench`.
    path = write(tmp_path / "deep.yaml", unit * 50_000)
    [problem] = load_file(path)[1]
    assert problem.message == (
        "values are nested more than 100 levels deep here: "
        "plan files never need that, flatten the structure"
    )
    assert (problem.location.file, problem.location.line) == (str(path), 1)
    assert problem.location.col > load.MAX_DEPTH * len(unit)


def test_a_file_nested_just_under_the_limit_loads(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "[" * load.MAX_DEPTH + "]" * load.MAX_DEPTH)
    value = load_one(path).data
    for _ in range(load.MAX_DEPTH - 1):
        [value] = value
    assert value == []


def test_an_oversized_file_is_rejected_without_being_parsed(tmp_path: Path) -> None:
    # Broken YAML from the first line: a parse would report that, so none may happen.
    path = write(tmp_path / "big.yaml", "b: [\n" * 671_000)
    assert path.stat().st_size == 3_355_000
    assert problems(path) == [
        f"{path}: the file is 3.2 MiB; plan files are limited to 1 MiB: split it into several files"
    ]


def test_a_file_of_exactly_the_limit_is_loaded(tmp_path: Path) -> None:
    text = "a: 1\n# " + "x" * (MAX_FILE_BYTES - 8) + "\n"
    path = write(tmp_path / "p.yaml", text)
    assert path.stat().st_size == MAX_FILE_BYTES
    assert load_one(path).data == {"a": 1}
    write(path, text + "\n")
    [problem] = problems(path)
    assert "the file is 1.1 MiB; plan files are limited to 1 MiB" in problem


def test_non_utf8_bytes_are_reported_at_their_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "a: 1\nname: café\nowner: Jos\xe9\n".encode("latin-1"))
    assert problems(path) == [
        f"{path}:2:10: the file is not UTF-8 (byte 0xE9 here): save it as UTF-8"
    ]
    # Columns count characters, not bytes: "é" before the bad byte is one column.
    write(path, "naïve: \xff\n".encode())
    write(path, b"na\xc3\xafve: \xff\n")
    assert problems(path) == [
        f"{path}:1:8: the file is not UTF-8 (byte 0xFF here): save it as UTF-8"
    ]


def test_a_bad_byte_after_a_utf8_bom_is_named_where_it_is(tmp_path: Path) -> None:
    # The BOM is three bytes before the text: the bad byte is still the one named, at its line.
    path = write(tmp_path / "bom.yaml", b"\xef\xbb\xbfa: x\nb: \xff\n")
    assert problems(path) == [
        f"{path}:2:4: the file is not UTF-8 (byte 0xFF here): save it as UTF-8"
    ]
    path = write(tmp_path / "bom1.yaml", b"\xef\xbb\xbfab: \xff\n")
    assert problems(path) == [
        f"{path}:1:5: the file is not UTF-8 (byte 0xFF here): save it as UTF-8"
    ]


def test_a_utf8_bom_is_fine_and_utf16_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.yaml", "\ufeffa: 1\n".encode())
    assert load_one(path).data == {"a": 1}
    utf16 = write(tmp_path / "utf16.yaml", "a: 1\n".encode("utf-16"))
    assert problems(utf16) == [f"{utf16}:1:1: the file is UTF-16: save it as UTF-8"]


def test_a_control_character_is_reported_at_its_position(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "a: 1\nnamé: x\x07y\n")
    assert problems(path) == [f"{path}:2:8: the character U+0007 is not allowed in YAML: remove it"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\nb: [1, 2\nc: 3\n",
            "3:2: YAML syntax error: did not find expected ',' or ']' "
            "(while parsing a flow sequence that starts at line 2, column 4)",
        ),
        (
            "a: 1\n  b: 2\n",
            "2:4: YAML syntax error: mapping values are not allowed in this context",
        ),
        (
            "a:\n\tb: 1\n",
            "2:1: YAML syntax error: found character that cannot start any token "
            "(while scanning for the next token)",
        ),
        (
            "a: 'unterminated\n",
            "2:1: YAML syntax error: found unexpected end of stream "
            "(while scanning a quoted scalar that starts at line 1, column 4)",
        ),
    ],
    ids=["flow", "indent", "tab", "quote"],
)
def test_a_syntax_error_is_one_sentence_at_the_parsers_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "p.yaml", text)
    assert problems(path) == [f"{path}:{expected}"]


def test_python_and_unknown_tags_are_rejected_by_name_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(
        tmp_path / "p.yaml",
        f"a: !!python/object/apply:os.system ['touch {marker}']\n"
        "b: !!python/name:os.system\n"
        "c: !custom x\n"
        "d: !!timestamp 2025-09-01\n"
        "e: !!binary aGk=\n"
        "f: !!set {x}\n",
    )
    assert problems(path) == [
        f"{path}:1:4: the tag !!python/object/apply:os.system is not allowed in plan files: "
        "remove it",
        f"{path}:2:4: the tag !!python/name:os.system is not allowed in plan files: remove it",
        f"{path}:3:4: the tag !custom is not allowed in plan files: remove it",
        f"{path}:4:4: the tag !!timestamp is not allowed in plan files: remove it",
        f"{path}:5:4: the tag !!binary is not allowed in plan files: remove it",
        f"{path}:6:4: the tag !!set is not allowed in plan files: remove it",
    ]
    assert not marker.exists()


def test_standard_tags_are_honoured_and_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.yaml",
        "a: !!str 12\nb: !!int '12'\nc: !!float 3\nd: !!bool yes\ne: !!null ''\nf: ! 12\n"
        "g: !!map {x: 1}\nh: !!seq [1]\n",
    )
    assert load_one(path).data == {
        "a": "12",
        "b": 12,
        "c": 3.0,
        "d": True,
        "e": None,
        "f": "12",
        "g": {"x": 1},
        "h": [1],
    }
    write(path, "a: !!int twelve\nb: !!int true\nc: !!bool 1\nd: !!map [1]\ne: !!str {x: 1}\n")
    assert problems(path) == [
        f"{path}:1:4: 'twelve' is not a !!int: fix it or remove the tag",
        f"{path}:2:4: 'true' is not a !!int: fix it or remove the tag",
        f"{path}:3:4: '1' is not a !!bool: fix it or remove the tag",
        f"{path}:4:4: the tag !!map does not fit this value: remove it",
        f"{path}:5:4: the tag !!str does not fit this value: remove it",
    ]


# --- documents ----------------------------------------------------------------------------------


def test_documents_keep_their_index_in_the_file_and_empty_ones_are_skipped(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "p.yaml", "---\n---\nname: one\n...\n---\nname: two\n---\n# end\n")
    documents, diagnostics = load_file(path)
    assert diagnostics == []
    assert [(d.index, d.data, d.location) for d in documents] == [
        (1, {"name": "one"}, Location(str(path), 2, 1)),
        (2, {"name": "two"}, Location(str(path), 5, 1)),
    ]


def test_an_empty_or_comment_only_file_has_no_documents_and_no_problems(tmp_path: Path) -> None:
    for text in ("", "# nothing yet\n", "---\n"):
        path = write(tmp_path / "p.yaml", text)
        assert load_file(path) == ([], [])


def test_a_document_with_a_problem_is_left_out_and_the_others_still_load(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "p.yaml",
        "name: one\n---\nname: two\nname: again\n---\nname: three\n---\nname: [four\n",
    )
    documents, diagnostics = load_file(path)
    assert [d.data for d in documents] == [{"name": "one"}, {"name": "three"}]
    assert [d.index for d in documents] == [0, 2]
    assert [(d.location.line, d.location.col) for d in diagnostics] == [(4, 1), (9, 1)]
    assert "duplicate key 'name'" in diagnostics[0].message
    assert diagnostics[1].message.startswith("YAML syntax error")


# --- positions ----------------------------------------------------------------------------------


def test_locate_gives_the_line_and_column_of_nested_values_and_list_items(
    tmp_path: Path,
) -> None:
    document = load_one(write(tmp_path / "p.yaml", PLAN))
    where = {
        (): "2:1",
        ("metadata", "name"): "5:9",
        ("metadata", "labels", "tier"): "6:32",
        ("spec", "taskIds"): "11:5",
        ("spec", "taskIds", 0): "11:7",
        ("spec", "taskIds", 1): "12:7",
        ("spec", "dates", 0): "14:7",
        ("spec", "dates", 0, "end"): "15:12",
        ("spec", "dates", 1): "16:7",
        ("spec", "dates", 1, "end"): "16:32",
        ("spec", "revision"): "18:13",
        ("spec", "parameters"): "20:5",
    }
    found = {path: document.locate(path) for path in where}
    assert {path: f"{location.line}:{location.col}" for path, location in found.items()} == where
    assert document.locate(("spec", "revision")) == Location(str(tmp_path / "p.yaml"), 18, 13)


def test_locate_falls_back_to_the_nearest_value_that_exists(tmp_path: Path) -> None:
    document = load_one(write(tmp_path / "p.yaml", PLAN))
    # A missing required field is reported at the mapping that lacks it.
    assert document.locate(("spec", "region")) == document.locate(("spec",))
    assert (document.locate(("spec",)).line, document.locate(("spec",)).col) == (8, 3)
    assert document.locate(("spec", "dates", 7, "end")) == document.locate(("spec", "dates"))
    assert document.locate(("metadata", "name", "deeper")) == document.locate(("metadata", "name"))
    assert document.locate(("nowhere", 0)) == document.locate(())


def test_locate_key_gives_where_the_key_was_written(tmp_path: Path) -> None:
    document = load_one(write(tmp_path / "p.yaml", PLAN))
    assert document.locate_key(("spec", "revision")).line == 18
    assert document.locate_key(("spec", "revision")).col == 3
    assert document.locate_key(("spec", "dates", 1, "end")).col == 27
    assert document.locate_key(("metadata", "labels", "team")).col == 12
    # A list index has no key; a missing key has no position of its own.
    assert document.locate_key(("spec", "taskIds", 1)) == document.locate(("spec", "taskIds", 1))
    assert document.locate_key(("spec", "missing")) == document.locate(("spec",))


def test_locate_works_in_later_documents_and_with_a_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "\ufeffa: 1\n---\n---\nb:\n  - x\n  - y: 2\n")
    first, second = load_file(path)[0]
    assert (second.index, second.location.line) == (2, 3)
    assert (first.locate(("a",)).line, first.locate(("a",)).col) == (1, 4)
    assert (second.locate(("b", 1, "y")).line, second.locate(("b", 1, "y")).col) == (6, 8)


def test_positions_are_worked_out_only_when_asked_once_per_file_and_from_the_text_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsers: list[str] = []
    parser = load._PARSER

    def counting_parser(text: str) -> Any:
        parsers.append(text)
        return parser(text)

    monkeypatch.setattr(load, "_PARSER", counting_parser)
    for n in range(5):
        write(tmp_path / f"p{n}.yaml", PLAN + "---\n" + PLAN.replace("orders-", "more-"))
    documents = load_paths([tmp_path]).documents
    assert len(documents) == 10
    assert len(parsers) == 5  # one pass per file, nothing kept for positions
    write(tmp_path / "p0.yaml", "\n\n\n" + PLAN)  # positions refer to the text that was loaded
    assert documents[0].locate(("spec", "revision")).line == 18
    assert documents[1].locate(("spec", "revision")).line == 21 + 18
    assert documents[0].locate_key(("spec", "chunk")).line == 8
    assert len(parsers) == 6  # a second pass for that file only, shared by its documents


def test_a_settled_document_keeps_its_positions_not_its_text_and_never_a_wrong_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "p.yaml", PLAN + "---\n" + PLAN.replace("orders-", "more-"))
    first, second = (document.settled() for document in load_file(path)[0])
    assert (first.data, second.data) == (None, None)
    monkeypatch.chdir(tmp_path.parent)  # the file is read again by its own path
    assert first.locate(("spec", "revision")).line == 18  # the text again, as loaded
    assert second.locate(("spec", "revision")).line == 21 + 18

    first, _ = (document.settled() for document in load_file(path)[0])
    write(path, "\n\n\n" + PLAN)  # edited since: its positions are not those of the data
    assert first.locate(("spec", "revision")) == first.location


def test_the_pure_python_parser_gives_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [
        PLAN,
        "a: &x 1\nb: 2\nb: 3\nc: !!python/name:os.system\n---\nd: [1, 2\n",
        "k: 12:30\nl: 2025-09-01\nm: 0123\nn: !!float 1\n",
    ]

    def outcome() -> list[Any]:
        results: list[Any] = []
        for n, text in enumerate(texts):
            path = write(tmp_path / f"p{n}.yaml", text)
            documents, diagnostics = load_file(path)
            located = [d.locate(("spec", "dates", 1, "end")) for d in documents]
            results.append(([(d.index, d.data, d.location) for d in documents], located))
            # The wording of syntax errors is the parser's own; where they are is not.
            results.append([(d.location, d.message.partition(":")[0]) for d in diagnostics])
        return results

    with_libyaml = outcome()
    monkeypatch.setattr(load, "_PARSER", yaml.SafeLoader)
    assert outcome() == with_libyaml
    assert with_libyaml[1] == []
    assert len(with_libyaml[3]) == 4


# --- finding files ------------------------------------------------------------------------------


def test_discover_recurses_sorts_and_skips_hidden_files_and_directories(tmp_path: Path) -> None:
    for name in [
        "plans/b.yaml",
        "plans/a.yml",
        "plans/team/z.yaml",
        "plans/team-x.yaml",
        "plans/notes.txt",
        "plans/plan.json",
        "plans/.hidden.yaml",
        "plans/.github/workflow.yml",
        "plans/team/.cache/c.yaml",
    ]:
        write(tmp_path / name, "a: 1\n")
    files, diagnostics = discover([tmp_path / "plans"])
    assert diagnostics == []
    assert [f.relative_to(tmp_path / "plans").as_posix() for f in files] == [
        "a.yml",
        "b.yaml",
        "team/z.yaml",
        "team-x.yaml",
    ]


def _finishes(work: Callable[[], Any]) -> Any:
    """`work()`, in a thread so that a test that would hang fails instead (opening a named
    pipe for reading blocks until something writes to it)."""
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(work()), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert done, "blocked: a named pipe was opened for reading"
    return done[0]


def test_what_is_named_like_a_plan_file_but_is_not_a_regular_file_is_a_problem_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = tmp_path / "plans"
    good = write(plans / "good.yaml", "a: 1\n")
    os.mkfifo(plans / "fifo.yaml")
    (plans / "device.yml").symlink_to("/dev/zero")
    (plans / "dir.yaml").mkdir()
    write(plans / "dir.yaml" / "inside.yaml", "a: 1\n")
    (plans / "gone.yaml").symlink_to(plans / "nowhere.yaml")
    (plans / "loop.yaml").symlink_to(plans / "loop.yaml")
    (plans / "link.yaml").symlink_to(good)
    (plans / "pipe-link.yaml").symlink_to(plans / "fifo.yaml")
    (plans / "dir-link.yml").symlink_to(plans / "dir.yaml")
    (plans / "fifo.txt").symlink_to(plans / "fifo.yaml")  # not named like a plan: not looked at
    monkeypatch.chdir(plans)  # a socket's path is limited to about 100 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("socket.yaml")
        files, diagnostics = _finishes(lambda: discover([plans]))
    assert files == [plans / "good.yaml", plans / "link.yaml"]
    kinds = {Path(d.location.file).name: d.message for d in diagnostics}
    not_regular = ", and plan files are regular files: remove it, or rename it so that its name"
    assert kinds == {
        "fifo.yaml": f"cannot be read: it is a named pipe (FIFO){not_regular} does not end in "
        ".yaml or .yml",
        "pipe-link.yaml": kinds["fifo.yaml"],
        "device.yml": kinds["fifo.yaml"].replace("a named pipe (FIFO)", "a device"),
        "dir.yaml": kinds["fifo.yaml"].replace("a named pipe (FIFO)", "a directory"),
        "dir-link.yml": kinds["fifo.yaml"].replace("a named pipe (FIFO)", "a directory"),
        "socket.yaml": kinds["fifo.yaml"].replace("a named pipe (FIFO)", "a socket"),
        "gone.yaml": "cannot be read: No such file or directory",
        "loop.yaml": "cannot be read: Too many levels of symbolic links",
    }


def test_a_named_pipe_is_never_opened_for_reading_however_it_is_reached(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    documents, [problem] = _finishes(lambda: load_file(fifo))  # a file replaced after discovery
    assert documents == []
    assert problem.message.startswith("cannot be read: it is a named pipe (FIFO)")
    files, [named] = _finishes(lambda: discover([fifo]))
    assert files == []
    assert named.message == "is a named pipe (FIFO): give plan files or directories of them"


def test_discover_takes_a_named_file_whatever_its_suffix_and_each_file_once(
    tmp_path: Path,
) -> None:
    named = write(tmp_path / "plans" / "plan.txt", "a: 1\n")
    hidden = write(tmp_path / ".hidden.yaml", "a: 1\n")
    inside = write(tmp_path / "plans" / "a.yaml", "a: 1\n")
    files, diagnostics = discover([named, hidden, tmp_path / "plans", inside])
    assert diagnostics == []
    assert files == [named, hidden, inside]


def test_discover_reports_a_path_that_does_not_exist_and_goes_on(tmp_path: Path) -> None:
    present = write(tmp_path / "a.yaml", "a: 1\n")
    missing = tmp_path / "nope.yaml"
    files, diagnostics = discover([missing, present, tmp_path / "gone"])
    assert files == [present]
    assert [str(d) for d in diagnostics] == [
        f"{missing}: no such file or directory: check the path",
        f"{tmp_path / 'gone'}: no such file or directory: check the path",
    ]


def test_files_are_named_relative_to_the_working_directory_when_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "repo" / "plans" / "a.yaml", "a: 1\n")
    outside = write(tmp_path / "elsewhere.yaml", "a: [\n")
    monkeypatch.chdir(tmp_path / "repo")
    result = load_paths([Path("plans"), (tmp_path / "repo" / "plans" / "a.yaml"), outside])
    assert [d.file for d in result.documents] == ["plans/a.yaml"]
    assert [d.location.file for d in result.diagnostics] == [str(outside)]
    assert result.files == 2


def test_every_problem_of_every_file_is_reported_in_one_run(tmp_path: Path) -> None:
    write(tmp_path / "a-good.yaml", PLAN)
    write(tmp_path / "b-dup.yaml", "a: 1\na: 2\nb: 1\nb: 2\n")
    write(tmp_path / "c-syntax.yaml", "a: [\n")
    write(tmp_path / "d-latin1.yaml", b"a: \xe9\n")
    write(tmp_path / "e-alias.yaml", "a: &x 1\nb: *x\n")
    write(tmp_path / "f-big.yaml", "#" * (MAX_FILE_BYTES + 1))
    result = load_paths([tmp_path, tmp_path / "missing"])
    assert [d.data["metadata"]["name"] for d in result.documents] == ["orders-late-arrivals"]
    assert [(Path(d.location.file).name, d.location.line) for d in result.diagnostics] == [
        ("missing", 0),
        ("b-dup.yaml", 2),
        ("b-dup.yaml", 4),
        ("c-syntax.yaml", 2),
        ("d-latin1.yaml", 1),
        ("e-alias.yaml", 1),
        ("f-big.yaml", 0),
    ]
    assert result.files == 6


def test_an_unreadable_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    directory = tmp_path / "plans.yaml"
    directory.mkdir()
    documents, diagnostics = load_file(directory)
    assert documents == []
    [problem] = diagnostics
    assert problem.location == Location(str(directory))
    assert problem.message.startswith("cannot be read: ")


# --- robustness ---------------------------------------------------------------------------------

_TOKENS = [
    "&a ", "*a", "<<: ", "!!python/object:os.system ", "!x ", "!!int ", "!!float ", "!!str ",
    "!!map ", "!!seq ", "!", "? ", ": ", "- ", "[", "]", "{", "}", ",", "---\n", "...\n", "|\n",
    ">-\n", '"', "'", "\t", "#", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "\\", "\n", "  ",
    "0x_", "0b", "1_", "9" * 5000, ".inf", "12:30", "2025-02-30", "~", "\ufeff", "\x85",
    "\u2028", "é", "\U0001f600",
]  # fmt: skip


def _mutations(rng: random.Random) -> Iterator[bytes]:
    base = PLAN + "---\n" + PLAN
    for _ in range(120):
        yield bytes(rng.choice(b"ab :-[]{},&*!?|>'\"#\n\t\x00\xff\xc3\xa9") for _ in range(60))
    for _ in range(80):
        yield bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    for _ in range(300):
        text = base
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(text) + 1)
            action = rng.randrange(4)
            if action == 0:
                text = text[:at] + rng.choice(_TOKENS) + text[at:]
            elif action == 1:
                text = text[:at] + text[at + rng.randrange(1, 20) :]
            elif action == 2:
                end = at + rng.randrange(1, 80)
                text = text[:end] + text[at:end] + text[end:]
            else:
                lines = text.split("\n")
                rng.shuffle(lines)
                text = "\n".join(lines)
        raw = text.encode("utf-8", errors="surrogatepass")
        if rng.random() < 0.1:
            at = rng.randrange(len(raw) + 1)
            raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at:]
        yield raw


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def test_no_input_makes_loading_raise(tmp_path: Path) -> None:
    rng = random.Random(20250901)
    outcomes = {"loaded": 0, "refused": 0}
    for n, raw in enumerate(_mutations(rng)):
        path = write(tmp_path / f"f{n}.yaml", raw)
        documents, diagnostics = load_file(path)
        for diagnostic in diagnostics:
            assert diagnostic.location.file == str(path)
            assert diagnostic.message
            assert "\n" not in diagnostic.message
        for document in documents:
            json.dumps(document.data, allow_nan=False)  # plain data, JSON's kind
            for value_path in _paths(document.data):
                assert document.locate(value_path).line >= 1
                assert document.locate_key(value_path).line >= 1
        outcomes["loaded" if documents and not diagnostics else "refused"] += 1
    assert outcomes["loaded"] > 20, outcomes
    assert outcomes["refused"] > 200, outcomes


@pytest.mark.slow
def test_loading_many_files_is_no_slower_than_a_bare_libyaml_load(tmp_path: Path) -> None:
    # Positions are not computed for valid files: that is what keeps this cheap.
    for n in range(2000):
        write(tmp_path / f"d{n % 20}" / f"p{n}.yaml", PLAN.replace("orders-", f"p{n}-"))
    files, _ = discover([tmp_path])

    def bare() -> None:
        for file in files:
            yaml.load(file.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)

    def ours() -> None:
        assert len(load_paths([tmp_path]).documents) == 2000

    def best(run: Any) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)

    assert best(ours) < 1.5 * best(bare)
