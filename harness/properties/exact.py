"""Properties of the exercises whose arguments are integers: `causal_mask(seq_len)` (an additive
mask, checked entry by entry) and `attention_param_count(...)` (an exact integer count)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..exercises import EXERCISES
from ..inputs import Inputs
from ..runner import CallOutcome
from ..specmodel import Case
from .base import CaseContext, PropertyInfo, fail, register, schema

# ---------------------------------------------------------------- causal_mask(seq_len)

BLOCKS = -1e4  # an entry at or below this blocks (the course uses -inf; -1e9 works as well)
SIZES = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1, "maximum": 64}}


def _mask(ctx: CaseContext, n: int) -> tuple[np.ndarray, Any]:
    outcome = ctx.call([n])
    got = ctx.values(outcome, [n], (n, n), what=f"causal_mask({n})")
    return got, outcome.output


def check_causal_mask_function(ctx: CaseContext, inputs: Inputs | None) -> None:
    for n in ctx.params.get("sizes", [1, 2, 5]):
        got, _ = _mask(ctx, n)
        call = f"causal_mask({n}), {ctx.backend}"
        lower = np.tril(np.ones((n, n), dtype=bool))
        if n > 1 and np.all(got[lower] == 1) and np.all(got[~lower] == 0):
            raise fail("causal_mask", claim=f"causal_mask({n}) holds 1 where position i may see j and 0 above the diagonal: a keep-mask, but the mask is additive (0 = may see, -inf = blocked)",
                       call=call, hints=["cm.keep01"], evidence={"reproduced_by": ["cm.keep01"]}, claim_hidden="causal_mask returns a 0/1 keep-mask instead of an additive mask")
        if n > 1 and np.all(got[np.triu(lower.T, 1)] == 0) and np.all(got[np.tril(lower, -1)] <= BLOCKS) and np.all(np.diag(got) == 0):
            raise fail("causal_mask", claim=f"causal_mask({n}) blocks the positions before i and lets i see the later ones: the lower triangle is blocked instead of the upper one",
                       call=call, hints=["cm.blocks_past"], evidence={"reproduced_by": ["cm.blocks_past"]}, claim_hidden="causal_mask blocks the past instead of the future")
        for i in range(n):
            for j in range(n):
                value = got[i, j]
                if j <= i and value != 0:
                    hints = ["cm.blocks_diagonal"] if i == j and value <= BLOCKS and _blocks_diagonal(got) else []
                    raise fail("causal_mask", claim=f"causal_mask({n})[{i}, {j}]={value:g}, but should be 0: position {i} may see position {j}",
                               call=call, hints=hints, evidence={"reproduced_by": hints} if hints else None, where=[i, j], got=float(value), expected=0.0,
                               claim_hidden="causal_mask blocks a position it must let through")
                if j > i and not value <= BLOCKS:
                    # from 3 on: at 2 the only later position is the next one, so "sees the next
                    # one" and "sees every later one" (no mask at all) look the same
                    hints = ["cm.sees_next"] if n >= 3 and value == 0 and j == i + 1 and _sees_next(got) else []
                    raise fail("causal_mask", claim=f"causal_mask({n})[{i}, {j}]={value:g}, but should block (be -inf, or a large negative number such as -1e9): position {i} must not see the later position {j}",
                               call=call, hints=hints, evidence={"reproduced_by": hints} if hints else None, where=[i, j], got=float(value), claim_hidden="causal_mask lets a position see a later one")


def _blocks_diagonal(got: np.ndarray) -> bool:
    n = got.shape[0]
    return bool(np.all(got[np.tril(np.ones((n, n), dtype=bool), -1)] == 0) and np.all(got[np.triu(np.ones((n, n), dtype=bool))] <= BLOCKS))


def _sees_next(got: np.ndarray) -> bool:
    n = got.shape[0]
    keep = np.tril(np.ones((n, n), dtype=bool), 1)
    return bool(np.all(got[keep] == 0) and np.all(got[~keep] <= BLOCKS))


def check_causal_mask_dtype(ctx: CaseContext, inputs: Inputs | None) -> None:
    for n in ctx.params.get("sizes", [4]):
        outcome = ctx.call([n])
        call = f"causal_mask({n}), {ctx.backend}"
        if not outcome.ok:
            raise ctx.call_failed(outcome, call)
        out = outcome.output
        if out is None or out.kind not in ("ndarray", "tensor"):
            got = out.describe() if out else "None"
            raise fail("array_type", claim=f"causal_mask({n}) is {got}, but should be a numpy.ndarray (NumPy) or a torch.Tensor (PyTorch)", call=call,
                       got=out.kind if out else "none", hints=["hint.tolist"] if out is not None and out.kind == "list" else [])
        if out.dtype not in ("float64", "float32", "float16", "bfloat16"):
            hints = ["cm.boolean"] if out.dtype == "bool" else []
            raise fail("dtype", claim=f"causal_mask({n}).dtype={out.dtype}, but should be a floating dtype (float32 or float64): the mask is added to float scores and holds -inf",
                       call=call, got=out.dtype, expected="float32 or float64", hints=hints)


# ---------------------------------------------------------------- attention_param_count(...)

_INT_TYPES = ("int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "longlong", "intc", "intp")
_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_DIGITS = re.compile(r"(?:np\.\w+\()?(-?\d+)\)?")


def learner_integer(ctx: CaseContext, outcome: CallOutcome, call: str) -> int:
    """The exact integer the function returned, or Failed saying why it is not one. Accepted: a
    Python int, a NumPy integer scalar, a 0-d integer ndarray or tensor. Refused: bool, and every
    float, even one that equals an integer (the count must be exact: say so, and how)."""
    if not outcome.ok:
        raise ctx.call_failed(outcome, call)
    out = outcome.output
    if out is None or out.kind == "none":
        raise fail("none", claim="the function returned None: return the count", call=call, hints=["hint.missing_return"])
    value: int | None = None
    if out.kind == "scalar":
        text = (out.note or "").strip()
        if out.type in ("float", "float16", "float32", "float64", "longdouble"):
            raise _a_float(text, call)
        match = _DIGITS.fullmatch(text)
        if out.type in _INT_TYPES and match:
            value = int(match.group(1))
        elif out.type == "bool":
            raise fail("not_integer", claim=f"the function returned {text}, a bool; return the integer count", call=call, got=text)
    elif out.kind in ("ndarray", "tensor") and out.shape == () and out.values is not None:
        if out.dtype in _INT_DTYPES:
            value = int(out.values)
        elif out.dtype and out.dtype.startswith(("float", "bfloat")):
            raise _a_float(f"{float(out.values):.17g} ({out.type} of dtype {out.dtype})", call)
    if value is None:
        raise fail("not_integer", claim=f"the function returned {out.describe()}, which is not an integer; return the count as a Python int", call=call, got=out.kind)
    if ctx.recording and ctx.observations:
        ctx.observations[-1].values = np.asarray(float(value))  # diagnosis compares mistakes with it
    return value


def _a_float(text: str, call: str) -> Exception:
    return fail("not_integer", claim=f"the function returned {text}, a float; return the exact integer count (an int: multiply integers, no `/` and no float(...))",
                call=call, got=text, claim_hidden="the function returned a float; return the exact integer count")


def _count(ctx: CaseContext, args: list[int]) -> tuple[int, str]:
    call = f"attention_param_count({', '.join(str(a) for a in args)})"
    return learner_integer(ctx, ctx.call(args), call), call


def _reference(args: list[int]) -> int:
    return int(EXERCISES["attention_param_count"].reference("numpy")(*args))


def _positional(inputs: Inputs) -> list[int]:
    return [int(a) for a in inputs.positional()]


def _require(ctx: CaseContext, got: int, expected: int, call: str, what: str = "") -> None:
    if got != expected:
        hints = _reproduced_by(ctx, got)
        raise fail("values", claim=f"{call} returned {got:,}, but the count is {expected:,}{what}", call=call, got=got, expected=expected, hints=hints,
                   evidence={"reproduced_by": hints} if hints else None, claim_hidden="the count is wrong")


def _reproduced_by(ctx: CaseContext, got: int) -> list[str]:
    """The catalogued mistakes that give exactly this number on the last call's arguments."""
    from ..misconceptions import for_exercise

    args = ctx.observations[-1].inputs if ctx.observations else None
    if args is None:
        return []
    positional = _positional(args) if isinstance(args, Inputs) else [int(a) for a in args]
    return [m.id for m in for_exercise(ctx.exercise, listed_only=True) if int(m.implementation()(*positional)) == got]


def check_count_matches_reference(ctx: CaseContext, inputs: Inputs) -> None:
    args = _positional(inputs)
    got, call = _count(ctx, args)
    _require(ctx, got, _reference(args), call)


FIGURE_SCHEMA = schema(
    args={"type": "object", "additionalProperties": False, "required": ["d_model", "d_head", "n_heads", "n_layers"],
          "properties": {k: {"type": "integer", "minimum": 1, "maximum": 1_000_000} for k in ("d_model", "d_head", "n_heads", "n_layers")}},
    expected={"type": "integer", "minimum": 0},
    per={"type": "integer", "minimum": 1},
)


def check_count_figure(ctx: CaseContext, inputs: Inputs | None) -> None:
    a = ctx.params["args"]
    args = [int(a[k]) for k in ("d_model", "d_head", "n_heads", "n_layers")]
    got, call = _count(ctx, args)
    per = int(ctx.params.get("per", 1))
    expected = int(ctx.params["expected"]) * per
    _require(ctx, got, expected, call, f" ({per} x {int(ctx.params['expected']):,})" if per != 1 else "")


def validate_count_figure(case: Case, inputs: Any) -> list[tuple[tuple, str]]:
    a = case.params.get("args") or {}
    if sorted(a) != ["d_head", "d_model", "n_heads", "n_layers"] or "expected" not in case.params:
        return []
    ref = _reference([int(a[k]) for k in ("d_model", "d_head", "n_heads", "n_layers")])
    want = int(case.params["expected"]) * int(case.params.get("per", 1))
    if ref != want:
        return [(("params", "expected"), f"the reference counts {ref:,} for these arguments, not {want:,}")]
    return []


def check_count_linearity(ctx: CaseContext, inputs: Inputs) -> None:
    args = _positional(inputs)
    base, call = _count(ctx, args)
    for index, name in ((3, "n_layers"), (2, "n_heads")):
        for factor in (2, 3):
            scaled = list(args)
            scaled[index] *= factor
            got, scaled_call = _count(ctx, scaled)
            if got != factor * base:
                hints = _reproduced_by(ctx, got)
                raise fail("relation", claim=f"{scaled_call} returned {got:,}, but {factor} x {call} = {factor * base:,}: {factor} times the {name.replace('n_', '')} must give {factor} times the parameters",
                           call=scaled_call, got=got, expected=factor * base, hints=hints, evidence={"reproduced_by": hints} if hints else None,
                           claim_hidden=f"the count does not grow in proportion to {name}")


register(PropertyInfo("causal_mask_function", "causal_mask(n) lets position i see 0..i and blocks the rest", check_causal_mask_function,
                      applies_to=("causal_mask",), params_schema=schema(sizes=SIZES), needs_inputs=False))
register(PropertyInfo("causal_mask_dtype", "causal_mask(n) is a float array (numpy.ndarray or torch.Tensor), not booleans or integers", check_causal_mask_dtype,
                      applies_to=("causal_mask",), params_schema=schema(sizes=SIZES), needs_inputs=False))
register(PropertyInfo("count_matches_reference", "the count is exactly the reference's integer on these sizes", check_count_matches_reference,
                      applies_to=("attention_param_count",)))
register(PropertyInfo("count_figure", "the count equals a figure of the course exactly (params: args, expected, per)", check_count_figure,
                      applies_to=("attention_param_count",), params_schema=FIGURE_SCHEMA, needs_inputs=False, validate=validate_count_figure))
register(PropertyInfo("count_linearity", "k times the layers, or k times the heads, gives exactly k times the count", check_count_linearity,
                      applies_to=("attention_param_count",), relational=True))
