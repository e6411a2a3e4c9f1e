"""GitHub Actions: the job log (text report in a collapsed group, annotations) and the job summary.

`render_github` is the `--format github` report: what a workflow step prints so that the log has
the full text report folded in a group, every failed case becomes an error annotation on the
line of the learner's function (GitHub shows it in the run and on the file), and the score is a
notice. `github_summary` is the Markdown for $GITHUB_STEP_SUMMARY: the score, the exercises, the
named mistakes and the failed cases. `attnspec autograder github` writes both from saved JSON
reports, so a workflow grades each file once.
"""

from __future__ import annotations

import hashlib
import re

from ..results import CaseResult, ExerciseResult, GradeResult
from . import STATUS_WORDS, case_failure_lines, fmt_points, percent, strip_ansi

MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error annotations per step
_LINE = re.compile(r"\bline (\d+)\b")


def render_github(result: GradeResult, *, min_score: float | None = None) -> str:
    """Workflow commands for the job log: the text report in a group, then annotations and the score."""
    from .text import render_text

    path = str(result.submission.get("path") or "submission")
    body = strip_ansi(render_text(result)).rstrip("\n")
    # The report quotes learner text (exception messages, printed output): a line of it that reads
    # as a workflow command (::error ..., ::stop-commands::, ##[...]) must not be run by the runner.
    # GitHub's way: stop command processing around it, with a token the text cannot contain or
    # guess (derived from the text itself, so the same report prints the same log).
    token = "attnspec-" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    lines = [f"::group::attnspec report: {_data(path)}", f"::stop-commands::{token}", *body.splitlines(), f"::{token}::", "::endgroup::"]
    lines += failure_annotations(result)[:MAX_ANNOTATIONS]
    if result.status == "graded":
        verdict = "" if min_score is None else (" (passes)" if passed(result, min_score) else f" (below {fmt_points(min_score)}%)")
        lines.append(f"::notice file={_prop(path)},title={_prop('attnspec score')}::{_data(f'{path}: {score_words(result)}{verdict}')}")
    return "\n".join(lines) + "\n"


def failure_annotations(result: GradeResult) -> list[str]:
    """One ::error per failed case (at the function's line), per ungradable exercise, or for a grading error."""
    path = str(result.submission.get("path") or "submission")
    if result.status != "graded":
        return [_error(path, None, "attnspec could not grade this file", str(result.error or "no reason was recorded"))]
    out = []
    for ex in result.exercises:
        line = _line(ex)
        if ex.status != "graded":
            out.append(_error(path, line, f"{ex.exercise}: {STATUS_WORDS.get(ex.status, ex.status)}", ex.message or STATUS_WORDS.get(ex.status, ex.status)))
        for case in ex.failed_cases:
            out.append(_error(path, line, f"{ex.exercise}: {case.title} [{case.case_id}]", "\n".join(_case_lines(case, ex))))
    return out


def _case_lines(case: CaseResult, ex: ExerciseResult) -> list[str]:
    lines = case_failure_lines(case, output=False)
    named = [f"Likely mistake: {d.title} [{d.id}]: {d.feedback}" for d in ex.diagnoses]
    return lines + [n for n in named if n not in lines]


def _line(ex: ExerciseResult) -> int | None:
    """The def's line in a .py file; None in a notebook (a cell's line is not a line of the .ipynb file)."""
    if not ex.location or "cell " in ex.location:
        return None
    m = _LINE.search(ex.location)
    return int(m.group(1)) if m else None


def _error(path: str, line: int | None, title: str, message: str) -> str:
    where = f"file={_prop(path)}" + (f",line={line}" if line else "")
    return f"::error {where},title={_prop(title)}::{_data(message)}"


def _data(text: str) -> str:
    """Escape a workflow command's message (GitHub's rules: %, CR, LF)."""
    return strip_ansi(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Escape a workflow command's property value (also : and ,)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


# ---------------------------------------------------------------- the job summary


def score_words(result: GradeResult) -> str:
    return f"{fmt_points(result.score)}/{fmt_points(result.max_score)} points ({percent(result.score, result.max_score)})"


def passed(result: GradeResult, min_score: float | None) -> bool:
    if result.status != "graded":
        return False
    if min_score is None:
        return result.all_passed
    return result.max_score > 0 and 100.0 * result.score / result.max_score >= min_score


def github_summary(result: GradeResult, *, min_score: float | None = None) -> str:
    """A Markdown section for $GITHUB_STEP_SUMMARY: score, exercises, named mistakes, failed cases."""
    path = str(result.submission.get("path") or "submission")
    if result.status != "graded":
        return f"### :x: `{_code(path)}`: not graded\n\n{_md(str(result.error or 'no reason was recorded').splitlines()[0])}\n\n"
    mark = ":white_check_mark:" if passed(result, min_score) else ":x:"
    bar = "" if min_score is None else f" (pass mark {fmt_points(min_score)}%)"
    out = [f"### {mark} `{_code(path)}`: {score_words(result)}{bar}", "", "| exercise | score | status |", "|---|---|---|"]
    for ex in result.exercises:
        status = STATUS_WORDS.get(ex.status, ex.status)
        if ex.status == "graded":
            status = f"{sum(c.passed for c in ex.cases)} of {len(ex.cases)} cases passed"
        out.append(f"| {ex.exercise} | {fmt_points(ex.score)}/{fmt_points(ex.max_score)} | {_md(status)} |")
    mistakes = [(ex, d) for ex in result.exercises for d in ex.diagnoses]
    if mistakes:
        out += ["", "**Named mistakes**", ""]
        out += [f"- **{_md(d.title)}** (`{_code(d.id)}`): {_md(d.feedback)}" for _, d in mistakes]
    failed = [(ex, c) for ex in result.exercises for c in ex.failed_cases]
    if failed:
        out += ["", "<details><summary>Failed cases</summary>", ""]
        out += [f"- `{_code(c.case_id)}` {_md(c.title)}: {_md(c.message.splitlines()[0] if c.message else c.outcome)}" for _, c in failed]
        out += ["", "</details>"]
    return "\n".join(out) + "\n\n"


def _md(text: str) -> str:
    """Learner-influenced text made inert in Markdown: no HTML, no table breaks, no links."""
    text = strip_ansi(text).replace("\n", " ")
    for ch, rep in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("[", "\\["), ("]", "\\]"), ("`", "'"), ("*", "\\*"), ("_", "\\_")):
        text = text.replace(ch, rep)
    return text


def _code(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ")
