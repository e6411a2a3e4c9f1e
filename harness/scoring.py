"""Points: a case earns its points in proportion to the (backend, dtype) instances it passes;
an exercise scores the sum of its cases; nothing passes by default."""

from __future__ import annotations

from .results import CaseResult, ExerciseResult


def score_case(case: CaseResult) -> None:
    """Set the case's outcome and points from its instances (no instances: not run, 0 points)."""
    if not case.instances:
        case.outcome, case.points = "not_run", 0.0
        return
    passed = sum(1 for i in case.instances if i.outcome == "passed")
    case.points = round(case.max_points * passed / len(case.instances), 6)
    if passed == len(case.instances):
        case.outcome = "passed"
    elif any(i.outcome == "error" for i in case.instances) and not any(i.outcome == "failed" for i in case.instances):
        case.outcome = "error"
    else:
        case.outcome = "failed"


def score_exercise(exercise: ExerciseResult) -> None:
    exercise.score = round(sum(c.points for c in exercise.cases), 6) if exercise.status == "graded" else 0.0
