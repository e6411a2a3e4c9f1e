"""The `attnspec` command: grade submissions, validate and check spec files, start new cases.

The report goes to stdout (or --output); progress and warnings go to stderr. Exit codes:
0 every graded case passed (or the score reached --min-score), 1 some case failed,
2 usage, setup or internal errors (a grading report that says so is still written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import AttnspecError, SpecError, UsageError
from .exercises import BACKENDS, EXERCISE_NAMES

DEFAULT_MEMORY_MB = 2048
REPORT_SUFFIX = {"text": ".txt", "json": ".json", "junit": ".xml", "gradescope": ".json"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except AttnspecError as exc:
        print(f"attnspec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("attnspec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnspec", description="Grade attention exercises against a YAML spec.")
    parser.add_argument("--version", action="version", version=f"attnspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("grade", help="grade .py or .ipynb submissions", description="Grade learner submissions (.py files, .ipynb notebooks, or folders of them).")
    g.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    g.add_argument("--exercise", action="append", choices=EXERCISE_NAMES, default=[], help="grade only this exercise (repeatable)")
    g.add_argument("--backend", choices=("auto", *BACKENDS, "both"), default="auto", help="auto: torch if the file imports torch, else numpy; a file that works with both is graded on both")
    _spec_options(g)
    g.add_argument("--format", choices=("text", "json", "junit", "gradescope"), default="text")
    g.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
    g.add_argument("--output-dir", metavar="DIR", help="with several submissions: one report per submission in DIR")
    g.add_argument("--visible-only", action="store_true", help="run only visible cases (the report says how many hidden ones were not run)")
    g.add_argument("--show-hidden", action="store_true", help="show the inputs and details of hidden cases")
    g.add_argument("--case", action="append", default=[], metavar="ID", help="run only this case (repeatable); the repro command in reports uses it")
    g.add_argument("--min-score", type=_percent, metavar="PERCENT", help="exit 0 if the total score is at least PERCENT of the maximum, else 1")
    g.add_argument("--case-timeout", type=float, metavar="S", help="cap every case's time limit at S seconds")
    g.add_argument("--submission-timeout", type=float, default=600.0, metavar="S", help="total time limit per submission (default 600)")
    g.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MB", help=f"memory limit for learner code, per case (default {DEFAULT_MEMORY_MB})")
    g.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="grade N submissions at a time")
    g.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    g.add_argument("--verbose", "-v", action="store_true", help="list passed cases too")
    g.add_argument("--max-failures", type=int, metavar="N", help="text report: show at most N failing cases per exercise in full (and a count of the rest)")
    g.add_argument("--concise", action="store_true", help="text report: the first failing case per property and a count of the rest")
    g.set_defaults(run=cmd_grade)

    s = sub.add_parser("spec", help="instructor tools for spec files")
    ssub = s.add_subparsers(dest="spec_command", metavar="SUBCOMMAND", required=True)
    v = ssub.add_parser("validate", help="check spec files: schema and semantic errors as file:line:column")
    v.add_argument("paths", nargs="*", metavar="PATH", help="extra spec files or folders (the shipped spec is always included unless --no-builtin)")
    _spec_options(v)
    v.set_defaults(run=cmd_validate)
    c = ssub.add_parser("check", help="run the reference and every known mistake against the spec (kill matrix)")
    _spec_options(c)
    c.add_argument("--exercise", action="append", choices=EXERCISE_NAMES, default=[])
    c.add_argument("--backend", choices=(*BACKENDS, "both", "auto"), default="auto")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.add_argument("--output", "-o", metavar="FILE")
    c.set_defaults(run=cmd_check)
    n = ssub.add_parser("new", help="print (or write) a valid case skeleton for a property")
    n.add_argument("--exercise", required=True, choices=EXERCISE_NAMES)
    n.add_argument("--property", required=True, metavar="PROP")
    n.add_argument("--id", metavar="ID", help="case id (default: <exercise>.<property>.new)")
    n.add_argument("--output", "-o", metavar="FILE", help="write a new spec file (refuses to overwrite)")
    n.set_defaults(run=cmd_new)
    p = ssub.add_parser("properties", help="list the properties a case can use")
    p.set_defaults(run=cmd_properties)
    m = ssub.add_parser("misconceptions", help="list the catalogue of known mistakes")
    m.set_defaults(run=cmd_misconceptions)
    return parser


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", action="append", default=[], metavar="DIR", help="add the cases in this folder or file (repeatable), e.g. a course's hidden cases")
    p.add_argument("--no-builtin", action="store_true", help="do not load the shipped spec")


def _percent(text: str) -> float:
    value = float(text.rstrip("%"))
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return value


# ---------------------------------------------------------------- grade


def _expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(str(q) for q in p.iterdir() if q.suffix in (".py", ".ipynb") and q.is_file())
            if not found:
                raise UsageError(f"{given}: folder contains no .py or .ipynb files")
            out.extend(found)
        else:
            out.append(given)
    return out


def _needs_torch(paths: list[str], backend: str) -> bool:
    if backend in ("torch", "both"):
        return True
    if backend == "numpy":
        return False
    from .static import analyze
    from .submission import load_submission

    for path in paths:
        try:
            if "torch" in analyze(load_submission(path)).backend_hints:
                return True
        except AttnspecError:
            continue
    return False


def cmd_grade(args: argparse.Namespace) -> int:
    start = time.monotonic()
    paths = _expand(args.submissions)
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such submission file: {', '.join(missing)}")
    if len(paths) > 1 and args.output:
        raise UsageError("--output takes one submission; use --output-dir for several")
    if len(paths) > 1 and args.format != "text" and not args.output_dir:
        raise UsageError(f"several submissions with --format {args.format} need --output-dir (one report per submission)")
    from .runner import Limits, WorkerPool

    pool = WorkerPool()  # start the worker (and torch's import) before our own imports
    try:
        if _needs_torch(paths, args.backend):
            from .grade import torch_available

            if torch_available():
                pool.preload(["torch"])
        from .grade import GradeOptions
        from .loader import load_spec

        repro = [x for d in args.spec for x in ("--spec", d)] + (["--no-builtin"] if args.no_builtin else [])
        if args.backend != "auto":
            repro += ["--backend", args.backend]
        if args.case_timeout:
            repro += ["--case-timeout", f"{args.case_timeout:g}"]
        if args.memory != DEFAULT_MEMORY_MB:
            repro += ["--memory", str(args.memory)]
        spec_error: AttnspecError | None = None
        try:
            spec = load_spec(args.spec, builtin=not args.no_builtin)
        except SpecError as exc:
            spec, spec_error = None, exc
        limits = Limits(memory_mb=args.memory, submission_timeout=args.submission_timeout, case_timeout=args.case_timeout or Limits.case_timeout)
        options = GradeOptions(
            exercises=tuple(dict.fromkeys(args.exercise)),
            backend=args.backend,
            visible_only=args.visible_only,
            show_hidden=args.show_hidden,
            case_ids=tuple(args.case),
            limits=limits,
            repro_args=tuple(repro),
        )
        if spec is not None and args.case_timeout:
            spec = _cap_timeouts(spec, args.case_timeout)
        if spec is not None and args.case:
            known = {c.id for c in spec.cases} | {r.case_id for r in spec.rules.values()}
            unknown = [c for c in args.case if c not in known]
            if unknown:
                raise UsageError(f"unknown case id(s): {', '.join(unknown)} (see `attnspec spec validate` for the loaded cases)")

        def one(path: str) -> tuple[str, Any]:
            if spec_error is not None:
                return path, _error_result(path, f"the spec is invalid:\n{spec_error}")
            try:
                return path, _grade_one(path, spec, options, pool)
            except AttnspecError as exc:
                return path, _error_result(path, str(exc))
            except Exception as exc:  # noqa: BLE001 - the grader itself failed: still write a report that says so
                return path, _error_result(path, f"internal error in attnspec: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")

        if args.jobs > 1 and len(paths) > 1:
            with ThreadPoolExecutor(max_workers=args.jobs) as executor:
                results = list(executor.map(one, paths))
        else:
            results = [one(p) for p in paths]
    finally:
        pool.close()
    return _write_reports(results, args, time.monotonic() - start)


def _cap_timeouts(spec: Any, cap: float) -> Any:
    from dataclasses import replace

    return replace(spec, cases=tuple(replace(c, timeout=min(c.timeout, cap)) for c in spec.cases))


def _grade_one(path: str, spec: Any, options: Any, pool: Any) -> Any:
    from .grade import grade

    return grade(path, spec, options, pool)


def _error_result(path: str, message: str) -> Any:
    from .results import GradeResult

    return GradeResult(
        submission={"path": path, "kind": None, "sha256": None},
        spec={"digest": None, "files": [], "cases": 0},
        status="error",
        error=message,
        tool={"name": "attnspec", "version": __version__},
    )


def _write_reports(results: list[tuple[str, Any]], args: argparse.Namespace, elapsed: float) -> int:
    from .reports import render

    names = report_names([p for p, _ in results])
    color = args.color == "always" or (args.color == "auto" and not args.output and not args.output_dir and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    codes = []
    for path, result in results:
        code = result.exit_code
        if args.min_score is not None and result.status == "graded":
            pct = 100.0 * result.score / result.max_score if result.max_score else 0.0
            code = 0 if pct >= args.min_score else 1
        codes.append(code)
        text = render(result, args.format, color=color and args.format == "text", verbose=args.verbose, max_failures=args.max_failures, concise=args.concise)
        if args.output_dir:
            out_dir = Path(args.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / (names[path] + REPORT_SUFFIX[args.format])
            target.write_text(text, encoding="utf-8")
        elif args.output:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        if result.status != "graded" and args.format != "text":
            where = f"the report in {args.output or args.output_dir}" if args.output or args.output_dir else "the report above"
            print(f"attnspec: grading {path} failed: {str(result.error).splitlines()[0].rstrip(':')} (details in {where})", file=sys.stderr)
    if len(results) > 1:
        _print_class_summary(results, codes, elapsed, to_stdout=bool(args.output_dir) or args.format == "text")
    return max(codes) if codes else 2


def report_names(paths: list[str]) -> dict[str, str]:
    """A distinct report name per submission: the file stem, or the whole path when stems clash."""
    stems = [Path(p).stem for p in paths]
    names = {}
    for path, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            stem = str(Path(path)).replace("/", "__").replace("\\", "__").lstrip("._")
        names[path] = stem
    return names


def _print_class_summary(results: list[tuple[str, Any]], codes: list[int], elapsed: float, *, to_stdout: bool) -> None:
    stream = sys.stdout if to_stdout else sys.stderr
    width = max(len(p) for p, _ in results)
    print(f"\n{'submission'.ljust(width)}  {'score':>15}  status", file=stream)
    for (path, result), code in zip(results, codes):
        score = f"{result.score:g} / {result.max_score:g}" if result.status == "graded" else "-"
        status = {0: "passed", 1: "failed", 2: "error"}[code]
        print(f"{path.ljust(width)}  {score:>15}  {status}", file=stream)
    print(f"{len(results)} submissions graded in {elapsed:.1f} s", file=stream)


# ---------------------------------------------------------------- spec tools


def cmd_validate(args: argparse.Namespace) -> int:
    from .loader import check_spec, summarize

    spec, problems = check_spec([*args.paths, *args.spec], builtin=not args.no_builtin)
    if problems:
        for p in problems:
            print(p)
        files = len({p.path for p in problems})
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {files} file{'s' if files != 1 else ''}")
        return 1
    assert spec is not None
    table = summarize(spec)
    counts = ", ".join(f"{e} {sum(v.values())}" for e, v in table.items() if v)
    rules = sum(1 for _ in spec.rules)
    print(f"spec OK: {len(spec.cases)} cases in {len(spec.files)} file{'s' if len(spec.files) != 1 else ''} ({counts}); implementation rules for {rules} exercise{'s' if rules != 1 else ''}")
    props = sorted({p for v in table.values() for p in v})
    exercises = [e for e, v in table.items() if v]
    width = max(len(p) for p in props) if props else 10
    print(f"\n{'property'.ljust(width)}  " + "  ".join(f"{e:>20}" for e in exercises))
    for prop in props:
        print(f"{prop.ljust(width)}  " + "  ".join(f"{table[e].get(prop, 0) or '-':>20}" for e in exercises))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .grade import torch_available
    from .loader import load_spec
    from .spec_check import build_kill_matrix

    spec = load_spec(args.spec, builtin=not args.no_builtin)
    if args.backend == "both" or (args.backend == "auto" and torch_available()):
        backends = ["numpy", "torch"]
    elif args.backend == "auto":
        backends = ["numpy"]
        print("attnspec: torch is not installed; checking the numpy backend only", file=sys.stderr)
    else:
        backends = [args.backend]
    matrix = build_kill_matrix(spec, backends, tuple(args.exercise))
    if args.format == "json":
        text = json.dumps(matrix.to_dict(), indent=2, sort_keys=True) + "\n"
    else:
        from .reports.kill_matrix import render_kill_matrix

        text = render_kill_matrix(matrix)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0 if matrix.ok else 1


def cmd_new(args: argparse.Namespace) -> int:
    from .skeleton import case_skeleton

    text = case_skeleton(args.exercise, args.property, args.id)
    if args.output:
        target = Path(args.output)
        if target.exists():
            raise UsageError(f"{target} exists; choose a new file name (attnspec spec new never overwrites)")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}; edit it, then run: attnspec spec validate {target}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_properties(args: argparse.Namespace) -> int:
    from .properties import PROPERTIES

    for name in sorted(PROPERTIES):
        info = PROPERTIES[name]
        params = ", ".join(info.params_schema.get("properties", {})) or "-"
        only = f"  [backends: {', '.join(info.backends)}]" if tuple(info.backends) != BACKENDS else ""
        print(f"{name}\n    {info.summary}\n    exercises: {', '.join(info.exercises)}; params: {params}{only}")
    return 0


def cmd_misconceptions(args: argparse.Namespace) -> int:
    from .misconceptions import CATALOGUE

    for m in CATALOGUE:
        if m.listed:
            kind = "numeric" if m.by_output else "structural"
            print(f"{m.id:36} {m.exercise:22} {kind:10} {m.title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
