"""Grade one submission: load it in a worker, decide exercises and backends, run every case.

This is the orchestration stage. It turns each (case, backend, dtype) into an `InstanceResult`
by running the case's property against the submission in a fresh child process, scores the
cases, runs diagnosis on the failures and checks the implementation rules. It prints nothing.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import queue
import re
import shlex
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from random import Random
from typing import Any, cast

import numpy as np

from . import __version__
from .diagnosis import diagnose
from .errors import BackendUnavailable, SubmissionError
from .exercises import EXERCISES, reference_functions
from .inputs import Inputs, cast_inputs, generate_inputs, shapes_strategy
from .loader import build_fixed_inputs
from .patterns import attach_patterns
from .probes import SessionProber
from .properties import PROPERTIES, CaseAborted, CaseContext, Failed, Observation
from .reports.failure import redact, render_failure
from .results import CaseResult, ExerciseResult, GradeResult, InstanceResult, LoadInfo, NotRun
from .runner import CaseSession, InProcessRunner, Limits, LoadReport, WorkerPool, WorkerSession
from .scoring import score_case, score_exercise
from .specmodel import Case, InputSpec, Spec
from .static import StaticReport, analyze
from .submission import Submission, load_submission

SHRINK_CALL_BUDGET = 60
PROBE_DIMS = {name: e.probe_dims for name, e in EXERCISES.items()}


@dataclass(frozen=True)
class GradeOptions:
    exercises: tuple[str, ...] = ()
    backend: str = "auto"  # auto | numpy | torch | both
    visible_only: bool = False
    show_hidden: bool = False
    case_ids: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    repro_args: tuple[str, ...] = ()  # extra CLI args (e.g. --spec DIR) to put in repro commands
    workers: int = 2  # zygotes per submission: cases run in parallel, one child process each
    sandbox: str = "none"  # none | auto | strict: used when grade() starts its own worker pool


@dataclass
class FailureEvidence:
    """The calls of one failed instance, for diagnosis."""

    case: Case
    backend: str
    dtype: str
    observations: list[Observation]


@dataclass
class ExerciseRun:
    result: ExerciseResult
    evidence: list[FailureEvidence] = field(default_factory=list)
    passed_evidence: list[FailureEvidence] = field(default_factory=list)
    tripwires: list[dict[str, Any]] = field(default_factory=list)


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def grade(path: str, spec: Spec, options: GradeOptions, pool: WorkerPool | None = None, *, display: str | None = None, companions: list[str] | None = None) -> GradeResult:
    """Grade the submission at `path` (named `display` in the report); never raises for problems in
    the submission itself. `companions`: the other files of a multi-file submission."""
    display = display or path
    start = time.monotonic()
    graded = tuple(e for e in EXERCISES if e in spec.rules or any(c.exercise == e for c in spec.cases))
    if options.case_ids:  # --case: only the exercises those cases belong to
        chosen = set(options.case_ids)
        graded = tuple(e for e in graded if any(c.id in chosen and c.exercise == e for c in spec.cases) or (e in spec.rules and spec.rules[e].case_id in chosen))
    scope = options.exercises or graded
    result = GradeResult(
        submission={"path": display, "kind": None, "sha256": None},
        spec={"digest": spec.digest, "files": [f.path for f in spec.files], "cases": len(spec.cases)},
        status="graded",
        options={"exercises": list(scope), "backend": options.backend, "visible_only": options.visible_only, "show_hidden": options.show_hidden, "cases": list(options.case_ids)},
        tool={"name": "attnspec", "version": __version__},
    )
    try:
        submission = load_submission(path, display=display, companions=companions)
    except SubmissionError as exc:
        result.submission = {"path": path, **({"sha256": exc.sha256} if exc.sha256 else {})}
        result.exercises = [ExerciseResult(e, "load_error", str(exc), max_score=_max_points(spec, e, options)) for e in scope]
        _finish(result, spec, options, scope, start)
        return result
    result.submission.update(kind=submission.kind, sha256=submission.sha256)
    static = analyze(submission)
    candidates = _backend_candidates(options.backend, static)
    own_pool = pool is None
    pool = pool or WorkerPool(options.sandbox)
    pool.hide([os.path.dirname(os.path.abspath(path))])  # a classmate's sandbox must not show this folder
    result.sandbox = pool.sandbox_info()
    if "torch" in candidates:
        pool.preload(["torch"])
    budget = options.limits.submission_timeout  # loading counts against the submission's budget too
    load_limits = replace(options.limits, load_timeout=min(options.limits.load_timeout, budget), chunk_timeout=min(options.limits.chunk_timeout, budget))
    session = WorkerSession(pool, submission.load_request(), load_limits)
    sessions = [session]
    try:
        load = session.start()
        if load.ok:  # more zygotes for parallel cases, forked from the loaded one
            sessions += [session.clone() for _ in range(max(1, options.workers) - 1)]
        if "torch" in candidates and pool.wait_preloaded().get("torch"):
            raise BackendUnavailable(f"PyTorch could not be imported in the worker: {pool.preloaded['torch']}")
        result.load = _load_info(submission, load)
        if not options.exercises:
            scope = exercises_in_file(graded, submission, static, load.functions) or graded
            result.options["exercises"] = list(scope)
        deadline = start + options.limits.submission_timeout
        for exercise in scope:
            run = _grade_exercise(exercise, spec, options, submission, static, load, sessions, candidates, deadline)
            result.exercises.append(run.result)
    finally:
        for each in sessions:
            each.close()
        if own_pool:
            pool.close()
    _finish(result, spec, options, scope, start)
    return result


def exercises_in_file(graded: tuple[str, ...], submission: Submission, static: StaticReport, defined_at_run_time: Any = ()) -> tuple[str, ...]:
    """The exercises the file defines, or tried to (a def cut out for a syntax error counts, so
    its report says why it is missing). The caller grades every exercise when this is empty."""
    attempted = {e for e in graded for p in submission.syntax_problems if re.search(rf"\bdef\s+{e}\s*\(", p.text)}
    return tuple(e for e in graded if e in defined_at_run_time or e in static.functions or e in attempted)


def _finish(result: GradeResult, spec: Spec, options: GradeOptions, scope: tuple[str, ...], start: float) -> None:
    result.score = round(sum(e.score for e in result.exercises), 6)
    result.max_score = round(sum(e.max_score for e in result.exercises), 6)
    result.not_run = _not_run(spec, options, scope)
    result.timings = {"total": round(time.monotonic() - start, 3)}


def _max_points(spec: Spec, exercise: str, options: GradeOptions) -> float:
    cases = _cases_for(spec, exercise, options)
    rules = spec.rules.get(exercise)
    return sum(c.points for c in cases) + (rules.points if rules and _rules_selected(rules, options) else 0.0)


def _rules_selected(rules: Any, options: GradeOptions) -> bool:
    return not options.case_ids or rules.case_id in options.case_ids


def _cases_for(spec: Spec, exercise: str, options: GradeOptions) -> list[Case]:
    cases = [c for c in spec.cases if c.exercise == exercise]
    if options.case_ids:
        cases = [c for c in cases if c.id in options.case_ids]
    if options.visible_only:
        cases = [c for c in cases if not c.hidden]
    return cases


def _not_run(spec: Spec, options: GradeOptions, scope: tuple[str, ...]) -> list[NotRun]:
    out = []
    for exercise in scope:
        if options.visible_only and not options.case_ids:
            hidden = [c for c in spec.cases if c.exercise == exercise and c.hidden]
            if hidden:
                out.append(NotRun(exercise, "hidden", len(hidden), sum(c.points for c in hidden), "hidden cases skipped by --visible-only"))
        for w in spec.unsatisfied_withheld():
            if w.exercise == exercise:
                out.append(NotRun(exercise, "withheld", w.cases, w.points, w.note or f"graded only by the course autograder (suite '{w.suite}')"))
    return out


def _load_info(submission: Submission, load: LoadReport) -> LoadInfo:
    info = LoadInfo(notes=list(submission.notes), output=load.output.get("text", ""), output_bytes=int(load.output.get("bytes", 0)))
    for p in submission.syntax_problems:
        where = submission.where(p.filename, p.line) or f"line {p.line}"
        info.errors.append({"type": "SyntaxError", "message": p.message, "where": f"{p.filename.split(',')[0]}, {where}", "line": p.line, "file": p.filename, "traceback": ""})
    for e in load.chunk_errors:
        where = submission.where(e.get("file"), e.get("line"))
        info.errors.append({"type": e["type"], "message": e["message"], "where": f"{(e.get('file') or submission.display).split(',')[0]}, {where}".rstrip(", "), "line": e.get("line"), "file": e.get("file"), "traceback": e.get("traceback", "")})
    if load.fatal:
        info.errors.append({"type": "LoadFailed", "message": load.fatal, "where": submission.display, "line": None, "file": None, "traceback": ""})
    return info


def _backend_candidates(requested: str, static: StaticReport) -> list[str]:
    if requested in ("numpy", "torch"):
        wanted = [requested]
    elif requested == "both":
        wanted = ["numpy", "torch"]
    else:
        wanted = static.backend_hints
    if "torch" in wanted and not torch_available():
        if requested in ("torch", "both") or wanted == ["torch"]:
            raise BackendUnavailable("this submission uses PyTorch, but torch is not installed here: pip install 'attnspec[torch]' (see README for the pinned version)")
        wanted = [b for b in wanted if b != "torch"]
    return wanted


# ---------------------------------------------------------------- one exercise


def _grade_exercise(
    exercise: str,
    spec: Spec,
    options: GradeOptions,
    submission: Submission,
    static: StaticReport,
    load: LoadReport,
    sessions: list[WorkerSession],
    candidates: list[str],
    deadline: float,
) -> ExerciseRun:
    cases = _cases_for(spec, exercise, options)
    rules = spec.rules.get(exercise)
    result = ExerciseResult(exercise, "graded", max_score=_max_points(spec, exercise, options))
    result.max_score -= sum(c.points for c in cases if not set(c.backends) & set(candidates))
    run = ExerciseRun(result)
    fn_static = static.functions.get(exercise)
    if fn_static is not None:
        result.location = f"{fn_static.filename.split(',')[0]}, {submission.where(fn_static.filename, fn_static.line)}"
    result.signature = load.functions.get(exercise, {}).get("signature")
    ungradable = _ungradable(exercise, submission, static, load)
    if ungradable is not None:
        result.status, result.message = ungradable
        return run
    forbidden = [f.api for f in rules.forbidden] if rules is not None else []
    probe = _probe_backends(exercise, candidates, sessions[0], fn_static, forbidden, options.limits)
    run.tripwires.extend(probe.tripwires)
    if probe.not_implemented is not None:
        result.status, result.message = "not_implemented", f"{exercise} is not implemented yet: it raises NotImplementedError{probe.not_implemented}"
        return run
    backends = probe.backends
    result.backends, result.backend_notes = backends, probe.notes
    applicable = [c for c in cases if set(c.backends) & set(backends)]
    skipped = [c for c in cases if c not in applicable]
    if skipped:
        only = sorted({b for c in skipped for b in c.backends})
        result.backend_notes.append(f"{len(skipped)} case(s) apply only to {', '.join(only)} and were not run for this submission")
        result.max_score -= sum(c.points for c in skipped if set(c.backends) & set(candidates))
    _run_cases(applicable, backends, options, submission, sessions, run, deadline, forbidden)
    attach_patterns(run, sessions[0], options, forbidden, deadline)
    if rules is not None and _rules_selected(rules, options):
        result.cases.append(_rules_case(exercise, rules, static, load, run, submission))
    score_exercise(result)
    if run.evidence:  # scored above: probes the diagnosis runs (in the sandbox, like the cases) never change scores
        diagnose(run, source="\n".join(f.text for f in submission.files), prober=SessionProber(sessions[0], forbidden, deadline, exercise))
    return run


def _ungradable(exercise: str, submission: Submission, static: StaticReport, load: LoadReport) -> tuple[str, str] | None:
    """(status, message) when the exercise cannot be run at all: load failure, missing, wrong signature, stub."""
    contract = EXERCISES[exercise]
    info = load.functions.get(exercise)
    fn_static = static.functions.get(exercise)
    if not load.ok:
        return "load_error", f"the submission could not be loaded: {load.fatal}"
    if info is None:
        return "missing", _missing_message(exercise, submission, static)
    if not info.get("callable"):
        return "signature_error", f"{exercise} is a {info.get('type')}, not a function; define it with def {contract.signature}:"
    if not info.get("bindable", True):
        return "signature_error", f"{info.get('signature', exercise)} cannot be called as {contract.signature}: {info.get('bind_error')}"
    if fn_static is not None and fn_static.is_stub:
        return "not_implemented", f"{exercise} is not implemented yet (it is still the starter stub)"
    return None


def _run_cases(
    cases: list[Case], backends: list[str], options: GradeOptions, submission: Submission, sessions: list[WorkerSession], run: ExerciseRun, deadline: float, forbidden: list[str]
) -> None:
    """Run the cases, one per worker at a time, and merge their results in spec order (so the
    report does not depend on which worker finished first)."""
    todo: queue.Queue[tuple[int, Case]] = queue.Queue()
    for item in enumerate(cases):
        todo.put(item)
    finished: list[Any] = [None] * len(cases)

    def serve(session: WorkerSession) -> None:  # each worker takes the next case as soon as it is free
        while True:
            try:
                index, case = todo.get_nowait()
            except queue.Empty:
                return
            part = ExerciseRun(run.result)
            finished[index] = (_run_case(case, backends, options, submission, session, part, deadline, forbidden, last=todo.empty()), part)

    for future in [_case_threads(len(sessions)).submit(serve, each) for each in sessions]:
        future.result()
    for case_result, part in finished:
        run.result.cases.append(case_result)
        run.evidence.extend(part.evidence)
        run.passed_evidence.extend(part.passed_evidence)
        run.tripwires.extend(t for t in part.tripwires if t not in run.tripwires)


_THREADS: tuple[int, ThreadPoolExecutor] | None = None
_THREADS_LOCK = threading.Lock()


def _case_threads(count: int) -> ThreadPoolExecutor:
    """The threads that run cases, kept for the life of this process (a class run's grader uses
    them for every submission): Hypothesis prepares each new thread once, with a full garbage
    collection (~50 ms in a grader process), which a fresh thread per exercise paid every time.
    Threads are started as needed (an idle one is reused first), up to `count` or 8."""
    global _THREADS
    with _THREADS_LOCK:
        if _THREADS is None or _THREADS[0] != os.getpid() or _THREADS[1]._max_workers < count:  # a forked process has no threads
            if _THREADS is not None and _THREADS[0] == os.getpid():
                _THREADS[1].shutdown(wait=False)
            _THREADS = (os.getpid(), ThreadPoolExecutor(max_workers=max(count, 8), thread_name_prefix="attnspec-case"))
        return _THREADS[1]


def _missing_message(exercise: str, submission: Submission, static: StaticReport) -> str:
    message = f"{exercise} is not defined in {submission.display}; expected def {EXERCISES[exercise].signature}:"
    for p in submission.syntax_problems:
        if re.search(rf"\bdef\s+{exercise}\s*\(", p.text):
            return (
                f"{exercise} could not be graded: a syntax error at {submission.where(p.filename, p.line)} ({p.message}) is inside its definition "
                f"(lines {p.removed[0]}-{p.removed[1]} were skipped); fix it and grade again"
            )
    return message


@dataclass
class Probe:
    """What one small call per candidate backend told us."""

    backends: list[str]
    notes: list[str]
    not_implemented: str | None  # None, or where NotImplementedError came from ('' = the function itself)
    tripwires: list[dict[str, Any]]


def _probe_backends(exercise: str, candidates: list[str], session: WorkerSession, fn_static: Any, forbidden: list[str], limits: Limits) -> Probe:
    """Try the function once per candidate backend on small inputs; keep the ones it handles."""
    inputs = generate_inputs(exercise, _probe_spec(exercise), PROBE_DIMS[exercise], seed=0)
    ok: list[str] = []
    notes: list[str] = []
    tripwires: list[Any] = []
    plain = not EXERCISES[exercise].array_inputs
    if plain:  # integer arguments: one call says which backend the answer is in (see Exercise.array_inputs)
        candidates = candidates[:1]
    for backend in candidates:
        with session.case(f"{exercise}.probe.{backend}", min(10.0, limits.case_timeout), forbidden=forbidden) as cs:
            outcome = cs.call(exercise, inputs, backend=backend, dtype="float64")
        tripwires.extend(t for t in outcome.tripwires if t not in tripwires)
        if outcome.status == "raised" and outcome.error and outcome.error.get("type") == "NotImplementedError":
            return Probe([], [], _not_implemented_where(outcome.error, fn_static), tripwires)
        kind = outcome.output.kind if outcome.output else None
        if plain:
            return Probe([{"ndarray": "numpy", "tensor": "torch"}.get(kind or "", backend)], [], None, tripwires)
        if outcome.ok and kind == ("ndarray" if backend == "numpy" else "tensor"):
            ok.append(backend)
        elif len(candidates) > 1:
            why = outcome.problem() if not outcome.ok else f"returned {outcome.output.describe() if outcome.output else 'None'}"
            notes.append(f"not graded on {backend}: with {backend} inputs it {why.splitlines()[0]}")
    if not ok:
        ok = candidates[:1] if len(candidates) == 1 else [c for c in candidates if c == "torch"][:1] or candidates[:1]
        notes = []
    return Probe(ok, notes, None, tripwires)


def _probe_spec(exercise: str) -> InputSpec:
    return InputSpec(shapes=PROBE_DIMS[exercise])


def _not_implemented_where(error: dict[str, Any], fn_static: Any) -> str:
    """'' if the function itself raises NotImplementedError, else where it was raised (a stub it calls)."""
    line = error.get("line")
    if fn_static is None or line is None:
        return ""
    node = fn_static.node
    if error.get("file") == fn_static.filename and node.lineno <= line <= (node.end_lineno or node.lineno):
        return ""
    last = (error.get("traceback") or "").strip().splitlines()
    frame = next((t.strip() for t in reversed(last) if t.strip().startswith("File ")), "")
    return f" (raised by code it calls: {frame})" if frame else " (raised by code it calls)"


# ---------------------------------------------------------------- one case


def _run_case(
    case: Case, backends: list[str], options: GradeOptions, submission: Submission, session: WorkerSession, run: ExerciseRun, deadline: float, forbidden: list[str], *, last: bool = False
) -> CaseResult:
    prop = PROPERTIES[case.property]
    hidden = case.hidden and not options.show_hidden
    result = CaseResult(
        case_id=case.id,
        exercise=case.exercise,
        title=case.title,
        property=case.property,
        visibility=case.visibility,
        max_points=case.points,
        points=0.0,
        outcome="not_run",
        feedback=case.feedback or prop.summary,
        inputs=None if hidden else describe_inputs(case),
        repro=_repro(submission, case, options),
    )
    start = time.monotonic()
    outputs: list[str] = []
    # One child process per case, shared by its backends and dtypes; a fresh one after a crash.
    cs: CaseSession | None = None
    skipped = 0
    for backend in [b for b in backends if b in case.backends]:
        for dtype in case.dtypes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                message = f"{BUDGET_SPENT} (the submission's {options.limits.submission_timeout:g} s budget was used up by earlier cases)"
                inst = InstanceResult(backend, dtype, "error", message, failure={"kind": "not_run", "outcome": "error", "claim": message, "hints": [], "claim_hidden": message})
                skipped += 1
            else:
                if cs is None:
                    cs = session.case(case.id, case_limit(case, options.limits, remaining), forbidden=forbidden, last=last).__enter__()
                inst, aborted = _run_instance(case, backend, dtype, options, cs, run, submission=submission)
                if aborted:
                    outputs.append(_close_case(cs))
                    cs = None
            if hidden:
                _redact(inst)
            result.instances.append(inst)
    if cs is not None:
        outputs.append(_close_case(cs))
    result.output = "\n".join(o for o in outputs if o)[:8000]
    result.duration = round(time.monotonic() - start, 4)
    score_case(result)
    if skipped and skipped == len(result.instances):
        result.outcome = "not_run"
    return result


BUDGET_SPENT = "not run: time budget spent"
_REFERENCE_TIMES: dict[tuple[str, str], float | None] = {}
_REFERENCE_LOCK = threading.Lock()


def case_limit(case: Case, limits: Limits, remaining: float) -> float:
    """The case's time limit: relative to the reference's own time on the same inputs, with a
    floor (slow but honest code passes), never above the spec's timeout nor the submission's
    remaining budget (so a hang costs the budget, not a timeout per case)."""
    limit = case.timeout
    if limits.case_factor > 0:
        ref = reference_time(case)
        if ref is not None:
            limit = min(limit, max(limits.case_floor, limits.case_factor * ref))
    return round(max(0.1, min(limit, remaining)), 1)


def reference_time(case: Case) -> float | None:
    """Seconds the NumPy reference takes to pass this case (all its dtypes), in process; measured
    once per process and case. None when the case does not run on NumPy (torch-only cases keep the
    spec's timeout) or the reference cannot run it."""
    key = (case.id, repr(case))
    with _REFERENCE_LOCK:
        if key in _REFERENCE_TIMES:
            return _REFERENCE_TIMES[key]
    seconds: float | None = None
    if "numpy" in case.backends:
        runner = InProcessRunner(reference_functions("numpy"))
        start = time.perf_counter()
        ok = True
        for dtype in case.dtypes:
            ctx = CaseContext(case, "numpy", dtype, case.tolerances[dtype], runner, Limits())
            ctx.recording = False
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                ok = ok and check_instance(ctx, case, shrink=False).outcome == "passed"
        seconds = (time.perf_counter() - start) if ok else None
    with _REFERENCE_LOCK:
        _REFERENCE_TIMES[key] = seconds
    return seconds


def _close_case(cs: CaseSession) -> str:
    cs.__exit__(None, None, None)
    return str(cs.captured.get("text", ""))


def describe_inputs(case: Case) -> str:
    spec = case.inputs
    if spec is None:
        return "inputs made by the property"
    if spec.is_literal:
        return "literal inputs: " + ", ".join(sorted(spec.literal or {}))
    shapes = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in spec.shapes.items())
    extra = [f"mask={spec.mask}", f"seed={spec.seed}"]
    if spec.score_scale:
        extra.append(f"score_scale={spec.score_scale:g}")
    if spec.scale != 1.0:
        extra.append(f"scale={spec.scale:g}")
    if spec.offset:
        extra.append(f"offset={spec.offset:g}")
    if spec.poison:
        extra.append("poison=1000 at blocked keys")
    drawn = f"; {case.examples} drawn examples" if spec.is_drawn else ""
    return f"{shapes}, {', '.join(extra)}{drawn}"


def _repro(submission: Submission, case: Case, options: GradeOptions) -> str:
    args = ["attnspec", "grade", submission.display, "--case", case.id, *options.repro_args]
    return " ".join(shlex.quote(a) for a in args)


def _redact(inst: InstanceResult) -> None:
    """Hidden cases: keep the verdict, the kind of failure and the hints; drop the fields that
    reveal inputs or expected values (the call, values, positions, samples, examples)."""
    if inst.outcome == "passed":
        return
    failure = inst.failure or {"kind": "other", "claim_hidden": "the case failed"}
    inst.failure = redact(failure)
    inst.message = render_failure(inst.failure, hidden=True)
    inst.example = None
    inst.details = {k: v for k, v in inst.details.items() if k in ("max_abs_error", "max_rel_error")}


def _run_instance(case: Case, backend: str, dtype: str, options: GradeOptions, cs: CaseSession, run: ExerciseRun, *, submission: Submission | None = None) -> tuple[InstanceResult, bool]:
    """One (case, backend, dtype) in the case's child; returns the result and whether the child died."""
    start = time.monotonic()
    ctx = CaseContext(case, backend, dtype, case.tolerances[dtype], cs, options.limits)
    ctx.timed, ctx.submission = True, submission  # a case's time_factor applies to learner code (harness/timing.py)
    inst = check_instance(ctx, case)
    exercise = EXERCISES[case.exercise]
    if not exercise.array_inputs:  # integer arguments: no input dtype (and for a plain number, no backend) to report
        inst.dtype = "any"
        inst.backend = inst.backend if exercise.array_output else "any"
    inst.duration = round(time.monotonic() - start, 4)
    inst.calls = ctx.calls
    for hit in ctx.tripwires:
        if hit not in run.tripwires:
            run.tripwires.append(hit)
    evidence = FailureEvidence(case, backend, dtype, ctx.observations)
    (run.passed_evidence if inst.outcome == "passed" else run.evidence).append(evidence)
    return inst, ctx.aborted


def check_instance(ctx: CaseContext, case: Case, *, shrink: bool = True) -> InstanceResult:
    """Run the case's property on fixed, literal or drawn inputs; every way it can end becomes a result."""
    prop = PROPERTIES[case.property]
    backend, dtype = ctx.backend, ctx.dtype
    try:
        if case.inputs is not None and case.inputs.is_drawn:
            return _check_drawn(ctx, case, prop, shrink)
        inputs = _memo_inputs(("fixed", case.id, case.exercise, case.property, repr(case.inputs), dtype), lambda: _fixed_inputs(case, dtype))
        prop.check(ctx, cast(Inputs, inputs))  # None for a property that makes its own inputs (needs_inputs False)
        return InstanceResult(backend, dtype, "passed")
    except Failed as exc:
        return InstanceResult(backend, dtype, exc.kind, exc.message, exc.likely, details=exc.details, failure=exc.failure)
    except CaseAborted as exc:
        return _aborted(ctx, case, exc)
    except Exception as exc:  # noqa: BLE001 - fail closed: a bug in attnspec fails this case, with the reason, and nothing else
        message = f"internal error in attnspec while checking this case ({type(exc).__name__}: {exc}); please report it"
        return InstanceResult(backend, dtype, "error", message, failure={"kind": "internal", "outcome": "error", "claim": message, "hints": [], "claim_hidden": "internal error in attnspec while checking this case"})


def _aborted(ctx: CaseContext, case: Case, exc: CaseAborted, example: str | None = None) -> InstanceResult:
    """The case's process died (timeout, crash): an error with the kind of problem as data."""
    message = f"{case.exercise} {exc.outcome.problem(ctx.limits)}"
    failure = {"kind": exc.outcome.status, "outcome": "error", "claim": message, "function": case.exercise, "hints": [], "claim_hidden": f"{case.exercise} did not return ({exc.outcome.status})"}
    return InstanceResult(ctx.backend, ctx.dtype, "error", message, example=example, failure=failure)


_INPUTS: OrderedDict[tuple[Any, ...], Inputs | None] = OrderedDict()
_INPUTS_LOCK = threading.Lock()
_INPUTS_MAX = 4096


def _fixed_inputs(case: Case, dtype: str) -> Inputs | None:
    inputs = build_fixed_inputs(case)
    return cast_inputs(inputs, dtype) if inputs is not None else None


def _memo_inputs(key: tuple[Any, ...], build: Any) -> Inputs | None:
    """Inputs are a pure function of (case, shapes, seed, dtype): a class run builds each once per
    grader process and hands every submission its own copy (a property may change its copy)."""
    with _INPUTS_LOCK:
        hit = _INPUTS.get(key)
        if hit is not None:
            _INPUTS.move_to_end(key)
    if hit is None:
        hit = build()
        with _INPUTS_LOCK:
            _INPUTS[key] = hit
            while len(_INPUTS) > _INPUTS_MAX:
                _INPUTS.popitem(last=False)
    return copy.deepcopy(hit)


def _check_drawn(ctx: CaseContext, case: Case, prop: Any, shrink: bool) -> InstanceResult:
    """Hypothesis draws shapes and seeds (deterministically) and shrinks to the smallest failure.

    Until an example fails, what Hypothesis draws does not depend on the function graded: the
    examples are drawn once per process and case (`_drawn_examples`) and each submission's are
    checked in that order. Only when one fails does Hypothesis run for this submission, to shrink;
    it draws the same examples first, and those already checked are answered from their results,
    so the function is called exactly as if Hypothesis had run from the start."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    spec = case.inputs
    assert spec is not None
    state: dict[str, Any] = {"evaluations": 0, "aborted": None, "slow": None}
    shrink = shrink and case.time_factor is None  # realistic sizes: a failure is reported as drawn, not shrunk
    budget = case.examples + SHRINK_CALL_BUDGET

    def make(drawn: tuple[dict[str, int], int]) -> Inputs:
        dims, seed = drawn
        key = ("drawn", case.exercise, repr(spec), tuple(sorted(dims.items())), seed, ctx.dtype)
        return cast(Inputs, _memo_inputs(key, lambda: cast_inputs(generate_inputs(case.exercise, spec, dims, seed), ctx.dtype)))

    def evaluate(drawn: tuple[dict[str, int], int]) -> bool:
        if state["aborted"] is not None or state["slow"] is not None:
            return True  # the case's process is gone, or a call was too slow: no more calls, the same verdict every time (never 'flaky')
        if state["evaluations"] >= budget:
            return False
        state["evaluations"] += 1
        try:
            prop.check(ctx, make(drawn))
        except Failed as exc:
            if exc.failure.get("kind") == "slow":
                state["slow"] = (exc, drawn)
            return True
        except CaseAborted as exc:
            state["aborted"] = (exc, drawn)
            return True
        return False

    ctx.recording = False
    try:
        examples: list[Any] | None = _drawn_examples(case, shrink)
    except Exception:  # noqa: BLE001 - Hypothesis cannot draw for this case: the search below meets the same problem, as it always did
        examples = None
    checked: list[tuple[Any, bool | Exception]] = []  # (drawn, whether it failed, or what the check raised)
    for drawn in examples or []:
        try:
            failed = evaluate(drawn)
        except Exception as exc:  # noqa: BLE001 - re-raised below at the same example, where Hypothesis handles it as it would have
            checked.append((drawn, exc))
            break
        checked.append((drawn, failed))
        if failed:
            break
    else:
        if examples is not None:
            return InstanceResult(ctx.backend, ctx.dtype, "passed")
    if state["aborted"] is not None:  # Hypothesis would only get True from here on, and call nothing more
        gone, drawn = state["aborted"]
        return _aborted(ctx, case, gone, make(drawn).label())
    if state["slow"] is not None:  # too slow: reported on the example it happened on (a rerun would cost as much again)
        slow, drawn = state["slow"]
        return InstanceResult(ctx.backend, ctx.dtype, slow.kind, slow.message, slow.likely, example=make(drawn).label(), details=slow.details, failure=slow.failure)
    replayed = {"next": 0}

    def fails(drawn: tuple[dict[str, int], int]) -> bool:
        i = replayed["next"]
        if 0 <= i < len(checked):  # the examples already checked, drawn again in the same order
            known, outcome = checked[i]
            if known == drawn:
                replayed["next"] = i + 1
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
            replayed["next"] = -1  # (never expected: Hypothesis drew something else; from here on, check for real)
        return evaluate(drawn)

    try:
        minimal = find(shapes_strategy(case.exercise, spec, PROPERTIES[case.property].fixed_dims), fails, settings=_drawn_settings(case, shrink), random=Random(spec.seed))
    except NoSuchExample:
        if state["aborted"] is None:
            return InstanceResult(ctx.backend, ctx.dtype, "passed")
    except Exception:  # noqa: BLE001 - Hypothesis' verdicts on a dead case (Flaky, FlakyFailure): the timeout or crash is the verdict
        if state["aborted"] is None:
            raise
    if state["aborted"] is not None:
        exc, drawn = state["aborted"]
        return _aborted(ctx, case, exc, make(drawn).label())
    if state["slow"] is not None:  # reported on the example it happened on (a rerun would cost as much again)
        slow, drawn = state["slow"]
        return InstanceResult(ctx.backend, ctx.dtype, slow.kind, slow.message, slow.likely, example=make(drawn).label(), details=slow.details, failure=slow.failure)
    inputs = make(minimal)
    ctx.recording = True
    try:
        prop.check(ctx, inputs)
    except Failed as exc:
        return InstanceResult(ctx.backend, ctx.dtype, exc.kind, exc.message, exc.likely, example=inputs.label(), details=exc.details, failure=exc.failure)
    except CaseAborted as exc:
        return _aborted(ctx, case, exc, inputs.label())
    message = "the submission failed this example once and passed it when rerun: its output is not deterministic"
    return InstanceResult(ctx.backend, ctx.dtype, "error", message, example=inputs.label(), failure={"kind": "nondeterministic", "outcome": "error", "claim": message, "hints": [], "claim_hidden": message})


_EXAMPLES: dict[tuple[str, bool], list[Any]] = {}
_EXAMPLES_LOCK = threading.Lock()


def _drawn_settings(case: Case, shrink: bool) -> Any:
    from hypothesis import HealthCheck, Phase, Verbosity, settings

    return settings(
        max_examples=case.examples,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )


def _drawn_examples(case: Case, shrink: bool) -> list[Any]:
    """The (dims, seed) examples Hypothesis draws for this case while none fails, in order: the
    same for every submission (seeded, no example database), so drawn once per process and case
    (a class run draws them before its grader processes are forked)."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    key = (repr(case), shrink)
    with _EXAMPLES_LOCK:
        hit = _EXAMPLES.get(key)
    if hit is not None:
        return hit
    assert case.inputs is not None
    drawn: list[Any] = []

    def record(example: Any) -> bool:
        drawn.append(copy.deepcopy(example))
        return False

    try:
        find(shapes_strategy(case.exercise, case.inputs, PROPERTIES[case.property].fixed_dims), record, settings=_drawn_settings(case, shrink), random=Random(case.inputs.seed))
    except NoSuchExample:
        pass
    with _EXAMPLES_LOCK:
        _EXAMPLES[key] = drawn
    return drawn


# ---------------------------------------------------------------- implementation rules


def _rules_case(exercise: str, rules: Any, static: StaticReport, load: LoadReport, run: ExerciseRun, submission: Submission) -> CaseResult:
    apis = [f.api for f in rules.forbidden]
    reasons = {f.api: f.reason for f in rules.forbidden}
    problems = []
    for use in static.forbidden_uses(exercise, apis):
        where = submission.where(use.filename, use.line)
        problems.append(f"{use.function or exercise} uses {use.api} ({where}): {reasons[use.api]}")
    for hit in run.tripwires:
        if hit["api"].startswith("import "):
            continue
        where = submission.where(hit.get("file"), hit.get("line")) or "somewhere in code it calls"
        text = f"{exercise} called {hit['api']} at run time ({where}): {reasons.get(hit['api'], 'forbidden for this exercise')}"
        if not any(hit["api"] in p and where in p for p in problems):
            problems.append(text)
    for use in static.introspection:
        problems.append(f"the submission inspects the grader's {use.api} ({submission.where(use.filename, use.line)}): submissions may not reach into the grader's own objects")
    for use in static.attnspec_imports:
        problems.append(f"the submission imports attnspec ({submission.where(use.filename, use.line)}): submissions may not use the grader's package")
    for hit in load.tripwires + [h for h in run.tripwires if h["api"].startswith("import ")]:
        text = f"the submission tried to {hit['api']} ({submission.where(hit.get('file'), hit.get('line')) or 'at run time'}): submissions may not use the grader's package"
        if text not in problems and not static.attnspec_imports:
            problems.append(text)
    case = CaseResult(
        case_id=rules.case_id,
        exercise=exercise,
        title="implementation rules: no forbidden APIs, no import of attnspec",
        property="implementation_rules",
        visibility="visible",
        max_points=rules.points,
        points=0.0 if problems else rules.points,
        outcome="failed" if problems else "passed",
        feedback="Write the computation yourself; the numbers are still graded by the other cases.",
        inputs="static analysis of the source and run-time tracing of calls",
    )
    case.instances.append(InstanceResult("any", "any", case.outcome, "\n".join(problems)))
    return case
