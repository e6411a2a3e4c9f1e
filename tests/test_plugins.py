"""Instructors' own properties (docs/plugins.md): the example plugin graded end to end, both ways
of loading plugins, and every way a plugin can be wrong, each reported without our traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from attnspec import plugins
from attnspec.cli import main
from attnspec.errors import SpecError
from attnspec.loader import check_spec, load_spec
from attnspec.plugins import PluginError, load_plugins, register_property
from attnspec.properties import PROPERTIES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugins" / "weights_sum_to_one.py"
EXAMPLE_SPEC = ROOT / "examples" / "plugins" / "weights_sum_to_one.yaml"
PLUGIN_ARGS = ["--no-builtin", "--plugins", str(EXAMPLE), "--spec", str(EXAMPLE_SPEC)]
NAME = "attention_weights_sum_to_one"


def attnspec(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnspec", *args], capture_output=True, text=True, cwd=cwd, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(autouse=True)
def clean_registry():
    """Plugins register into the process-wide registry: each test leaves it as it found it."""
    before = dict(PROPERTIES)
    yield
    plugins.unload_plugins()
    assert PROPERTIES == before


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def spec_file(tmp_path: Path, prop: str, params: str = "", name: str = "course.yaml") -> Path:
    return write(
        tmp_path / "spec" / name,
        f"""\
        spec_version: 1
        exercise: manual_attention
        defaults:
          tolerances:
            float64: {{atol: 1.0e-9, rtol: 1.0e-7}}
        cases:
          - id: course.ma.plugin_case
            title: a case of a plugin property
            property: {prop}
            inputs: {{shapes: {{batch: 2, n_heads: 3, seq_q: 5, seq_k: 7, d_head: 4, d_v: 6}}, seed: 3}}
        {params}""",
    )


# ---------------------------------------------------------------- the example, end to end


@pytest.mark.slow
def test_example_plugin_passes_a_correct_submission_and_fails_a_buggy_one_with_a_structured_failure(tmp_path):
    good = attnspec("grade", "examples/correct_numpy.py", "--exercise", "manual_attention", *PLUGIN_ARGS, "--format", "json", "-o", str(tmp_path / "good.json"))
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads((tmp_path / "good.json").read_text())
    cases = report["exercises"][0]["cases"]
    assert {c["case_id"] for c in cases} == {"course.ma.weights.sum_to_one", "course.ma.weights.padding"}
    assert all(c["outcome"] == "passed" and c["property"] == NAME for c in cases)

    bad = attnspec("grade", "examples/buggy/softmax_wrong_axis.py", "--exercise", "manual_attention", *PLUGIN_ARGS, "--format", "json", "-o", str(tmp_path / "bad.json"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    report = json.loads((tmp_path / "bad.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "harness" / "schemas" / "report.schema.json").read_text()))
    ex = report["exercises"][0]
    assert ex["score"] == 0 and ex["max_score"] == 2  # plugin cases count in the score
    case = next(c for c in ex["cases"] if c["case_id"] == "course.ma.weights.sum_to_one")
    failure = case["instances"][0]["failure"]
    assert failure["kind"] == "weights_sum" and failure["outcome"] == "failed"
    assert failure["expected"] == 1.0 and abs(failure["got"] - 1.0) > 0.1 and len(failure["where"]) == 3
    assert failure["hints"] == ["ma.softmax_query_axis"]  # columns sum to one: the query axis
    assert "each must sum to 1 over the keys" in case["instances"][0]["message"]
    assert "--plugins" in case["repro"] and str(EXAMPLE) in case["repro"]  # the repro command loads the plugin too

    # Every report format shows the plugin's failure.
    from attnspec.reports import render
    from attnspec.results import GradeResult

    result = GradeResult.from_dict(report)
    for fmt in ("text", "junit", "gradescope", "github"):
        assert "each must sum to 1 over the keys" in render(result, fmt), fmt


def test_spec_check_runs_plugin_cases_in_the_kill_matrix(capsys):
    code = main(["spec", "check", *PLUGIN_ARGS, "--backend", "numpy", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert data["reference_failures"] == []  # the reference passes the plugin's cases
    rows = {r["id"]: r for r in data["misconceptions"]}
    assert set(rows["ma.softmax_query_axis"]["killed_by"]) == {"course.ma.weights.sum_to_one", "course.ma.weights.padding"}
    assert rows["ma.mask_after_softmax"]["killed_by"] == {"course.ma.weights.padding": ["numpy"]}
    assert rows["ma.no_scaling"]["killed_by"] == {}  # the scale does not change a sum of weights
    assert code == 1  # two plugin cases alone leave survivors
    assert data["plugin_properties"][NAME]["cases"] == ["course.ma.weights.sum_to_one", "course.ma.weights.padding"]
    assert "weights_sum_to_one.py" in data["plugin_properties"][NAME]["origin"]


def test_spec_check_text_names_the_plugin_cases(capsys):
    main(["spec", "check", *PLUGIN_ARGS, "--backend", "numpy"])
    out = capsys.readouterr().out
    assert "Reference: passes every case." in out
    assert "Cases of plugin properties" in out
    assert f"course.ma.weights.padding: {NAME} (plugin 'weights_sum_to_one'" in out


def test_listings_mark_plugin_properties_with_their_origin(capsys):
    assert main(["spec", "validate", *PLUGIN_ARGS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("spec OK: 2 cases in 1 file")
    row = next(line for line in out.splitlines() if line.startswith(NAME))
    assert "[plugin weights_sum_to_one]" in row and row.split()[-1] == "2"
    assert f"plugin 'weights_sum_to_one' (--plugins {EXAMPLE}): {NAME}" in out

    assert main(["spec", "properties", "--plugins", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    block = out[out.index(NAME + "\n"):].split("\n")[:4]
    assert block[2].strip() == "exercises: manual_attention; params: atol, blocked_are_zero"
    assert block[3].strip().startswith("from plugin 'weights_sum_to_one'") and "weights_sum_to_one.py:" in block[3]
    assert "from plugin" not in out[: out.index(NAME)]  # built-ins carry no origin line


def test_spec_new_makes_a_skeleton_for_a_plugin_property(capsys):
    assert main(["spec", "new", "--exercise", "manual_attention", "--property", NAME, "--plugins", str(EXAMPLE)]) == 0
    assert f"property: {NAME}" in capsys.readouterr().out


# ---------------------------------------------------------------- entry points


def _entry_point_package(root: Path, module: str, prop: str) -> None:
    write(root / f"{module}.py", f"""\
        from attnspec.plugins import register_property

        @register_property("{prop}", exercises=["manual_attention"], params_schema={{"type": "object", "properties": {{"k": {{"type": "integer"}}}}}})
        def check(ctx, inputs):
            \"\"\"the output has the contract's shape\"\"\"
            ctx.output_of(inputs)
        """)
    dist = root / "course_props-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: course-props\nVersion: 1.0\n")
    write(dist / "entry_points.txt", f"[attnspec.properties]\nshape = {module}\n")


def test_entry_point_plugins_load_when_a_spec_is_loaded(tmp_path, monkeypatch):
    _entry_point_package(tmp_path / "site", "ep_course_props_a", "course_shape_a")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "ep_course_props_a", raising=False)
    spec = load_spec([str(spec_file(tmp_path, "course_shape_a", "    params: {k: 3}"))], builtin=False)
    assert [c.property for c in spec.cases] == ["course_shape_a"]
    assert "entry point shape = ep_course_props_a in group attnspec.properties, package course-props" in plugins.origin_text("course_shape_a")
    assert plugins.origin_label("course_shape_a") == "plugin ep_course_props_a"
    sys.modules.pop("ep_course_props_a", None)


@pytest.mark.slow
def test_an_installed_entry_point_is_listed_by_spec_validate_in_a_fresh_process(tmp_path):
    _entry_point_package(tmp_path / "site", "ep_course_props_b", "course_shape_b")
    spec = spec_file(tmp_path, "course_shape_b")
    proc = attnspec("spec", "validate", "--no-builtin", str(spec), env={"PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(line.startswith("course_shape_b [plugin ep_course_props_b]") for line in proc.stdout.splitlines())


def test_the_same_module_by_entry_point_and_by_plugins_loads_once(tmp_path, monkeypatch):
    _entry_point_package(tmp_path / "site", "ep_course_props_c", "course_shape_c")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "ep_course_props_c", raising=False)
    loaded = load_plugins(["ep_course_props_c"])  # entry points first, then the same module by name
    assert [p.properties for p in loaded] == [["course_shape_c"], ["course_shape_c"]] and loaded[0] is loaded[1]
    sys.modules.pop("ep_course_props_c", None)


# ---------------------------------------------------------------- what can go wrong


def test_a_name_taken_by_a_builtin_is_an_error_naming_both(tmp_path):
    dup = write(tmp_path / "dup.py", """\
        from attnspec.plugins import register_property


        @register_property("matches_reference", exercises=["manual_attention"])
        def check(ctx, inputs):
            \"\"\"mine\"\"\"
        """)
    with pytest.raises(PluginError) as info:
        load_plugins([str(dup)])
    text = str(info.value)
    assert f"plugin 'dup' (--plugins {dup}), registered at {dup}:4" in text
    assert "already taken by attnspec's built-in properties (attnspec.properties.values)" in text
    assert PROPERTIES["matches_reference"].check.__module__ == "attnspec.properties.values"


def test_a_name_taken_by_another_plugin_is_an_error_naming_both_plugins(tmp_path):
    first = write(tmp_path / "first.py", "from attnspec.plugins import register_property\nregister_property('course_rows', lambda ctx, inputs: None, exercises=['manual_attention'], summary='rows')\n")
    second = write(tmp_path / "second.py", "from attnspec.plugins import register_property\n\nregister_property('course_rows', lambda ctx, inputs: None, exercises=['manual_attention'], summary='rows')\n")
    load_plugins([str(first)])
    with pytest.raises(PluginError) as info:
        load_plugins([str(second)])
    text = str(info.value)
    assert text.startswith(f"plugin 'second' (--plugins {second}), registered at {second}:3: property 'course_rows'")
    assert f"already taken by plugin 'first' (--plugins {first}), registered at {first}:2" in text


@pytest.mark.parametrize(
    "source, where, what",
    [
        ("import numpy\n\nvalue = numpy.zeros(2)\nresult = undefined_name + 1\n", ":4", "NameError: name 'undefined_name' is not defined"),
        ("def broken(:\n    pass\n", ":1", "SyntaxError"),
        ("import attnspec_no_such_dependency\n", ":1", "ModuleNotFoundError: No module named 'attnspec_no_such_dependency'"),
        ("raise SystemExit(3)\n", ":1", "SystemExit: 3"),
    ],
    ids=["name_error", "syntax_error", "missing_dependency", "system_exit"],
)
def test_a_plugin_that_fails_to_import_exits_2_naming_it_without_our_traceback(tmp_path, source, where, what):
    bad = write(tmp_path / "course_broken.py", source)
    proc = attnspec("spec", "validate", "--plugins", str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"attnspec: error: plugin 'course_broken' (--plugins {bad}) failed to import: ")
    assert what in proc.stderr and f"{bad}{where}" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.slow
def test_grade_with_a_broken_plugin_exits_2_with_the_message(tmp_path):
    bad = write(tmp_path / "course_broken.py", "x = 1 / 0\n")
    proc = attnspec("grade", "examples/correct_numpy.py", "--plugins", f"{EXAMPLE},{bad}")  # comma-separated, like --plugins a,b
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"plugin 'course_broken' (--plugins {bad}) failed to import: ZeroDivisionError: division by zero (at {bad}:1)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plugins_that_cannot_be_found_say_what_to_give(tmp_path):
    with pytest.raises(PluginError, match=r"no module named 'course_nowhere' on the Python path; give an importable module name or a path to a .py file"):
        load_plugins(["course_nowhere"])
    with pytest.raises(PluginError, match="no such file"):
        load_plugins([str(tmp_path / "nowhere.py")])


def test_pytest_option_reports_a_broken_plugin_as_a_usage_error(tmp_path):
    bad = write(tmp_path / "course_broken.py", "raise ValueError('bad config')\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--attnspec", str(ROOT / "examples" / "correct_numpy.py"), "--attnspec-plugins", str(bad)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 4  # pytest's usage error
    assert f"--attnspec-plugins: plugin 'course_broken' (--plugins {bad}) failed to import: ValueError: bad config (at {bad}:1)" in proc.stderr


@pytest.mark.slow
def test_pytest_option_grades_plugin_cases_as_items(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rf", "--attnspec", str(ROOT / "examples" / "buggy" / "softmax_wrong_axis.py"),
                           "--attnspec-no-builtin", "--attnspec-spec", str(EXAMPLE_SPEC), "--attnspec-plugins", str(EXAMPLE)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 failed, 1 passed" in proc.stdout
    assert "softmax_wrong_axis.py::manual_attention::course.ma.weights.sum_to_one[numpy]" in proc.stdout
    assert "with V = identity the output rows are the attention weights, so each must sum to 1 over the keys" in proc.stdout


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"exercises": []}, "exercises must name the exercises it applies to, explicitly"),
        ({"exercises": ["manual_attn"]}, "unknown exercise(s) 'manual_attn'"),
        ({"exercises": ["manual_attention"], "params_schema": {"type": "object", "properties": {"k": {"type": "integr"}}}}, "params_schema is not a valid JSON Schema"),
        ({"exercises": ["manual_attention"], "params_schema": {"type": "array"}}, "params_schema must describe a mapping"),
        ({"exercises": ["manual_attention"], "backends": ["jax"]}, "backends must be some of numpy, torch"),
        ({"exercises": ["manual_attention"], "masks": ["diagonal"]}, "unknown mask kind(s) 'diagonal'"),
    ],
)
def test_a_property_registered_wrongly_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(PluginError) as info:
        register_property("course_check", lambda ctx, inputs: None, summary="s", **kwargs)
    assert message in str(info.value) and "property 'course_check'" in str(info.value)
    assert "course_check" not in PROPERTIES


def test_a_property_needs_a_summary_and_a_valid_name():
    with pytest.raises(PluginError, match="give it a summary"):
        register_property("course_check", lambda ctx, inputs: None, exercises=["manual_attention"])
    with pytest.raises(PluginError, match="lower_snake_case"):
        register_property("Course-Check", lambda ctx, inputs: None, exercises=["manual_attention"], summary="s")


def test_an_unknown_property_lists_the_known_ones_and_says_plugins_add_more(tmp_path):
    path = spec_file(tmp_path, NAME)  # the plugin's property, without --plugins
    _, problems = check_spec([str(path)], builtin=False)
    assert len(problems) == 1
    p = problems[0]
    assert (p.line, p.column) == (9, 15)
    known = ", ".join(sorted(PROPERTIES))  # the message lists every registered property, sorted
    assert p.message.startswith(f"case 'course.ma.plugin_case': unknown property '{NAME}'; known properties: {known}")
    assert p.message.endswith("; a plugin can add properties: --plugins MODULE_OR_FILE.py, or an 'attnspec.properties' entry point (docs/plugins.md)")
    load_plugins([str(EXAMPLE)], entry_points=False)
    spec, problems = check_spec([str(path)], builtin=False)
    assert problems == [] and spec.cases[0].property == NAME
    _, problems = check_spec([str(spec_file(tmp_path, "course_nothing_like_it", name="other.yaml"))], builtin=False)
    assert f"{NAME} (plugin weights_sum_to_one), batch_independence" in problems[0].message  # plugin properties listed, marked


def test_a_plugin_property_params_are_validated_against_its_schema_with_positions(tmp_path):
    load_plugins([str(EXAMPLE)], entry_points=False)
    path = spec_file(tmp_path, NAME, "    params: {atol: -1, colour: red, blocked_are_zero: 1}")
    with pytest.raises(SpecError) as info:
        load_spec([str(path)], builtin=False)
    problems = {(p.line, p.column): p.message for p in info.value.problems}
    # "    params: {atol: -1, colour: red, blocked_are_zero: 1}": the value, the key, the value
    assert problems == {
        (11, 20): "case 'course.ma.plugin_case': atol=-1 must be > 0",
        (11, 24): "case 'course.ma.plugin_case': unknown field 'colour'; expected one of: atol, blocked_are_zero",
        (11, 55): "case 'course.ma.plugin_case': blocked_are_zero must be true or false, got 1",
    }
    assert {p.path for p in info.value.problems} == {str(path)}


def test_a_plugin_property_that_applies_to_other_exercises_is_refused_there(tmp_path):
    load_plugins([str(EXAMPLE)], entry_points=False)
    path = write(tmp_path / "mha.yaml", f"""\
        spec_version: 1
        exercise: multi_head_attention
        defaults:
          tolerances:
            float64: {{atol: 1.0e-9, rtol: 1.0e-7}}
        cases:
          - id: course.mha.weights
            title: not for this exercise
            property: {NAME}
            inputs: {{shapes: {{batch: 2, seq: 5, d_model: 12, n_heads: 3}}, seed: 1}}
        """)
    _, problems = check_spec([str(path)], builtin=False)
    assert [str(p) for p in problems] == [f"{path}:9:15: case 'course.mha.weights': property '{NAME}' does not apply to multi_head_attention (it applies to manual_attention)"]


def test_a_bug_in_a_plugin_check_fails_the_case_as_the_plugins_error_not_attnspecs(tmp_path):
    buggy = write(tmp_path / "course_buggy_prop.py", """\
        from attnspec.plugins import register_property


        @register_property("course_buggy", exercises=["manual_attention"])
        def check(ctx, inputs):
            \"\"\"a check with a bug\"\"\"
            out = ctx.output_of(inputs)
            return out["no such key"]
        """)
    load_plugins([str(buggy)], entry_points=False)
    from attnspec.spec_check import build_kill_matrix

    spec = load_spec([str(spec_file(tmp_path, "course_buggy"))], builtin=False)
    matrix = build_kill_matrix(spec, ["numpy"])
    [failure] = matrix.reference_failures
    assert failure["message"].startswith("the plugin property 'course_buggy' (plugin 'course_buggy_prop'")
    assert "raised IndexError" in failure["message"] and f"at {buggy}:8" in failure["message"]
    assert "internal error in attnspec" not in failure["message"]


def test_cluster_refuses_plugins_given_by_path(tmp_path):
    proc = attnspec("grade", "examples/correct_numpy.py", "--plugins", str(EXAMPLE), "--cluster", "tcp://127.0.0.1:1")
    assert proc.returncode == 2
    assert "--plugins does not reach the cluster's workers" in proc.stderr
