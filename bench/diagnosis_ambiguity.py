"""Where outputs alone are ambiguous: run every value mistake family (alone, and optionally in
pairs) against the shipped spec in process, diagnose the recorded outputs, and list the models
the diagnosis cannot name (unnamed, ambiguous, a parameter it cannot pin down, or named wrongly).

Trusted code only (the catalogue's own implementations), so no sandbox: fast enough to sweep
pairs. `--no-probes` diagnoses from the case outputs alone; by default the diagnosis may run
its designed probes (in process here, in the submission's sandbox when grading).

    python bench/diagnosis_ambiguity.py [--exercise manual_attention] [--pairs] [--no-probes]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from typing import Any

import numpy as np

from attnspec import diagnosis, misconceptions
from attnspec.casecheck import check_instance
from attnspec.grade import ExerciseRun, FailureEvidence
from attnspec.loader import load_spec
from attnspec.misconceptions import Misconception
from attnspec.probes import InProcessProber
from attnspec.properties import CaseContext
from attnspec.reference import variants
from attnspec.results import CaseResult, ExerciseResult
from attnspec.runner import InProcessRunner, Limits
from attnspec.scoring import score_case


def namespace(exercise: str, knobs: dict[str, Any]) -> dict[str, Any]:
    ns = misconceptions.namespace(Misconception("x", exercise, "", "", "", knobs={}))
    ns[exercise] = misconceptions._variant(exercise, knobs)
    ns["causal_mask"] = lambda n: variants.causal_mask(n)
    return ns


def grade_in_process(spec: Any, exercise: str, knobs: dict[str, Any], backend: str, probes: bool, cases: set[str] | None = None) -> ExerciseResult:
    functions = namespace(exercise, knobs)
    runner = InProcessRunner(functions)
    result = ExerciseResult(exercise, "graded", backends=[backend])
    run = ExerciseRun(result)
    for case in spec.cases:
        if case.exercise != exercise or backend not in case.backends or (cases and case.id not in cases):
            continue
        cr = CaseResult(case.id, exercise, case.title, case.property, case.visibility, case.points, 0.0, "not_run")
        for dtype in case.dtypes:
            ctx = CaseContext(case, backend, dtype, case.tolerances[dtype], runner, Limits())
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                inst = check_instance(ctx, case, shrink=False)
            cr.instances.append(inst)
            (run.passed_evidence if inst.outcome == "passed" else run.evidence).append(FailureEvidence(case, backend, dtype, ctx.observations))
        score_case(cr)
        result.cases.append(cr)
    if run.evidence:
        prober = InProcessProber(runner) if probes else None
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            diagnosis.diagnose(run, prober=prober)
    return result


def models(exercise: str, pairs: bool) -> list[tuple[list[str], dict[str, Any]]]:
    singles = []
    for m in misconceptions.for_exercise(exercise):
        if not m.by_output or m.id in diagnosis._FALLBACK_ONLY:
            continue
        for k in m.settings():
            singles.append((m, k))
    out = [([m.id], k) for m, k in singles]
    if pairs:
        for (a, ka), (b, kb) in itertools.combinations(singles, 2):
            if a.family != b.family and a.id != b.id:
                out.append(([a.id, b.id], diagnosis._merge(ka, kb)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exercise", action="append")
    ap.add_argument("--pairs", action="store_true")
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--cases", help="comma-separated case ids: grade only these (a course's subset)")
    ap.add_argument("--only", help="comma-separated ids: models containing one of them")
    args = ap.parse_args(argv)
    spec = load_spec()
    exercises = args.exercise or ["manual_attention", "multi_head_attention", "transformer_block"]
    counts = {"named": 0, "unnamed": 0, "wrong": 0, "uncaught": 0}
    only = set(args.only.split(",")) if args.only else None
    for exercise in exercises:
        for ids, knobs in models(exercise, args.pairs):
            if only and not only & set(ids):
                continue
            start = time.monotonic()
            cases = set(args.cases.split(",")) if args.cases else None
            result = grade_in_process(spec, exercise, knobs, args.backend, not args.no_probes, cases)
            got = {d.id for d in result.diagnoses}
            want = set(ids)
            params = {d.id: d.params for d in result.diagnoses if d.params}
            probed = any(d.evidence.get("probes") for d in result.diagnoses) or bool(result.diagnosis_facts and any(f.get("feature") == "probes" for f in result.diagnosis_facts))
            if not result.failed_cases:
                counts["uncaught"] += 1
                continue
            # the same family with another parameter counts as the same mistake; the parameter is shown
            wrong = got - want
            unnamed = want - got
            counts["named"] += len(want & got)
            counts["unnamed"] += len(unnamed)
            counts["wrong"] += len(wrong)
            mark = "WRONG" if wrong else ("ok" if not unnamed else "unnamed")
            if mark != "ok" or params or probed:
                print(f"{mark:8} {' + '.join(ids):70} {knobs} -> {sorted(got)} {params or ''}{' [probed]' if probed else ''} ({time.monotonic() - start:.1f}s)", flush=True)
                if mark != "ok" and result.diagnosis_note:
                    print(f"         note: {result.diagnosis_note[:300]}")
    print(counts)
    return 1 if counts["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
