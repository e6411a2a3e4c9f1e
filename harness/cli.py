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
from pathlib import Path
from typing import Sequence

from . import __version__
from .reports import FORMATS
from .reports import REGISTRY as REPORT_FORMATS
from .errors import AttnspecError, UsageError
from .exercises import BACKENDS, EXERCISE_NAMES

from .gradecmd import DEFAULT_MEMORY_MB, REPORT_SUFFIX  # noqa: F401 - re-exported


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        if hasattr(args, "plugins"):  # instructors' own properties (docs/plugins.md), before any spec is read
            from .plugins import load_plugins

            load_plugins(args.plugins)
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
    g.add_argument("--format", choices=FORMATS, default="text", help="; ".join(f"{name}: {fmt.help}" for name, fmt in REPORT_FORMATS.items()))
    g.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
    g.add_argument("--output-dir", metavar="DIR", help="with several submissions: one report per submission in DIR")
    g.add_argument("--visible-only", action="store_true", help="run only visible cases (the report says how many hidden ones were not run)")
    g.add_argument("--show-hidden", action="store_true", help="show the inputs and details of hidden cases")
    g.add_argument("--case", action="append", default=[], metavar="ID", help="run only this case (repeatable); the repro command in reports uses it")
    g.add_argument("--min-score", type=_percent, metavar="PERCENT", help="exit 0 if the total score is at least PERCENT of the maximum, else 1")
    g.add_argument("--case-timeout", type=float, metavar="S", help="cap every case's time limit at S seconds")
    g.add_argument("--submission-timeout", type=float, default=60.0, metavar="S", help="time budget per submission (default 60): cases left when it is spent are marked 'not run: time budget spent'")
    g.add_argument("--case-floor", type=float, default=5.0, metavar="S", help="a case's time limit is max(S, --case-factor x the reference's time on the same inputs), at most the spec's timeout (default 5)")
    g.add_argument("--case-factor", type=float, default=100.0, metavar="X", help="see --case-floor (default 100; 0: the spec's timeouts only)")
    g.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MB", help=f"memory limit for learner code, per case (default {DEFAULT_MEMORY_MB})")
    g.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="grade N submissions at a time, in N grader processes")
    g.add_argument("--gradebook", metavar="FILE", help="write a gradebook (FILE.csv or FILE.json): one row per student; reports go to --output-dir (default FILE-reports/)")
    g.add_argument("--max-points", choices=("common", "union"), default="common", help="gradebook max: cases every allowed backend runs, torch-only ones extra credit (common, default), or every case (union)")
    g.add_argument("--student-pattern", metavar="REGEX", help="take the student id from each submission's path with this regex's (?P<student>...) group")
    g.add_argument("--cache", metavar="DIR", help="cache of graded results for incremental regrades (default: .attnspec-cache/ beside --output-dir)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    g.add_argument("--force", action="store_true", help="regrade every submission, even those whose result is cached")
    g.add_argument("--progress", choices=("auto", "always", "never"), default="auto", help="class runs: a live bar on a terminal, plain lines otherwise (auto)")
    g.add_argument("--cluster", metavar="ADDRESS", help="grade on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); see docs/cluster.md")
    g.add_argument("--no-timings", action="store_true", help="leave wall-clock times out of JSON reports, so the same submission gives the same bytes")
    g.add_argument("--sandbox", choices=("auto", "strict", "none"), default="auto", help="isolate each submission in kernel namespaces: auto uses what the machine allows (warns otherwise), strict refuses to grade without full isolation (exit 2), none: plain worker processes (see docs/isolation.md)")
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
    _plugins_option(n)
    n.set_defaults(run=cmd_new)
    p = ssub.add_parser("properties", help="list the properties a case can use")
    _plugins_option(p)
    p.set_defaults(run=cmd_properties)
    m = ssub.add_parser("misconceptions", help="list the catalogue of known mistakes")
    m.set_defaults(run=cmd_misconceptions)
    from .autograder import add_parser as add_autograder_parser

    add_autograder_parser(sub)

    d = sub.add_parser("dashboard", help="an HTML page summarising a class run's JSON reports", description="Score distribution, pass rate per case and the frequency of each named mistake, from a folder of JSON reports (attnspec grade DIR --format json --output-dir REPORTS_DIR).")
    d.add_argument("reports", metavar="REPORTS_DIR", help="folder of JSON reports (a gradebook JSON in it is read too)")
    d.add_argument("--output", "-o", metavar="FILE", default="class.html", help="where to write the page (default class.html)")
    d.set_defaults(run=cmd_dashboard)
    return parser


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", action="append", default=[], metavar="DIR", help="add the cases in this folder or file (repeatable), e.g. a course's hidden cases")
    p.add_argument("--no-builtin", action="store_true", help="do not load the shipped spec")
    p.add_argument("--overrides", metavar="FILE", help="a course's overrides file (points, visibility, time limits, feedback per case or property) applied over the spec")
    _plugins_option(p)


def _plugins_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugins", action="append", default=[], metavar="MODULE[,MODULE]",
                   help="load instructors' own properties from these modules or .py files (repeatable); installed 'attnspec.properties' entry points load anyway (docs/plugins.md)")


def _percent(text: str) -> float:
    value = float(text.rstrip("%"))
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return value


# ---------------------------------------------------------------- grade


def cmd_grade(args: argparse.Namespace) -> int:
    from .gradecmd import run_grade

    return run_grade(args)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import write_dashboard

    summary = write_dashboard(args.reports, args.output)
    print(f"wrote {args.output}: {summary}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- spec tools


def cmd_validate(args: argparse.Namespace) -> int:
    from .loader import check_spec, summarize

    spec, problems = check_spec([*args.paths, *args.spec], builtin=not args.no_builtin, overrides=args.overrides)
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
    from .plugins import PLUGINS, is_plugin_property, origin_label

    shown = {p: f"{p} [{origin_label(p)}]" if is_plugin_property(p) else p for p in props}
    width = max(len(p) for p in shown.values()) if props else 10
    print(f"\n{'property'.ljust(width)}  " + "  ".join(f"{e:>20}" for e in exercises))
    for prop in props:
        print(f"{shown[prop].ljust(width)}  " + "  ".join(f"{table[e].get(prop, 0) or '-':>20}" for e in exercises))
    for plugin in PLUGINS.values():
        print(f"\n{plugin.describe()}: {', '.join(plugin.properties) or 'no properties'}" + (f" ({plugin.file})" if plugin.file else ""), end="")
    if PLUGINS:
        print()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .grade import torch_available
    from .loader import load_spec
    from .spec_check import build_kill_matrix

    spec = load_spec(args.spec, builtin=not args.no_builtin, overrides=args.overrides)
    if args.backend == "both" or (args.backend == "auto" and torch_available()):
        backends = ["numpy", "torch"]
    elif args.backend == "auto":
        backends = ["numpy"]
        print("attnspec: torch is not installed; checking the numpy backend only", file=sys.stderr)
    else:
        backends = [args.backend]
    matrix = build_kill_matrix(spec, backends, tuple(args.exercise))
    from .plugins import is_plugin_property, origin_text

    plugin_cases = {c.id: c.property for c in spec.cases if is_plugin_property(c.property) and any(c.id in ids for ids in matrix.cases.values())}
    if args.format == "json":
        data = matrix.to_dict()
        data["plugin_properties"] = {p: {"origin": origin_text(p), "cases": [c for c, q in plugin_cases.items() if q == p]} for p in dict.fromkeys(plugin_cases.values())}
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    else:
        from .reports.kill_matrix import render_kill_matrix

        text = render_kill_matrix(matrix)
        if plugin_cases:
            text += "\nCases of plugin properties (checked like the built-ins: the reference must pass them):\n"
            text += "".join(f"  {c}: {p} ({origin_text(p)})\n" for c, p in plugin_cases.items())
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
    from .plugins import is_plugin_property, origin_text
    from .properties import PROPERTIES

    for name in sorted(PROPERTIES):
        info = PROPERTIES[name]
        params = ", ".join(info.params_schema.get("properties", {})) or "-"
        only = f"  [backends: {', '.join(info.backends)}]" if tuple(info.backends) != BACKENDS else ""
        origin = f"\n    from {origin_text(name)}" if is_plugin_property(name) else ""
        print(f"{name}\n    {info.summary}\n    exercises: {', '.join(info.exercises)}; params: {params}{only}{origin}")
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
