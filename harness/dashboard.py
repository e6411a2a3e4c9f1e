"""The class dashboard: one HTML page from the JSON reports of a class run.

    attnspec grade submissions/ --format json --output-dir reports/
    attnspec dashboard reports/ -o class.html

Score distribution (histogram), pass rate per case, and how often each named mistake was made,
with an example heatmap from one submission that made it. Reads every JSON report in the folder
(and the reports inside a gradebook JSON, when one is there and holds them); files that are not
attnspec reports (Gradescope results, other JSON) are skipped and counted.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .results import GradeResult
from .reports import fmt_points, percent

REPORT_KEYS = ("schema_version", "submission", "exercises")
GRADEBOOK_KEYS = ("reports", "submissions", "results", "students")


@dataclass
class ClassRun:
    """The reports of one class run, by name (the report file's stem), and what was skipped."""

    reports: dict[str, GradeResult] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _is_report(data: Any) -> bool:
    return isinstance(data, dict) and all(k in data for k in REPORT_KEYS)


def load_class(folder: str | Path) -> ClassRun:
    """Every attnspec JSON report in `folder`, plus those inside a gradebook JSON."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{folder}: not a folder of JSON reports (write them with: attnspec grade DIR --format json --output-dir {folder})")
    run = ClassRun()
    for path in sorted(root.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            run.skipped.append(path.name)
            continue
        found = [(path.stem, data)] if _is_report(data) else _gradebook_reports(path.stem, data)
        if not found:
            run.skipped.append(path.name)
        for name, item in found:
            try:
                result = GradeResult.from_dict(item)
            except (TypeError, KeyError, ValueError):
                run.skipped.append(f"{path.name} ({name})")
                continue
            run.reports.setdefault(name, result)
    if not run.reports:
        raise UsageError(f"{folder}: no attnspec JSON reports found (write them with: attnspec grade DIR --format json --output-dir {folder})")
    return run


def _gradebook_reports(stem: str, data: Any) -> list[tuple[str, dict[str, Any]]]:
    """Reports held by a gradebook file, if its shape shows them (a list or mapping of reports)."""
    if not isinstance(data, dict):
        return []
    for key in GRADEBOOK_KEYS:
        items = data.get(key)
        if isinstance(items, dict):
            items = [v for _, v in sorted(items.items())]
        if isinstance(items, list):
            reports = [x.get("report", x) for x in items if isinstance(x, dict)]
            reports = [r for r in reports if _is_report(r)]
            if reports:
                return [(Path(str(r["submission"].get("path") or f"{stem}-{i}")).stem, r) for i, r in enumerate(reports)]
    return []


# ---------------------------------------------------------------- the page


def dashboard_view(run: ClassRun, folder: Path | None = None, page_dir: Path | None = None) -> dict[str, Any]:
    """Everything the dashboard template shows, as plain data."""
    graded = {n: r for n, r in run.reports.items() if r.status == "graded"}
    scores = [r.score for r in graded.values()]
    max_score = max((r.max_score for r in graded.values()), default=0.0)
    return {
        "count": len(run.reports),
        "graded": len(graded),
        "errors": sorted(n for n, r in run.reports.items() if r.status != "graded"),
        "skipped": run.skipped,
        "max_score": fmt_points(max_score),
        "mean": fmt_points(statistics.fmean(scores)) if scores else "-",
        "median": fmt_points(statistics.median(scores)) if scores else "-",
        "full_marks": sum(r.all_passed for r in graded.values()),
        "histogram": _histogram(scores, max_score) if scores else None,
        "cases": _pass_rates(graded),
        "mistakes": _mistakes(graded),
        "students": [_student(n, r, folder, page_dir) for n, r in sorted(run.reports.items())],
    }


def _histogram(scores: list[float], max_score: float) -> dict[str, Any]:
    from .reports.heatmaps import png_data_uri, pyplot

    plt = pyplot()
    top = max(max_score, max(scores), 1.0)
    if float(top).is_integer() and top <= 60:  # one bar per whole point
        bins, span = int(top) + 1, (-0.5, top + 0.5)
    else:
        bins, span = 20, (0.0, top)
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    counts, edges, _ = ax.hist(scores, bins=bins, range=span, color="#3b528b", edgecolor="white")
    ax.set_xlabel("score (points)")
    ax.set_ylabel("submissions")
    ax.set_title(f"Score distribution ({len(scores)} submissions, maximum {fmt_points(max_score)})", fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    exact = Counter(fmt_points(x) for x in scores)
    alt = "Histogram of scores: " + "; ".join(f"{n} with {score}" for score, n in sorted(exact.items(), key=lambda kv: float(kv[0]))) + "."
    return {"src": png_data_uri(fig), "alt": alt}


def _pass_rates(graded: dict[str, GradeResult]) -> list[dict[str, Any]]:
    order: dict[str, dict[str, Any]] = {}
    for result in graded.values():
        for case in result.cases:
            if case.outcome == "not_run":
                continue
            row = order.setdefault(case.case_id, {"id": case.case_id, "exercise": case.exercise, "title": case.title, "passed": 0, "run": 0})
            row["run"] += 1
            row["passed"] += case.passed
    rows = list(order.values())
    for row in rows:
        row["rate"] = 100.0 * row["passed"] / row["run"] if row["run"] else 0.0
        row["percent"] = f"{row['rate']:.0f}%"
    return rows


def _mistakes(graded: dict[str, GradeResult]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    who: dict[tuple[str, str, str], list[str]] = {}
    feedback: dict[tuple[str, str, str], str] = {}
    for name, result in sorted(graded.items()):
        for ex in result.exercises:
            for d in ex.diagnoses:
                key = (ex.exercise, d.id, d.title)
                counts[key] += 1
                who.setdefault(key, []).append(name)
                feedback.setdefault(key, d.feedback)
    out = []
    for key, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        exercise, mistake_id, title = key
        example = _example_figure(graded, who[key], exercise)
        out.append({"exercise": exercise, "id": mistake_id, "title": title, "feedback": feedback[key], "count": count, "share": percent(count, len(graded)), "who": who[key], "example": example})
    return out


def _example_figure(graded: dict[str, GradeResult], names: list[str], exercise: str) -> dict[str, Any] | None:
    """The heatmap that shows the mistake best: the first submission with it, its case with the
    largest difference between the expected and the learner's patterns."""
    from .patterns import largest_differences

    for name in names:
        drawn = [(c.case_id, c.patterns) for c in graded[name].cases if c.exercise == exercise and c.patterns and c.patterns.get("panels")]
        if drawn:
            case_id, best = max(drawn, key=lambda cp: max([d["diff"] for d in largest_differences(cp[1], 1)], default=0.0))
            from .reports.heatmaps import draw_patterns

            return {**draw_patterns(best), "submission": name, "case": case_id}
    return None


def _student(name: str, result: GradeResult, folder: Path | None, page_dir: Path | None) -> dict[str, Any]:
    """One row of the class table; links to the submission's HTML report when it sits beside its JSON one."""
    page = f"{name}.html"
    link = None
    if folder is not None and (folder / page).exists():
        link = os.path.relpath(folder / page, page_dir) if page_dir is not None else page
    return {
        "name": name,
        "score": fmt_points(result.score) if result.status == "graded" else "-",
        "max_score": fmt_points(result.max_score),
        "status": "error" if result.status != "graded" else ("passed" if result.all_passed else "failed"),
        "mistakes": ", ".join(d.title for e in result.exercises for d in e.diagnoses),
        "link": Path(link).as_posix() if link else None,
    }


def render_dashboard(run: ClassRun, folder: Path | None = None, title: str = "attnspec class dashboard", page_dir: Path | None = None) -> str:
    """The dashboard page; `page_dir` is where it will be written (for links to per-submission pages)."""
    from .reports.html import environment

    return environment().get_template("dashboard.html.j2").render(d=dashboard_view(run, folder, page_dir), title=title)


def write_dashboard(folder: str | Path, output: str | Path) -> str:
    """Write the dashboard for the reports in `folder` to `output`; returns a one-line summary."""
    run = load_class(folder)
    target = Path(output)
    html = render_dashboard(run, Path(folder), title=f"attnspec class dashboard: {Path(folder).name}", page_dir=target.resolve().parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    skipped = f", {len(run.skipped)} other JSON file(s) skipped" if run.skipped else ""
    return f"{len(run.reports)} report(s){skipped}"
