"""One case instance: its inputs (built once per process), the property's check, Hypothesis for
drawn cases (drawn once, replayed per submission, shrunk on a failure), and the case's time limit.

The orchestration (harness/grade.py) calls `check_instance` for each (case, backend, dtype).
"""

from __future__ import annotations

import copy
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import replace
from random import Random
from typing import Any, cast

import numpy as np

from . import refcache
from .exercises import reference_functions
from .inputs import Inputs, cast_inputs, generate_inputs, shapes_strategy
from .loader import build_fixed_inputs
from .properties import PROPERTIES, CaseAborted, CaseContext, Failed
from .results import InstanceResult
from .runner import InProcessRunner, Limits
from .specmodel import Case


SHRINK_CALL_BUDGET = 60


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
    grader process and hands every submission its own copy of the containers around the same
    read-only arrays (a property may replace an argument in its copy, never write into one).
    Read-only arrays also let the reference's outputs on them be remembered (harness/refcache.py)."""
    with _INPUTS_LOCK:
        hit = _INPUTS.get(key)
        if hit is not None:
            _INPUTS.move_to_end(key)
    if hit is None:
        built = build()
        hit = replace(built, args=refcache.freeze(built.args)) if built is not None else None
        with _INPUTS_LOCK:
            _INPUTS[key] = hit
            while len(_INPUTS) > _INPUTS_MAX:
                _INPUTS.popitem(last=False)
    if hit is None:
        return None
    return replace(hit, args=_containers(hit.args), dims=dict(hit.dims), notes=copy.deepcopy(hit.notes))


def _containers(value: Any) -> Any:
    """A copy of the dicts and lists in `value`, sharing the (read-only) arrays and numbers."""
    if isinstance(value, dict):
        return {k: _containers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_containers(v) for v in value]
    return value


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
    asked: list[tuple[Any, Any]] = []  # every example the search asks about, in order, with the answer

    def fails(drawn: tuple[dict[str, int], int]) -> bool:
        i = replayed["next"]
        if 0 <= i < len(checked):  # the examples already checked, drawn again in the same order
            known, outcome = checked[i]
            if known == drawn:
                replayed["next"] = i + 1
                asked.append((drawn, outcome))
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
            replayed["next"] = -1  # (never expected: Hypothesis drew something else; from here on, check for real)
        answer = evaluate(drawn)
        asked.append((drawn, answer))
        return answer

    searches = _SEARCHES.setdefault((repr(case), shrink), {}) if examples is not None else None
    minimal = _known_search(searches, checked, evaluate, state) if searches is not None else None
    if state["aborted"] is None and state["slow"] is None and minimal is None:
        try:
            minimal = find(shapes_strategy(case.exercise, spec, PROPERTIES[case.property].fixed_dims), fails, settings=_drawn_settings(case, shrink), random=Random(spec.seed))
        except NoSuchExample:
            if state["aborted"] is None:
                return InstanceResult(ctx.backend, ctx.dtype, "passed")
        except Exception:  # noqa: BLE001 - Hypothesis' verdicts on a dead case (Flaky, FlakyFailure): the timeout or crash is the verdict
            if state["aborted"] is None:
                raise
        else:
            if searches is not None and state["aborted"] is None and state["slow"] is None:
                _remember_search(searches, asked, minimal)
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

# Per case: the searches Hypothesis ran to shrink a failure, as a tree of (example asked about,
# answer) from the first example on, ending in the smallest failing example it settled on. The
# search asks only about examples, in an order fixed by the answers so far (seeded, no database):
# a submission that gives the same answers is asked the same examples and ends at the same one,
# so its search is followed here, calling its function on each example, without running
# Hypothesis' engine again (most of a failing case's time in a class run).
_SEARCHES: dict[tuple[str, bool], dict[str, Any]] = {}
_SEARCHES_LOCK = threading.Lock()


def _known_search(root: dict[str, Any], checked: list[tuple[Any, Any]], evaluate: Any, state: dict[str, Any]) -> Any:
    """Follow a remembered search with this submission's answers (those in `checked` first, then
    new calls, which are appended to `checked` for a search that has to run after all). Returns
    the smallest failing example when the whole search is known, else None."""
    node: dict[str, Any] | None = root
    i = 0
    while node is not None and "ask" in node:
        drawn = node["ask"]
        if i < len(checked):
            known, answer = checked[i]
            if known != drawn or not isinstance(answer, bool):
                return None
        else:
            answer = evaluate(drawn)
            checked.append((drawn, answer))
            if state["aborted"] is not None or state["slow"] is not None:
                return None
        i += 1
        with _SEARCHES_LOCK:
            node = node["next"].get(answer)
    return node["minimal"] if node is not None and "minimal" in node else None


def _remember_search(root: dict[str, Any], asked: list[tuple[Any, Any]], minimal: Any) -> None:
    if not asked or not all(isinstance(answer, bool) for _, answer in asked):
        return
    with _SEARCHES_LOCK:
        node = root
        for drawn, answer in asked:
            if "ask" not in node:
                if node:  # a different search already ends here: keep the first
                    return
                node.update(ask=copy.deepcopy(drawn), next={})
            elif node["ask"] != drawn:
                return
            node = node["next"].setdefault(answer, {})
        if not node:
            node["minimal"] = copy.deepcopy(minimal)


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
