"""Name the learner's mistake: find catalogued misconceptions that reproduce the submission's
behaviour on *every* recorded call of the failing cases (and stay consistent with the passing
ones), so a diagnosis is never a lucky match on one input. A correct submission has no failing
cases and is never diagnosed; when nothing matches, the report says so instead of guessing.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import misconceptions
from .inputs import Inputs
from .misconceptions import STRUCTURAL_PROPERTIES, Misconception
from .results import Diagnosis

EXPLAIN_FACTOR = 10.0
NO_MATCH = (
    "No known mistake from the catalogue reproduces all of the failing results; "
    "the failing cases above show what differs and where."
)


def diagnose(run: Any, options: Any = None) -> None:
    """Fill run.result.diagnoses (or diagnosis_note) from the evidence gathered while grading."""
    result = run.result
    for backend in result.backends:
        failing = [e for e in run.evidence if e.backend == backend]
        if not failing:
            continue
        passing = [e for e in run.passed_evidence if e.backend == backend]
        for m in misconceptions.for_exercise(result.exercise):
            if backend not in m.backends:
                continue
            evidence = _explains(m, result, failing, passing, backend)
            if evidence is not None and not any(d.id == m.id for d in result.diagnoses):
                result.diagnoses.append(Diagnosis(m.id, m.title, m.feedback, m.reference, backend, evidence))
    if result.failed_cases and not result.diagnoses:
        result.diagnosis_note = NO_MATCH


def _explains(m: Misconception, result: Any, failing: list, passing: list, backend: str) -> dict[str, Any] | None:
    if m.signature is not None:
        prop, fragments = m.signature
        cases = _failed_with(result, backend, prop, fragments)
        return {"failed_cases": cases, "rule": f"the '{prop}' property failed"} if cases else None
    if m.rule is not None:
        return RULES[m.rule](result, backend, failing, passing)
    return _reproduces(m, failing, passing)


def _failed_with(result: Any, backend: str, prop: str, fragments: tuple[str, ...]) -> list[str]:
    """Ids of the cases of property `prop` that failed on `backend` with one of the message fragments."""
    return sorted(
        c.case_id
        for c in result.cases
        if c.property == prop and any(i.backend == backend and i.outcome != "passed" and any(f in i.message for f in fragments) for i in c.instances)
    )


def _reproduces(m: Misconception, failing: list, passing: list) -> dict[str, Any] | None:
    """Evidence that `m` computes what the learner's code computed on every failing call."""
    fn = m.implementation()
    value_failures = [e for e in failing if e.case.property not in STRUCTURAL_PROPERTIES]
    matched_calls, cases, worst = 0, set(), 0.0
    for e in value_failures:
        tol = e.case.tolerances[e.dtype]
        for obs in e.observations:
            if obs.function != m.target:
                continue
            verdict = _consistent(fn, obs, tol)
            if verdict is None:
                return None
            if verdict >= 0:
                matched_calls += 1
                worst = max(worst, verdict)
                cases.add(e.case.id)
    if matched_calls == 0:
        return None
    for e in passing:
        if e.case.property in STRUCTURAL_PROPERTIES:
            continue
        tol = e.case.tolerances[e.dtype]
        for obs in e.observations:
            if obs.function == m.target and _consistent(fn, obs, tol) is None:
                return None
    return {"failed_cases": sorted(cases), "calls_reproduced": matched_calls, "max_abs_difference": float(worst)}


def _consistent(fn: Callable[..., Any], obs: Any, tol: Any) -> float | None:
    """None if `fn` does not behave like the learner's call; -1 if both raised; else the max difference."""
    args = obs.inputs.positional() if isinstance(obs.inputs, Inputs) else list(obs.inputs)
    if obs.dtype in NUMPY_DTYPES:
        # Run the mistake in the learner's dtype: overflow (exp without the max shift) and
        # rounding happen at float32's limits, not float64's.
        args = [_cast(a, obs.dtype) for a in args]
    try:
        with np.errstate(all="ignore"):
            alt = np.asarray(fn(*args), dtype=np.float64)
        raised = False
    except (ValueError, IndexError, TypeError, RuntimeError, FloatingPointError):
        alt, raised = None, True
    if obs.status == "raised":
        return -1.0 if raised else None
    if obs.status != "ok" or obs.values is None or raised or alt is None:
        return None
    got = obs.values
    if got.shape != alt.shape:
        return None
    same_special = (np.isnan(got) & np.isnan(alt)) | (np.isinf(got) & np.isinf(alt) & (np.sign(got) == np.sign(alt)))
    with np.errstate(all="ignore"):
        diff = np.where(same_special, 0.0, np.abs(got - alt))
        # 10x the case tolerance: the learner's float32 code and our float64 rendering of the
        # same mistake differ by more than rounding on ill-conditioned inputs (small variance).
        allowed = EXPLAIN_FACTOR * (tol.atol + tol.rtol * np.abs(np.where(np.isfinite(alt), alt, 0.0)))
    if not np.all(diff <= allowed):
        return None
    return float(diff.max()) if diff.size else 0.0


NUMPY_DTYPES = ("float32", "float16")


def _cast(value: Any, dtype: str) -> Any:
    if isinstance(value, np.ndarray):
        return value.astype(dtype)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


def _square_only(result: Any, backend: str, failing: list, passing: list) -> dict[str, Any] | None:
    """Every value case with seq_q != seq_k fails and every one with seq_q == seq_k (>= 2) passes."""

    def shapes(evidence: list) -> list[tuple[str, bool]]:
        out = []
        for e in evidence:
            if e.case.property in STRUCTURAL_PROPERTIES:
                continue
            for obs in e.observations:
                if isinstance(obs.inputs, Inputs) and obs.inputs.exercise == "manual_attention":
                    d = obs.inputs.dims
                    out.append((e.case.id, d["seq_q"] == d["seq_k"] and d["seq_q"] >= 2))
        return out

    bad = shapes(failing)
    good = shapes(passing)
    if not bad or any(square for _, square in bad) or not any(square for _, square in good) or not all(square for _, square in good):
        return None
    return {"failed_cases": sorted({c for c, _ in bad}), "rule": "every case with seq_q != seq_k fails, every case with seq_q == seq_k passes"}


def _gradients_only(result: Any, backend: str, failing: list, passing: list) -> dict[str, Any] | None:
    """Gradients are wrong while every value case passes: a step autograd cannot see (.data, no_grad)."""
    wrong = _failed_with(result, backend, "gradients_match", ("is wrong although the forward values may be right",))
    values_fail = any(e.case.property not in STRUCTURAL_PROPERTIES for e in failing)
    if not wrong or values_fail:
        return None
    return {"failed_cases": wrong, "rule": "gradient cases fail while every value case passes"}


RULES: dict[str, Callable[[Any, str, list, list], dict[str, Any] | None]] = {"square_only": _square_only, "gradients_only": _gradients_only}
