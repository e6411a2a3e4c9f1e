"""Reporters: each format renders hand-built results faithfully, deterministically and safely."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from importlib import resources

import jsonschema
import pytest

from attnspec.reports import FORMATS, render
from attnspec.reports.gradescope import render_gradescope
from attnspec.reports.json_report import render_json
from attnspec.reports.junit import render_junit
from attnspec.reports.text import render_text
from attnspec.results import CaseResult, Diagnosis, ExerciseResult, GradeResult, InstanceResult, LoadInfo, NotRun

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ALL_PASSED = re.compile(r"\ball\b[^\n]*\bpassed\b", re.IGNORECASE)
HIDDEN_INPUTS = "B=3 T=5 secret_seed=987654"
TOOL = {"name": "attnspec", "version": "0.1.0"}


def _schema(name: str) -> dict:
    return json.loads(resources.files("attnspec").joinpath("schemas", name).read_text(encoding="utf-8"))


# -- hand-built results --------------------------------------------------------------------------


def _inst(backend="numpy", dtype="float64", outcome="passed", **kw) -> InstanceResult:
    return InstanceResult(backend=backend, dtype=dtype, outcome=outcome, calls=3, duration=0.01, **kw)


def _case(case_id, outcome="passed", points=None, max_points=2.0, exercise="sdpa", visibility="visible", instances=None, **kw) -> CaseResult:
    if points is None:
        points = max_points if outcome == "passed" else 0.0
    if instances is None:
        instances = [_inst(outcome=outcome if outcome != "not_run" else "passed")] if outcome != "not_run" else []
    inputs = kw.pop("inputs", "q:(2, 4, 8) k:(2, 6, 8) mask=none seed=1" if visibility == "visible" else None)
    return CaseResult(
        case_id=case_id, exercise=exercise, title=f"title of {case_id}", property="matches_reference", visibility=visibility,
        max_points=max_points, points=points, outcome=outcome, instances=instances, inputs=inputs, duration=0.02, **kw,
    )


def _exercise(name, cases, status="graded", **kw) -> ExerciseResult:
    return ExerciseResult(
        exercise=name, status=status, backends=kw.pop("backends", ["numpy"]), score=sum(c.points for c in cases),
        max_score=kw.pop("max_score", sum(c.max_points for c in cases)), cases=cases, **kw,
    )


def _grade(exercises, **kw) -> GradeResult:
    return GradeResult(
        submission={"path": "hw3.py", "kind": "py", "sha256": "ab" * 32}, spec={"path": "spec/attention.yaml"}, status=kw.pop("status", "graded"),
        score=sum(e.score for e in exercises), max_score=sum(e.max_score for e in exercises), exercises=exercises,
        tool=dict(TOOL), timings={"total": 1.5}, **kw,
    )


def full_marks() -> GradeResult:
    return _grade([_exercise("sdpa", [_case("sdpa_basic"), _case("sdpa_causal"), _case("sdpa_rows_sum", max_points=1.0)])])


WRONG_MSG = "out differs from the expected values in 5 of 64 elements: worst out[0, 1, 2]=0.25, but should be 0.5 [sdpa(q, k, v)]"
SHAPE_MSG = "out.shape=(2, 4, 8), but should be (2, 8, 4) [sdpa(q, k, v)]"
ERROR_MSG = "ValueError: operands could not be broadcast together\n  at line 12 of hw3.py"
DETAILS = {
    "max_abs_error": 0.25, "max_rel_error": 0.5, "worst_index": [0, 1, 2], "mismatched": 5, "total": 64,
    "tolerance": {"atol": 1e-6, "rtol": 1e-5},
    "samples": [{"index": [0, 1, i], "expected": 0.5 + i, "got": 0.25 + i} for i in range(6)],
}


def failures() -> GradeResult:
    wrong = _case(
        "sdpa_values", "failed",
        instances=[
            _inst("numpy", "float64", "failed", message=WRONG_MSG, likely="softmax over the wrong axis", example="q:(1, 2, 3) k:(1, 3, 3) seed=7", details=DETAILS),
            _inst("torch", "float32", "failed", message=WRONG_MSG, details=DETAILS),
        ],
        feedback="Softmax must normalise over the keys.", repro="attnspec grade hw3.py --case sdpa_values --seed 7", output="debug: scores computed\nshape (2, 4, 6)",
    )
    shape = _case("sdpa_shape", "failed", instances=[_inst(outcome="failed", message=SHAPE_MSG, likely="transposed the output")], repro="attnspec grade hw3.py --case sdpa_shape")
    crash = _case("sdpa_mask", "error", instances=[_inst(outcome="error", message=ERROR_MSG)], repro="attnspec grade hw3.py --case sdpa_mask")
    ok = [_case("sdpa_ok_1"), _case("sdpa_ok_2")]
    ex = _exercise("sdpa", [wrong, shape, crash, *ok], backends=["numpy", "torch"])
    return _grade([ex])


def hidden() -> GradeResult:
    secret = _case(
        "mha_hidden_big", "failed", visibility="hidden", exercise="mha",
        instances=[_inst(outcome="failed", message="out differs from the expected values in 3 of 90 elements", likely="forgot to scale", example=HIDDEN_INPUTS, details=DETAILS)],
        feedback="Scale the scores by 1/sqrt(d_k).", repro="attnspec grade hw3.py --case mha_hidden_big", output=f"printing my inputs: {HIDDEN_INPUTS}",
    )
    passed_hidden = _case("mha_hidden_ok", visibility="hidden", exercise="mha")
    visible = _case("mha_small", exercise="mha")
    skipped = _case("mha_hidden_skipped", "not_run", visibility="hidden", exercise="mha", max_points=3.0)
    ex = _exercise("mha", [visible, passed_hidden, secret, skipped])
    return _grade([ex], not_run=[NotRun("mha", "hidden", 4, 8.0, "run with --hidden to include them"), NotRun("block", "withheld", 2, 5.0, "graded by the course autograder")])


def hidden_all_passed() -> GradeResult:
    ex = _exercise("mha", [_case("mha_small", exercise="mha"), _case("mha_hidden_ok", visibility="hidden", exercise="mha")])
    return _grade([ex], not_run=[NotRun("mha", "hidden", 4, 8.0, "")])


def not_graded() -> GradeResult:
    missing = _exercise("softmax", [], status="missing", message="no function named `softmax` is defined", max_score=4.0)
    stub = _exercise("sdpa", [], status="not_implemented", message="sdpa still raises NotImplementedError (the starter stub)", max_score=6.0)
    broken = _exercise("mha", [], status="load_error", message="the submission raised while loading", max_score=10.0)
    load = LoadInfo(
        errors=[{"type": "NameError", "message": "name 'np' is not defined", "line": 3, "file": "hw3.ipynb, cell 2", "traceback": "  File \"hw3.ipynb, cell 2\", line 3\nNameError: name 'np' is not defined", "chunk": 1}],
        notes=["2 IPython magic or shell line(s) were skipped (not executed)"], output="hello from top level\n\x1b[31mred\x1b[0m", output_bytes=40,
    )
    return _grade([missing, stub, broken], load=load)


def diagnosed() -> GradeResult:
    bad = _case("sdpa_values", "failed", instances=[_inst(outcome="failed", message=WRONG_MSG, details=DETAILS)])
    diag = Diagnosis("softmax_wrong_axis", "Softmax over the queries axis", "Apply softmax over the last axis (keys).", "Chapter 3.2", "numpy", {"cases_matched": 3, "max_abs_error": 1e-9})
    ex1 = _exercise("sdpa", [bad, _case("sdpa_ok")], diagnoses=[diag])
    other = _case("mha_values", "failed", exercise="mha", instances=[_inst(outcome="failed", message="out differs somewhere odd")])
    ex2 = _exercise("mha", [other], diagnosis_note="No known mistake matches the failures of mha.")
    return _grade([ex1, ex2])


def grader_error() -> GradeResult:
    return GradeResult(
        submission={"path": "hw3.py", "kind": "py"}, spec={"path": "spec/attention.yaml"}, status="error", max_score=20.0,
        error="worker process died unexpectedly (signal 9)", tool=dict(TOOL),
    )


ALL = {f.__name__: f for f in (full_marks, failures, hidden, hidden_all_passed, not_graded, diagnosed, grader_error)}
all_results = pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())


# -- JSON ----------------------------------------------------------------------------------------


@all_results
def test_json_validates_and_round_trips(make):
    result = make()
    text = render_json(result)
    data = json.loads(text)
    jsonschema.validate(data, _schema("report.schema.json"), cls=jsonschema.Draft202012Validator)
    assert GradeResult.from_dict(data).to_dict() == result.to_dict()
    assert text.endswith("}\n")


def test_json_writes_non_finite_floats_as_strings():
    result = failures()
    result.exercises[0].cases[0].instances[0].details["max_rel_error"] = float("inf")
    text = render_json(result)
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["exercises"][0]["cases"][0]["instances"][0]["details"]["max_rel_error"] == "inf"
    jsonschema.validate(json.loads(text), _schema("report.schema.json"))


def test_report_schema_rejects_unknown_outcome():
    data = json.loads(render_json(failures()))
    data["exercises"][0]["cases"][0]["outcome"] = "kinda"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema("report.schema.json"))


# -- Gradescope ----------------------------------------------------------------------------------


def _gradescope(result) -> dict:
    data = json.loads(render_gradescope(result))
    jsonschema.validate(data, _schema("gradescope.schema.json"), cls=jsonschema.Draft202012Validator)
    return data


@all_results
def test_gradescope_validates_and_scores_sum(make):
    result = make()
    data = _gradescope(result)
    assert data["tests"], "an empty tests list reads as full marks"
    assert data["score"] == pytest.approx(sum(t.get("score", 0) for t in data["tests"]))
    if result.status == "graded":
        assert data["score"] == pytest.approx(result.score)
    for t in data["tests"]:
        assert t["status"] in ("passed", "failed")
        assert (t["status"] == "passed") == (t.get("score") == t.get("max_score") and "not run" not in t["name"])


def test_gradescope_hidden_cases_are_after_published_and_reveal_no_inputs():
    data = _gradescope(hidden())
    by_name = {t["name"]: t for t in data["tests"]}
    secret = by_name["mha: title of mha_hidden_big [mha_hidden_big]"]
    assert secret["visibility"] == "after_published"
    assert "3 of 90 elements" in secret["output"] and "Scale the scores" in secret["output"]
    assert by_name["mha: title of mha_small [mha_small]"]["visibility"] == "visible"
    assert HIDDEN_INPUTS not in json.dumps(data)
    assert "987654" not in json.dumps(data)


def test_gradescope_reports_not_run_and_failure_details():
    data = _gradescope(hidden())
    assert "NOT RUN: 6 cases worth 13 points" in data["output"]
    assert any(t["name"].startswith("block: 2 withheld") and t["status"] == "failed" for t in data["tests"])
    visible = _gradescope(failures())
    values = next(t for t in visible["tests"] if "[sdpa_values]" in t["name"])
    assert WRONG_MSG in values["output"] and "softmax over the wrong axis" in values["output"]
    assert "attnspec grade hw3.py --case sdpa_values --seed 7" in values["output"]
    assert values["score"] == 0 and values["max_score"] == 2


def test_gradescope_grader_error_scores_zero_and_says_why():
    data = _gradescope(grader_error())
    assert data["score"] == 0
    assert "GRADING FAILED" in data["output"] and "signal 9" in data["output"]
    assert [t["status"] for t in data["tests"]] == ["failed"]


def test_gradescope_not_graded_exercises_fail_with_reason_and_diagnoses_appear():
    data = _gradescope(not_graded())
    status_tests = [t for t in data["tests"] if t.get("number", "").endswith(".0")]
    assert [t["max_score"] for t in status_tests] == [4.0, 6.0, 10.0]
    assert all(t["status"] == "failed" and t["score"] == 0 for t in status_tests)
    assert "no function named `softmax`" in status_tests[0]["output"]
    assert "NameError: name 'np' is not defined" in status_tests[2]["output"]
    diag = _gradescope(diagnosed())
    assert "Softmax over the queries axis [softmax_wrong_axis]" in diag["output"]
    values = next(t for t in diag["tests"] if "[sdpa_values]" in t["name"])
    assert "Likely mistake: Softmax over the queries axis" in values["output"]


# -- JUnit ---------------------------------------------------------------------------------------


def _junit(result) -> ET.Element:
    return ET.fromstring(render_junit(result).encode("utf-8"))


def _counts(el) -> tuple[int, ...]:
    return tuple(int(el.get(k)) for k in ("tests", "failures", "errors", "skipped"))


def test_junit_counts_and_failure_text():
    root = _junit(failures())
    assert root.tag == "testsuites" and root.get("name") == "attnspec"
    # sdpa_values runs on numpy and torch: two testcases; the others on numpy only.
    assert _counts(root) == (6, 3, 1, 0)
    suite = root.find("testsuite")
    assert suite.get("name") == "sdpa" and _counts(suite) == (6, 3, 1, 0)
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names[:2] == ["sdpa_values[numpy]", "sdpa_values[torch]"]
    assert {c.get("classname") for c in suite.findall("testcase")} == {"attnspec.sdpa"}
    failure = suite.find("testcase[@name='sdpa_values[numpy]']/failure")
    assert WRONG_MSG in failure.text and "attnspec grade hw3.py --case sdpa_values --seed 7" in failure.text
    assert "softmax over the wrong axis" in failure.text and "Softmax must normalise" in failure.text
    assert failure.get("message") == WRONG_MSG
    error = suite.find("testcase[@name='sdpa_mask[numpy]']/error")
    assert "operands could not be broadcast" in error.text
    out = suite.find("testcase[@name='sdpa_values[numpy]']/system-out")
    assert "debug: scores computed" in out.text
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["score"] == "4" and props["max_score"] == "10"


def test_junit_not_graded_hidden_and_grader_error():
    root = _junit(not_graded())
    assert _counts(root) == (3, 3, 0, 0)
    assert [c.get("name") for c in root.iter("testcase")] == ["softmax.status", "sdpa.status", "mha.status"]
    assert "NameError" in root.find(".//testcase[@name='mha.status']/failure").text
    hid = _junit(hidden())
    assert _counts(hid) == (6, 1, 0, 3)  # 4 cases + 2 not-run entries; 1 skipped case + 2 not-run
    assert HIDDEN_INPUTS not in render_junit(hidden())
    err = _junit(grader_error())
    assert _counts(err) == (1, 0, 1, 0)
    assert "signal 9" in err.find(".//error").text


def test_junit_diagnoses_in_failure_text_and_system_out():
    root = _junit(diagnosed())
    sdpa = root.find("testsuite[@name='sdpa']")
    assert "Softmax over the queries axis [softmax_wrong_axis]" in sdpa.find("testcase/failure").text
    assert "Chapter 3.2" in sdpa.find("system-out").text
    mha = root.find("testsuite[@name='mha']")
    assert "No known mistake matches" in mha.find("system-out").text


def test_junit_strips_characters_xml_cannot_carry():
    result = failures()
    result.exercises[0].cases[0].output = "colored \x1b[31mred\x1b[0m and a bell \x07"
    root = _junit(result)
    out = root.find(".//testcase[@name='sdpa_values[numpy]']/system-out").text
    assert "colored red and a bell" in out and "[31m" not in out and "\x07" not in out


# -- text ----------------------------------------------------------------------------------------


def test_text_failures_show_everything_needed_to_fix_them():
    text = render_text(failures())
    for needle in ("sdpa_values", "sdpa_shape", "sdpa_mask", WRONG_MSG, SHAPE_MSG, "operands could not be broadcast",
                   "Likely mistake: softmax over the wrong axis", "Likely mistake: transposed the output",
                   "Smallest failing example: q:(1, 2, 3)", "Feedback: Softmax must normalise", "Reproduce: attnspec grade hw3.py --case sdpa_values --seed 7",
                   "| debug: scores computed", "on numpy float64", "also failing on: torch float32", "2 cases passed", "Total: 4/10 points (40.0%)"):
        assert needle in text, needle
    samples = [line for line in text.splitlines() if "expected" in line and "got" in line and line.strip().startswith("[")]
    assert len(samples) == 4
    assert "\n          at line 12 of hw3.py\n" in text  # continuation lines of a message stay indented
    assert "hw3.py (py)" in text.splitlines()[0] and "numpy, torch" in text.splitlines()[0]


def test_text_verbose_lists_each_passed_case():
    quiet, loud = render_text(failures()), render_text(failures(), verbose=True)
    assert "sdpa_ok_1" not in quiet and "sdpa_ok_1" in loud and "sdpa_ok_2" in loud


def test_text_not_run_notice_and_no_false_all_passed():
    for result in (hidden(), hidden_all_passed()):
        text = render_text(result)
        assert "NOT RUN:" in text and "not your final grade" in text
        assert not ALL_PASSED.search(text), ALL_PASSED.search(text)
    assert "Every case that ran here passed" in render_text(hidden_all_passed())
    assert "All 3 cases passed." in render_text(full_marks()) and ALL_PASSED.search(render_text(full_marks()))
    assert "Total: 5/5 points (100.0%)" in render_text(full_marks())


def test_text_hides_inputs_of_hidden_cases():
    text = render_text(hidden(), verbose=True)
    assert "mha_hidden_big" in text and "forgot to scale" in text
    assert HIDDEN_INPUTS not in text and "987654" not in text
    assert "mha_hidden_skipped" in text


def test_text_not_graded_and_load_problems():
    text = render_text(not_graded())
    for needle in ("MISSING", "NOT_IMPLEMENTED", "LOAD_ERROR", "no function named `softmax`", "NameError: name 'np' is not defined (hw3.ipynb, cell 2, line 3)",
                   "IPython magic", "hello from top level", "Total: 0/20 points (0.0%)"):
        assert needle in text, needle
    assert "All " not in text
    assert "  | red" in text and "[31m" not in text and not ANSI.search(text)


def test_text_diagnoses_and_note():
    text = render_text(diagnosed())
    assert "Likely mistake: Softmax over the queries axis [softmax_wrong_axis] -- Apply softmax over the last axis (keys). (course: Chapter 3.2)" in text
    assert "No known mistake matches the failures of mha." in text


def test_text_grader_error_is_prominent_and_claims_no_score():
    text = render_text(grader_error())
    assert "GRADING ERROR" in text and "signal 9" in text
    assert "Total:" not in text and "%" not in text and "passed" not in text.lower()
    assert "No total score" in text


def test_text_color_only_when_asked():
    result = failures()
    assert not ANSI.search(render_text(result, color=False))
    assert ANSI.search(render_text(result, color=True))
    assert ANSI.sub("", render_text(result, color=True)).splitlines()[0] == render_text(result).splitlines()[0]


def test_text_prints_learner_text_literally():
    result = failures()
    result.exercises[0].cases[0].instances[0].message = "got [bold]x[/bold] and [red]"
    assert "got [bold]x[/bold] and [red]" in render_text(result)


# -- all formats ---------------------------------------------------------------------------------


@all_results
@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_is_deterministic(make, fmt):
    first = render(make(), fmt)
    assert first and first == render(make(), fmt)


def test_render_dispatches_and_rejects_unknown_formats():
    result = failures()
    assert render(result, "json") == render_json(result)
    assert render(result, "junit") == render_junit(result)
    assert render(result, "gradescope") == render_gradescope(result)
    assert render(result, "text", verbose=True) == render_text(result, verbose=True)
    assert render(result, "html").startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="unknown report format"):
        render(result, "pdf")


def test_failed_case_without_instances_still_reads_as_failed():
    rules = _case("sdpa_rules", "failed", instances=[], feedback="Do not call torch.nn.functional.softmax.", repro=None)
    result = _grade([_exercise("sdpa", [rules, _case("sdpa_ok")])])
    assert "sdpa_rules" in render_text(result) and "Do not call torch.nn.functional.softmax." in render_text(result)
    assert _counts(_junit(result)) == (2, 1, 0, 0)
    test = next(t for t in _gradescope(result)["tests"] if "[sdpa_rules]" in t["name"])
    assert test["status"] == "failed" and "Do not call" in test["output"]


def _many_failures() -> GradeResult:
    cases = [_case(f"sdpa_values_{i}", "failed", instances=[_inst(outcome="failed", message=WRONG_MSG, details=DETAILS)]) for i in range(4)]
    shape = _case("sdpa_shape", "failed", instances=[_inst(outcome="failed", message=SHAPE_MSG)])
    shape.property = "output_shape"
    cases.append(shape)
    diag = Diagnosis("ma.no_scaling", "no scaling of the scores", "Divide by sqrt(d_head).", "", "numpy", {"calls_reproduced": 5}, params={}, confidence="high")
    return _grade([_exercise("sdpa", cases + [_case("sdpa_ok")], diagnoses=[diag])])


def test_text_headline_and_diagnosis_come_before_the_failing_cases():
    lines = render_text(_many_failures()).splitlines()
    named = next(i for i, line in enumerate(lines) if "[ma.no_scaling] --" in line)
    first_fail = next(i for i, line in enumerate(lines) if line.strip().startswith("FAIL"))
    score = next(i for i, line in enumerate(lines) if line.startswith("[sdpa]"))
    assert score < named < first_fail


def test_text_max_failures_and_concise_show_a_count_of_the_rest():
    result = _many_failures()
    one = render_text(result, max_failures=1)
    assert [line.split()[1] for line in one.splitlines() if line.strip().startswith("FAIL")] == ["sdpa_values_0"]
    assert "and 4 more failing cases not shown" in one
    concise = render_text(result, concise=True)
    assert [line.split()[1] for line in concise.splitlines() if line.strip().startswith("FAIL")] == ["sdpa_values_0", "sdpa_shape"]
    assert "and 3 more failing cases not shown" in concise
    assert render_text(result).count("FAIL ") == 5


def test_json_starts_with_the_headline_and_reads_back():
    result = _many_failures()
    text = render(result, "json")
    data = json.loads(text)
    assert list(data)[0] == "headline"
    assert data["headline"] == [{"exercise": "sdpa", "status": "graded", "score": result.exercises[0].score, "max_score": result.exercises[0].max_score,
                                 "failed_cases": 5, "mistakes": ["ma.no_scaling"], "note": None}]
    assert render(GradeResult.from_dict(data), "json") == text


def test_case_hints_render_from_catalogue_ids():
    inst = _inst(outcome="failed", message=WRONG_MSG, failure={"kind": "values", "hints": ["ma.softmax_query_axis"]})
    result = _grade([_exercise("sdpa", [_case("sdpa_values", "failed", instances=[inst])])])
    assert "Likely mistake: softmax over the query axis [ma.softmax_query_axis]" in render_text(result)
    inst.failure["hints"] = []
    assert "Likely mistake" not in render_text(result)


def test_every_registered_format_renders_and_the_cli_offers_exactly_the_registry():
    from attnspec.cli import _parser
    from attnspec.reports import REGISTRY

    for fmt in FORMATS:
        if fmt == "html":
            pytest.importorskip("matplotlib")
        assert render(failures(), fmt).strip(), fmt
    grade_command = next(a for a in _parser()._subparsers._group_actions[0].choices["grade"]._actions if "--format" in a.option_strings)
    assert tuple(grade_command.choices) == FORMATS == tuple(REGISTRY)
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render(failures(), "pdf")


def test_a_hidden_case_names_only_pythons_own_exception_classes():
    """The name of a class the submission made can spell out the hidden inputs: it is not shown."""
    from attnspec.reports.failure import redact, render_failure

    for name, shown in [("ValueError", "ValueError"), ("FloatingPointError", "FloatingPointError"), ("Q_3x4x9x16_first_m2p44", None), ("print", None), ("a b", None)]:
        failure = {"kind": "raised", "outcome": "error", "function": "manual_attention", "error": {"type": name, "message": "secret"}}
        text = render_failure(redact(failure), hidden=True)
        assert ("raised " + shown) in text if shown else ("raised an exception of a class the submission defines" in text and name not in text), text
        assert "secret" not in text
