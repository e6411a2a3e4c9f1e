"""Terminal report, built with rich at a fixed width so the same result always renders the same text.

Learner-provided strings (messages, printed output) are added as `Text`, never as markup, so a
message like `[multi_head_attention(x, ...)]` prints as written.
"""

from __future__ import annotations

from io import StringIO
from typing import Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..results import CaseResult, ExerciseResult, GradeResult
from ..sanitize import terminal_safe
from . import (
    sandbox_summary,
    STATUS_WORDS,
    case_failure_lines,
    diagnosis_line,
    failing_instances,
    fmt_points,
    load_problem_lines,
    not_run_lines,
    percent,
    plural,
    shown_failures,
    shows_inputs,
    strip_ansi,
)

WIDTH = 100
INDENT = "        "
TAGS = {"passed": ("PASS", "green"), "failed": ("FAIL", "red"), "error": ("ERROR", "bold red"), "not_run": ("SKIP", "yellow")}


def render_text(result: GradeResult, *, color: bool = False, verbose: bool = False, max_failures: int | None = None, concise: bool = False) -> str:
    """The report a person reads in a terminal; ANSI colors only when `color` is true."""
    out = StringIO()
    console = Console(
        file=out,
        force_terminal=color,
        color_system="standard" if color else None,
        no_color=not color,
        width=WIDTH,
        height=50,
        markup=False,
        highlight=False,
        emoji=False,
        force_jupyter=False,
        force_interactive=False,
        legacy_windows=False,
    )
    _TextReport(console, verbose, max_failures, concise).render(result)
    return out.getvalue()


class _TextReport:
    def __init__(self, console: Console, verbose: bool, max_failures: int | None = None, concise: bool = False):
        self.console = console
        self.verbose = verbose
        self.max_failures = max_failures
        self.concise = concise

    def line(self, *parts: str | tuple[str, str]) -> None:
        """Print one line from plain strings and (text, style) pairs; never wrapped, never cropped.
        Control characters (learner file names, messages, output) are shown as escapes."""
        safe = [(terminal_safe(p[0], multiline=True), p[1]) if isinstance(p, tuple) else terminal_safe(p, multiline=True) for p in parts]
        self.console.print(Text.assemble(*safe), soft_wrap=True)

    def block(self, lines: list[str], indent: str = "", style: str = "") -> None:
        for text in lines:
            self.line((indent + text, style))

    # -- sections --------------------------------------------------------------------------

    def render(self, result: GradeResult) -> None:
        self.header(result)
        if result.status != "graded":
            self.grading_error(result)
        self.load(result)
        for ex in result.exercises:
            self.exercise(ex)
        if result.exercises:
            self.summary_table(result)
        self.total(result)
        if result.not_run:
            self.line()
            self.block(not_run_lines(result), style="bold yellow")

    def header(self, result: GradeResult) -> None:
        tool = f"{result.tool.get('name', 'attnspec')} {result.tool.get('version', '')}".strip()
        sub = result.submission
        path = sub.get("path") or sub.get("display") or "?"
        parts: list[str | tuple[str, str]] = [(tool, "bold"), f" | submission: {path}" + (f" ({sub['kind']})" if sub.get("kind") else "")]
        backends = _backends(result)
        if backends:
            parts.append(f" | backends: {', '.join(backends)}")
        spec = result.spec.get("name") or result.spec.get("path")
        if spec:
            parts.append(f" | spec: {spec}")
        if result.sandbox:
            parts.append(f" | sandbox: {sandbox_summary(result.sandbox)}")
        self.line(*parts)

    def grading_error(self, result: GradeResult) -> None:
        self.line()
        self.line(("GRADING ERROR", "bold white on red"))
        self.line(("The grader itself failed, so this submission was not (fully) graded.", "bold red"))
        self.block(str(result.error or "no reason was recorded").splitlines(), indent="  ", style="red")
        self.line("This is a problem with grading, not a verdict on your code: report it to the course staff.")

    def load(self, result: GradeResult) -> None:
        problems = load_problem_lines(result)
        if problems:
            self.line()
            self.line(("Problems while loading the submission:" if result.load.errors else "Notes on loading the submission:", "bold red" if result.load.errors else "bold"))
            self.block(problems, indent="  ")
        if result.load.output:
            self.line()
            self.line((f"Printed while loading{_truncated(result.load.output, result.load.output_bytes)}:", "bold"))
            self.block(strip_ansi(result.load.output).splitlines(), indent="  | ", style="dim")

    def exercise(self, ex: ExerciseResult) -> None:
        self.line()
        score = f"{fmt_points(ex.score)}/{fmt_points(ex.max_score)} points"
        if ex.status == "graded":
            full = ex.score >= ex.max_score and not ex.failed_cases
            self.line((f"[{ex.exercise}]", "bold"), " ", (score, "bold green" if full else "bold"))
        else:
            self.line((f"[{ex.exercise}]", "bold"), " ", (f"{ex.status.upper()}: {score}", "bold red"))
            self.line((f"  {STATUS_WORDS.get(ex.status, ex.status)}", "red"))
            self.block(ex.message.splitlines(), indent="  ")
        if ex.location and self.verbose:
            self.line(f"  defined at {ex.location}" + (f": {ex.signature}" if ex.signature else ""))
        self.diagnoses(ex)  # the verdict and the named mistakes first, then the evidence
        self.block(ex.backend_notes, indent="  note: ", style="dim")
        shown, more = shown_failures(ex, concise=self.concise, max_failures=self.max_failures)
        for case in shown:
            self.failed_case(case)
        if more:
            self.line((f"  ... and {plural(more, 'more failing case')} not shown (run with --max-failures N or without --concise to see them)", "yellow"))
        self.passed_cases(ex)
        self.not_run_cases(ex)

    def failed_case(self, case: CaseResult) -> None:
        tag, style = TAGS[case.outcome]
        points = f"{fmt_points(case.points)}/{fmt_points(case.max_points)} points"
        self.line("  ", (f"{tag:<5}", style), " ", (case.case_id, "bold"), f" ({case.title})  {points}")
        if not shows_inputs(case):
            self.line((f"{INDENT}(hidden case: its inputs and printed output are not shown)", "dim"))
        lines = case_failure_lines(case)
        styles = {"Likely mistake:": "magenta", "Reproduce:": "cyan", "Feedback:": "italic"}
        for text in lines:
            style = next((s for prefix, s in styles.items() if text.startswith(prefix)), "")
            self.line((INDENT + text, style))
        if self.verbose:
            for inst in failing_instances(case)[1:]:
                self.line((f"{INDENT}{inst.backend} {inst.dtype}: {inst.message}", "dim"))

    def passed_cases(self, ex: ExerciseResult) -> None:
        passed = [c for c in ex.cases if c.passed]
        if not passed:
            return
        if not self.verbose:
            self.line("  ", ("PASS ", "green"), f" {plural(len(passed), 'case')} passed ({plural(sum(c.points for c in passed), 'point')})")
            return
        for c in passed:
            self.line("  ", ("PASS ", "green"), f" {c.case_id} ({c.title})  {fmt_points(c.points)}/{fmt_points(c.max_points)} points")

    def not_run_cases(self, ex: ExerciseResult) -> None:
        skipped = [c for c in ex.cases if c.outcome == "not_run"]
        if skipped:
            ids = ", ".join(c.case_id for c in skipped)
            worth = fmt_points(sum(c.max_points for c in skipped))
            why = {c.instances[0].message.split(" (")[0] for c in skipped if c.instances}
            reason = f" [{'; '.join(sorted(why))}]" if why else ""
            self.line("  ", ("SKIP ", "yellow"), f" {len(skipped)} not run ({worth} points){reason}: {ids}")

    def diagnoses(self, ex: ExerciseResult) -> None:
        for d in ex.diagnoses:
            self.line(("  " + diagnosis_line(d), "bold magenta"))
            if self.verbose and d.evidence:
                evidence = ", ".join(f"{k}={v}" for k, v in sorted(d.evidence.items()))
                self.line((f"    evidence ({d.backend}): {evidence}", "dim"))
        if not ex.diagnoses and ex.diagnosis_note:
            self.line((f"  {ex.diagnosis_note}", "dim"))

    def summary_table(self, result: GradeResult) -> None:
        table = Table(box=box.ASCII, show_header=True, header_style="bold")
        columns: tuple[tuple[str, Literal["left", "right"]], ...] = (("Exercise", "left"), ("Status", "left"), ("Backends", "left"), ("Passed", "right"), ("Score", "right"))
        for name, justify in columns:
            table.add_column(name, justify=justify, overflow="fold")
        for ex in result.exercises:
            passed = f"{sum(c.passed for c in ex.cases)}/{len(ex.cases)}" if ex.cases else "-"
            score = f"{fmt_points(ex.score)}/{fmt_points(ex.max_score)}"
            table.add_row(Text(ex.exercise), Text(ex.status), Text(", ".join(ex.backends) or "-"), passed, score)
        self.line()
        self.console.print(table)

    def total(self, result: GradeResult) -> None:
        if result.status != "graded":
            self.line(("No total score: grading did not complete (see GRADING ERROR above).", "bold red"))
            return
        total = f"Total: {fmt_points(result.score)}/{fmt_points(result.max_score)} points ({percent(result.score, result.max_score)})"
        self.line((total, "bold"))
        ran = len(result.cases)
        if result.all_passed and ran and result.not_run:
            self.line(("Every case that ran here passed, but not every case was run (see below).", "yellow"))
        elif result.all_passed and ran:
            self.line((f"All {ran} cases passed." if ran != 1 else "The one case that ran passed.", "bold green"))


def _backends(result: GradeResult) -> list[str]:
    seen: list[str] = []
    for ex in result.exercises:
        seen.extend(b for b in ex.backends if b not in seen)
    return seen or [str(b) for b in result.options.get("backends", [])]


def _truncated(output: str, size: int) -> str:
    return f" ({size} bytes, truncated)" if size > len(output.encode("utf-8", "replace")) else ""
