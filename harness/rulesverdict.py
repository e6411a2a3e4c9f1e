"""The implementation-rules case of an exercise: forbidden calls and imports seen statically or
at run time (tripwires), and what the load reported, as one graded case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


from .results import CaseResult, InstanceResult
from .runner import LoadReport
from .static import StaticReport
from .submission import Submission

if TYPE_CHECKING:
    from .grade import ExerciseRun


def _rules_case(exercise: str, rules: Any, static: StaticReport, load: LoadReport, run: ExerciseRun, submission: Submission) -> CaseResult:
    apis = [f.api for f in rules.forbidden]
    reasons = {f.api: f.reason for f in rules.forbidden}
    problems = []
    for use in static.forbidden_uses(exercise, apis):
        where = submission.where(use.filename, use.line)
        problems.append(f"{use.function or exercise} uses {use.api} ({where}): {reasons[use.api]}")
    for hit in run.tripwires:
        if hit["api"].startswith("import "):
            continue
        where = submission.where(hit.get("file"), hit.get("line")) or "somewhere in code it calls"
        text = f"{exercise} called {hit['api']} at run time ({where}): {reasons.get(hit['api'], 'forbidden for this exercise')}"
        if not any(hit["api"] in p and where in p for p in problems):
            problems.append(text)
    for use in static.introspection:
        problems.append(f"the submission inspects the grader's {use.api} ({submission.where(use.filename, use.line)}): submissions may not reach into the grader's own objects")
    for use in static.attnspec_imports:
        problems.append(f"the submission imports attnspec ({submission.where(use.filename, use.line)}): submissions may not use the grader's package")
    for hit in load.tripwires + [h for h in run.tripwires if h["api"].startswith("import ")]:
        text = f"the submission tried to {hit['api']} ({submission.where(hit.get('file'), hit.get('line')) or 'at run time'}): submissions may not use the grader's package"
        if text not in problems and not static.attnspec_imports:
            problems.append(text)
    case = CaseResult(
        case_id=rules.case_id,
        exercise=exercise,
        title="implementation rules: no forbidden APIs, no import of attnspec",
        property="implementation_rules",
        visibility="visible",
        max_points=rules.points,
        points=0.0 if problems else rules.points,
        outcome="failed" if problems else "passed",
        feedback="Write the computation yourself; the numbers are still graded by the other cases.",
        inputs="static analysis of the source and run-time tracing of calls",
    )
    case.instances.append(InstanceResult("any", "any", case.outcome, "\n".join(problems)))
    return case
