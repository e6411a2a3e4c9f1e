"""Gradebook rows, the max-points policy, the class summary, the result cache, and terminal-safe
learner strings. Results here are built with the result model (no grading run)."""

from __future__ import annotations

import json
from pathlib import Path

from attnspec.cache import ResultCache, cache_key, cacheable
from attnspec.grade import GradeOptions
from attnspec.gradebook import (
    class_summary,
    fixed_max,
    gradebook_row,
    parse_gradebook_csv,
    policy_text,
    summary_lines,
    write_gradebook,
)
from attnspec.loader import load_spec
from attnspec.results import CaseResult, Diagnosis, ExerciseResult, GradeResult, InstanceResult
from attnspec.sanitize import terminal_safe

SPEC = load_spec([], builtin=True)


def _result(path: str, cases: list[tuple[str, bool]], diagnoses: list[tuple[str, str]] = (), timeout: bool = False) -> GradeResult:
    ex = ExerciseResult("manual_attention", "graded")
    for cid, ok in cases:
        msg = "" if ok else ("manual_attention did not finish within the case's time limit 5 s" if timeout else "wrong values")
        ex.cases.append(CaseResult(cid, "manual_attention", cid, "p", "visible", 2.0, 2.0 if ok else 0.0, "passed" if ok else "failed", [InstanceResult("numpy", "float64", "passed" if ok else "failed", msg)]))
    ex.score = sum(c.points for c in ex.cases)
    ex.max_score = 2.0 * len(cases)
    ex.diagnoses = [Diagnosis(i, t, "", "", "numpy") for i, t in diagnoses]
    return GradeResult(submission={"path": path}, spec={}, status="graded", score=ex.score, max_score=ex.max_score, exercises=[ex])


def test_fixed_max_states_one_total_per_policy():
    options = GradeOptions()
    ex = ("manual_attention",)
    common = fixed_max(SPEC, options, "common", ex)["manual_attention"]
    union = fixed_max(SPEC, options, "union", ex)["manual_attention"]
    cases = [c for c in SPEC.cases if c.exercise == "manual_attention"]
    rules = SPEC.rules["manual_attention"].points
    assert common == sum(c.points for c in cases if {"numpy", "torch"} <= set(c.backends)) + rules
    assert union == sum(c.points for c in cases) + rules
    assert union > common  # the torch-only cases
    numpy_only = fixed_max(SPEC, GradeOptions(backend="numpy"), "union", ex)["manual_attention"]
    assert numpy_only == common
    assert "policy 'common'" in policy_text("common", {"manual_attention": common}, "auto")


def test_row_total_is_the_reports_and_percent_is_capped():
    maxima = {"manual_attention": 4.0}
    row = gradebook_row("alice", _result("a.py", [("c1", True), ("c2", True), ("c3", True)]), maxima, "r/alice.json")
    assert row["total"] == 6.0 and row["max"] == 4.0 and row["percent"] == 100.0 and row["report_max"] == 6.0
    assert row["status"] == "passed" and row["report"] == "r/alice.json"
    bob = gradebook_row("bob", _result("b.py", [("c1", True), ("c2", False)], [("ma.no_scale", "no scaling")]), maxima, "")
    assert bob["percent"] == 50.0 and bob["status"] == "failed" and bob["mistakes"] == "ma.no_scale: no scaling"


def test_summary_counts_mistakes_pass_rates_and_hangs():
    maxima = {"manual_attention": 4.0}
    results = [
        _result("a.py", [("c1", True), ("c2", True)]),
        _result("b.py", [("c1", True), ("c2", False)], [("ma.no_scale", "applied no scaling")]),
        _result("c.py", [("c1", False), ("c2", False)], [("ma.no_scale", "applied no scaling")]),
        _result("d.py", [("c1", False), ("c2", False)], timeout=True),
    ]
    rows = [gradebook_row(s, r, maxima, "") for s, r in zip("abcd", results)]
    summary = class_summary(rows, results)
    assert summary["mistakes"]["ma.no_scale"] == {"title": "applied no scaling", "students": 2, "percent": 50.0}
    assert summary["pass_rate"]["c1"] == {"passed": 2, "ran": 4, "rate": 0.5}
    assert summary["hangs"] == ["d"]
    assert sum(summary["histogram"].values()) == 4
    text = "\n".join(summary_lines(rows, summary, 1.0))
    assert "50.0 % (2 of 4) applied no scaling [ma.no_scale]" in text


def test_learner_file_names_cannot_forge_summary_lines():
    forged = "x\x1b[2J\x1b[H\nzed      76 / 76   100.0  passed\r"
    rows = [gradebook_row(forged, _result(forged, [("c1", False)]), {"manual_attention": 2.0}, "")]
    lines = summary_lines(rows, class_summary(rows, []), 1.0)
    assert not any(line.startswith("zed") for line in "\n".join(lines).splitlines())
    assert all("\x1b" not in line and "\r" not in line for line in lines)
    assert "\\x1b[2J" in "\n".join(lines)
    assert terminal_safe("a\u202eb") == "a\\u202eb"


def test_csv_gradebook_has_the_policy_and_defuses_formulas(tmp_path):
    rows = [gradebook_row("=HYPERLINK(1)", _result("e.py", [("c1", True)]), {"manual_attention": 2.0}, "")]
    target = tmp_path / "grades.csv"
    write_gradebook(target, rows, "max points 2")
    text = target.read_text()
    assert text.startswith("# attnspec gradebook: max points 2\n")
    parsed = parse_gradebook_csv(text)
    assert parsed[0]["student"] == "'=HYPERLINK(1)" and float(parsed[0]["total"]) == 2.0
    write_gradebook(tmp_path / "grades.json", rows, "max points 2", {"graded": 1})
    data = json.loads((tmp_path / "grades.json").read_text())
    assert data["policy"] == "max points 2" and data["rows"][0]["total"] == 2.0 and data["summary"] == {"graded": 1}


def test_cache_keys_follow_content_companions_and_options(tmp_path):
    sub = tmp_path / "a.py"
    helper = tmp_path / "helpers.py"
    sub.write_text("x = 1\n")
    helper.write_text("y = 1\n")
    options = GradeOptions()
    key = cache_key(sub, "a.py", [helper], "spec1", options)
    assert key == cache_key(sub, "a.py", [helper], "spec1", options)
    helper.write_text("y = 2\n")
    changed = cache_key(sub, "a.py", [helper], "spec1", options)
    assert changed != key
    assert cache_key(sub, "a.py", [helper], "spec2", options) != changed
    assert cache_key(sub, "a.py", [helper], "spec1", GradeOptions(visible_only=True)) != changed
    assert cache_key(sub, "b.py", [helper], "spec1", options) != changed
    cache = ResultCache(tmp_path / "cache")
    good = _result("a.py", [("c1", True)]).to_dict()
    cache.put(changed, good)
    assert cache.get(changed) == json.loads(json.dumps(good))
    hung = _result("a.py", [("c1", False)], timeout=True).to_dict()
    assert not cacheable(hung)
    cache.put(key, hung)
    assert cache.get(key) is None
    assert not cacheable({**good, "status": "interrupted"})


def test_corrupt_cache_entries_are_misses(tmp_path):
    cache = ResultCache(tmp_path)
    key = "ab" + "0" * 62
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / f"{key}.json").write_text("{not json")
    assert cache.get(key) is None
    Path(tmp_path / "ab" / f"{key}.json").write_text(json.dumps({"key": "other", "result": {}}))
    assert cache.get(key) is None


def test_csv_cells_show_control_characters_and_defuse_formulas_after_spaces():
    from attnspec.gradebook import _csv_safe

    assert _csv_safe(" =1+1") == "' =1+1"
    assert _csv_safe("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    shown = _csv_safe("alice\x1b]0;pwned\x07\x1b[2J\u202e")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown and shown.startswith("alice")
    assert _csv_safe("bob") == "bob" and _csv_safe(3.5) == 3.5
