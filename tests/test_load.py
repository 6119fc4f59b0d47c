"""Loading plan files: safe YAML in, plain data out, every problem at file:line:col."""

from __future__ import annotations

import random
import time
from pathlib import Path

from reconciler.errors import Diagnostic
from reconciler.load import MAX_FILE_BYTES, Document, discover, load_file, load_paths


def load_text(
    tmp_path: Path, text: str | bytes, name: str = "p.yaml"
) -> tuple[list[Document], list[Diagnostic]]:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_file(path)


def one_problem(tmp_path: Path, text: str | bytes) -> str:
    _, problems = load_text(tmp_path, text)
    assert len(problems) == 1, problems
    return str(problems[0])


def test_unquoted_dates_and_times_stay_exactly_as_written(tmp_path: Path) -> None:
    [doc], problems = load_text(
        tmp_path, "start: 2025-09-01\nbad: 2025-02-30\nat: 12:30\nstamp: 2025-09-01T10:00:00Z\n"
    )
    assert problems == []
    assert doc.data == {
        "start": "2025-09-01",
        "bad": "2025-02-30",
        "at": "12:30",
        "stamp": "2025-09-01T10:00:00Z",
    }


def test_scalars_resolve_as_config_files_expect(tmp_path: Path) -> None:
    [doc], _ = load_text(
        tmp_path,
        "a: true\nb: no\nc: ~\nd:\ne: 42\nf: 20250827115253729\ng: 1.5\nh: 0x1F\n"
        "i: 0123\nj: .nan\nk: '12'\n",
    )
    assert doc.data == {
        "a": True,
        "b": False,
        "c": None,
        "d": None,
        "e": 42,
        "f": 20250827115253729,
        "g": 1.5,
        "h": 31,
        "i": "0123",
        "j": ".nan",
        "k": "12",
    }


def test_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "spec:\n  region: a\n  chunk: 1\n  region: b\n")
    assert problem == (
        f"{tmp_path / 'p.yaml'}:4:3: duplicate key 'region' (first given at line 2); "
        "YAML keeps only the last one, so say it once"
    )


def test_anchors_and_aliases_are_refused(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "a: &x [1, 2]\nb: *x\n")
    assert "anchors and aliases are not allowed" in problem
    assert ":1:4:" in problem


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "base: &b {x: 1}\nmine:\n  <<: *b\n")
    assert "not allowed" in problem


def test_a_billion_laughs_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 10)]
    started = time.perf_counter()
    problem = one_problem(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2.0
    assert "aliases are not allowed" in problem


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "a: " + "x" * MAX_FILE_BYTES + "\n")
    assert "plan files are limited to 1 MiB: split it" in problem


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, b"a: 1\nbb: caf\xe9\n")
    assert problem.startswith(f"{tmp_path / 'p.yaml'}:2:8: is not UTF-8 text (byte 0xe9)")


def test_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    [doc], problems = load_text(tmp_path, "\ufeffa: 1\n".encode())
    assert problems == []
    assert doc.data == {"a": 1}


def test_a_syntax_error_is_located(tmp_path: Path) -> None:
    problem = one_problem(tmp_path, "a: [1, 2\nb: 3\n")
    assert ":2:2: invalid YAML:" in problem


def test_python_and_unknown_tags_are_refused(tmp_path: Path) -> None:
    assert "the tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed" in (
        one_problem(tmp_path, "a: !!python/object/apply:os.system ['true']\n")
    )
    assert "the tag '!custom' is not allowed" in one_problem(tmp_path, "a: !custom 1\n")
    assert "the tag 'tag:yaml.org,2002:binary' is not allowed" in one_problem(
        tmp_path, "a: !!binary aGk=\n"
    )


def test_several_documents_per_file_keep_their_index_and_position(tmp_path: Path) -> None:
    docs, problems = load_text(tmp_path, "a: 1\n---\n---\nb: 2\n")
    assert problems == []
    assert [(d.index, d.data, d.location.line) for d in docs] == [
        (0, {"a": 1}, 1),
        (2, {"b": 2}, 4),
    ]


def test_locate_finds_nested_values_list_items_and_keys(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\n"
        "spec:\n"
        "  dates:\n"
        "    - start: 2025-09-01\n"
        "      end: 2025-09-03\n"
        "  taskIds: [a, b]\n"
    )
    [doc], _ = load_text(tmp_path, text)
    assert str(doc.locate(("spec", "dates", 0, "end"))) == f"{tmp_path / 'p.yaml'}:5:12"
    assert doc.locate(("spec", "taskIds", 1)).col == 16
    assert doc.locate_key(("spec", "taskIds")).col == 3
    # Something that is not there: the nearest ancestor that is (the list, from its first item).
    assert (doc.locate(("spec", "dates", 7, "end")).line, doc.locate(("spec", "dates")).line) == (
        4,
        4,
    )


def test_locate_in_a_later_document(tmp_path: Path) -> None:
    docs, _ = load_text(tmp_path, "a: 1\n---\nb:\n  c: 2\n")
    assert docs[1].locate(("b", "c")).line == 4


def test_discover_recurses_sorted_skips_hidden_and_reports_missing(tmp_path: Path) -> None:
    for name in ("b/two.yaml", "a/one.yml", "a/.hidden.yaml", ".git/x.yaml", "a/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a: 1\n")
    explicit = tmp_path / "a" / "notes.txt"
    files, problems = discover([tmp_path, explicit, tmp_path / "nope"])
    assert files == [tmp_path / "a/one.yml", tmp_path / "b/two.yaml", explicit]
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'nope'}: no such file or directory: give a plan file or a directory of them"
    ]


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x: 1\nx: 2\n")
    (tmp_path / "b.yaml").write_bytes(b"\xff")
    (tmp_path / "c.yaml").write_text("ok: 1\n")
    result = load_paths([tmp_path])
    assert sorted(d.location.file for d in result.diagnostics) == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yaml"),
    ]
    assert [d.data for d in result.documents] == [{"ok": 1}]
    assert result.files == 3


def test_no_input_makes_the_loader_raise(tmp_path: Path) -> None:
    """A seeded fuzz of mutated and random inputs: problems are reported, never raised."""
    seed = random.Random(1234)
    base = (Path(__file__).parent.parent / "plans" / "orders" / "late-arrivals.yaml").read_bytes()
    alphabet = b"{}[]:-&*!|>'\"#%@`,?\n\t 0123456789abc\xff\xfe"
    for case in range(400):
        data = bytearray(base)
        for _ in range(seed.randint(1, 12)):
            where = seed.randrange(len(data))
            if seed.random() < 0.5:
                data[where] = seed.choice(alphabet)
            else:
                data[where:where] = bytes(seed.choice(alphabet) for _ in range(seed.randint(1, 6)))
        if case % 10 == 0:
            data = bytearray(seed.randbytes(seed.randint(0, 200)))
        path = tmp_path / f"f{case}.yaml"
        path.write_bytes(bytes(data))
        docs, problems = load_file(path)  # must not raise
        for doc in docs:
            doc.locate(("spec", "dates", 0, "start"))
        assert all(str(p).startswith(str(path)) for p in problems)
