"""The Markdown plan: what a reviewer reads in a pull request, exactly, within GitHub's limit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from factories import dms_plan, wedata_plan
from harness import Repo
from scenarios import relative_changes, under_review

from reconciler.views import markdown

GOLDEN = Path(__file__).parent / "golden"


def test_a_plan_with_creates_a_conflict_and_an_orphan_matches_the_reviewed_golden_file(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    under_review(repo)
    changes = relative_changes(repo, monkeypatch)
    assert changes.creates
    assert changes.conflicts
    assert changes.orphans
    expected = (GOLDEN / "plan-review.md").read_text(encoding="utf-8")
    assert markdown.changeset(changes) == expected


def test_the_marker_is_the_first_line_and_the_output_is_the_same_every_time(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    under_review(repo)
    first = markdown.changeset(relative_changes(repo, monkeypatch))
    assert first.splitlines()[0] == "<!-- backfill-reconciler:plan -->"
    assert markdown.changeset(relative_changes(repo, monkeypatch)) == first


def test_nothing_to_do_says_so(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.write("orders", wedata_plan())
    repo.apply()
    text = markdown.changeset(relative_changes(repo, monkeypatch))
    assert "**No changes.** Every declared cell is submitted." in text
    assert "### Nothing to do\n\n`orders-backfill` r1: every declared cell is submitted." in text
    assert "<details>" not in text


def huge(repo: Repo, plans: int, days: int) -> None:
    # A call per `days` days of a year: with 1 the requests (the details) dwarf the tables.
    for n in range(plans):
        repo.write(
            f"p{n:03}",
            wedata_plan(
                f"plan-{n:03}",
                tasks=[f"9{n:03}1", f"9{n:03}2"],  # each plan its own tasks: no overlap
                dates=[("2024-01-01", "2024-12-31")],
                chunk=days,
            ),
        )


def left_out(text: str) -> str:
    notice = re.search(
        r"^> Shortened to stay under .*; left out: (.*)\. Run `backfill plan`", text, re.M
    )
    assert notice, text[:3000]
    return notice.group(1)


def test_a_huge_plan_leaves_out_request_details_first_and_says_so(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge(repo, plans=3, days=1)
    text = markdown.changeset(relative_changes(repo, monkeypatch))
    assert len(text) <= markdown.BUDGET < markdown.COMMENT_LIMIT
    assert text.startswith(markdown.MARKER + "\n## Backfill plan\n\n**Plan: 1098 API calls")
    assert left_out(text) == "the request details of 3 plans"
    assert "<details>" not in text
    # Every table is whole: one row each, 366 days in 366 calls.
    assert text.count("| 2024-01-01..2024-12-31 (366 days) | 732 | 366 |") == 3


def test_details_stay_for_the_first_plans_when_only_the_last_ones_do_not_fit(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge(repo, plans=3, days=31)
    changes = relative_changes(repo, monkeypatch)
    full = markdown.changeset(changes, limit=10**7)
    assert "Shortened" not in full
    assert full.count("<details>") == 3
    text = markdown.changeset(changes, limit=len(full) - 100)
    assert len(text) <= len(full) - 100
    assert left_out(text) == "the request details of 1 plan"
    assert text.count("<details>") == 2
    assert text.rindex("<details>") < text.index("#### `plan-002`")


def test_when_the_tables_do_not_fit_either_the_last_plans_go_but_summary_and_conflicts_stay(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    under_review(repo)
    for n in range(40):
        repo.write(f"extra{n:02}", dms_plan(f"extra-{n:02}", dags=[16000 + n]))
    text = markdown.changeset(relative_changes(repo, monkeypatch), limit=4000)
    assert len(text) <= 4000
    assert "**Plan: 45 API calls to make (132 cells).**" in text
    assert "- **`orders-backfill` r1** at plans/orders.yaml:11:3" in text
    tables_left_out = re.fullmatch(
        r"the request details of 42 plans, the tables of (\d+) plans, "
        r"the Orphaned section and the Nothing to do section",
        left_out(text),
    )
    assert tables_left_out
    shown = text.count("\n#### ")
    assert shown >= 2
    assert shown + int(tables_left_out.group(1)) == 42
    assert "<details>" not in text


def test_a_table_too_long_for_the_comment_is_cut_with_a_row_that_says_so(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("wide", dms_plan("wide", dags=list(range(20000, 20300))))
    text = markdown.changeset(relative_changes(repo, monkeypatch), limit=8000)
    assert len(text) <= 8000
    cut = re.search(r"^\| … (\d+) more rows left out \| \| \| \| \|$", text, re.M)
    assert cut
    rows = [line for line in text.splitlines() if line.startswith("| `2")]
    assert len(rows) + int(cut.group(1)) == 300
    assert left_out(text) == f"the request details of 1 plan and {cut.group(1)} rows of a table"


def test_the_summary_and_conflicts_are_never_cut_even_below_their_own_size(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    under_review(repo)
    text = markdown.changeset(relative_changes(repo, monkeypatch), limit=100)
    assert "**Plan: 5 API calls to make (12 cells).**" in text
    assert "### Conflicts" in text
    assert "### Plans" not in text
    assert left_out(text) == (
        "the request details of 2 plans, the tables of 2 plans, "
        "the Orphaned section and the Nothing to do section"
    )


def test_user_provided_strings_are_escaped(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = wedata_plan(parameters={"note": "a|b <img src=x> *bold* [link](x) $x$ ```"})
    plan["metadata"]["reason"] = "line one\nline | two & <!-- not a comment -->"
    plan["metadata"]["labels"] = {"team": "a|b"}
    repo.write("orders", plan)
    text = markdown.changeset(relative_changes(repo, monkeypatch))
    assert (
        "reason: line one line \\| two \\& \\<\\!-- not a comment --\\>" in text
    )  # one line: a newline would end the paragraph
    assert "labels: team=a\\|b" in text
    row = next(line for line in text.splitlines() if line.startswith("| `"))
    assert row.count(" | ") == 4  # five cells: the | in the value is escaped
    assert '"note": "a\\|b \\<img src=x\\> \\*bold\\* \\[link\\](x) \\$x\\$ \\`\\`\\`"' in row
    # Verbatim in the request, in a code block whose fence its backticks cannot close.
    fenced = re.findall(r"^(`{3,})json\n(.*?)^\1$", text, re.M | re.S)
    assert [fence for fence, _ in fenced] == ["````"]
    assert '"V": "a|b <img src=x> *bold* [link](x) $x$ ```"' in fenced[0][1]
    outside = re.sub(r"^(`{3,})json\n.*?^\1$", "", text, flags=re.M | re.S)
    # No HTML but the report's own.
    assert not re.search(r"(?<!\\)<(?!/?(details|summary)>)", outside.removeprefix(markdown.MARKER))


def test_escape_leaves_plain_text_alone_and_flattens_whitespace() -> None:
    assert markdown.escape("INC-4711: fixed upstream.") == "INC-4711: fixed upstream."
    assert markdown.escape("a\r\nb\tc  d") == "a b c d"
    assert markdown.escape("|`*_[]<>~&$#!\\") == "\\|\\`\\*\\_\\[\\]\\<\\>\\~\\&\\$\\#\\!\\\\"


def test_invalid_plan_files_replace_the_plan_with_the_problems(tmp_path: Path) -> None:
    from reconciler.errors import Diagnostic, Location

    problems = [
        Diagnostic(Location("plans/a.yaml", 9, 3), "must be one of: none, all, in-plan", "x|y"),
        Diagnostic(Location("plans/b.yaml"), "cannot read the file: not UTF-8"),
    ]
    text = markdown.invalid(problems)
    assert text == (
        "<!-- backfill-reconciler:plan -->\n"
        "## Backfill plan\n"
        "\n"
        "**The plan files have 2 problems in 2 files; nothing was planned or applied.** "
        "`backfill validate` lists the same.\n"
        "\n"
        "| Where | Field | Problem |\n"
        "| --- | --- | --- |\n"
        "| plans/a.yaml:9:3 | x\\|y | must be one of: none, all, in-plan |\n"
        "| plans/b.yaml | - | cannot read the file: not UTF-8 |\n"
    )
