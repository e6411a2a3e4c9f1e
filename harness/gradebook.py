"""The class's gradebook (CSV or JSON, one row per student), report file names, and the class
summary an instructor reads first: score distribution, pass rate per case, how many learners
made each named mistake, errors and hangs.

Max points policy: a course enters ONE total in its LMS, but a PyTorch submission runs cases a
NumPy one cannot (gradient cases). `fixed_max` fixes the maximum per exercise from the spec,
whatever a submission ran:
  common (default): the points of the cases every backend the course allows can run (with
      --backend auto/both: the cases NumPy and PyTorch share, plus the implementation rules);
      torch-only points are extra credit, and the percentage is capped at 100.
  union: the points of every case any allowed backend can run; a NumPy submission cannot reach
      100 %.
The raw total always equals the student's report (`total`); `report_max` is the report's own max.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from .errors import UsageError
from .results import GradeResult
from .sanitize import terminal_safe

MAX_POLICIES = ("common", "union")
TIMEOUT_MARKS = ("did not finish within the case's time limit", "not run: time budget spent")
_NAME_SAFE = "-_.~@+=,"


# ---------------------------------------------------------------- report names


def report_name(key: str) -> str:
    """A file name for a student's report: the key (the student's relative path) with '/' and
    every other unusual character percent-escaped, so it is reversible (`urllib.parse.unquote`)
    and two different keys never share a name."""
    name = quote(key, safe=_NAME_SAFE)
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name or "%00"


def report_names(keys: list[tuple[str, str]]) -> list[str]:
    """One report name per (key, what to call it in a message); two submissions mapping to one
    name (e.g. alice.py and alice.ipynb, or one student id twice) is an error naming both."""
    seen: dict[str, str] = {}
    out = []
    for key, shown in keys:
        name = report_name(key)
        folded = name.lower()  # case-insensitive file systems would merge these too
        if folded in seen:
            raise UsageError(
                f"{terminal_safe(seen[folded])} and {terminal_safe(shown)} would both be reported as '{terminal_safe(name)}' "
                "(the same student id); rename one, or give --student-pattern"
            )
        seen[folded] = shown
        out.append(name)
    return out


# ---------------------------------------------------------------- max points


def fixed_max(spec: Any, options: Any, policy: str, exercises: tuple[str, ...]) -> dict[str, float]:
    """Max points per exercise under `policy` (see the module docstring)."""
    from .grade import _cases_for, _rules_selected

    allowed = {"numpy": {"numpy"}, "torch": {"torch"}}.get(options.backend, {"numpy", "torch"})
    out = {}
    for exercise in exercises:
        cases = _cases_for(spec, exercise, options)
        if policy == "union":
            counted = [c for c in cases if allowed & set(c.backends)]
        else:
            counted = [c for c in cases if allowed <= set(c.backends)]
        rules = spec.rules.get(exercise)
        points = sum(c.points for c in counted) + (rules.points if rules and _rules_selected(rules, options) else 0.0)
        out[exercise] = round(points, 6)
    return out


def policy_text(policy: str, maxima: dict[str, float], backend: str) -> str:
    total = sum(maxima.values())
    if policy == "union":
        how = "every case any allowed backend runs counts; a NumPy-only submission cannot reach 100 %"
    else:
        how = "cases every allowed backend runs; torch-only cases are extra credit, percent capped at 100"
    per = ", ".join(f"{e} {m:g}" for e, m in maxima.items())
    return f"max points {total:g} ({per}); policy '{policy}' for backend '{backend}': {how}"


# ---------------------------------------------------------------- rows


def student_status(result: GradeResult) -> str:
    if result.status == "interrupted":
        return "interrupted"
    if result.status != "graded":
        return "error"
    if any(e.status == "load_error" for e in result.exercises) and not any(c.passed for c in result.cases):
        return "error"
    return "passed" if result.all_passed else "failed"


def timeouts(result: GradeResult) -> int:
    """Cases that timed out or were not run because the time budget was spent."""
    return sum(1 for c in result.cases if any(any(m in i.message for m in TIMEOUT_MARKS) for i in c.instances))


def mistakes(result: GradeResult) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for e in result.exercises:
        for d in e.diagnoses:
            seen.setdefault(d.id, d.title)
    return list(seen.items())


def gradebook_row(student: str, result: GradeResult, maxima: dict[str, float], report: str, *, late: bool = False) -> dict[str, Any]:
    """One student's row: per-exercise score, total (= the report's score), fixed max, percent."""
    scores = {e.exercise: e.score for e in result.exercises}
    total = round(result.score, 6) if result.status == "graded" else 0.0
    fixed = round(sum(maxima.values()), 6)
    row: dict[str, Any] = {"student": student, "file": result.submission.get("path", "")}
    for exercise in maxima:
        row[exercise] = scores.get(exercise, 0.0) if result.status == "graded" else 0.0
    row.update(
        total=total,
        max=fixed,
        percent=round(100.0 * min(total, fixed) / fixed, 2) if fixed > 0 else 0.0,
        report_max=round(result.max_score, 6),
        status=student_status(result),
        late=late,
        timeouts=timeouts(result),
        mistakes="; ".join(f"{i}: {t}" for i, t in mistakes(result)),
        report=report,
    )
    return row


def write_gradebook(path: Path, rows: list[dict[str, Any]], header: str, summary: dict[str, Any] | None = None) -> None:
    """Write the gradebook atomically (a reader, or a killed run, never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        text = json.dumps({"policy": header, "rows": rows, "summary": summary or {}}, indent=2, sort_keys=False) + "\n"
    else:
        buf = io.StringIO()
        buf.write(f"# attnspec gradebook: {header}\n")
        if rows:
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_safe(v) for k, v in row.items()})
        text = buf.getvalue()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_safe(value: Any) -> Any:
    """Spreadsheets run cells starting with = + - @ as formulas (after leading spaces too): a
    learner's file name must not; control characters (terminal escapes, bidi overrides) are
    written as visible escapes, so `cat grades.csv` shows them instead of obeying them."""
    if isinstance(value, str):
        value = terminal_safe(value, multiline=True)
        if value.lstrip(" ")[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
        return value
    if isinstance(value, bool):
        return "yes" if value else ""
    return value


# ---------------------------------------------------------------- class summary


def class_summary(rows: list[dict[str, Any]], results: Iterable[GradeResult]) -> dict[str, Any]:
    """Distribution, pass rate per case, named mistakes, errors and hangs, for the rows so far."""
    results = list(results)
    graded = [r for r in rows if r["status"] in ("passed", "failed")]
    bins = [0] * 10
    for r in graded:
        bins[min(int(r["percent"] // 10), 9)] += 1
    case_runs: dict[str, list[int]] = {}
    for result in results:
        if result.status != "graded":
            continue
        for c in result.cases:
            if c.outcome == "not_run" and not c.instances:
                continue
            tally = case_runs.setdefault(c.case_id, [0, 0])
            tally[0] += c.passed
            tally[1] += 1
    counts: dict[str, list[Any]] = {}
    for result in results:
        for mid, title in mistakes(result):
            counts.setdefault(mid, [title, 0])[1] += 1
    n = len(graded)
    return {
        "students": len(rows),
        "graded": n,
        "mean_percent": round(sum(r["percent"] for r in graded) / n, 2) if n else None,
        "histogram": {f"{10 * i}-{10 * i + 10 if i < 9 else 100}%": bins[i] for i in range(10)},
        "pass_rate": {cid: {"passed": p, "ran": t, "rate": round(p / t, 4)} for cid, (p, t) in case_runs.items()},
        "mistakes": {mid: {"title": t, "students": k, "percent": round(100.0 * k / n, 1) if n else 0.0} for mid, (t, k) in sorted(counts.items(), key=lambda kv: -kv[1][1])},
        "errors": [r["student"] for r in rows if r["status"] == "error"],
        "hangs": [r["student"] for r in rows if r["timeouts"]],
        "interrupted": [r["student"] for r in rows if r["status"] == "interrupted"],
    }


def summary_lines(rows: list[dict[str, Any]], summary: dict[str, Any], elapsed: float, cached: int = 0) -> list[str]:
    """The class summary as terminal lines; every learner-controlled string is made terminal-safe."""
    width = max([len(terminal_safe(r["student"])) for r in rows] + [7])
    out = ["", f"{'student'.ljust(width)}  {'score':>15}  {'%':>6}  status"]
    for r in rows:
        score = f"{r['total']:g} / {r['max']:g}" if r["status"] in ("passed", "failed") else "-"
        pct = f"{r['percent']:.1f}" if r["status"] in ("passed", "failed") else "-"
        extra = f"  ({r['timeouts']} cases timed out or not run: time budget)" if r["timeouts"] else ""
        out.append(f"{terminal_safe(r['student']).ljust(width)}  {score:>15}  {pct:>6}  {r['status']}{extra}")
    n = summary["graded"]
    if n:
        out += ["", f"Score distribution ({n} graded, mean {summary['mean_percent']:.1f} %):"]
        top = max(summary["histogram"].values()) or 1
        for label, k in summary["histogram"].items():
            out.append(f"  {label:>8} {'#' * round(20 * k / top):<20} {k}")
    if summary["mistakes"]:
        out += ["", "Named mistakes:"]
        for mid, m in summary["mistakes"].items():
            out.append(f"  {m['percent']:5.1f} % ({m['students']} of {n}) {m['title']} [{mid}]")
    weak = sorted(((v["rate"], cid, v) for cid, v in summary["pass_rate"].items() if v["rate"] < 1.0))[:10]
    if weak:
        out += ["", "Cases passed by the fewest:"]
        for rate, cid, v in weak:
            out.append(f"  {100 * rate:5.1f} % ({v['passed']} of {v['ran']}) {cid}")
    for label, key in (("Grading errors", "errors"), ("Timed out (hang budget spent)", "hangs"), ("Interrupted", "interrupted")):
        if summary[key]:
            out.append(f"{label}: {', '.join(terminal_safe(s) for s in summary[key])}")
    note = f" ({cached} from the cache)" if cached else ""
    out.append(f"{len(rows)} submissions graded in {elapsed:.1f} s{note}")
    return out


def parse_gradebook_csv(text: str) -> list[dict[str, str]]:
    """Rows of a CSV gradebook (the '#' comment line skipped): for tests and scripts."""
    lines = [line for line in text.splitlines() if not re.match(r"^#", line)]
    return list(csv.DictReader(lines))
