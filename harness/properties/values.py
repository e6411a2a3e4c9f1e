"""Properties that compare values with the reference (computed in float64 on the exact inputs
the learner's code saw) or with literal numbers from the course text."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..compare import compare_values
from ..exercises import EXERCISES
from ..inputs import Inputs
from ..reference import gradients, numpy_ref, variants
from ..runner import GradRequest
from ..specmodel import Case
from .base import CaseContext, Failed, PropertyInfo, register, schema


def check_matches_reference(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    ctx.compare(got, ctx.expected(inputs), inputs)


# ---------------------------------------------------------------- literal values


def check_literal_values(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    for number, check in enumerate(ctx.params["checks"], start=1):
        index = tuple(check.get("select", []))
        value = got[index]
        label = f"out[{', '.join(map(str, index))}]" if index else "out"
        if check.get("add_input"):
            value = value + inputs.args[check["add_input"]][index]
            label = f"({check['add_input']} + out)[{', '.join(map(str, index))}]"
        expected = np.asarray(check["expected"], dtype=np.float64)
        mismatch = compare_values(np.asarray(value, dtype=np.float64), expected, ctx.tol, label)
        if mismatch is not None:
            note = f" ({check['note']})" if check.get("note") else ""
            raise Failed(f"{mismatch.message}{note} [{ctx.describe_call(inputs)}]", details=mismatch.details)


def validate_literal_values(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    if inputs is None:
        return []
    problems = []
    shape = EXERCISES[case.exercise].output_shape_for(inputs.dims)
    for i, check in enumerate(case.params.get("checks", [])):
        index = tuple(check.get("select", []))
        if len(index) > len(shape) or any(not -s <= j < s for j, s in zip(index, shape)):
            problems.append((("params", "checks", i, "select"), f"select {list(index)} is outside the output shape {shape}"))
            continue
        want = shape[len(index) :]
        try:
            got = np.asarray(check["expected"], dtype=np.float64).shape
        except (ValueError, TypeError):
            problems.append((("params", "checks", i, "expected"), "expected is not a rectangular array of numbers"))
            continue
        if got != want:
            problems.append((("params", "checks", i, "expected"), f"expected has shape {got}, but out[{', '.join(map(str, index))}] has shape {want}"))
        if check.get("add_input") and check["add_input"] not in inputs.args:
            problems.append((("params", "checks", i, "add_input"), f"add_input names '{check['add_input']}', which is not an argument of {case.exercise}"))
    return problems


LITERAL_SCHEMA = {
    "type": "object",
    "required": ["checks"],
    "additionalProperties": False,
    "properties": {
        "checks": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["expected"],
                "additionalProperties": False,
                "properties": {
                    "select": {"type": "array", "items": {"type": "integer"}, "description": "index into the output, e.g. [0, 2] for out[0, 2]"},
                    "expected": {"type": ["array", "number"]},
                    "add_input": {"type": "string", "description": "compare input[select] + out[select] (the residual update)"},
                    "note": {"type": "string"},
                },
            },
        }
    },
}


# ---------------------------------------------------------------- scaling

ALTERNATIVE_SCALES = {
    "none": "no scaling at all (scores not divided by sqrt(d_head))",
    "d_head": "dividing by d_head instead of sqrt(d_head)",
    "sqrt_d_model": "dividing by sqrt(d_model) instead of sqrt(d_head), the size of one head",
    "after_softmax": "dividing after the softmax instead of before it",
}


def with_attention_knobs(inputs: Inputs, **knobs: Any) -> np.ndarray:
    """The reference output with the per-head attention changed by `knobs` (a known mistake)."""
    if inputs.exercise == "manual_attention":
        return variants.attention(*inputs.positional(), **knobs)
    if inputs.exercise == "multi_head_attention":
        return variants.multi_head_attention(*inputs.positional(), attention=knobs)
    return variants.transformer_block(*inputs.positional(), mha={"attention": knobs})


def likely_variant(ctx: CaseContext, inputs: Inputs, got: np.ndarray, candidates: dict[str, dict[str, Any]]) -> str | None:
    """The description of the first attention mistake that reproduces `got`, if any."""
    with np.errstate(all="ignore"):
        for description, knobs in candidates.items():
            try:
                alt = with_attention_knobs(inputs, **knobs)
            except (ValueError, IndexError):
                continue
            if compare_values(got, alt, ctx.tol) is None:
                return description
    return None


def check_scale_discrimination(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    expected = ctx.expected(inputs)
    mismatch = compare_values(got, expected, ctx.tol)
    if mismatch is None:
        return
    likely = likely_variant(ctx, inputs, got, {d: {"scale": s} for s, d in ALTERNATIVE_SCALES.items()})
    raise Failed(f"{mismatch.message} [{ctx.describe_call(inputs)}]", likely=likely, details=mismatch.details)


def validate_scale_discrimination(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    """The case must tell every wrong scale apart from the right one, by far more than its tolerance."""
    if inputs is None:
        return []
    expected = getattr(numpy_ref, case.exercise)(*inputs.positional())
    problems = []
    for scale in ALTERNATIVE_SCALES:
        if scale == "sqrt_d_model" and case.exercise == "manual_attention" and inputs.dims["n_heads"] == 1:
            continue
        alt = with_attention_knobs(inputs, scale=scale)
        for dtype, tol in case.tolerances.items():
            if dtype in case.dtypes and compare_values(alt, expected, type(tol)(tol.atol * 10, tol.rtol * 10)) is None:
                problems.append((("inputs",), f"these inputs do not tell the correct scale from {ALTERNATIVE_SCALES[scale]} within 10x the {dtype} tolerance"))
                break
    return problems


# ---------------------------------------------------------------- stability


def check_numerical_stability(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    if not np.all(np.isfinite(got)):
        bad = int((~np.isfinite(got)).sum())
        raise Failed(
            f"out has {bad} non-finite value(s) (NaN or inf) for attention scores of magnitude ~{_score_magnitude(ctx, inputs):.0e} [{ctx.describe_call(inputs)}]",
            likely="exp() overflowed: subtract each row's maximum score before exponentiating (softmax is unchanged by that shift)",
        )
    ctx.compare(got, ctx.expected(inputs), inputs)


def _score_magnitude(ctx: CaseContext, inputs: Inputs) -> float:
    return float(ctx.case.inputs.score_scale or 0) if ctx.case.inputs else 0.0


# ---------------------------------------------------------------- one head


def check_single_head(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    expected = ctx.expected(inputs)
    mismatch = compare_values(got, expected, ctx.tol)
    if mismatch is not None:
        raise Failed(
            f"with n_heads=1 the sublayer must equal single-head attention softmax((xW_Q)(xW_K)^T/sqrt(d_model))(xW_V) @ W_O: {mismatch.message} [{ctx.describe_call(inputs)}]",
            details=mismatch.details,
        )


# ---------------------------------------------------------------- causal_mask()


def check_causal_mask_function(ctx: CaseContext, inputs: Inputs | None) -> None:
    for n in ctx.params.get("sizes", [1, 2, 5]):
        outcome = ctx.call([n], function="causal_mask")
        got = ctx.values(outcome, [n], (n, n), function="causal_mask", what=f"causal_mask({n})")
        for i in range(n):
            for j in range(n):
                value = got[i, j]
                if j <= i and value != 0:
                    raise Failed(
                        f"causal_mask({n})[{i}, {j}]={value:g}, but should be 0: position {i} may see position {j} [causal_mask({n}), {ctx.backend}]",
                        likely="the diagonal is off by one (use triu with k=1: position i sees 0..i, itself included)" if i == j else "the mask blocks the past instead of the future",
                    )
                if j > i and not value <= -1e4:
                    raise Failed(
                        f"causal_mask({n})[{i}, {j}]={value:g}, but should block (be -inf, or a large negative number such as -1e9): position {i} must not see the later position {j} [causal_mask({n}), {ctx.backend}]",
                        likely="a 0/1 keep-mask instead of an additive mask (0 = keep, -inf = blocked)" if value == 0 or value == 1 else None,
                    )


# ---------------------------------------------------------------- gradients (PyTorch)

VJPS = {
    "manual_attention": lambda a: gradients.manual_attention_vjp(*a),
    "multi_head_attention": lambda a: gradients.multi_head_attention_vjp(*a),
    "transformer_block": lambda a: gradients.transformer_block_vjp(*a),
}


def gradient_inputs(inputs: Inputs) -> list[str]:
    names = []
    for name, value in inputs.args.items():
        if isinstance(value, dict):
            names.extend(f"{name}.{k}" for k in value)
        elif isinstance(value, np.ndarray) and name != "mask":
            names.append(name)
    return names


def check_gradients(ctx: CaseContext, inputs: Inputs) -> None:
    contract = EXERCISES[ctx.exercise]
    shape = contract.output_shape_for(inputs.dims)
    cotangent = ctx.rng(salt=17).standard_normal(shape)
    wrt = tuple(ctx.params.get("wrt") or gradient_inputs(inputs))
    outcome = ctx.call(inputs, grad=GradRequest(wrt, cotangent))
    ctx.values(outcome, inputs, shape)
    call = ctx.describe_call(inputs)
    if outcome.grad_error:
        raise Failed(f"gradients could not be computed: {outcome.grad_error} [{call}]", likely="keep every step in torch operations so autograd can follow them")
    if outcome.grad_missing:
        raise Failed(f"no gradient reached {', '.join(outcome.grad_missing)}: the output does not depend on {'them' if len(outcome.grad_missing) > 1 else 'it'} through autograd [{call}]")
    expected = VJPS[ctx.exercise](inputs.positional() + [cotangent])
    for name in wrt:
        key = name.split(".", 1)[1] if name.startswith("params.") else name
        got = (outcome.grads or {}).get(name)
        if got is None:
            raise Failed(f"no gradient was returned for {name} [{call}]")
        mismatch = compare_values(got, expected[key], ctx.tol, f"d(out)/d{name}")
        if mismatch is not None:
            raise Failed(
                f"the gradient with respect to {name} is wrong although the forward values may be right: {mismatch.message} [{call}]",
                likely="a step that autograd cannot see: writing through .data, a .numpy() round trip, or detach() in the middle",
                details=mismatch.details,
            )


def _validate_grad(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    if inputs is None:
        return []
    names = gradient_inputs(inputs)
    return [(("params", "wrt"), f"'{w}' is not an array input; choose from {', '.join(names)}") for w in case.params.get("wrt", []) if w not in names]


register(PropertyInfo("matches_reference", "the output equals the reference on these inputs", check_matches_reference))
register(PropertyInfo("literal_values", "the output has the literal values of a worked example", check_literal_values, params_schema=LITERAL_SCHEMA, validate=validate_literal_values))
register(
    PropertyInfo(
        "scale_discrimination",
        "scores are divided by sqrt(d_head), before the softmax (no other scale fits)",
        check_scale_discrimination,
        validate=validate_scale_discrimination,
    )
)
register(PropertyInfo("numerical_stability", "large attention scores (~1e3) give finite, correct outputs", check_numerical_stability))
register(
    PropertyInfo(
        "single_head_equivalence",
        "with n_heads=1 the sublayer equals single-head attention followed by W_O",
        check_single_head,
        exercises=("multi_head_attention", "transformer_block"),
        fixed_dims={"n_heads": 1},
    )
)
register(
    PropertyInfo(
        "causal_mask_function",
        "causal_mask(n) lets position i see 0..i and blocks the rest",
        check_causal_mask_function,
        exercises=("manual_attention",),
        params_schema=schema(sizes={"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1, "maximum": 64}}),
        needs_inputs=False,
        function="causal_mask",
    )
)
register(
    PropertyInfo(
        "gradients_match",
        "PyTorch gradients with respect to the inputs (and block parameters) equal the reference's",
        check_gradients,
        backends=("torch",),
        params_schema=schema(wrt={"type": "array", "minItems": 1, "items": {"type": "string"}}),
        validate=_validate_grad,
    )
)
