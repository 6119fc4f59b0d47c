"""Hostile plan files: whatever a file holds, `validate` and `plan` accept it or name each
problem at file:line:col, and raise nothing else. A property test over the plan format with a
fixed seed and a bounded number of examples, and the inputs of issue 9 kept as a corpus."""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from factories import dms_plan, wedata_plan, write
from figures import report
from harness import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import pipeline, providers
from reconciler.domain import MAX_CELLS_PER_CALL, MAX_DAYS_PER_PLAN
from reconciler.load import load_paths
from reconciler.state import State
from reconciler.validate import MAX_CALLS_PER_PLAN, Validated
from reconciler.views import json as json_view
from reconciler.views import markdown, text

REPO = Path(__file__).resolve().parent.parent

FUZZ = settings(
    derandomize=True,  # the same examples in every run, on every machine
    database=None,
    deadline=None,  # timing belongs in `make bench`
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- the documents mutated: the shipped plans and one of each provider with every field ------


def _bases() -> list[Any]:
    shipped = [d.data for d in load_paths([REPO / "plans"]).documents]
    mapping = {"taskTypeId": 32, "item": "COMPUTE_ENGINE", "sourceValue": "a", "targetValue": "b"}
    full_wedata = wedata_plan(
        "full-wedata",
        chunk=31,
        parallelism=2,
        revision=2,
        remoteName="x",
        executionWindow={"start": "01:00", "end": "06:00"},
        parameters={"mode": "repair", "n": 1, "ratio": 0.5, "on": True},
        computeConfigMappings=[{**mapping, "taskIds": ["1", 2]}],
        order="reverse",
        instanceCycle="monthly",
    )
    full_dms = dms_plan(
        "full-dms",
        chunk=7,
        tenantId="3000",
        historyDagId=16001,
        startNodeIds=[4301],
        filterNodeIds=["4302"],
        intervalHours=12,
        triggerSubTree=False,
    )
    return [*shipped, full_wedata, full_dms]


BASES = _bases()
assert len(BASES) >= 6

# Written into a document as they are, in the place of a value: YAML that a plan file must
# survive. One line each, so that they fit wherever a value goes.
FRAGMENTS = [
    "7.0", "2.0", "1e308", "-1e308", "1e400", ".inf", "-.inf", ".nan", "0x" + "f" * 4400,
    "-0x" + "f" * 5000, "0b" + "1" * 20000, "9" * 5000, "9" * 101, str(2**63), str(2**31),
    "-1", "0", "0o17", "0123", "089", "1_000", "0x_1f", "true", "yes", "off", "~", "null",
    "''", '""', "9999-12-31", "0001-01-01", "2025-02-30", "1969-12-31", "2100-01-01",
    "2025-13-01", "25:00", "12:30", "1:02:03", "!!python/object/apply:os.system ['true']",
    "!!binary aGVsbG8=", "!!int 7.0", "!!float 1", "!!int 0x" + "f" * 4400, "!!str 1",
    "!!set {a: null}", "!!omap [a: 1]", "!custom x", "!!timestamp 2025-09-01", "&a 1", "*a",
    "&b [1, *b]", "{a: 1}", "[]", "{}", "[1, [2, [3, [4]]]]", "[" * 120 + "]" * 120,
    "{<<: {a: 1}}", "{a: 1, a: 2}", "{? [a]: 1}", '"\\u0000"', '"\\ud800"', '"é\\u2028x"',
    "😀", "'\t'", "[tencent-wedata]", "aliyun-dms", "{start: 2025-09-01}",
    "[{start: 2099-12-31, end: 1970-01-01}]", "[{start: 1970-01-01, end: 2099-12-31}]",
    "|", ">-", "- a", "? a", "a: b: c", "'unterminated", "[unterminated", "%YAML 1.1",
    "\\x00", "\x85", "\u2028",
]  # fmt: skip

TOKENS = [
    "&a ", "*a", "<<: ", "!!python/object:os.system ", "!x ", "!!int ", "!!float ", "? ",
    ": ", "- ", "[", "]", "{", "}", ",", "---\n", "...\n", "|\n", ">-\n", '"', "'", "\t",
    "#", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "\\", "\n", "  ", "\ufeff", "\x00", "\r",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**120), max_value=10**120),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["2025-09-01", "2025-02-30", "9999-12-31", "01:00", "tencent-wedata", "1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutate(doc: Any, rng: random.Random, value: Any, raw: dict[str, str]) -> Any:
    """One change at one place of the document: a hostile value (data, or YAML text through
    a marker replaced after dumping), a removed or unknown key, a mapping turned into a list."""
    value = copy.deepcopy(value)  # inserted in several places, it must not become a cycle
    path = rng.choice(list(_paths(doc)))
    if not path:
        return value if rng.random() < 0.5 else [doc]
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    action = rng.randrange(6)
    if action == 0:
        marker = f"HOSTILE{len(raw)}MARK"
        raw[marker] = rng.choice(FRAGMENTS)
        parent[path[-1]] = marker
    elif action == 1:
        parent[path[-1]] = value
    elif action == 2 and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == 3 and isinstance(parent, dict):
        key = rng.choice(["taskIds", "dagIds", "taskId", "extra", "spec", "metadata", "chunk"])
        parent[key] = value
    elif action == 4:
        parent[path[-1]] = [parent[path[-1]]]
    else:
        parent[path[-1]] = rng.choice([{}, [], None, "", 0, {"provider": "aliyun-dms"}])
    return doc


def _text_mutation(text: str, rng: random.Random) -> str:
    """A change a person or a tool could make to the text: a repeated line (a duplicate key),
    a stray token, a cut, a second document, odd line ends or bytes."""
    lines = text.split("\n")
    action = rng.randrange(7)
    if action == 0:
        at = rng.randrange(len(lines))
        lines.insert(at, lines[at])
    elif action == 1:
        at = rng.randrange(len(text) + 1)
        return text[:at] + rng.choice(TOKENS) + text[at:]
    elif action == 2:
        return text[: rng.randrange(len(text) + 1)]
    elif action == 3:
        return text + "---\n" + text
    elif action == 4:
        return text.replace("\n", "\r\n")
    elif action == 5:
        return rng.choice(["%YAML 1.1\n---\n", "\ufeff", "--- !!map\n", "---\n...\n"]) + text
    else:
        at = rng.randrange(len(lines))
        lines[at] = "  " * rng.randrange(4) + lines[at].lstrip()
    return "\n".join(lines)


def hostile_file(rng: random.Random, value: Any = None) -> bytes:
    raw: dict[str, str] = {}
    doc = copy.deepcopy(rng.choice(BASES))
    for _ in range(rng.randint(1, 4)):
        doc = _mutate(doc, rng, value, raw)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    for marker, fragment in raw.items():
        text = text.replace(marker, fragment)
    for _ in range(rng.choice([0, 0, 1, 2])):
        text = _text_mutation(text, rng)
    data = text.encode("utf-8", errors="surrogatepass")
    if rng.random() < 0.05:
        at = rng.randrange(len(data) + 1)
        data = data[:at] + bytes([rng.randrange(256)]) + data[at:]
    return data


# --- what must hold for any input -------------------------------------------------------------


def check(directory: Path) -> Validated:
    """`validate` and `plan` as the CLI runs them, on every file under `directory`: `validate`
    judges as `plan` does, without typing the plans."""
    result = pipeline.validated([directory])
    judged = pipeline.validation([directory])
    assert (judged.diagnostics, judged.names) == (
        result.diagnostics,
        tuple(plan.name for plan in result.plans),
    )
    for problem in result.diagnostics:
        assert problem.location.file.startswith(str(directory)), problem
        assert problem.location.line >= 1, problem
        assert problem.location.col >= 1, problem
        assert problem.message, problem
        assert "\n" not in str(problem), problem
    json.dumps(json_view.validation(result))
    text.validation(result)
    if result.ok and result.plans:
        changes = pipeline.changeset(result, State())
        assert len(changes.creates) <= MAX_CALLS_PER_PLAN * len(result.plans)
        assert all(s.size <= MAX_CELLS_PER_CALL for s in changes.creates)
        json.dumps(json_view.changeset(changes), allow_nan=False)
        text.changeset(changes)
        markdown.changeset(changes)
    return result


@settings(FUZZ, max_examples=400)
@given(rng=st.randoms(use_true_random=False), value=values, files=st.integers(1, 3))
def test_any_mutation_of_a_plan_is_accepted_or_named_at_file_line_col(
    rng: random.Random, value: Any, files: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-") as name:
        for index in range(files):
            (Path(name) / f"p{index}.yaml").write_bytes(hostile_file(rng, value))
        check(Path(name))


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    """Plans within every limit, of either provider, with ranges, windows and chunks."""
    provider = draw(st.sampled_from(["tencent-wedata", "aliyun-dms"]))
    targets = draw(st.integers(1, 40))
    first = date(1970, 1, 1) + timedelta(days=draw(st.integers(0, 47000)))
    ranges: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        first = first + timedelta(days=draw(st.integers(0, 30)))
        last = first + timedelta(days=draw(st.integers(0, 400)))
        if last.year > 2099:
            break
        ranges.append({"start": first.isoformat(), "end": last.isoformat()})
        first = last + timedelta(days=1)
    if not ranges:
        ranges = [{"start": "2099-12-31"}]
    spec: dict[str, Any] = {}
    chunk = draw(st.one_of(st.none(), st.integers(1, MAX_DAYS_PER_PLAN)))
    if chunk is not None:
        spec["chunk"] = chunk
    if provider == "tencent-wedata":
        if draw(st.booleans()):
            ranges[0]["executionWindow"] = {"start": "00:30", "end": "05:00"}
        plan = wedata_plan(tasks=[str(1000 + n) for n in range(targets)], **spec)
    else:
        plan = dms_plan(dags=[15000 + n for n in range(targets)], **spec)
    plan["spec"]["dates"] = ranges
    return plan


@settings(FUZZ, max_examples=150)
@given(plan=valid_plans())
def test_a_plan_within_the_limits_plans_exactly_the_calls_counted_for_the_limit(
    plan: dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory(prefix="valid-") as name:
        write(Path(name) / "p.yaml", plan)
        result = check(Path(name))
        if not result.ok:  # over the cells or calls limits: named, and nothing planned
            assert all(d.field in ("spec.dates", "spec.chunk") for d in result.diagnostics)
            return
        [validated] = result.plans
        changes = pipeline.changeset(result, State())
        assert providers.get(validated.provider).calls(validated) == len(changes.creates)
        declared = len(plan["spec"].get("taskIds", plan["spec"].get("dagIds")))
        days = sum(
            (date.fromisoformat(r.get("end", r["start"])) - date.fromisoformat(r["start"])).days + 1
            for r in plan["spec"]["dates"]
        )
        assert sum(s.size for s in changes.creates) == declared * days


# --- through the CLI: exit 1, every problem at file:line:col, no traceback -------------------

PROBLEM_LINE = re.compile(r"^plans/[^:]+\.yaml:\d+:\d+: error: \S")


def assert_reported(done: subprocess.CompletedProcess[str], files: list[str]) -> None:
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert "error: unexpected" not in done.stderr  # the CLI's last line of defence
    named = [line for line in done.stderr.splitlines() if line.startswith("plans/")]
    named = [line for line in named if not line.startswith("plans/fifo.yaml:")]
    assert all(PROBLEM_LINE.match(line) for line in named), [
        line[:200] for line in named if not PROBLEM_LINE.match(line)
    ]
    for file in files:
        assert any(line.startswith(f"plans/{file}:") for line in named), file


def test_a_seeded_sample_through_the_cli_exits_1_naming_every_bad_file(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    rng = random.Random(20260901)
    plans = tmp_path / "plans"
    plans.mkdir()
    for index in range(60):
        (plans / f"h{index:02d}.yaml").write_bytes(hostile_file(rng, rng.choice([None, 7.0, {}])))
    bad = sorted({Path(d.location.file).name for d in pipeline.validated([plans]).diagnostics})
    assert len(bad) > 40
    for command in (["validate"], ["plan"], ["plan", "--format", "json"]):
        assert_reported(cli(*command, cwd=tmp_path, env=cli_env), bad)
    report(f"[hostile] {len(bad)} of 60 seeded hostile plan files refused through the CLI")


# --- the inputs named in issue 9 -------------------------------------------------------------

ENVELOPE = "apiVersion: backfill-reconciler/v1\nkind: BackfillPlan\n"


def plan_text(
    name: str, extra: str = "", start: str = "2025-09-01", end: str = "2025-09-03"
) -> str:
    return (
        f"{ENVELOPE}metadata: {{name: {name}, owner: o, reason: r}}\n"
        "spec:\n  provider: tencent-wedata\n  region: ap-guangzhou\n"
        f'  projectId: "1"\n  taskIds: ["1"]\n  dates: [{{start: {start}, end: {end}}}]\n{extra}'
    )


ISSUE_9 = {
    "spec-list-unknown-key.yaml": ENVELOPE + "bogus: 1\nmetadata: {name: a}\nspec: [1]\n",
    "metadata-text-unknown-key.yaml": ENVELOPE + "bogus: 1\nmetadata: t\nspec: {provider: x}\n",
    "hex-parallelism.yaml": plan_text("hex", "  parallelism: 0x" + "f" * 4400 + "\n"),
    "binary-chunk.yaml": plan_text("bin", "  chunk: 0b" + "1" * 20000 + "\n"),
    "chunk-7.0.yaml": plan_text("seven", "  chunk: 7.0\n"),
    "parallelism-2.0.yaml": plan_text("two", "  parallelism: 2.0\n"),
    "chunk-1e308.yaml": plan_text("e308", "  chunk: 1e308\n"),
    "far-future-chunk-1.yaml": plan_text("far", "  chunk: 1\n", end="9999-12-31"),
    "all-of-time.yaml": plan_text("all", start="0001-01-01", end="9999-12-31"),
}


def test_the_inputs_of_issue_9_are_each_named_at_file_line_col(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    for name, content in ISSUE_9.items():
        (plans / name).write_text(content, encoding="utf-8")
    (plans / "valid.yaml").write_text(plan_text("valid"), "utf-8")
    os.mkfifo(plans / "fifo.yaml")
    for command in (["validate"], ["plan"]):
        done = cli(*command, cwd=tmp_path, env=cli_env)
        assert_reported(done, [n for n in ISSUE_9 if n != "fifo.yaml"])
        # The pipe has no line to point at: its path and what it is.
        assert "plans/fifo.yaml: error: cannot be read: it is a named pipe (FIFO)" in done.stderr
        assert "valid.yaml" not in done.stderr
