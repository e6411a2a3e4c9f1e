"""Hidden cases run last: every visible case of every exercise runs before the first hidden one,
so nothing a hidden case's inputs leave behind in the submission's sandbox (a file in its /tmp, a
list kept in a module) can reach a message a learner sees. Reports still list cases in spec order."""

from __future__ import annotations

from pathlib import Path

from attnspec import grade as grading
from attnspec.grade import GradeOptions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_every_visible_case_runs_before_any_hidden_one_and_reports_keep_spec_order(spec, pool, monkeypatch):
    ran = []
    run_case = grading._run_case

    def recording(case, *args, **kwargs):
        ran.append(case)
        return run_case(case, *args, **kwargs)

    monkeypatch.setattr(grading, "_run_case", recording)
    result = grading.grade(str(EXAMPLES / "correct_numpy.py"), spec, GradeOptions(workers=2), pool)
    assert result.score == result.max_score
    hidden = [i for i, case in enumerate(ran) if case.hidden]
    visible = [i for i, case in enumerate(ran) if not case.hidden]
    assert hidden and visible and len({case.exercise for case in ran}) >= 4
    assert max(visible) < min(hidden), [case.id for case in ran]
    for ex in result.exercises:
        reported = [c.case_id for c in ex.cases if c.property != "implementation_rules"]
        assert reported == [c.id for c in spec.cases if c.id in set(reported)]  # spec order
