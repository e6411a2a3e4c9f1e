"""`attnspec grade`: one file graded in this process, or a class graded by `classrun` with reports,
gradebook and cache written as results come in. cli.py parses the arguments; this module decides
what to grade and where each report goes."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .malloc import keep_freed_memory
from .errors import SpecError, UsageError
from .layouts import ClassEntry, Scratch, discover
from .results import GradeResult
from .sanitize import terminal_safe

DEFAULT_MEMORY_MB = 2048
REPORT_SUFFIX = {"text": ".txt", "json": ".json", "junit": ".xml", "gradescope": ".json", "github": ".log", "html": ".html"}


def run_grade(args: argparse.Namespace) -> int:
    start = time.monotonic()
    keep_freed_memory()  # before the grader processes are forked: they inherit it
    if args.cluster and getattr(args, "plugins", None):
        raise UsageError("--plugins does not reach the cluster's workers; install the plugin there as a package with an 'attnspec.properties' entry point (docs/plugins.md)")
    if args.format == "html":
        from .reports.html import require_html_extra

        require_html_extra()
    scratch = Scratch()
    try:
        entries = discover(args.submissions, scratch, student_pattern=args.student_pattern, exercises=tuple(dict.fromkeys(args.exercise)))
        if args.gradebook and not args.output_dir and not args.output:
            gb = Path(args.gradebook)
            args.output_dir = str(gb.with_name(gb.stem + "-reports"))
        if len(entries) > 1 and args.output:
            raise UsageError("--output takes one submission; use --output-dir for several")
        if len(entries) > 1 and args.format != "text" and not args.output_dir:
            raise UsageError(f"several submissions with --format {args.format} need --output-dir (one report per submission)")
        if len(entries) == 1 and not args.gradebook:
            return _grade_alone(entries[0], args, start)
        return _grade_class(entries, args, start)
    finally:
        scratch.cleanup()


def build_options(args: argparse.Namespace, spec: Any) -> Any:
    """GradeOptions from the command line; also checks --case ids against the spec."""
    from .grade import GradeOptions
    from .runner import Limits

    repro = [x for d in args.spec for x in ("--spec", d)] + (["--no-builtin"] if args.no_builtin else []) + (["--overrides", args.overrides] if args.overrides else [])
    repro += [x for p in getattr(args, "plugins", []) for x in ("--plugins", p)]  # docs/plugins.md
    if args.backend != "auto":
        repro += ["--backend", args.backend]
    if args.case_timeout:
        repro += ["--case-timeout", f"{args.case_timeout:g}"]
    if args.memory != DEFAULT_MEMORY_MB:
        repro += ["--memory", str(args.memory)]
    limits = Limits(
        memory_mb=args.memory,
        submission_timeout=args.submission_timeout,
        case_timeout=args.case_timeout or Limits.case_timeout,
        case_floor=args.case_floor,
        case_factor=args.case_factor,
    )
    if spec is not None and args.case:
        known = {c.id for c in spec.cases} | {r.case_id for r in spec.rules.values()}
        unknown = [c for c in args.case if c not in known]
        if unknown:
            raise UsageError(f"unknown case id(s): {', '.join(unknown)} (see `attnspec spec validate` for the loaded cases)")
    return GradeOptions(
        exercises=tuple(dict.fromkeys(args.exercise)),
        backend=args.backend,
        visible_only=args.visible_only,
        show_hidden=args.show_hidden,
        case_ids=tuple(args.case),
        limits=limits,
        repro_args=tuple(repro),
        sandbox=args.sandbox,
    )


def load_spec_for(args: argparse.Namespace) -> tuple[Any, str | None]:
    from .loader import load_spec

    try:
        spec = load_spec(args.spec, builtin=not args.no_builtin, overrides=args.overrides)
    except SpecError as exc:
        return None, str(exc)
    if args.case_timeout:
        spec = replace(spec, cases=tuple(replace(c, timeout=min(c.timeout, args.case_timeout)) for c in spec.cases))
    return spec, None


# ---------------------------------------------------------------- one file


def _grade_alone(entry: ClassEntry, args: argparse.Namespace, start: float) -> int:
    from .classrun import grade_submission
    from .runner import WorkerPool

    if entry.error is None and entry.path is not None and not entry.path.exists():
        raise UsageError(f"no such submission file: {entry.display}")
    if entry.error is None and entry.path is not None and not entry.companions:
        entry.companions = imported_siblings(entry.path)
    pool = WorkerPool(args.sandbox, hidden_paths(args, [entry]))  # start the worker (and torch's import) before our own imports
    try:
        check_sandbox(args.sandbox, pool.sandbox_info())
        if entry.path is not None and _needs_torch([entry.path], args.backend):
            from .grade import torch_available

            if torch_available():
                pool.preload(["torch"])
        spec, spec_error = load_spec_for(args)
        options = build_options(args, spec)
        result = grade_submission(entry, spec, options, pool, spec_error)
    finally:
        pool.close()
    code = _exit_code(result, args)
    text = _render(result, args, color=_color(args))
    if args.output_dir:
        _write_report(Path(args.output_dir), _report_names([entry])[0], args.format, text)
    elif args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    _complain(entry, result, args)
    return code


def _needs_torch(paths: list[Path], backend: str) -> bool:
    """Whether to import torch in the workers ahead of time (a text search; never runs the code)."""
    if backend in ("torch", "both"):
        return True
    if backend == "numpy":
        return False
    pattern = re.compile(rb'(?:^|\\n)[\s"]*(?:import|from)\s+torch\b', re.M)  # a .py line, or a line inside a notebook's JSON
    for p in paths:
        try:
            if pattern.search(p.read_bytes()[: 4 << 20]):
                return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------- a class


def _grade_class(entries: list[ClassEntry], args: argparse.Namespace, start: float) -> int:
    from .classrun import start_pools

    names = _report_names(entries)
    preload = _needs_torch([e.path for e in entries if e.path is not None], args.backend)
    pools = start_pools(min(max(1, args.jobs), len(entries)), preload, args.sandbox, hidden_paths(args, entries))  # first: overlaps the rest
    try:
        check_sandbox(args.sandbox, pools[0].sandbox_info())
        return _grade_class_with(entries, names, pools, preload, args, start)
    finally:
        for pool in pools:  # the graders shut their copies down at exit; here the workers are reaped
            pool.close()


def _grade_class_with(entries: list[ClassEntry], names: list[str], pools: list[Any], preload: bool, args: argparse.Namespace, start: float) -> int:
    from .cache import ResultCache, cache_key
    from .classrun import make_progress, run_class
    from .gradebook import class_summary, fixed_max, gradebook_row, policy_text, summary_lines, write_gradebook

    spec, spec_error = load_spec_for(args)
    options = build_options(args, spec)
    # A class is graded a submission at a time per grader process, its cases one after another in
    # one child: -j N is how many processes run learner code at once (give it the number of cores).
    options = replace(options, workers=1)
    out_dir = Path(args.output_dir) if args.output_dir else None
    scope = tuple(dict.fromkeys(args.exercise)) or _graded_exercises(spec)
    maxima = fixed_max(spec, options, args.max_points, scope) if spec is not None else {}
    header = policy_text(args.max_points, maxima, args.backend)
    cache = None
    if not args.no_cache and (args.cache or out_dir) and spec is not None:
        cache = ResultCache(Path(args.cache) if args.cache else out_dir.parent / ".attnspec-cache")  # type: ignore[union-attr]
    keys: dict[int, str] = {}
    cached: dict[int, GradeResult] = {}
    if cache is not None:
        for i, e in enumerate(entries):
            if e.path is not None and e.error is None:
                keys[i] = cache_key(e.path, e.display, e.companions, spec.digest, options)
                hit = None if args.force else cache.get(keys[i])
                if hit is not None:
                    cached[i] = GradeResult.from_dict(hit)
    color = _color(args)
    rows: dict[int, dict[str, Any]] = {}
    results: dict[int, GradeResult] = {}
    codes: dict[int, int] = {}
    printed = [0]

    def on_result(i: int, result: GradeResult, was_cached: bool) -> None:
        results[i] = result
        codes[i] = _exit_code(result, args)
        if cache is not None and i in keys and not was_cached:
            cache.put(keys[i], result.to_dict())
        report = ""
        if out_dir is not None:
            report = str(_write_report(out_dir, names[i], args.format, _render(result, args, color=color)))
        else:
            while printed[0] in results:  # stdout: in the order given, as soon as possible
                text = _render(results[printed[0]], args, color=color)
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
                printed[0] += 1
            sys.stdout.flush()
        _complain(entries[i], result, args)
        rows[i] = gradebook_row(entries[i].student, result, maxima, report, late=entries[i].late)
        if args.gradebook:
            ordered = [rows[k] for k in sorted(rows)]
            write_gradebook(Path(args.gradebook), ordered, header, class_summary(ordered, [results[k] for k in sorted(results)]) if args.gradebook.endswith(".json") else None)

    if args.cluster:
        return _grade_on_cluster(entries, spec, spec_error, options, on_result, args)
    progress = make_progress(len(entries), args.progress)
    try:
        run = run_class(
            entries, spec, options, jobs=args.jobs, spec_error=spec_error,
            preload_torch=preload, pools=pools,
            cached=cached, on_result=on_result, progress=progress,
        )
    finally:
        progress.close()
    ordered = [rows[k] for k in sorted(rows)]
    summary = class_summary(ordered, [results[k] for k in sorted(results)])
    if args.gradebook:
        write_gradebook(Path(args.gradebook), ordered, header, summary)
    stream = sys.stdout if (out_dir is not None or args.format == "text") else sys.stderr
    for line in summary_lines(ordered, summary, time.monotonic() - start, cached=len(run.cached)):
        print(line, file=stream)
    if args.gradebook:
        print(f"gradebook: {terminal_safe(args.gradebook)} ({header})", file=stream)
    if run.interrupted is not None:
        stopped = sum(r.status == "interrupted" for r in results.values())
        print(f"attnspec: interrupted ({run.interrupted}): {len(results) - stopped} submissions finished, {stopped} marked interrupted; reports and gradebook kept", file=sys.stderr)
        return run.interrupted.exit_code
    return max(codes.values()) if codes else 2


def _graded_exercises(spec: Any) -> tuple[str, ...]:
    from .exercises import EXERCISES

    if spec is None:
        return ()
    return tuple(e for e in EXERCISES if e in spec.rules or any(c.exercise == e for c in spec.cases))


def _report_names(entries: list[ClassEntry]) -> list[str]:
    from .gradebook import report_names

    return report_names([(e.key, e.display) for e in entries])


def _write_report(out_dir: Path, name: str, fmt: str, text: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (name + REPORT_SUFFIX[fmt])
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


def _render(result: GradeResult, args: argparse.Namespace, *, color: bool) -> str:
    from .reports import render

    return render(result, args.format, color=color and args.format == "text", verbose=args.verbose, timings=not args.no_timings, max_failures=args.max_failures, concise=args.concise)


def _color(args: argparse.Namespace) -> bool:
    return args.color == "always" or (args.color == "auto" and not args.output and not args.output_dir and sys.stdout.isatty() and "NO_COLOR" not in os.environ)


def _exit_code(result: GradeResult, args: argparse.Namespace) -> int:
    code = result.exit_code
    if args.min_score is not None and result.status == "graded":
        pct = 100.0 * result.score / result.max_score if result.max_score else 0.0
        code = 0 if pct >= args.min_score else 1
    return code


def _complain(entry: ClassEntry, result: GradeResult, args: argparse.Namespace) -> None:
    if result.status == "error" and args.format != "text":
        where = f"the report in {args.output or args.output_dir}" if args.output or args.output_dir else "the report above"
        first = terminal_safe(str(result.error).splitlines()[0].rstrip(":")) if result.error else "unknown"
        print(f"attnspec: grading {terminal_safe(entry.display)} failed: {first} (details in {where})", file=sys.stderr)



def _grade_on_cluster(entries: list[ClassEntry], spec: Any, spec_error: str | None, options: Any, on_result: Any, args: argparse.Namespace) -> int:
    """--cluster: the same reports, gradebook and exit code, with the grading done by Dask workers."""
    from .classrun import annotate, error_result
    from .cluster import grade_on_cluster

    codes = []
    gradable = [(i, e) for i, e in enumerate(entries) if e.error is None and e.path is not None and spec_error is None]
    for i, e in enumerate(entries):
        if (i, e) not in gradable:
            result = error_result(e.display, f"the spec is invalid:\n{spec_error}" if spec_error else str(e.error))
            on_result(i, result, False)
            codes.append(_exit_code(result, args))
    graded = grade_on_cluster(args.cluster, [str(e.path) for _, e in gradable], spec, options, on_error=lambda path, message: error_result(path, message))
    for (i, entry), (_, result) in zip(gradable, graded):
        result = annotate(entry, result)
        on_result(i, result, False)
        codes.append(_exit_code(result, args))
    return max(codes) if codes else 2


def hidden_paths(args: argparse.Namespace, entries: list[ClassEntry]) -> list[str]:
    """What a sandbox must not show: every spec folder, every submission's folder, the outputs."""
    outputs = [args.output_dir, args.gradebook and os.path.dirname(os.path.abspath(args.gradebook)), args.output and os.path.dirname(os.path.abspath(args.output)), args.cache]
    folders = [os.path.dirname(os.path.abspath(e.path)) for e in entries if e.path is not None]
    return [*args.spec, *(os.path.abspath(a) for a in args.submissions), *folders, *(x for x in outputs if x)]


def check_sandbox(requested: str, info: dict[str, Any]) -> None:
    """strict: refuse to grade without every isolation feature; auto: one warning line when short."""
    if requested == "none" or not info["missing"]:
        return
    why = f" ({info['reason']})" if info.get("reason") else ""
    if requested == "strict":
        raise UsageError(
            f"--sandbox strict: this machine cannot isolate submissions: {', '.join(info['missing'])} unavailable{why}. "
            "Kernel namespaces are needed (run as root, or allow unprivileged user namespaces, e.g. sysctl kernel.unprivileged_userns_clone=1); "
            "use --sandbox auto to grade with what is available"
        )
    got = ", ".join(info["features"]) or "nothing"
    print(f"attnspec: warning: sandbox: isolating with {got} only; missing {', '.join(info['missing'])}{why}", file=sys.stderr)


_IMPORT = re.compile(r'(?:^|\\n|")[ \t]*(?:from|import)[ \t]+([A-Za-z_]\w*)', re.M)


def imported_siblings(path: Path, limit: int = 50) -> list[Path]:
    """The helper modules next to a file that it imports (and that they import): what a file graded
    alone needs in its sandbox. Only imported ones, so a classmate's file in the same folder is
    never copied in."""
    found: list[Path] = []
    todo = [path]
    while todo and len(found) < limit:
        try:
            text = todo.pop().read_bytes()[: 4 << 20].decode("utf-8", "replace")
        except OSError:
            continue
        for name in _IMPORT.findall(text):
            sibling = path.parent / f"{name}.py"
            if sibling != path and sibling not in found and sibling.is_file() and not sibling.is_symlink():
                found.append(sibling)
                todo.append(sibling)
    return found
