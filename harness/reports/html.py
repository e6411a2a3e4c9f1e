"""The HTML report: verdict and named mistakes first, then one section per failing case.

Self-contained (inline CSS, heatmaps as embedded PNGs, no scripts, no CDN, no web fonts), so it
opens offline in a browser and inside Jupyter (`render_html(result, fragment=True)` or
`HtmlReport(result)`, whose `_repr_html_` returns a fragment with styles scoped to the report).
Needs the `html` extra (jinja2, matplotlib); the other formats never import this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import (
    STATIC_BACKENDS,
    STATUS_WORDS,
    error_summary,
    exercise_headline,
    failing_instances,
    fmt_points,
    fmt_value,
    load_problem_lines,
    not_run_lines,
    percent,
    shows_inputs,
    strip_ansi,
    where,
)

if TYPE_CHECKING:
    from ..results import CaseResult, GradeResult


def environment() -> Any:
    """The jinja2 environment over the package's templates (autoescaped)."""
    try:
        import jinja2
    except ImportError:
        from ..errors import UsageError

        raise UsageError("the HTML report needs jinja2 and matplotlib: pip install 'attnspec[html]'") from None
    return jinja2.Environment(loader=jinja2.PackageLoader("attnspec", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def require_html_extra() -> None:
    """Fail before grading, not after, when jinja2 or matplotlib is missing."""
    from .heatmaps import pyplot

    environment()
    pyplot()


def render_html(result: "GradeResult", *, fragment: bool = False, concise: bool = False, note: str | None = None) -> str:
    """The report as a whole page, or as a fragment for Jupyter; `concise` keeps the first failing
    case per property; `note` is a line shown under the verdict (e.g. what was graded)."""
    template = environment().get_template("report_fragment.html.j2" if fragment else "report.html.j2")
    return template.render(report=report_view(result, concise=concise, note=note))


class HtmlReport:
    """A report that Jupyter renders inline (`_repr_html_`) and a terminal prints as text."""

    def __init__(self, result: "GradeResult", *, concise: bool = True, note: str | None = None):
        self.result = result
        self.concise = concise
        self.note = note

    def _repr_html_(self) -> str:
        return render_html(self.result, fragment=True, concise=self.concise, note=self.note)

    def __repr__(self) -> str:
        from .text import render_text

        text = render_text(self.result)
        return f"{self.note}\n\n{text}" if self.note else text


# ---------------------------------------------------------------- the view model


def report_view(result: "GradeResult", *, concise: bool = False, note: str | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain data (the template only lays it out)."""
    failing = [c for c in result.cases if c.outcome in ("failed", "error")]
    shown = _first_per_property(failing) if concise else failing
    passed = [c for c in result.cases if c.passed]
    return {
        "title": f"attnspec report: {result.submission.get('path')}",
        "submission": result.submission.get("path"),
        "note": note,
        "status": result.status,
        "error": result.error,
        "score": fmt_points(result.score),
        "max_score": fmt_points(result.max_score),
        "percent": percent(result.score, result.max_score),
        "verdict": _verdict(result, failing),
        "verdict_class": "pass" if result.all_passed else ("error" if result.status != "graded" else "fail"),
        "exercises": [_exercise_view(e) for e in result.exercises],
        "mistakes": [{"exercise": e.exercise, "id": d.id, "title": d.title, "feedback": d.feedback, "reference": d.reference} for e in result.exercises for d in e.diagnoses],
        "diagnosis_notes": [f"{e.exercise}: {e.diagnosis_note}" for e in result.exercises if e.diagnosis_note],
        "not_run": not_run_lines(result),
        "load_problems": load_problem_lines(result),
        "failing": [_case_view(c) for c in shown],
        "omitted": len(failing) - len(shown),
        "passed": [{"id": c.case_id, "title": c.title, "points": fmt_points(c.points)} for c in passed],
        "tool": f"{result.tool.get('name', 'attnspec')} {result.tool.get('version', '')}".strip(),
        "spec_digest": (result.spec or {}).get("digest"),
    }


def _first_per_property(cases: list["CaseResult"]) -> list["CaseResult"]:
    seen: set[tuple[str, str]] = set()
    out = []
    for c in cases:
        if (c.exercise, c.property) not in seen:
            seen.add((c.exercise, c.property))
            out.append(c)
    return out


def _verdict(result: "GradeResult", failing: list["CaseResult"]) -> str:
    if result.status != "graded":
        return "Grading failed: the score is not a grade."
    if result.all_passed:
        return "Every graded case passed."
    not_graded = [e.exercise for e in result.exercises if e.status != "graded"]
    parts = []
    if failing:
        parts.append(f"{len(failing)} of {len(result.cases)} cases failed")
    if not_graded:
        parts.append(f"not graded: {', '.join(not_graded)}")
    return "; ".join(parts).capitalize() + "."


def _exercise_view(e: Any) -> dict[str, Any]:
    return {
        "name": e.exercise,
        "headline": exercise_headline(e),
        "status": e.status,
        "status_words": STATUS_WORDS.get(e.status, e.status),
        "ok": e.status == "graded" and all(c.passed for c in e.cases),
        "score": fmt_points(e.score),
        "max_score": fmt_points(e.max_score),
        "passed": sum(c.passed for c in e.cases),
        "total": len(e.cases),
        "message": e.message,
        "notes": list(e.backend_notes),
        "location": e.location,
    }


def _case_view(case: "CaseResult") -> dict[str, Any]:
    bad = failing_instances(case)
    reveal = shows_inputs(case)
    first = bad[0] if bad else None
    view: dict[str, Any] = {
        "anchor": "case-" + "".join(ch if ch.isalnum() else "-" for ch in case.case_id),
        "id": case.case_id,
        "title": case.title,
        "exercise": case.exercise,
        "property": case.property,
        "outcome": case.outcome,
        "points": fmt_points(case.points),
        "max_points": fmt_points(case.max_points),
        "hidden": not reveal,
        "message": (first.message if first else "") or f"{case.outcome} (no details were recorded)",
        "where": where(first) if first and first.backend not in STATIC_BACKENDS else None,
        "also": [where(i) for i in bad[1:]],
        "likely": first.likely if first else None,
        "feedback": case.feedback,
        "repro": case.repro,
        "example": None,
        "summary": None,
        "samples": [],
        "inputs": None,
        "output": None,
        "figure": None,
    }
    if not reveal:
        return view  # a hidden case: the verdict, the kind of failure and the feedback only
    if first is not None:
        view["example"] = first.example
        summary = error_summary(first.details)
        view["summary"] = summary[0].upper() + summary[1:] if summary else None
        view["samples"] = [
            {"index": ", ".join(str(i) for i in s.get("index", [])), "expected": fmt_value(s.get("expected")), "got": fmt_value(s.get("got"))}
            for s in list(first.details.get("samples") or [])[:6]
        ]
    view["inputs"] = case.inputs
    view["output"] = strip_ansi(case.output) if case.output else None
    if case.patterns and case.patterns.get("panels"):
        view["figure"] = _figure(case.patterns)
    return view


def _figure(patterns: dict[str, Any]) -> dict[str, Any]:
    from .heatmaps import draw_patterns, plural_noun

    drawn = draw_patterns(patterns)
    what = {"attention": "Attention weights", "residual": "Residual stream", "output": "Outputs"}[patterns["kind"]]
    return {
        **drawn,
        "what": what,
        "how": patterns.get("how"),
        "problem": patterns.get("problem"),
        "example": patterns.get("example"),
        "where": f"{patterns.get('backend')} {patterns.get('dtype')}",
        "rows": patterns["rows"],
        "columns": patterns["columns"],
        "rows_plural": plural_noun(patterns["rows"]),
        "columns_plural": plural_noun(patterns["columns"]),
        "blocked": any(p.get("blocked") for p in patterns["panels"]),
        "table": [{**row, "expected": f"{row['expected']:.4g}", "got": "not a number" if row["got"] is None else f"{row['got']:.4g}", "diff": f"{row['diff']:.3g}"} for row in drawn["table"]],
    }
