"""Report renderers: one result model, one `render(result) -> str` per format."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..results import CaseResult, Diagnosis, ExerciseResult, GradeResult, InstanceResult

@dataclass(frozen=True)
class ReportFormat:
    """One `--format`: the module and function that render it (imported only when used, so a
    format's dependencies, e.g. matplotlib for html, cost nothing elsewhere), and its help line."""

    module: str
    function: str
    help: str
    options: tuple[str, ...] = ()  # which of render()'s keyword options the renderer takes


#: The report formats, in the order `--help` lists them; the CLI reads its choices from here.
REGISTRY: dict[str, ReportFormat] = {
    "text": ReportFormat("text", "render_text", "the terminal report (colour on a terminal)", ("color", "verbose", "max_failures", "concise")),
    "json": ReportFormat("json_report", "render_json", "the whole result as JSON (docs/output-formats.md)", ("timings",)),
    "junit": ReportFormat("junit", "render_junit", "JUnit XML, one testcase per case instance"),
    "gradescope": ReportFormat("gradescope", "render_gradescope", "Gradescope's results.json"),
    "github": ReportFormat("github", "render_github", "the text report in a log group plus annotations (GitHub Actions)"),
    "html": ReportFormat("html", "render_html", "a self-contained page with attention heatmaps (needs attnspec[html])", ("concise",)),
}
FORMATS = tuple(REGISTRY)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")

#: What each exercise status means, in words a learner understands.
STATUS_WORDS = {
    "graded": "graded",
    "missing": "function not defined",
    "not_implemented": "not implemented (still the starter stub)",
    "load_error": "the submission could not be loaded",
    "signature_error": "the function has the wrong signature",
    "not_graded": "not graded",
}


def render(result: "GradeResult", fmt: str, *, color: bool = False, verbose: bool = False, timings: bool = True, max_failures: int | None = None, concise: bool = False) -> str:
    """Render `result` in one of `FORMATS`; `color` and `verbose` only affect the text format;
    `concise` (first failing case per property) and `max_failures` limit the failure blocks of text;
    `timings=False` leaves wall-clock times out of the JSON format (reproducible bytes)."""
    spec = REGISTRY.get(fmt)
    if spec is not None:
        renderer = getattr(importlib.import_module(f"{__name__}.{spec.module}"), spec.function)
        given = {"color": color, "verbose": verbose, "max_failures": max_failures, "concise": concise, "timings": timings}
        return str(renderer(result, **{k: given[k] for k in spec.options}))
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------------------------------------
# Plain-text pieces shared by the renderers (each renderer decides layout and styling).


def fmt_points(x: float) -> str:
    """2.0 -> '2', 1.5 -> '1.5', 0.1 + 0.2 -> '0.3'."""
    return f"{round(float(x), 2):g}"


def plural(count: float, word: str) -> str:
    """'1 case', '3 cases', '1 point', '2.5 points'."""
    number = fmt_points(count) if isinstance(count, float) else str(count)
    return f"{number} {word}{'' if number == '1' else 's'}"


def fmt_value(x: object) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def strip_ansi(text: str) -> str:
    """Learner output without ANSI escape sequences (colors, cursor moves)."""
    return _ANSI.sub("", text)


def percent(score: float, max_score: float) -> str:
    return f"{100.0 * score / max_score:.1f}%" if max_score > 0 else "n/a"


def shows_inputs(case: "CaseResult") -> bool:
    """False for a hidden case whose inputs are withheld: then no example, samples or printed output."""
    return case.inputs is not None or case.visibility != "hidden"


def failing_instances(case: "CaseResult") -> list["InstanceResult"]:
    return [i for i in case.instances if i.outcome != "passed"]


STATIC_BACKENDS = ("any",)  # instances not tied to a backend (implementation rules)


def where(inst: "InstanceResult") -> str:
    return inst.backend if inst.dtype == "any" else f"{inst.backend} {inst.dtype}"


def sample_lines(details: dict[str, Any], limit: int = 4) -> list[str]:
    """Up to `limit` 'out[0, 1]: expected 0.5, got 0.25' lines from comparison details."""
    lines = []
    for s in list(details.get("samples") or [])[:limit]:
        index = ", ".join(str(i) for i in s.get("index", []))
        lines.append(f"[{index}]: expected {fmt_value(s.get('expected'))}, got {fmt_value(s.get('got'))}")
    return lines


def error_summary(details: dict[str, Any]) -> str | None:
    """'max abs error 0.3, max rel error 0.6 at [0, 1]; 5 of 64 elements differ', when the details have it."""
    if "max_abs_error" not in details:
        return None
    text = f"max abs error {fmt_value(details['max_abs_error'])}"
    if "max_rel_error" in details:
        text += f", max rel error {fmt_value(details['max_rel_error'])}"
    if details.get("worst_index") is not None:
        text += f" at [{', '.join(str(i) for i in details['worst_index'])}]"
    if "mismatched" in details and "total" in details:
        text += f"; {details['mismatched']} of {details['total']} elements differ"
    return text


def diagnosis_line(d: "Diagnosis") -> str:
    params = ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(d.params.items()))
    text = f"Likely mistake: {d.title}" + (f" ({params})" if params else "") + f" [{d.id}] -- {d.feedback}"
    return text + (f" (course: {d.reference})" if d.reference else "")


def verdict_lines(ex: "ExerciseResult") -> list[str]:
    """The per-exercise verdict and the named mistakes (or what is known), before any failure block."""
    lines = [exercise_headline(ex)]
    lines.extend(f"  {diagnosis_line(d)}" for d in ex.diagnoses)
    if not ex.diagnoses and ex.diagnosis_note and ex.failed_cases:
        lines.append(f"  {ex.diagnosis_note}")
    return lines


def shown_failures(ex: "ExerciseResult", *, concise: bool = False, max_failures: int | None = None) -> tuple[list["CaseResult"], int]:
    """The failing cases to show in full, and how many more failed: with `concise`, the first
    failing case of each property; with `max_failures`, at most that many."""
    failed = ex.failed_cases
    shown = failed
    if concise:
        seen: set[str] = set()
        shown = []
        for c in failed:
            if c.property not in seen:
                seen.add(c.property)
                shown.append(c)
    if max_failures is not None:
        shown = shown[: max(0, max_failures)]
    return shown, len(failed) - len(shown)


def hint_lines(inst: "InstanceResult") -> list[str]:
    """'Likely mistake: title [id]' for the hints a case kept after diagnosis (catalogue ids)."""
    from ..misconceptions import BY_ID

    hints = (inst.failure or {}).get("hints") if inst.failure is not None else None
    if hints is None:
        return [f"Likely mistake: {inst.likely}"] if inst.likely else []
    out = []
    for h in hints[:1]:
        m = BY_ID.get(h)
        if m is not None:
            out.append(f"Likely mistake: {m.title} [{m.id}]")
    return out


def exercise_headline(ex: "ExerciseResult") -> str:
    """'mha: 7/10 points, 3 of 4 cases passed' or 'mha: 0/10 points, function not defined'."""
    score = f"{fmt_points(ex.score)}/{fmt_points(ex.max_score)} points"
    if ex.status != "graded":
        return f"{ex.exercise}: {score}, {STATUS_WORDS.get(ex.status, ex.status)}"
    passed = sum(c.passed for c in ex.cases)
    return f"{ex.exercise}: {score}, {passed} of {len(ex.cases)} cases passed"


def case_failure_lines(case: "CaseResult", *, output: bool = True) -> list[str]:
    """The full plain-text story of a failed case: message, where, likely, example, samples, feedback, repro.

    For a hidden case whose inputs are withheld, the example, samples and printed output are left out.
    """
    bad = failing_instances(case)
    reveal = shows_inputs(case)
    lines = _instance_lines(bad, reveal) if bad else [f"{case.outcome} (no details were recorded)"]
    if reveal and case.inputs:
        lines.append(f"Inputs: {case.inputs}")
    if case.feedback:
        lines.append(f"Feedback: {case.feedback}")
    if case.repro:
        lines.append(f"Reproduce: {case.repro}")
    if output and reveal and case.output:
        lines.append("Printed output:")
        lines.extend(f"  | {line}" for line in strip_ansi(case.output).splitlines())
    return lines


def _instance_lines(bad: list["InstanceResult"], reveal: bool) -> list[str]:
    """Message of the first failing instance, where it failed, the likely mistake and the numbers."""
    first = bad[0]
    lines = [*(first.message or f"{first.outcome} (no message)").splitlines()]
    if first.backend not in STATIC_BACKENDS:
        lines.append(f"  on {where(first)}")
    if len(bad) > 1:
        lines.append(f"  also failing on: {', '.join(where(i) for i in bad[1:])}")
    lines.extend(hint_lines(first))
    if not reveal:
        return lines
    if first.example:
        lines.append(f"Smallest failing example: {first.example}")
    summary = error_summary(first.details)
    if summary:
        lines.append(summary[0].upper() + summary[1:])
    samples = sample_lines(first.details)
    if samples:
        lines.append("Expected vs got:")
        lines.extend(f"  {s}" for s in samples)
    return lines


def not_run_lines(result: "GradeResult") -> list[str]:
    """A notice that some cases count for the grade but were not run here; [] if none."""
    if not result.not_run:
        return []
    cases = sum(n.cases for n in result.not_run)
    points = sum(n.points for n in result.not_run)
    lines = [
        f"NOT RUN: {plural(cases, 'case')} worth {plural(points, 'point')} "
        f"{'were' if cases != 1 else 'was'} not run here, so this is not your final grade."
    ]
    for n in result.not_run:
        line = f"  {n.exercise}: {n.cases} {n.kind} case{'s' if n.cases != 1 else ''} ({plural(n.points, 'point')})"
        lines.append(line + (f" -- {n.note}" if n.note else ""))
    return lines


def load_problem_lines(result: "GradeResult") -> list[str]:
    """Errors raised by the submission's top-level code, then loader notes."""
    lines = []
    for err in result.load.errors:
        lines.append(f"{err.get('type') or 'Error'}: {err.get('message', '')}{_load_where(err)}")
        lines.extend(f"    {t}" for t in str(err.get("traceback") or "").splitlines())
    lines.extend(f"Note: {note}" for note in result.load.notes)
    return lines


def _load_where(err: dict[str, Any]) -> str:
    parts = [str(err["file"])] if err.get("file") else []  # a notebook's file already names the cell
    if err.get("line") is not None:
        parts.append(f"line {err['line']}")
    return f" ({', '.join(parts)})" if parts else ""


def sandbox_summary(info: dict[str, Any] | None) -> str:
    """One line for a report header: 'namespaces (pid, net, mount, ipc, uts, uid)'."""
    if not info:
        return "none"
    text = f"{info.get('level')}" + (f" ({', '.join(info['features'])})" if info.get("features") else "")
    if info.get("missing") and info.get("features"):
        text += f"; missing: {', '.join(info['missing'])}"
    return text
