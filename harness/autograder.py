"""Gradescope: the upload bundle, the choice of the learner's file, and the learner-facing results.

`attnspec autograder gradescope` builds the zip an instructor uploads: setup.sh and run_autograder
at the top, and under source/ the course's spec folders, an overrides file, attnspec as a wheel
built from this installation, pinned requirements and a settings file (attnspec.env) that
run_autograder reads, since Gradescope has no place for environment variables.

At grading time run_autograder calls two small commands around `attnspec grade`:
`attnspec autograder select` picks the file(s) to grade by the exercise names they define (never a
helper module or notes file), and `attnspec autograder results` merges the JSON reports into
results.json with every grader path taken out: learners see their own file names only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from . import __version__
from .errors import AttnspecError, UsageError
from .exercises import EXERCISE_NAMES, EXERCISES

TORCH_PIN = "2.13.0"
CORE_REQUIREMENTS = ("numpy", "pyyaml", "jsonschema", "hypothesis", "rich", "nbformat")
SKIP_DIRS = {"__pycache__", "__MACOSX", ".ipynb_checkpoints"}
REPRO_DROP = {"--spec": 1, "--overrides": 1, "--no-builtin": 0, "--output": 1, "--format": 1, "--output-dir": 1}


# ---------------------------------------------------------------- the bundle


def template_dir() -> Path:
    """The Gradescope scripts: packaged with attnspec, or exercises/ci/gradescope in a checkout."""
    try:
        packaged = Path(str(resources.files("attnspec.ci").joinpath("gradescope")))
        if (packaged / "run_autograder").is_file():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    checkout = Path(__file__).resolve().parents[1] / "exercises" / "ci" / "gradescope"
    if (checkout / "run_autograder").is_file():
        return checkout
    raise AttnspecError("the Gradescope templates (setup.sh, run_autograder) are not installed with this attnspec")


def requirements(torch: bool) -> list[str]:
    """attnspec's dependencies pinned to the versions installed here (what was tested), plus torch."""
    pins = []
    for name in CORE_REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    if torch:
        try:
            version = metadata.version("torch").split("+")[0]
        except metadata.PackageNotFoundError:
            version = TORCH_PIN
        pins.append(f"torch=={version}")
    return pins


def build_wheel(dest: Path) -> Path:
    """attnspec as a wheel, built from the source tree of this installation (an editable install)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise UsageError("this attnspec was not installed from a source tree, so no wheel can be built from it; pass --attnspec-wheel FILE")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(dest), str(root)],
        capture_output=True, text=True, timeout=600,
    )
    wheels = sorted(dest.glob("attnspec-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise AttnspecError(f"building the attnspec wheel failed:\n{proc.stderr[-2000:]}")
    return wheels[-1]


@dataclass
class BundleOptions:
    output: Path
    exercises: tuple[str, ...]
    backend: str = "auto"
    specs: tuple[str, ...] = ()
    overrides: str | None = None
    learner_requirements: str | None = None
    no_builtin: bool = False
    wheel: str | None = None


def build_bundle(opts: BundleOptions) -> list[str]:
    """Write the upload zip; returns its member names. The spec is validated first, as grading will load it."""
    from .loader import load_spec

    load_spec(list(opts.specs), builtin=not opts.no_builtin, overrides=opts.overrides)  # SpecError: file:line:col
    torch = opts.backend != "numpy"
    members: dict[str, bytes | Path] = {}
    templates = template_dir()
    for name in ("setup.sh", "run_autograder"):
        members[name] = templates / name
    spec_args = []
    for i, given in enumerate(opts.specs):
        src = Path(given)
        base = f"spec/{i}-{src.name}"
        if src.is_dir():
            for f in sorted(q for q in src.rglob("*") if q.is_file() and q.suffix in (".yaml", ".yml")):
                members[f"{base}/{f.relative_to(src).as_posix()}"] = f
        else:
            members[base] = src
        spec_args.append(base)
    if opts.overrides:
        members["overrides.yaml"] = Path(opts.overrides)
    if opts.learner_requirements:
        members["learner-requirements.txt"] = Path(opts.learner_requirements)
    with tempfile.TemporaryDirectory(prefix="attnspec-bundle-") as tmp:
        wheel = Path(opts.wheel) if opts.wheel else build_wheel(Path(tmp))
        members[f"{wheel.name}"] = wheel
        members["requirements.txt"] = ("\n".join(requirements(torch)) + "\n").encode()
        members["attnspec.env"] = _settings(opts, spec_args, wheel.name, torch).encode()
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(opts.output, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in members.items():
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                executable = name in ("setup.sh", "run_autograder")
                info.external_attr = (0o100755 if executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, content if isinstance(content, bytes) else content.read_bytes())
    return list(members)


def _settings(opts: BundleOptions, spec_args: list[str], wheel: str, torch: bool) -> str:
    """attnspec.env: shell assignments that run_autograder and setup.sh source (paths relative to source/)."""
    values = {
        "ATTNSPEC_EXERCISES": " ".join(opts.exercises),
        "ATTNSPEC_BACKEND": opts.backend,
        "ATTNSPEC_SPEC_DIRS": " ".join(spec_args),
        "ATTNSPEC_OVERRIDES": "overrides.yaml" if opts.overrides else "",
        "ATTNSPEC_NO_BUILTIN": "1" if opts.no_builtin else "0",
        "ATTNSPEC_WHEEL": wheel,
        "ATTNSPEC_TORCH": "1" if torch else "0",
    }
    lines = [f"# Written by attnspec {__version__} (attnspec autograder gradescope); read by setup.sh and run_autograder."]
    lines += [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- choosing the learner's file


def candidate_files(submission_dir: Path) -> list[Path]:
    found = []
    for p in sorted(submission_dir.rglob("*")):
        rel = p.relative_to(submission_dir)
        if any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts):
            continue
        if p.is_file() and p.suffix in (".py", ".ipynb"):
            found.append(p)
    return found


def defined_exercises(path: Path, exercises: tuple[str, ...]) -> set[str]:
    """The exercises whose function the file defines, or tried to (a def cut out by a syntax error counts)."""
    from .static import analyze
    from .submission import load_submission

    try:
        submission = load_submission(path)
    except AttnspecError:
        return set()
    names = set(analyze(submission).functions)
    text = "\n".join(p.text for p in submission.syntax_problems)
    return {e for e in exercises if e in names or re.search(rf"\bdef\s+{e}\s*\(", text)}


def select(submission_dir: Path, exercises: tuple[str, ...]) -> tuple[list[tuple[str, list[str]]], str | None]:
    """[(relative file, [exercises to grade in it])], or a message for the learner when a file is missing.

    Each exercise is graded in the file that defines it (preferring a file named after it, then
    the first in path order); helper modules and unrelated files are never graded."""
    files = candidate_files(submission_dir)
    if not files:
        return [], "The submission contains no .py file or .ipynb notebook. " + _expected(exercises)
    defines = {f: defined_exercises(f, exercises) for f in files}
    plan: dict[Path, list[str]] = {}
    missing = []
    for exercise in exercises:
        owners = [f for f in files if exercise in defines[f]]
        if not owners:
            missing.append(exercise)
            continue
        owners.sort(key=lambda f: (f.stem != exercise, len(f.relative_to(submission_dir).parts), str(f)))
        plan.setdefault(owners[0], []).append(exercise)
    if missing:
        listing = "\n".join(f"  {f.relative_to(submission_dir).as_posix()}" for f in files)
        words = " and ".join(f"{e}()" for e in missing)
        return [], f"No file in the submission defines {words}. {_expected(tuple(missing))}\nFiles found:\n{listing}"
    return [(f.relative_to(submission_dir).as_posix(), ex) for f, ex in plan.items()], None


def _expected(exercises: tuple[str, ...]) -> str:
    sigs = "; ".join(f"def {EXERCISES[e].signature}" for e in exercises)
    return f"Upload the file (for example {exercises[0]}.py or {exercises[0]}.ipynb) that defines: {sigs}"


# ---------------------------------------------------------------- results.json for learners


def failure_results(reason: str) -> dict[str, Any]:
    """A valid results.json with score 0 that tells the learner what to fix."""
    return {
        "score": 0.0,
        "output": f"The autograder could not grade this submission: {reason}",
        "output_format": "text",
        "tests": [{"name": "Submission", "score": 0.0, "status": "failed", "output": reason, "visibility": "visible"}],
        "extra_data": {"attnspec_status": "no_submission"},
    }


def learner_view(result: Any, rel: str, hide: list[str]) -> Any:
    """The result with learner-side repro commands and no grader path in any string."""
    from .results import GradeResult

    for case in result.cases:
        if case.repro:
            case.repro = learner_repro(case.repro, rel)
    data = _scrub(result.to_dict(), sorted({h.rstrip("/") for h in hide if h}, key=len, reverse=True))
    data["submission"]["path"] = rel
    return GradeResult.from_dict(data)


def learner_repro(repro: str, rel: str) -> str:
    """`attnspec grade FILE --case ID ...` without the grader's spec folders, overrides and outputs."""
    try:
        words = shlex.split(repro)
    except ValueError:
        return repro
    out, skip = [], 0
    for i, word in enumerate(words):
        if skip:
            skip -= 1
            continue
        if word in REPRO_DROP:
            skip = REPRO_DROP[word]
            continue
        out.append(rel if i == 2 else word)
    return shlex.join(out)


def _scrub(data: Any, roots: list[str]) -> Any:
    """Every grader path in `data` made relative to the submission (the learner sees no /autograder)."""
    from .cluster import replace_in_strings

    return replace_in_strings(data, {k: v for root in roots for k, v in ((root + "/", ""), (root, "."))})


def merge(results: list[Any]) -> Any:
    """One result from the per-file results of a multi-file submission (exercises in order)."""
    first = results[0]
    for other in results[1:]:
        first.exercises.extend(other.exercises)
        first.not_run.extend(other.not_run)
        first.load.errors.extend(other.load.errors)
        first.load.notes.extend(other.load.notes)
        if other.status != "graded":
            first.status, first.error = other.status, other.error
        first.timings["total"] = round(first.timings.get("total", 0.0) + other.timings.get("total", 0.0), 3)
    order = {e: i for i, e in enumerate(EXERCISE_NAMES)}
    first.exercises.sort(key=lambda e: order.get(e.exercise, 99))
    first.score = round(sum(e.score for e in first.exercises), 6)
    first.max_score = round(sum(e.max_score for e in first.exercises), 6)
    return first


# ---------------------------------------------------------------- commands


def add_parser(sub: Any) -> None:
    """`attnspec autograder ...` (registered by cli.py)."""
    a = sub.add_parser("autograder", help="build and run platform autograders (Gradescope)")
    asub = a.add_subparsers(dest="autograder_command", metavar="SUBCOMMAND", required=True)
    g = asub.add_parser("gradescope", help="build the Gradescope autograder zip", description="Build the zip to upload as a Gradescope programming assignment's autograder.")
    g.add_argument("--exercise", action="append", required=True, choices=EXERCISE_NAMES, help="an exercise of this assignment (repeatable); the learner's file is chosen by the functions it defines")
    g.add_argument("--backend", choices=("auto", "numpy", "torch", "both"), default="auto", help="numpy: no PyTorch in the image")
    g.add_argument("--spec", action="append", default=[], metavar="DIR", help="a course spec folder or file to ship (hidden cases included; repeatable)")
    g.add_argument("--no-builtin", action="store_true", help="grade with the course spec only")
    g.add_argument("--overrides", metavar="FILE", help="a course overrides file to ship and apply")
    g.add_argument("--learner-requirements", metavar="FILE", help="a requirements file of packages learners may import")
    g.add_argument("--attnspec-wheel", metavar="FILE", help="ship this attnspec wheel instead of building one from this installation")
    g.add_argument("--output", "-o", default="autograder.zip", metavar="ZIP")
    g.set_defaults(run=cmd_gradescope)
    s = asub.add_parser("select", help="(run_autograder) print the file(s) to grade, one 'FILE<TAB>EXERCISES' line each")
    s.add_argument("--submission-dir", required=True)
    s.add_argument("--exercise", action="append", default=[], choices=EXERCISE_NAMES)
    s.add_argument("--results", required=True, metavar="JSON", help="where to write results.json when no file can be graded")
    s.set_defaults(run=cmd_select)
    r = asub.add_parser("results", help="(run_autograder) results.json from attnspec's JSON reports, without grader paths")
    r.add_argument("--report", action="append", required=True, metavar="FILE=JSON", help="the submission's relative file name and its JSON report")
    r.add_argument("--hide", action="append", default=[], metavar="PATH", help="a grader path to remove from everything learners see")
    r.add_argument("--output", required=True)
    r.set_defaults(run=cmd_results)
    h = asub.add_parser("github", help="GitHub Actions: log groups, annotations and the job summary from saved JSON reports")
    h.add_argument("reports", nargs="+", metavar="REPORT.json", help="JSON reports written by attnspec grade --format json")
    h.add_argument("--min-score", type=float, metavar="PERCENT", help="a file passes at this percentage of its maximum (default: every case passes)")
    h.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"), metavar="FILE", help="append the Markdown summary here (default: $GITHUB_STEP_SUMMARY)")
    h.add_argument("--junit-dir", metavar="DIR", help="also write each report as JUnit XML here (the artifact)")
    h.set_defaults(run=cmd_github)


def cmd_gradescope(args: argparse.Namespace) -> int:
    for given in [*args.spec, *filter(None, [args.overrides, args.learner_requirements, args.attnspec_wheel])]:
        if not Path(given).exists():
            raise UsageError(f"{given}: no such file or folder")
    opts = BundleOptions(Path(args.output), tuple(dict.fromkeys(args.exercise)), args.backend, tuple(args.spec), args.overrides, args.learner_requirements, args.no_builtin, args.attnspec_wheel)
    names = build_bundle(opts)
    print(f"wrote {args.output} ({len(names)} files): upload it as the autograder of a Gradescope programming assignment", file=sys.stderr)
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    exercises = tuple(dict.fromkeys(args.exercise))
    if not exercises:  # no exercises configured: every exercise some file defines (at least one)
        found = {e for f in candidate_files(Path(args.submission_dir)) for e in defined_exercises(f, EXERCISE_NAMES)}
        exercises = tuple(e for e in EXERCISE_NAMES if e in found) or EXERCISE_NAMES[:1]
    plan, problem = select(Path(args.submission_dir), exercises)
    if problem:
        _write_json(Path(args.results), failure_results(problem))
        print(problem, file=sys.stderr)
        return 1
    for rel, graded in plan:
        print(f"{rel}\t{' '.join(graded)}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .reports.gradescope import gradescope_results
    from .results import GradeResult

    results = []
    for item in args.report:
        rel, _, path = item.partition("=")
        try:
            result = GradeResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise AttnspecError(f"cannot read the report of {rel}: {exc}") from None
        results.append(learner_view(result, rel, args.hide))
    _write_json(Path(args.output), gradescope_results(merge(results)))
    return 0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from .reports.json_report import finite

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(data), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def cmd_github(args: argparse.Namespace) -> int:
    """Exit 0 when every file passes, 1 when one is below the mark, 2 when one could not be graded."""
    from .reports.github import github_summary, passed, render_github
    from .reports.junit import render_junit
    from .results import GradeResult

    codes, sections = [], []
    for path in args.reports:
        try:
            result = GradeResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"{path}: not an attnspec JSON report ({exc})") from None
        sys.stdout.write(render_github(result, min_score=args.min_score))
        sections.append(github_summary(result, min_score=args.min_score))
        if args.junit_dir:
            target = Path(args.junit_dir) / (Path(path).stem + ".xml")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render_junit(result), encoding="utf-8")
        codes.append(0 if passed(result, args.min_score) else (2 if result.status != "graded" else 1))
    if args.summary:
        ok = codes.count(0)
        head = f"## attnspec: {ok} of {len(codes)} file{'s' if len(codes) != 1 else ''} passed\n\n"
        with open(args.summary, "a", encoding="utf-8") as fh:
            fh.write(head + "".join(sections))
    return max(codes)
