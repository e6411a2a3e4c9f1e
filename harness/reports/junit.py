"""JUnit XML report, for CI test reporters (Jenkins, GitLab, GitHub actions) and pytest tooling.

One `<testsuite>` per exercise and one `<testcase>` per case and backend. An exercise that was not
graded is one failing `<testcase name="<exercise>.status">`; a grader error is one `<error>`.
No timestamps or hostnames: only `time` attributes change between runs.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from ..results import CaseResult, ExerciseResult, GradeResult, InstanceResult
from . import STATUS_WORDS, case_failure_lines, diagnosis_line, fmt_points, load_problem_lines, plural, shows_inputs, strip_ansi

#: Characters XML 1.0 cannot carry (learner output may contain ANSI escapes or other control bytes).
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(result: GradeResult) -> str:
    root = ET.Element("testsuites", name="attnspec")
    if result.status != "graded":
        root.append(_grader_error_suite(result))
    for ex in result.exercises:
        root.append(_exercise_suite(ex, result))
    for orphan in _orphan_not_run(result):
        root.append(orphan)
    problems = load_problem_lines(result)
    if problems:  # errors while running the file's top-level code cost no points, but CI logs show them
        load = ET.SubElement(root, "testsuite", name="submission.load")
        ET.SubElement(load, "system-err").text = clean("\n".join(problems))
    for suite in root.findall("testsuite") if result.sandbox else []:  # the isolation learner code ran under
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        ET.SubElement(props, "property", name="attnspec.sandbox", value=json.dumps(result.sandbox, sort_keys=True))
    _set_counts(root, root.findall("testsuite"))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def clean(text: str) -> str:
    """Text XML can carry: ANSI escapes removed, other invalid characters replaced."""
    return _INVALID_XML.sub("\ufffd", strip_ansi(text))


# -- suites --------------------------------------------------------------------------------------


def _grader_error_suite(result: GradeResult) -> ET.Element:
    suite = _suite("attnspec", {"status": result.status})
    case = ET.SubElement(suite, "testcase", classname="attnspec", name="grading", time="0")
    reason = result.error or "no reason was recorded"
    _outcome_element(case, "error", f"grading failed: {reason}".splitlines()[0], "GradingError", f"The grader itself failed: {reason}")
    return suite


def _exercise_suite(ex: ExerciseResult, result: GradeResult) -> ET.Element:
    suite = _suite(ex.exercise, {"status": ex.status, "score": fmt_points(ex.score), "max_score": fmt_points(ex.max_score)})
    diagnoses = [diagnosis_line(d) for d in ex.diagnoses] or ([ex.diagnosis_note] if ex.diagnosis_note else [])
    if ex.status != "graded":
        suite.append(_status_case(ex, result, diagnoses))
    for case in ex.cases:
        for row in _rows(case):
            suite.append(_testcase(ex, case, row, diagnoses))
    for n in (n for n in result.not_run if n.exercise == ex.exercise):
        suite.append(_not_run_case(ex.exercise, n.kind, n.cases, n.points, n.note))
    system_out = diagnoses + (load_problem_lines(result) if ex.status == "load_error" else [])
    if system_out:
        ET.SubElement(suite, "system-out").text = clean("\n".join(system_out))
    return suite


def _orphan_not_run(result: GradeResult) -> list[ET.Element]:
    """Not-run entries for exercises that have no ExerciseResult of their own."""
    known = {ex.exercise for ex in result.exercises}
    suites = []
    for n in result.not_run:
        if n.exercise not in known:
            suite = _suite(n.exercise, {"status": "not_run"})
            suite.append(_not_run_case(n.exercise, n.kind, n.cases, n.points, n.note))
            suites.append(suite)
    return suites


def _suite(name: str, properties: dict[str, str]) -> ET.Element:
    suite = ET.Element("testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    for key, value in properties.items():
        ET.SubElement(props, "property", name=key, value=clean(str(value)))
    return suite


def _set_counts(element: ET.Element, suites: list[ET.Element]) -> None:
    """Fill tests/failures/errors/skipped/time on every suite and on the root."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for suite in suites:
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
            "time": sum(float(c.get("time", "0")) for c in cases),
        }
        _write_counts(suite, counts)
        for key in totals:
            totals[key] += counts[key]
    _write_counts(element, totals)


def _write_counts(element: ET.Element, counts: dict[str, float]) -> None:
    for key in ("tests", "failures", "errors", "skipped"):
        element.set(key, str(counts[key]))
    element.set("time", f"{counts['time']:.3f}")


# -- test cases ----------------------------------------------------------------------------------


@dataclass
class _Row:
    """One testcase: a case on one backend (or the whole case when it has no instances)."""

    name: str
    outcome: str
    time: float
    instances: list[InstanceResult] = field(default_factory=list)


def _rows(case: CaseResult) -> list[_Row]:
    backends = list(dict.fromkeys(i.backend for i in case.instances))
    if not backends:
        return [_Row(case.case_id, case.outcome, case.duration)]
    rows = []
    for b in backends:
        insts = [i for i in case.instances if i.backend == b]
        outcome = "error" if any(i.outcome == "error" for i in insts) else "failed" if any(i.outcome != "passed" for i in insts) else "passed"
        rows.append(_Row(f"{case.case_id}[{b}]", outcome, sum(i.duration for i in insts), insts))
    if case.outcome != "passed" and all(r.outcome == "passed" for r in rows):
        for r in rows:  # never report passes for a case that did not pass
            r.outcome = case.outcome
    return rows


def _testcase(ex: ExerciseResult, case: CaseResult, row: _Row, diagnoses: list[str]) -> ET.Element:
    el = ET.Element("testcase", classname=f"attnspec.{ex.exercise}", name=row.name, time=f"{row.time:.3f}")
    if row.outcome == "not_run":
        ET.SubElement(el, "skipped", message=f"{case.case_id} was not run")
    elif row.outcome in ("failed", "error"):
        bad = [i for i in row.instances if i.outcome != "passed"]
        sub = replace(case, instances=bad or case.instances)
        text = "\n".join(diagnoses + [f"{case.case_id}: {case.title} ({fmt_points(case.points)}/{fmt_points(case.max_points)} points)"] + case_failure_lines(sub, output=False))
        message = (sub.message or f"{case.case_id} {row.outcome}").splitlines()[0]
        kind = "failure" if row.outcome == "failed" else "error"
        _outcome_element(el, kind, message, "CaseFailed" if kind == "failure" else "CaseError", text)
    if case.output and shows_inputs(case):
        ET.SubElement(el, "system-out").text = clean(case.output)
    return el


def _status_case(ex: ExerciseResult, result: GradeResult, diagnoses: list[str]) -> ET.Element:
    el = ET.Element("testcase", classname=f"attnspec.{ex.exercise}", name=f"{ex.exercise}.status", time="0.000")
    words = STATUS_WORDS.get(ex.status, ex.status)
    lines = [f"{ex.exercise}: {words} ({ex.status}), 0/{fmt_points(ex.max_score)} points"]
    lines += ex.message.splitlines()
    if ex.status == "load_error":
        lines += load_problem_lines(result)
    _outcome_element(el, "failure", f"{ex.exercise}: {words}", ex.status, "\n".join(lines + diagnoses))
    return el


def _not_run_case(exercise: str, kind: str, cases: int, points: float, note: str) -> ET.Element:
    el = ET.Element("testcase", classname=f"attnspec.{exercise}", name=f"{exercise}.not_run[{kind}]", time="0.000")
    message = f"{plural(cases, kind + ' case')} worth {plural(points, 'point')} {'were' if cases != 1 else 'was'} not run here"
    ET.SubElement(el, "skipped", message=clean(message + (f": {note}" if note else "")))
    return el


def _outcome_element(parent: ET.Element, tag: str, message: str, kind: str, text: str) -> None:
    el = ET.SubElement(parent, tag, message=clean(message[:500]), type=clean(kind))
    el.text = clean(text)

