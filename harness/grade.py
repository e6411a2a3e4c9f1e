"""Grade one submission: load it in a worker, decide exercises and backends, run every case.

This is the orchestration stage. It turns each (case, backend, dtype) into an `InstanceResult`
by running the case's property against the submission in a child process of its zygote, scores the
cases, runs diagnosis on the failures and checks the implementation rules. It prints nothing.
Its parts: which backends a function works on (backendprobe.py), one case instance
(casecheck.py), the implementation-rules verdict (rulesverdict.py).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import threading
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any


from . import __version__
from .diagnosis import diagnose
from .errors import BackendUnavailable, SubmissionError
from .exercises import EXERCISES
from .patterns import attach_patterns
from .probes import SessionProber
from .properties import PROPERTIES, CaseContext, Observation
from .reports.failure import redact, render_failure
from .results import CaseResult, ExerciseResult, GradeResult, InstanceResult, LoadInfo, NotRun
from .runner import CaseSession, Limits, LoadReport, WorkerPool, WorkerSession
from .scoring import score_case, score_exercise
from .specmodel import Case, Spec
from .static import StaticReport, analyze
from .submission import Submission, load_submission
from .casecheck import case_limit, check_instance
from .backendprobe import _backend_candidates, _probe_backends
from .backendprobe import torch_available  # noqa: F401  (importers ask the grading stage whether torch is there)
from .rulesverdict import _rules_case


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
        submission.notes.extend(_ungraded_in_companions(submission, set(static.functions) | set(load.functions), scope))
        result.load = _load_info(submission, load)
        if not options.exercises:
            scope = exercises_in_file(graded, submission, static, load.functions) or graded
            result.options["exercises"] = list(scope)
        deadline = start + options.limits.submission_timeout
        # Every exercise's visible cases run before any hidden case: what a hidden case's inputs
        # leave in the submission's sandbox (a file in its /tmp, a list kept in a module) can then
        # reach no message a learner sees.
        started = [_start_exercise(exercise, spec, options, submission, static, load, sessions, candidates, deadline) for exercise in scope]
        for exercise_started in started:
            sound = _sound_helpers(exercise_started.run.result.exercise, static, result.exercises)
            result.exercises.append(_finish_exercise(exercise_started, options, submission, static, load, sessions, deadline, sound).result)
    finally:
        for each in sessions:
            each.close()
        if own_pool:
            pool.close()
    _finish(result, spec, options, scope, start)
    return result


def _ungraded_in_companions(submission: Submission, graded_file_has: set[str], scope: tuple[str, ...]) -> list[str]:
    """A note for each helper file that defines an exercise the graded file does not: only the
    graded file's functions are graded, and a learner who split the work must hear why."""
    from .layouts import defined_exercises

    notes = []
    for companion in submission.companions:
        elsewhere = [e for e in defined_exercises(Path(companion), scope) if e not in graded_file_has]
        if elsewhere:
            notes.append(
                f"{Path(companion).name} defines {', '.join(elsewhere)}, which is not graded: only {os.path.basename(submission.display)} is "
                "(the file that defines the most exercises); define every exercise in that file, or import it there"
            )
    return notes


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


# ---------------------------------------------------------------- one exercise


@dataclass
class _StartedExercise:
    """An exercise whose visible cases have run; its hidden ones, rules case and diagnosis follow."""

    run: ExerciseRun
    rules: Any = None
    cases: list[Case] = field(default_factory=list)  # the cases that apply, in spec order
    backends: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    finished: dict[int, tuple[CaseResult, ExerciseRun]] = field(default_factory=dict)  # by index in `cases`
    done: bool = False  # nothing more to run: not gradable, or not implemented


def _start_exercise(
    exercise: str,
    spec: Spec,
    options: GradeOptions,
    submission: Submission,
    static: StaticReport,
    load: LoadReport,
    sessions: list[WorkerSession],
    candidates: list[str],
    deadline: float,
) -> _StartedExercise:
    cases = _cases_for(spec, exercise, options)
    rules = spec.rules.get(exercise)
    result = ExerciseResult(exercise, "graded", max_score=_max_points(spec, exercise, options))
    result.max_score -= sum(c.points for c in cases if not set(c.backends) & set(candidates))
    started = _StartedExercise(ExerciseRun(result), rules)
    fn_static = static.functions.get(exercise)
    if fn_static is not None:
        result.location = f"{fn_static.filename.split(',')[0]}, {submission.where(fn_static.filename, fn_static.line)}"
    result.signature = load.functions.get(exercise, {}).get("signature")
    ungradable = _ungradable(exercise, submission, static, load)
    if ungradable is not None:
        result.status, result.message = ungradable
        started.done = True
        return started
    started.forbidden = [f.api for f in rules.forbidden] if rules is not None else []
    probe = _probe_backends(exercise, candidates, sessions[0], fn_static, started.forbidden, options.limits)
    started.run.tripwires.extend(probe.tripwires)
    if probe.not_implemented is not None:
        result.status, result.message = "not_implemented", f"{exercise} is not implemented yet: it raises NotImplementedError{probe.not_implemented}"
        started.done = True
        return started
    started.backends = probe.backends
    result.backends, result.backend_notes = probe.backends, probe.notes
    started.cases = [c for c in cases if set(c.backends) & set(probe.backends)]
    skipped = [c for c in cases if c not in started.cases]
    if skipped:
        only = sorted({b for c in skipped for b in c.backends})
        result.backend_notes.append(f"{len(skipped)} case(s) apply only to {', '.join(only)} and were not run for this submission")
        result.max_score -= sum(c.points for c in skipped if set(c.backends) & set(candidates))
    visible = [i for i, c in enumerate(started.cases) if not c.hidden]
    _run_cases(started, visible, options, submission, sessions, deadline, may_end=len(visible) == len(started.cases))
    return started


def _sound_helpers(exercise: str, static: StaticReport, graded: list[ExerciseResult]) -> tuple[str, ...]:
    """The exercises graded before this one, with every case passed, whose function this one's
    body calls by name (a block that calls the learner's own, correct multi_head_attention)."""
    fn = static.functions.get(exercise)
    if fn is None:
        return ()
    called = {n.id for n in ast.walk(fn.node) if isinstance(n, ast.Name)}
    return tuple(e.exercise for e in graded if e.exercise in called and e.status == "graded" and e.cases and not e.failed_cases)


def _finish_exercise(
    started: _StartedExercise,
    options: GradeOptions,
    submission: Submission,
    static: StaticReport,
    load: LoadReport,
    sessions: list[WorkerSession],
    deadline: float,
    sound: tuple[str, ...] = (),
) -> ExerciseRun:
    """The hidden cases, then every case's result in spec order, the rules case, the score and the diagnosis."""
    run, result = started.run, started.run.result
    if started.done:
        return run
    _run_cases(started, [i for i, c in enumerate(started.cases) if c.hidden], options, submission, sessions, deadline, may_end=True)
    for index in sorted(started.finished):
        case_result, part = started.finished[index]
        result.cases.append(case_result)
        run.evidence.extend(part.evidence)
        run.passed_evidence.extend(part.passed_evidence)
        run.tripwires.extend(t for t in part.tripwires if t not in run.tripwires)
    attach_patterns(run, sessions[0], options, started.forbidden, deadline)
    rules = started.rules
    if rules is not None and _rules_selected(rules, options):
        result.cases.append(_rules_case(result.exercise, rules, static, load, run, submission))
    score_exercise(result)
    if run.evidence:  # scored above: probes the diagnosis runs (in the sandbox, like the cases) never change scores
        diagnose(run, source="\n".join(f.text for f in submission.files), prober=SessionProber(sessions[0], started.forbidden, deadline, result.exercise), sound=sound)
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


def _run_cases(started: _StartedExercise, indices: list[int], options: GradeOptions, submission: Submission, sessions: list[WorkerSession], deadline: float, *, may_end: bool) -> None:
    """Run the cases at `indices`, dealt to the zygotes in turn (the i-th to zygote i mod n, each
    in spec order, so what ran before a case in its process is the same in every grading), into
    `started.finished`. `may_end`: no more cases of this exercise follow these."""

    def serve(k: int, session: WorkerSession) -> None:
        mine = indices[k :: len(sessions)]
        for n, index in enumerate(mine):
            part = ExerciseRun(started.run.result)
            last = may_end and n == len(mine) - 1
            case_result = _run_case(started.cases[index], started.backends, options, submission, session, part, deadline, started.forbidden, last=last)
            started.finished[index] = (case_result, part)

    for future in [_case_threads(len(sessions)).submit(serve, k, each) for k, each in enumerate(sessions)]:
        future.result()


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
    attempt = ExerciseRun(run.result)
    fresh = session.history == "matters"
    instances, outputs, reused = _attempt_case(case, backends, options, session, attempt, deadline, forbidden, last=last, fresh=fresh, submission=submission)
    if reused and session.history == "unknown" and _rerun_fresh(instances) and deadline - time.monotonic() > 2 * (time.monotonic() - start) + 1.0:
        # The first case that fails in a child earlier cases ran in is run again in a fresh one.
        # The same result: this zygote's later cases keep sharing a child. Another: earlier
        # cases changed this one's verdict, so the fresh run is reported and every later case of
        # this zygote gets a fresh child of its own.
        again = ExerciseRun(run.result)
        retried = _attempt_case(case, backends, options, session, again, deadline, forbidden, last=last, fresh=True, submission=submission)
        if not any(_budget_spent(i) for i in retried[0]):
            same = [_verdict(i) for i in instances] == [_verdict(i) for i in retried[0]]
            session.history = "irrelevant" if same else "matters"
            attempt, (instances, outputs, _) = again, retried
    run.evidence.extend(attempt.evidence)
    run.passed_evidence.extend(attempt.passed_evidence)
    run.tripwires.extend(t for t in attempt.tripwires if t not in run.tripwires)
    for inst in instances:
        if hidden:
            _redact(inst)
        result.instances.append(inst)
    result.output = "\n".join(o for o in outputs if o)[:8000]
    result.duration = round(time.monotonic() - start, 4)
    score_case(result)
    if instances and all(_budget_spent(i) for i in instances):
        result.outcome = "not_run"
    return result


def _attempt_case(
    case: Case, backends: list[str], options: GradeOptions, session: WorkerSession, run: ExerciseRun, deadline: float, forbidden: list[str], *,
    last: bool, fresh: bool, submission: Submission,
) -> tuple[list[InstanceResult], list[str], bool]:
    """Every (backend, dtype) of the case, in one child process of the zygote (a fresh one after a
    crash or timeout). Returns the instances, the printed output, and whether any of them ran in
    a child that had run an earlier case."""
    instances: list[InstanceResult] = []
    outputs: list[str] = []
    reused = False
    cs: CaseSession | None = None
    for backend in [b for b in backends if b in case.backends]:
        for dtype in case.dtypes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                message = f"{BUDGET_SPENT} (the submission's {options.limits.submission_timeout:g} s budget was used up by earlier cases)"
                inst = InstanceResult(backend, dtype, "error", message, failure={"kind": "not_run", "outcome": "error", "claim": message, "hints": [], "claim_hidden": message})
            else:
                if cs is None:
                    cs = session.case(case.id, case_limit(case, options.limits, remaining), forbidden=forbidden, last=last, fresh=fresh).__enter__()
                    reused = reused or (cs.lost is None and not cs.fresh)
                inst, aborted = _run_instance(case, backend, dtype, options, cs, run, submission=submission)
                if aborted:
                    outputs.append(_close_case(cs))
                    cs = None
            instances.append(inst)
    if cs is not None:
        outputs.append(_close_case(cs))
    return instances, outputs, reused


_NOT_RERUN = frozenset({"timeout", "slow", "not_run", "worker_lost"})  # a rerun would only spend the budget again


def _rerun_fresh(instances: list[InstanceResult]) -> bool:
    return any(i.outcome != "passed" and (i.failure or {}).get("kind") not in _NOT_RERUN for i in instances)


def _verdict(inst: InstanceResult) -> tuple[Any, ...]:
    """What a report says about an instance, without its timings."""
    return (inst.backend, inst.dtype, inst.outcome, inst.message, inst.likely, inst.example, repr(inst.details), repr(inst.failure))


def _budget_spent(inst: InstanceResult) -> bool:
    return (inst.failure or {}).get("kind") == "not_run"


BUDGET_SPENT = "not run: time budget spent"


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


# ---------------------------------------------------------------- implementation rules


