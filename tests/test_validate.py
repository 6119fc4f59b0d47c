"""Validation: the schema first, then the rules it cannot say; every problem at file:line:col."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from factories import dms_plan, wedata_plan, write
from figures import report
from harness import cli
from scenarios import clean_env

from reconciler import pipeline
from reconciler.pipeline import validated

REPO = Path(__file__).resolve().parent.parent
TAKEOVER = {"plan": "old-name", "mode": "rename"}
MAPPING = {
    "taskTypeId": 32,
    "item": "COMPUTE_ENGINE",
    "taskIds": ["1", 2],
    "sourceValue": "a",
    "targetValue": "b",
}


def messages(path: Path) -> list[str]:
    return [str(d) for d in validated([path]).diagnostics]


def test_the_shipped_example_plans_are_valid() -> None:
    result = validated([REPO / "plans"])
    assert result.ok, [str(d) for d in result.diagnostics]
    assert len(result.plans) >= 3


def test_unquoted_dates_are_accepted_as_dates(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    write(path, wedata_plan())
    assert "start: 2025-09-01" in path.read_text()
    result = validated([path])
    assert result.ok
    [plan] = result.plans
    assert [(r.start, r.end) for r in plan.spec.dates] == [("2025-09-01", "2025-09-03")]


def test_an_unknown_field_is_named_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", wedata_plan(taskId=["1"]))
    [problem] = messages(path)
    line = path.read_text().splitlines().index("  taskId:") + 1
    assert problem.startswith(f"{path}:{line}:3: spec.taskId: unknown field 'taskId'")
    assert "did you mean 'taskIds'?" in problem


def test_a_missing_required_field_is_named_with_what_it_is_for(tmp_path: Path) -> None:
    plan = wedata_plan()
    del plan["spec"]["region"]
    [problem] = messages(write(tmp_path / "p.yaml", plan))
    assert "spec: missing required field 'region'" in problem
    assert "Tencent Cloud region" in problem


def test_an_enum_value_lists_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", wedata_plan(checkParents="everything"))
    [problem] = messages(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "checkParents" in t)
    assert f":{line}:" in problem
    assert "spec.checkParents: must be one of: none, all, in-plan" in problem


def test_a_date_that_does_not_exist_is_reported_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    write(path, wedata_plan(dates=[("2025-02-27", "2025-02-30")]))
    [problem] = messages(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "2025-02-30" in t)
    assert problem.startswith(f"{path}:{line}:")
    assert "spec.dates[0].end: 2025-02-30 is not a real calendar date" in problem


def test_end_before_start_says_to_swap(tmp_path: Path) -> None:
    [problem] = messages(
        write(tmp_path / "p.yaml", wedata_plan(dates=[("2025-09-05", "2025-09-01")]))
    )
    assert "spec.dates[0].end: end 2025-09-01 is before start 2025-09-05" in problem


def test_overlapping_ranges_are_refused(tmp_path: Path) -> None:
    dates = [("2025-09-01", "2025-09-10"), ("2025-09-10", "2025-09-12")]
    [problem] = messages(write(tmp_path / "p.yaml", wedata_plan(dates=dates)))
    assert "spec.dates[1]: overlaps spec.dates[0]" in problem


def test_execution_window_must_be_hh_mm_and_in_order(tmp_path: Path) -> None:
    bad_form = messages(
        write(tmp_path / "a.yaml", wedata_plan(executionWindow={"start": "1:00", "end": "05:00"}))
    )
    assert len(bad_form) == 1
    assert "spec.executionWindow.start" in bad_form[0]
    assert "HH:mm" in bad_form[0]
    backwards = messages(
        write(tmp_path / "b.yaml", wedata_plan(executionWindow={"start": "06:00", "end": "05:00"}))
    )
    assert len(backwards) == 1
    assert "ends (05:00) before it starts (06:00)" in backwards[0]


def test_unquoted_times_of_day_stay_times(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    write(path, wedata_plan(executionWindow={"start": "12:30", "end": "18:45"}))
    # PyYAML would read a bare 12:30 as the number 750 (YAML 1.1 base 60); ours must not.
    path.write_text(path.read_text().replace("'12:30'", "12:30").replace("'18:45'", "18:45"))
    assert "start: 12:30" in path.read_text()
    result = validated([path])
    assert result.ok, [str(d) for d in result.diagnostics]


def test_names_are_unique_across_the_repo(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "one.yaml", wedata_plan("same-name"))
    second = write(tmp_path / "b" / "two.yaml", wedata_plan("same-name"))
    [problem] = messages(tmp_path)
    assert problem.startswith(f"{second}:")
    assert f"already used at {first}:" in problem


def test_ids_written_as_numbers_and_strings_are_the_same_id(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", wedata_plan(tasks=["123", 123]))  # type: ignore[list-item]
    [problem] = messages(path)
    assert "spec.taskIds[1]: 123 is listed twice" in problem


def test_a_field_of_another_provider_is_named_as_such(tmp_path: Path) -> None:
    [problem] = messages(write(tmp_path / "p.yaml", wedata_plan(bogus=1)))
    assert "unknown field 'bogus'" in problem
    assert "allowed here:" in problem


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", wedata_plan("a", checkParents="x"))
    write(tmp_path / "b.yaml", wedata_plan("b", dates=[("2025-13-01", "2025-13-02")]))
    (tmp_path / "c.yaml").write_text("apiVersion: [unclosed\n", encoding="utf-8")
    files = {d.location.file for d in validated([tmp_path]).diagnostics}
    assert files == {str(tmp_path / n) for n in ("a.yaml", "b.yaml", "c.yaml")}


def test_a_document_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    [problem] = messages(path)
    assert "expected a mapping, got a list" in problem


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return cli(*args, cwd=cwd, env=clean_env())


def test_cli_validate_exits_1_with_every_error_and_no_traceback(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a", checkParents="x"))
    (tmp_path / "plans" / "b.yaml").write_bytes(b"\xff\xfe not utf-8")
    done = run_cli("validate", "plans", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert "plans/a.yaml:" in done.stderr
    assert "plans/b.yaml:" in done.stderr
    assert "Found 2 problems in 2 files" in done.stderr


def test_cli_validate_json_and_success(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a"))
    done = run_cli("validate", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["valid"] is True
    assert report["plans"] == ["a"]


def test_the_contract_models_the_compiled_checks_and_the_schema_accept_the_same_documents() -> None:
    """The models (plan, apply) and the checks compiled from the schema generated from them
    (`validate`) answer "valid?", and the schema explains: if either said yes where the schema
    says no, an invalid plan would pass; if it said no where the schema says yes, a valid plan
    would be refused with nothing to explain it. Seeded mutations, one or two at a time, of
    every example plan and of plans that set every field, of every kind of value. (Every
    document the other tests judge is held to the same: tests/conftest.py.)"""
    import copy
    import random

    from contract_answers import answers
    from factories import dms_plan

    seed = random.Random(99)
    bases = [
        *(
            d.data
            for d in __import__("reconciler.load").load.load_paths([REPO / "plans"]).documents
        ),
        dms_plan(startNodeIds=[1], historyDagId=2),
        dms_plan(tenantId="3000", filterNodeIds=["4"], chunk=3, takeover=[TAKEOVER]),
        wedata_plan(
            executionWindow={"start": "01:00", "end": "02:00"},
            remoteName="r",
            selfDependency=True,
            parameters={"a": 1, "b": "x"},
            instanceCycle="monthly",
            computeConfigMappings=[MAPPING],
            takeover=[TAKEOVER],
        ),
    ]
    odd_values: list[object] = [
        None,
        True,
        False,
        0,
        -1,
        1.5,
        "",
        "x",
        "2025-13-01",
        "25:00",
        [],
        {},
        [1, "a"],
        {"k": 1},
        "tencent-wedata",
        "aliyun-dms",
        10**20,
        2**63,
        "1e3",
        7.0,
        1e308,
        float("nan"),
        "12\n",
        "015001",
        [{"plan": "x", "mode": "rename"}, {"mode": "rename", "plan": "x"}],
        ["1", 1],
    ]

    def paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        found = [prefix]
        if isinstance(value, dict):
            for key, item in value.items():
                found += paths(item, (*prefix, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found += paths(item, (*prefix, index))
        return found

    rejected = 0
    for _ in range(3000):
        doc = copy.deepcopy(seed.choice(bases))
        for _ in range(seed.choice((1, 1, 2))):
            target = seed.choice(paths(doc)[1:])
            parent = doc
            for part in target[:-1]:
                parent = parent[part]
            action = seed.random()
            value = copy.deepcopy(seed.choice(odd_values))
            if action < 0.7:
                parent[target[-1]] = value
            elif action < 0.85 and isinstance(parent, dict):
                del parent[target[-1]]
            elif isinstance(parent, dict):
                parent[seed.choice(["extra", "taskIds", "dagIds", "window", "end"])] = value
            elif isinstance(parent, list):  # a repeat of an item, or one more value
                parent.append(copy.deepcopy(parent[0]) if seed.random() < 0.5 else value)
        verdicts = answers(doc)
        assert len(set(verdicts.values())) == 1, (verdicts, doc)
        rejected += not verdicts["reference validator"]
    assert rejected > 1500  # the mutations do exercise the schema
    report(
        f"[validate] contract models, compiled checks and jsonschema over 3000 mutations: "
        f"{rejected} rejected by all three, the others accepted by all three"
    )


def test_one_run_reports_schema_and_calendar_problems_of_the_same_document(tmp_path: Path) -> None:
    plan = wedata_plan(dates=[("2025-02-27", "2025-02-30")], checkParents="sometimes")
    problems = messages(write(tmp_path / "p.yaml", plan))
    assert len(problems) == 2
    assert any("spec.checkParents: must be one of" in p for p in problems)
    assert any("2025-02-30 is not a real calendar date" in p for p in problems)


def test_a_spec_or_metadata_that_is_not_a_mapping_next_to_an_unknown_field_is_reported(
    tmp_path: Path,
) -> None:
    """An unknown top-level key asks which provider owns it, which once assumed `spec` was a
    mapping: the AttributeError hid the problems of every file of the run."""
    envelope = "apiVersion: backfill-reconciler/v1\nkind: BackfillPlan\nbogus: 1\n"
    shapes = {
        "list.yaml": "metadata: [1]\nspec: [1]\n",
        "text.yaml": "metadata: {name: a, owner: b, reason: c}\nspec: text\n",
        "number.yaml": "metadata: 5\nspec: 7\n",
    }
    for name, body in shapes.items():
        (tmp_path / "plans").mkdir(exist_ok=True)
        (tmp_path / "plans" / name).write_text(envelope + body, encoding="utf-8")
    write(tmp_path / "plans" / "other.yaml", wedata_plan("other", checkParents="x"))
    problems = messages(tmp_path / "plans")
    for name in shapes:
        file = tmp_path / "plans" / name
        assert f"{file}:3:1: bogus: unknown field 'bogus'; allowed here: " in "\n".join(problems)
        assert f"{file}:5:7: spec: expected a mapping" in "\n".join(problems)
    assert any("other.yaml" in p and "spec.checkParents" in p for p in problems)
    done = run_cli("validate", "plans", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "error: unexpected" not in done.stderr
    assert "Found 9 problems in 4 files" in done.stderr


def test_each_missing_field_and_each_wrong_shape_is_named_once(tmp_path: Path) -> None:
    plan = wedata_plan()
    for key in ("region", "projectId", "taskIds"):
        del plan["spec"][key]
    problems = messages(write(tmp_path / "p.yaml", plan))
    assert len(problems) == 3, problems
    assert {p.split("missing required field ")[1][:11] for p in problems} == {
        "'region': T",
        "'projectId'",
        "'taskIds': ",
    }
    [problem] = messages(write(tmp_path / "q.yaml", wedata_plan(provider=["tencent-wedata"])))
    assert problem.endswith(
        "spec.provider: must be one of: tencent-wedata, aliyun-dms (got a list)"
    )


def _integer_fields() -> list[tuple[str, tuple[str | int, ...]]]:
    """(provider, path under spec) of every value the schema types as an integer."""
    from reconciler.providers import spec_models
    from reconciler.validate import plan_schema

    defs = plan_schema()["$defs"]

    def walk(schema: dict[str, Any], path: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
        if "$ref" in schema:
            schema = {**defs[schema["$ref"].removeprefix("#/$defs/")], **schema}
        types = schema.get("type", [])
        found = [path] if "integer" in types else []
        for key, child in schema.get("properties", {}).items():
            found += walk(child, (*path, key))
        if "items" in schema:
            found += walk(schema["items"], (*path, 0))
        return found

    return [
        (spec.provider_name(), path)
        for spec in spec_models()
        for path in walk(defs[spec.__name__], ())
    ]


def _full_plan(provider: str) -> dict[str, Any]:
    """A valid plan of `provider` that sets every optional field that holds integers."""
    if provider == "tencent-wedata":
        mapping = {
            "taskTypeId": 32,
            "item": "COMPUTE_ENGINE",
            "sourceValue": "a",
            "targetValue": "b",
            "taskIds": ["1"],
        }
        return wedata_plan(chunk=2, parallelism=2, computeConfigMappings=[mapping])
    return dms_plan(
        chunk=2, tenantId=1, historyDagId=2, startNodeIds=[3], filterNodeIds=[4], intervalHours=1
    )


def _set(plan: dict[str, Any], path: tuple[str | int, ...], value: object) -> None:
    parent: Any = plan["spec"]
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value


def test_every_integer_field_refuses_floats_and_booleans(tmp_path: Path) -> None:
    """JSON Schema counts 7.0 and 1e308 as integers; they reached `plan` (a TypeError in
    the batching) or the API. Every field the schema types as integer is tried."""
    fields = _integer_fields()
    assert len(fields) >= 14  # both providers' counts and ids
    for provider, path in fields:
        for value, written in ((7.0, "7.0"), (1e308, "1.0e+308"), (True, "true")):
            plan = _full_plan(provider)
            _set(plan, path, value)
            file = write(tmp_path / "p.yaml", plan)
            [problem] = validated([file]).diagnostics
            assert problem.field == _field_name(("spec", *path)), (path, problem)
            assert problem.message.startswith("expected "), problem
            line = file.read_text().splitlines()[problem.location.line - 1]
            assert written in line, (path, value, line)
            if isinstance(value, float):
                assert "write a whole number without a decimal point or exponent" in str(problem)


def _field_name(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def test_integers_are_bounded_by_the_apis_types(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (wedata_plan(revision=10_000), "spec.revision: must be at most 9999 (got 10000)"),
        (wedata_plan(parallelism=2**31), "spec.parallelism: must be at most 2147483647"),
        (wedata_plan(tasks=[2**63]), "spec.taskIds[0]: must be at most 9223372036854775807"),  # type: ignore[list-item]
        (dms_plan(dags=[2**63]), "spec.dagIds[0]: must be at most 9223372036854775807"),
        (dms_plan(tenantId="9" * 20), "spec.tenantId: " + '"' + "9" * 20 + '" is not in the'),
        (dms_plan(intervalHours=2**31), "spec.intervalHours: must be at most 2147483647"),
    ]
    for number, (plan, expected) in enumerate(cases):
        [problem] = messages(write(tmp_path / f"p{number}.yaml", plan))
        assert expected in problem


def test_cli_plan_refuses_a_chunk_of_7_point_0(tmp_path: Path) -> None:
    write(tmp_path / "plans" / "a.yaml", wedata_plan("a", chunk=7.0, parallelism=2.0))
    done = run_cli("plan", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "error: unexpected" not in done.stderr
    assert "plans/a.yaml:" in done.stderr
    assert "spec.chunk: expected an integer, got number 7.0" in done.stderr
    assert "spec.parallelism: expected an integer, got number 2.0" in done.stderr


def test_a_key_that_is_not_plain_text_is_quoted_in_the_field_path(tmp_path: Path) -> None:
    """Found by the fuzz test: a key with a line break split the problem over two lines."""
    path = tmp_path / "p.yaml"
    path.write_text('"a\\nb": 1\n"": 2\nmetadata: {labels: {app.kubernetes.io/name: 3}}\n', "utf-8")
    problems = "\n".join(messages(path))
    assert f"{path}:1:1: ['a\\nb']: unknown field 'a\\nb'; allowed here: " in problems
    assert f"{path}:2:1: ['']: unknown field ''" in problems
    assert "metadata.labels['app.kubernetes.io/name']: expected a string, got number 3" in problems
    assert len(problems.splitlines()) == len(messages(path))


# --- one plan per target and date -------------------------------------------------------------


def line_of(path: Path, text: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith(text))


def test_two_plans_declaring_the_same_target_and_dates_are_both_refused_naming_each_other(
    tmp_path: Path,
) -> None:
    a = write(
        tmp_path / "a.yaml",
        dms_plan("a", dags=[15001, 15002], dates=[("2025-09-01", "2025-09-10")]),
    )
    b = write(
        tmp_path / "b.yaml",
        dms_plan("b", dags=[15002, 15003], dates=[("2025-09-05", "2025-09-20")]),
    )

    on_a, on_b = messages(tmp_path)

    # where each list of DAGs starts, on the line after its key
    where_a, where_b = (f"{path}:{line_of(path, '  dagIds:') + 1}:3" for path in (a, b))
    assert on_a.startswith(
        f"{where_a}: spec.dagIds: declares the same work as plan 'b' ({where_b})"
    )
    assert on_b.startswith(
        f"{where_b}: spec.dagIds: declares the same work as plan 'a' ({where_a})"
    )
    for problem in (on_a, on_b):
        assert ": 15002 on 2025-09-05..2025-09-10. " in problem
        assert "15001" not in problem
        assert "15003" not in problem
    done = cli("validate", str(tmp_path), cwd=tmp_path, env=clean_env())
    assert done.returncode == 1
    assert "Found 2 problems in 2 files" in done.stderr


def test_the_same_id_on_other_dates_or_of_another_platform_is_no_overlap(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", dms_plan("a", dags=[15001], dates=[("2025-09-01", "2025-09-04")]))
    write(tmp_path / "b.yaml", dms_plan("b", dags=[15001], dates=[("2025-09-05", "2025-09-09")]))
    write(tmp_path / "c.yaml", wedata_plan("c", tasks=["15001"]))  # a WeData task, not the DAG

    assert messages(tmp_path) == []


def test_a_dag_id_written_as_text_is_the_dag_of_that_number_in_validate_as_in_plan(
    tmp_path: Path,
) -> None:
    """`validate` reads each plan's targets from its document, as the schema says the model
    reads them (a DMS id is a number however it is written); `plan` from the typed plan."""
    write(tmp_path / "a.yaml", dms_plan("a", dags=[15001], dates=[("2025-09-01", "2025-09-04")]))
    b = dms_plan("b", dates=[("2025-09-04", "2025-09-05")])
    b["spec"]["dagIds"] = ["015001"]
    write(tmp_path / "b.yaml", b)
    write(
        tmp_path / "c.yaml", wedata_plan("c", tasks=["15001"], dates=[("2025-09-01", "2025-09-04")])
    )
    write(
        tmp_path / "d.yaml",
        wedata_plan("d", tasks=["015001"], dates=[("2025-09-01", "2025-09-04")]),
    )

    judged = pipeline.validation([tmp_path])

    assert [str(d) for d in judged.diagnostics] == messages(tmp_path)
    assert [d.location.file for d in judged.diagnostics] == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yaml"),
    ]
    assert ": 15001 on 2025-09-04. " in judged.diagnostics[0].message


def test_of_three_plans_declaring_one_target_only_those_sharing_dates_are_refused(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a.yaml", dms_plan("a", dags=[15001], dates=[("2025-09-01", "2025-09-04")]))
    write(tmp_path / "b.yaml", dms_plan("b", dags=[15001], dates=[("2025-09-05", "2025-09-09")]))
    write(tmp_path / "c.yaml", dms_plan("c", dags=[15001], dates=[("2025-09-09", "2025-09-12")]))

    on_b, on_c = messages(tmp_path)

    assert on_b.startswith(f"{tmp_path / 'b.yaml'}:")
    assert "as plan 'c'" in on_b
    assert "15001 on 2025-09-09. " in on_b
    assert on_c.startswith(f"{tmp_path / 'c.yaml'}:")
    assert "as plan 'b'" in on_c


def test_a_takeover_of_the_plan_itself_or_of_one_plan_twice_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.yaml",
        wedata_plan(
            "orders",
            takeover=[
                {"plan": "orders", "mode": "rename"},
                {"plan": "old", "mode": "rename"},
                {"plan": "old", "mode": "rerun"},
            ],
        ),
    )

    itself, twice = messages(path)

    assert "spec.takeover[0].plan: a plan cannot take over its own submissions" in itself
    assert "spec.takeover[2].plan: 'old' is listed twice (also at index 1)" in twice


def test_the_schema_file_says_what_the_registered_providers_make_the_contract() -> None:
    # Editors read the file; the validator dispatches `spec` on the providers' registry.
    from reconciler.validate import plan_schema

    shipped = json.loads((REPO / "schemas" / "backfill-plan.schema.json").read_text("utf-8"))
    assert plan_schema() == shipped


def test_a_missing_field_defined_elsewhere_in_the_schema_is_explained_by_that_definition(
    tmp_path: Path,
) -> None:
    from reconciler.validate import plan_schema

    plan = wedata_plan()
    del plan["metadata"]
    for path in (write(tmp_path / "first.yaml", plan), write(tmp_path / "again.yaml", plan)):
        [problem] = messages(path)  # and again, once the schema has been compiled
        description = plan_schema()["$defs"]["Metadata"]["description"]
        assert problem.endswith(f"missing required field 'metadata': {description}")
