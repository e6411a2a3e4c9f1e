"""Gradescope autograder results (results.json), as specified at
https://gradescope-autograders.readthedocs.io/en/latest/specs/ and checked by
`schemas/gradescope.schema.json`.

Visible cases are shown to learners at once; hidden cases only after the grades are published,
and their output carries only the (already sanitised) message and the instructor's feedback.
"""

from __future__ import annotations

import json
from typing import Any

from ..results import CaseResult, ExerciseResult, GradeResult
from . import STATUS_WORDS, sandbox_summary, case_failure_lines, diagnosis_line, exercise_headline, fmt_points, load_problem_lines, not_run_lines, percent, plural
from .json_report import finite

VISIBILITY = {"visible": "visible", "hidden": "after_published"}


def render_gradescope(result: GradeResult) -> str:
    return json.dumps(finite(gradescope_results(result)), indent=2, allow_nan=False) + "\n"


def gradescope_results(result: GradeResult) -> dict[str, Any]:
    """The results.json object; its score is always the sum of its tests' scores."""
    tests = _error_tests(result) if result.status != "graded" else _graded_tests(result)
    score = round(sum(t.get("score", 0.0) for t in tests), 6)
    out: dict[str, Any] = {
        "score": score,
        "output": _summary(result, score),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "tests": tests,
        "extra_data": {
            "attnspec_status": result.status,
            "sandbox": result.sandbox,
            "not_run": [{"exercise": n.exercise, "kind": n.kind, "cases": n.cases, "points": n.points} for n in result.not_run],
        },
    }
    if "total" in result.timings:
        out["execution_time"] = round(float(result.timings["total"]), 3)
    return out


# -- tests ---------------------------------------------------------------------------------------


def _error_tests(result: GradeResult) -> list[dict[str, Any]]:
    test: dict[str, Any] = {
        "name": "Grading error",
        "score": 0.0,
        "status": "failed",
        "output": f"Grading failed: {result.error or 'no reason was recorded'}\nNo score was given. This is a grader problem, not a verdict on your code: please tell the course staff.",
        "visibility": "visible",
    }
    if result.max_score > 0:
        test["max_score"] = result.max_score
    return [test]


def _graded_tests(result: GradeResult) -> list[dict[str, Any]]:
    tests = []
    for n, ex in enumerate(result.exercises, start=1):
        notes = [diagnosis_line(d) for d in ex.diagnoses] or ([ex.diagnosis_note] if ex.diagnosis_note and ex.failed_cases else [])
        if ex.status != "graded":
            tests.append(_status_test(ex, result, notes, f"{n}.0"))
        tests.extend(_case_test(ex, case, notes, f"{n}.{k}") for k, case in enumerate(ex.cases, start=1))
    for nr in result.not_run:
        tests.append({
            "name": f"{nr.exercise}: {plural(nr.cases, nr.kind + ' case')} not run",
            "status": "failed",
            "output": f"{plural(nr.cases, nr.kind + ' case')} worth {plural(nr.points, 'point')} {'was' if nr.cases == 1 else 'were'} not run by this autograder." + (f"\n{nr.note}" if nr.note else ""),
            "visibility": "visible",
            "tags": [nr.exercise, "not_run"],
        })
    return tests


def _status_test(ex: ExerciseResult, result: GradeResult, notes: list[str], number: str) -> dict[str, Any]:
    lines = [f"Not graded: {STATUS_WORDS.get(ex.status, ex.status)}."] + ex.message.splitlines()
    if ex.status == "load_error":
        lines += load_problem_lines(result)
    return {
        "name": f"{ex.exercise}: {STATUS_WORDS.get(ex.status, ex.status)}",
        "number": number,
        "score": 0.0,
        "max_score": ex.max_score,
        "status": "failed",
        "output": "\n".join(lines + notes),
        "visibility": "visible",
        "tags": [ex.exercise],
    }


def _case_test(ex: ExerciseResult, case: CaseResult, notes: list[str], number: str) -> dict[str, Any]:
    return {
        "name": f"{ex.exercise}: {case.title} [{case.case_id}]",
        "number": number,
        "score": case.points,
        "max_score": case.max_points,
        "status": "passed" if case.passed else "failed",
        "output": _case_output(case, notes),
        "visibility": VISIBILITY.get(case.visibility, "after_published"),
        "tags": [ex.exercise, case.property],
    }


def _case_output(case: CaseResult, notes: list[str]) -> str:
    if case.passed:
        return "Passed."
    if case.outcome == "not_run":
        return "Not run, so no points were awarded for it."
    if case.visibility == "hidden":
        lines = [case.message or "This hidden case failed."]
        lines += [f"Feedback: {case.feedback}"] if case.feedback else []
    else:
        lines = case_failure_lines(case)
    return "\n".join(notes + lines)  # the named mistake first, then this case's evidence


# -- top-level output ----------------------------------------------------------------------------


def _summary(result: GradeResult, score: float) -> str:
    if result.status != "graded":
        return f"GRADING FAILED: {result.error or 'no reason was recorded'}\nNo score was given (0 points recorded). Please tell the course staff."
    lines = [f"Score: {fmt_points(score)}/{fmt_points(result.max_score)} points ({percent(score, result.max_score)})."]
    lines += [exercise_headline(ex) for ex in result.exercises]
    diagnoses = [f"{ex.exercise}: {diagnosis_line(d)}" for ex in result.exercises for d in ex.diagnoses]
    if diagnoses:
        lines += ["", *diagnoses]
    problems = load_problem_lines(result)
    if problems:
        lines += ["", "Problems while loading the submission:", *problems]
    if result.not_run:
        lines += ["", *not_run_lines(result)]
    if result.sandbox:
        lines += ["", f"Sandbox: {sandbox_summary(result.sandbox)}."]
    return "\n".join(lines)
