"""The learner's own attention patterns, expected vs got, for failing visible cases.

A failing case says "expected 0.44, got 1.84"; the picture a learner reasons with is the
attention grid. This stage asks the learner's function for its weights without asking for them:
it calls the function again, in the case's sandboxed child (the same `CaseSession.call` path as
the cases), on the failing inputs with values chosen so that the output *is* the weights:

- manual_attention: V = I (seq_k x seq_k, for every batch element and head), so out = weights.
- multi_head_attention: W_O = I and W_V chosen so that x[0] @ W_V gives, in every head's value
  slice, a block of the identity (possible when x[0] has full row rank, seq <= d_model); a few
  calls cover all keys. Otherwise the outputs themselves are shown.
- transformer_block: the MLP weights zeroed, so the output is the residual stream after the
  attention sublayer; with the full output, the stream after each sublayer.

The expected patterns come from the NumPy reference in float64. Hidden cases get nothing: their
inputs and values are never revealed. The result is plain data (`CaseResult.patterns`), drawn
later by the HTML reporter. This module prints nothing and needs only NumPy.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .inputs import Inputs
from .reference import numpy_ref

if TYPE_CHECKING:
    from .grade import ExerciseRun, FailureEvidence, GradeOptions
    from .results import CaseResult
    from .runner import CallOutcome, WorkerSession

MAX_CASES = 6  # fixed-input cases with pictures, per exercise
MAX_DRAWN = 2  # drawn (hypothesis) cases with pictures, per exercise
MAX_PANELS = 4  # heads (or batch elements) drawn per case
MAX_SEQ = 48  # longer sequences are not drawn (a grid nobody can read)
DIGITS = 6
DIFF_EPS = 1e-6
#: Properties whose failures are not about values: a pattern would show nothing new.
NOT_ABOUT_VALUES = frozenset({"output_dtype", "output_array_type", "output_shape", "implementation_rules", "inputs_unchanged"})


def attach_patterns(run: "ExerciseRun", session: "WorkerSession", options: "GradeOptions", forbidden: list[str], deadline: float) -> None:
    """Add `patterns` to the exercise's failing visible cases (at most a few, within the deadline)."""
    exercise = run.result.exercise
    if exercise not in _PROBES:
        return
    candidates = [c for c in run.result.cases if c.outcome in ("failed", "error") and c.property not in NOT_ABOUT_VALUES]
    # never for hidden cases: they reveal no inputs and no values
    candidates = [c for c in candidates if c.visibility != "hidden" or options.show_hidden]
    firsts: list["CaseResult"] = []
    others: list["CaseResult"] = []
    for c in candidates:
        (others if any(f.property == c.property for f in firsts) else firsts).append(c)
    fixed = drawn = 0
    for case in firsts + others:  # the first failing case of each property first, then the others
        found = _failing_call(case, run.evidence)
        if found is None:
            continue
        evidence, inputs = found
        is_drawn = evidence.case.inputs is not None and evidence.case.inputs.is_drawn
        if (drawn >= MAX_DRAWN) if is_drawn else (fixed >= MAX_CASES):
            continue
        if time.monotonic() > deadline:
            return
        timeout = min(float(evidence.case.timeout), 10.0)
        with session.case(f"{case.case_id}.patterns", timeout, forbidden=forbidden) as cs:
            case.patterns = _PROBES[exercise](cs, inputs, evidence.backend, evidence.dtype)
        if case.patterns is not None:
            case.patterns["example"] = inputs.label()
            drawn, fixed = drawn + is_drawn, fixed + (not is_drawn)


def _failing_call(case: "CaseResult", evidence: list["FailureEvidence"]) -> tuple["FailureEvidence", Inputs] | None:
    """The first call of the exercise function recorded for this case's first failing instance."""
    bad = case.first_failure
    for ev in evidence:
        if ev.case.id != case.case_id or (bad is not None and (ev.backend, ev.dtype) != (bad.backend, bad.dtype)):
            continue
        for obs in ev.observations:
            if obs.function == case.exercise and isinstance(obs.inputs, Inputs):
                return ev, obs.inputs
    return None


# ---------------------------------------------------------------- manual_attention


def _manual_attention(cs: Any, inputs: Inputs, backend: str, dtype: str) -> dict[str, Any] | None:
    Q, K, mask = inputs.args["Q"], inputs.args["K"], inputs.args.get("mask")
    B, H, Tq, _ = Q.shape
    Tk = K.shape[2]
    if max(Tq, Tk) > MAX_SEQ:
        return None
    expected = numpy_ref.attention_pattern(Q, K, mask)  # (B, H, Tq, Tk), float64
    eye = np.broadcast_to(np.eye(Tk), (B, H, Tk, Tk)).copy()  # V = I: out = weights @ I = weights
    outcome = cs.call("manual_attention", inputs.with_args(V=eye), backend=backend, dtype=dtype)
    got, problem = _values(outcome, (B, H, Tq, Tk))
    blocked = _blocked(mask, (B, H, Tq, Tk))
    pairs = _choose([(b, h) for b in range(B) for h in range(H)], expected, got)
    panels = [_panel(f"batch {b}, head {h}", expected[b, h], None if got is None else got[b, h], None if blocked is None else blocked[b, h]) for b, h in pairs]
    how = "your manual_attention called on this case's Q, K and mask with V = identity, so its output is its attention weights"
    return _record("attention", backend, dtype, panels, how, problem, ("query", "key"))


# ---------------------------------------------------------------- multi_head_attention


def _multi_head_attention(cs: Any, inputs: Inputs, backend: str, dtype: str) -> dict[str, Any] | None:
    a = inputs.args
    x, n_heads, mask = a["x"], int(a["n_heads"]), a.get("mask")
    B, T, D = x.shape
    if T > MAX_SEQ or n_heads < 1 or D % n_heads:
        return None
    Dh = D // n_heads
    q = numpy_ref.split_heads(x @ a["W_Q"], n_heads)  # (B, H, T, Dh)
    k = numpy_ref.split_heads(x @ a["W_K"], n_heads)  # (B, H, T, Dh)
    expected = numpy_ref.attention_pattern(q, k, mask)[0]  # batch 0: (H, T, T)
    solve = np.linalg.pinv(x[0])  # (D, T); x[0] @ solve == I_T when x[0] has full row rank
    if not np.allclose(x[0] @ solve, np.eye(T), atol=1e-8):
        return _mha_outputs(cs, inputs, backend)
    got = np.zeros((n_heads, T, T))
    for start in range(0, T, Dh):  # each call reveals Dh keys of every head
        width = min(Dh, T - start)
        select = np.zeros((T, Dh))
        select[start : start + width, :width] = np.eye(width)  # values: one-hot keys start..start+width
        W_V = np.tile(solve @ select, (1, n_heads))  # (D, D): every head's value slice selects those keys
        outcome = cs.call("multi_head_attention", inputs.with_args(W_V=W_V, W_O=np.eye(D)), backend=backend, dtype="float64")
        out, problem = _values(outcome, (B, T, D))
        if out is None:
            return _record("attention", backend, "float64", [_panel(f"head {h}", expected[h], None, _blocked_2d(mask, T)) for h in range(min(n_heads, MAX_PANELS))], _MHA_HOW, problem, ("query", "key"))
        heads = out[0].reshape(T, n_heads, Dh).transpose(1, 0, 2)  # (H, T, Dh)
        got[:, :, start : start + width] = heads[:, :, :width]
    chosen = _choose(list(range(n_heads)), expected, got)
    panels = [_panel(f"head {h} (batch 0)", expected[h], got[h], _blocked_2d(mask, T)) for h in chosen]
    return _record("attention", backend, "float64", panels, _MHA_HOW, None, ("query", "key"))


_MHA_HOW = (
    "your multi_head_attention called on this case's x, W_Q, W_K and mask with W_O = identity and a W_V "
    "that makes every head's values one-hot key vectors, so each head's output slice is its attention weights"
)


def _mha_outputs(cs: Any, inputs: Inputs, backend: str) -> dict[str, Any] | None:
    """seq > d_model: the weights cannot be read through the values; show the outputs instead."""
    a = inputs.args
    expected = numpy_ref.multi_head_attention(a["x"], a["W_Q"], a["W_K"], a["W_V"], a["W_O"], int(a["n_heads"]), a.get("mask"))
    outcome = cs.call("multi_head_attention", inputs, backend=backend, dtype="float64")
    got, problem = _values(outcome, expected.shape)
    chosen = _choose(list(range(expected.shape[0])), expected, got)
    panels = [_panel(f"batch {b}", expected[b], None if got is None else got[b], None) for b in chosen]
    how = "the outputs (the attention weights cannot be read through the values when seq > d_model)"
    return _record("output", backend, "float64", panels, how, problem, ("position", "feature"))


# ---------------------------------------------------------------- transformer_block


def _transformer_block(cs: Any, inputs: Inputs, backend: str, dtype: str) -> dict[str, Any] | None:
    a = inputs.args
    x, params, n_heads, mask = a["x"], a["params"], int(a["n_heads"]), a.get("mask")
    B, T, D = x.shape
    if T > MAX_SEQ:
        return None
    p = params
    after_attn = x + numpy_ref.multi_head_attention(numpy_ref.layer_norm(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    final = numpy_ref.transformer_block(x, params, n_heads, mask)
    no_mlp = {**params, **{name: np.zeros_like(params[name]) for name in ("W_in", "b_in", "W_out", "b_out")}}
    got_attn, problem_attn = _values(cs.call("transformer_block", inputs.with_args(params=no_mlp), backend=backend, dtype=dtype), (B, T, D))
    got_final, problem_final = _values(cs.call("transformer_block", inputs, backend=backend, dtype=dtype), (B, T, D))
    b = _choose(list(range(B)), final, got_final)[0]
    panels = [
        _panel(f"after the attention sublayer: x + attention(ln1(x)) (batch {b})", after_attn[b], None if got_attn is None else got_attn[b], None),
        _panel(f"after the MLP sublayer: the block's output (batch {b})", final[b], None if got_final is None else got_final[b], None),
    ]
    how = (
        "the residual stream after each sublayer: your transformer_block called with the MLP weights set to zero "
        "(its output is then the stream after attention), and with the case's own weights"
    )
    return _record("residual", backend, dtype, panels, how, problem_attn or problem_final, ("position", "feature"))


_PROBES = {"manual_attention": _manual_attention, "multi_head_attention": _multi_head_attention, "transformer_block": _transformer_block}


# ---------------------------------------------------------------- shared pieces


def _values(outcome: "CallOutcome", shape: tuple[int, ...]) -> tuple[np.ndarray | None, str | None]:
    """The returned values if they have `shape`, else None and why (in the report's words)."""
    if not outcome.ok:
        return None, f"the call {outcome.problem().splitlines()[0]}"
    out = outcome.output
    if out is None or out.values is None:
        return None, f"the call returned {out.describe() if out else 'nothing'}, not an array"
    if tuple(out.values.shape) != tuple(shape):
        return None, f"the call returned shape {tuple(out.values.shape)}, expected {tuple(shape)}"
    return out.values, None


def _blocked(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """True where the mask blocks a key (-inf), broadcast to `shape`; None without blocked cells."""
    if mask is None:
        return None
    blocked = np.broadcast_to(np.isneginf(np.asarray(mask, dtype=np.float64)), shape)
    return blocked if blocked.any() else None


def _blocked_2d(mask: Any, T: int) -> np.ndarray | None:
    return _blocked(mask, (T, T))


def _max_diff(expected: np.ndarray, got: np.ndarray | None) -> float:
    if got is None:
        return math.inf
    diff = np.abs(np.asarray(got, dtype=np.float64) - expected)
    return float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf))) if diff.size else 0.0


def _choose(indices: list[Any], expected: np.ndarray, got: np.ndarray | None) -> list[Any]:
    """Up to MAX_PANELS indices, in order, preferring those where the learner's values differ."""
    differ = [i for i in indices if _max_diff(expected[i], None if got is None else got[i]) > DIFF_EPS]
    return (differ or indices)[:MAX_PANELS]


def _grid(a: np.ndarray) -> list[list[float | None]]:
    """Rounded floats; NaN and infinities (only learners produce them) become None."""
    a = np.asarray(a, dtype=np.float64)
    return [[round(float(v), DIGITS) if math.isfinite(v) else None for v in row] for row in a]


def _panel(label: str, expected: np.ndarray, got: np.ndarray | None, blocked: np.ndarray | None) -> dict[str, Any]:
    return {
        "label": label,
        "expected": _grid(expected),
        "got": None if got is None else _grid(got),
        "blocked": None if blocked is None else [[bool(v) for v in row] for row in np.asarray(blocked)],
    }


def _record(kind: str, backend: str, dtype: str, panels: list[dict[str, Any]], how: str, problem: str | None, axes: tuple[str, str]) -> dict[str, Any]:
    return {"kind": kind, "backend": backend, "dtype": dtype, "how": how, "problem": problem, "rows": axes[0], "columns": axes[1], "panels": panels}


def largest_differences(patterns: dict[str, Any], limit: int = 5) -> list[dict[str, Any]]:
    """The cells where the learner's values differ most from the expected ones (a text alternative)."""
    cells = []
    for panel in patterns.get("panels", []):
        got = panel.get("got")
        if got is None:
            continue
        for i, (erow, grow) in enumerate(zip(panel["expected"], got)):
            for j, (e, g) in enumerate(zip(erow, grow)):
                diff = math.inf if g is None else abs(g - e)
                if diff > DIFF_EPS:
                    cells.append({"panel": panel["label"], "row": i, "column": j, "expected": e, "got": g, "diff": diff})
    cells.sort(key=lambda c: (-c["diff"], c["panel"], c["row"], c["column"]))
    return cells[:limit]
