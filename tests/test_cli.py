"""`attnspec grade` end to end, through the real command in a subprocess, on the shipped spec:
what a learner and a CI log see, every report format against its schema, exit codes, and
reproducibility."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from attnspec.results import strip_timings

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "harness" / "schemas"


def attnspec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnspec", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


@pytest.fixture(scope="module")
def buggy_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "buggy.json"
    proc = attnspec("grade", "examples/buggy/softmax_wrong_axis.py", "--exercise", "manual_attention", "--format", "json", "--output", str(out))
    assert proc.returncode == 1, proc.stderr
    return json.loads(out.read_text())


def test_correct_numpy_file_gets_full_marks_and_exit_0():
    proc = attnspec("grade", "examples/correct_numpy.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total = re.search(r"Total: ([0-9.]+)/([0-9.]+) points \(100\.0%\)", proc.stdout)
    assert total and total.group(1) == total.group(2) and float(total.group(2)) > 0, proc.stdout
    cases = re.search(r"All (\d+) cases passed\.", proc.stdout)
    assert cases and int(cases.group(1)) > 0, proc.stdout
    assert proc.stderr == ""


def test_buggy_file_names_the_failing_property_and_the_mistake():
    proc = attnspec("grade", "examples/buggy/softmax_wrong_axis.py", "--exercise", "manual_attention", "--color", "never")
    assert proc.returncode == 1
    out = proc.stdout
    assert "FAIL  ma.reference.fixed" in out
    assert "Likely mistake: softmax over the query axis [ma.softmax_query_axis]" in out
    assert "out differs from the expected values" in out and "worst out[" in out
    assert "Expected vs got:" in out
    assert "Reproduce: attnspec grade examples/buggy/softmax_wrong_axis.py --case ma.reference.fixed" in out
    assert "\x1b[" not in out


def test_json_report_validates_and_carries_structured_diagnosis(buggy_json):
    jsonschema.validate(buggy_json, schema("report.schema.json"))
    ex = buggy_json["exercises"][0]
    assert ex["exercise"] == "manual_attention" and ex["status"] == "graded"
    diagnosis = ex["diagnoses"][0]
    assert diagnosis["id"] == "ma.softmax_query_axis"
    assert diagnosis["evidence"]["calls_reproduced"] >= 3
    assert "ma.reference.fixed" in diagnosis["evidence"]["failed_cases"]
    failed = {c["case_id"]: c for c in ex["cases"] if c["outcome"] != "passed"}
    drawn = failed["ma.reference.drawn"]["instances"][0]
    assert drawn["example"].startswith("batch=") and "seed=" in drawn["example"]
    assert drawn["details"]["max_abs_error"] > 0 and drawn["details"]["worst_index"]


def test_the_printed_repro_command_reproduces_the_smallest_failing_example(buggy_json):
    case = next(c for e in buggy_json["exercises"] for c in e["cases"] if c["case_id"] == "ma.reference.drawn")
    args = shlex.split(case["repro"])
    assert args[:2] == ["attnspec", "grade"]
    proc = attnspec(*args[1:], "--format", "json")
    assert proc.returncode == 1, proc.stderr
    again = json.loads(proc.stdout)
    rerun = again["exercises"][0]["cases"][0]
    assert rerun["case_id"] == "ma.reference.drawn"
    assert rerun["instances"][0]["example"] == case["instances"][0]["example"]
    assert rerun["instances"][0]["message"] == case["instances"][0]["message"]


def test_two_runs_give_identical_json_apart_from_timings(buggy_json, tmp_path):
    out = tmp_path / "again.json"
    attnspec("grade", "examples/buggy/softmax_wrong_axis.py", "--exercise", "manual_attention", "--format", "json", "--output", str(out))
    assert strip_timings(json.loads(out.read_text())) == strip_timings(buggy_json)


def test_gradescope_output_validates_and_hides_hidden_inputs(tmp_path):
    out = tmp_path / "results.json"
    proc = attnspec("grade", "examples/buggy/mask_ignored.py", "--format", "gradescope", "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    results = json.loads(out.read_text())
    jsonschema.validate(results, schema("gradescope.schema.json"))
    assert results["score"] == pytest.approx(sum(t.get("score", 0) for t in results["tests"]))
    hidden = [t for t in results["tests"] if t.get("visibility") == "after_published"]
    assert hidden and all("hidden case: inputs not shown" in t["output"] or t["status"] == "passed" for t in hidden)
    failed_hidden = [t for t in hidden if t["status"] == "failed"]
    assert failed_hidden
    for t in failed_hidden:  # neither inputs nor expected values leak
        first = t["output"].splitlines()[0]
        assert "should be" not in first and "worst" not in first and "with Q(" not in first
    assert "mask ignored" in results["output"]


def test_junit_output_parses_with_consistent_counts(tmp_path):
    out = tmp_path / "report.xml"
    attnspec("grade", "examples/buggy/post_norm_block.py", "--format", "junit", "--output", str(out))
    root = ET.parse(out).getroot()
    cases = root.findall(".//testcase")
    failures = root.findall(".//failure")
    assert int(root.get("tests")) == len(cases) and int(root.get("failures")) == len(failures) > 0
    text = " ".join(f.text or "" for f in failures)
    assert "post-norm instead of pre-norm" in text


def test_notebook_that_is_not_json_is_reported_not_crashed(tmp_path):
    bad = tmp_path / "broken.ipynb"
    bad.write_text('{"cells": [ {"cell_type": "code", "source": "x = 1"  ')
    proc = attnspec("grade", str(bad), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "graded" and report["score"] == 0
    messages = {e["status"] for e in report["exercises"]}
    assert messages == {"load_error"}
    assert "not a notebook: the file is not valid JSON (line 1, column" in report["exercises"][0]["message"]


def test_syntax_error_costs_only_its_exercise_and_names_the_line(tmp_path):
    source = (ROOT / "examples" / "correct_numpy.py").read_text()
    broken = source.replace("def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):", "def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None)")
    path = tmp_path / "typo.py"
    path.write_text(broken)
    proc = attnspec("grade", str(path), "--format", "json")
    report = json.loads(proc.stdout)
    status = {e["exercise"]: e for e in report["exercises"]}
    assert status["multi_head_attention"]["status"] == "missing"
    assert "a syntax error at line 25 (expected ':') is inside its definition" in status["multi_head_attention"]["message"]
    assert any(err["type"] == "SyntaxError" for err in report["load"]["errors"])
    # manual_attention still passes; the block calls the missing function, so it fails, but is graded
    assert all(c["outcome"] == "passed" for c in status["manual_attention"]["cases"])
    assert status["transformer_block"]["status"] == "graded"


def test_wrong_signature_is_reported_as_such(tmp_path):
    path = tmp_path / "sig.py"
    path.write_text("import numpy as np\n\ndef manual_attention(Q, K):\n    return Q\n")
    proc = attnspec("grade", str(path), "--format", "json")
    ex = json.loads(proc.stdout)["exercises"][0]
    assert ex["status"] == "signature_error"
    assert ex["message"].startswith("manual_attention(Q, K) cannot be called as manual_attention(Q, K, V, mask=None)")
    assert ex["score"] == 0 and ex["cases"] == []


def test_visible_only_run_says_how_many_hidden_cases_it_did_not_run():
    proc = attnspec("grade", "examples/correct_numpy.py", "--exercise", "manual_attention", "--visible-only")
    assert proc.returncode == 0
    assert "All 27 cases passed" not in proc.stdout  # never a bare "all passed" while cases were not run
    assert "Every case that ran here passed, but not every case was run" in proc.stdout
    assert "NOT RUN: 3 cases worth 5 points were not run here, so this is not your final grade." in proc.stdout


def test_min_score_threshold_sets_the_exit_code():
    assert attnspec("grade", "examples/buggy/float64_promotion.py", "--min-score", "90").returncode == 0
    assert attnspec("grade", "examples/buggy/float64_promotion.py", "--min-score", "99").returncode == 1


def test_a_class_in_one_run_with_one_report_each(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("correct_numpy.py", "buggy/mask_ignored.py", "buggy/post_norm_block.py"):
        (folder / Path(name).name).write_text((ROOT / "examples" / name).read_text())
    reports = tmp_path / "reports"
    proc = attnspec("grade", str(folder), "--format", "json", "--output-dir", str(reports), "-j", "2")
    assert proc.returncode == 1
    assert sorted(p.name for p in reports.iterdir()) == ["correct_numpy.json", "mask_ignored.json", "post_norm_block.json"]
    data = {p.stem: json.loads(p.read_text()) for p in reports.iterdir()}
    correct, buggy = data["correct_numpy"], data["mask_ignored"]
    assert correct["score"] == correct["max_score"] > 0 and buggy["score"] < buggy["max_score"]
    assert "3 submissions graded in" in proc.stdout


def test_usage_errors_exit_2_with_a_message():
    proc = attnspec("grade", "examples/correct_numpy.py", "--case", "no.such.case")
    assert proc.returncode == 2 and "unknown case id(s): no.such.case" in proc.stderr
    proc = attnspec("grade", "missing_file.py", "--format", "json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no such submission file: missing_file.py" in proc.stderr
