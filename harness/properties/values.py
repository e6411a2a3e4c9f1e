"""Properties that compare values with the reference (computed in float64 on the exact inputs
the learner's code saw) or with literal numbers from the course's worked examples."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..compare import compare_values
from ..exercises import EXERCISES, Exercise
from ..inputs import Inputs
from ..runner import GradRequest
from ..specmodel import Case
from .base import CaseContext, PropertyInfo, on_arrays, fail, register, schema, value_kind


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
            raise fail(value_kind(mismatch.details), comparison=mismatch.details, note=check.get("note"), call=ctx.describe_call(inputs), evidence={"check": number})


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
SCALE_IDS = {"none": "ma.no_scaling", "d_head": "ma.scale_d_head", "sqrt_d_model": "ma.scale_sqrt_d_model", "after_softmax": "ma.scale_after_softmax",
             "sqrt_d_v": "ma.scale_sqrt_d_v", "mul_sqrt_d_head": "ma.scale_multiplied"}


def with_attention_knobs(inputs: Inputs, **knobs: Any) -> np.ndarray:
    """The reference output with the per-head attention changed by `knobs` (a known mistake)."""
    exercise = EXERCISES[inputs.exercise]
    return exercise.variant(*inputs.positional(), **exercise.attention_knobs(knobs))


def likely_variant(ctx: CaseContext, inputs: Inputs, got: np.ndarray, candidates: dict[str, dict[str, Any]]) -> list[str]:
    """The catalogue ids (manual_attention form) of the attention mistakes that reproduce `got` on this call."""
    found = []
    with np.errstate(all="ignore"):
        for ident, knobs in candidates.items():
            try:
                alt = with_attention_knobs(inputs, **knobs)
            except (ValueError, IndexError):
                continue
            if compare_values(got, alt, ctx.tol) is None:
                found.append(ident)
    return found


def check_scale_discrimination(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    expected = ctx.expected(inputs)
    mismatch = compare_values(got, expected, ctx.tol)
    if mismatch is None:
        return
    found = likely_variant(ctx, inputs, got, {SCALE_IDS[s]: {"scale": s} for s in SCALE_IDS})
    raise fail(value_kind(mismatch.details), comparison=mismatch.details, call=ctx.describe_call(inputs), hints=found, evidence={"reproduced_by": found})


def validate_scale_discrimination(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    """The case must tell every wrong scale apart from the right one, by far more than its tolerance."""
    if inputs is None:
        return []
    exercise = EXERCISES[case.exercise]
    expected = exercise.reference("numpy")(*inputs.positional())
    problems = []
    for scale in ALTERNATIVE_SCALES:
        if scale == "sqrt_d_model" and inputs.dims["n_heads"] == 1 and not takes_n_heads(exercise):  # one head as an input axis: sqrt(d_model) is sqrt(d_head)
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
        found = likely_variant(ctx, inputs, got, {"ma.unstable_softmax": {"stable": False}})
        raise fail("nonfinite", claim=f"out has {bad} non-finite value(s) (NaN or inf) for attention scores of magnitude ~{_score_magnitude(ctx, inputs):.0e}",
                   call=ctx.describe_call(inputs), hints=["ma.unstable_softmax"], evidence={"reproduced_by": found, "nonfinite": bad}, claim_hidden="out has non-finite values (NaN or inf)")
    ctx.compare(got, ctx.expected(inputs), inputs)


def _score_magnitude(ctx: CaseContext, inputs: Inputs) -> float:
    return float(ctx.case.inputs.score_scale or 0) if ctx.case.inputs else 0.0


# ---------------------------------------------------------------- one head


def takes_n_heads(exercise: Exercise) -> bool:
    """n_heads is an argument (so a case can set it to 1), not an axis of the inputs."""
    return exercise.array_inputs and "n_heads" in exercise.args


def check_single_head(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    expected = ctx.expected(inputs)
    mismatch = compare_values(got, expected, ctx.tol)
    if mismatch is not None:
        raise fail(value_kind(mismatch.details), claim="with n_heads=1 the sublayer must equal single-head attention softmax((xW_Q)(xW_K)^T/sqrt(d_model))(xW_V) @ W_O",
                   comparison=mismatch.details, call=ctx.describe_call(inputs))


# ---------------------------------------------------------------- gradients (PyTorch)

def gradient_inputs(inputs: Inputs) -> list[str]:
    names: list[str] = []
    for name, value in inputs.args.items():
        if isinstance(value, dict):
            names.extend(f"{name}.{k}" for k in value)
        elif isinstance(value, list):  # a list of parameter dicts (transformer_stack's layers): layers.0.W_Q, ...
            names.extend(f"{name}.{i}.{k}" for i, layer in enumerate(value) for k in layer)
        elif isinstance(value, np.ndarray) and name != "mask":
            names.append(name)
    return names


def check_gradients(ctx: CaseContext, inputs: Inputs) -> None:
    contract = EXERCISES[ctx.exercise]
    shape = contract.output_shape_for(inputs.dims)
    cotangent = ctx.rng(salt=17).standard_normal(shape)
    wrt = tuple(ctx.params.get("wrt") or gradient_inputs(inputs))
    outcome = ctx.call(inputs, grad=GradRequest(wrt, cotangent))
    got = ctx.values(outcome, inputs, shape)
    call = ctx.describe_call(inputs)
    forward_ok = compare_values(got, ctx.expected(inputs), ctx.tol) is None
    evidence = {"forward_ok": forward_ok}
    if outcome.grad_error:
        no_graph = outcome.output is not None and outcome.output.requires_grad is False and outcome.output.kind == "tensor"
        raise fail("no_graph" if no_graph else "grad_error", claim=f"gradients could not be computed: {outcome.grad_error}", call=call, evidence=evidence,
                   hints=["hint.autograd_gap"] if forward_ok else [])
    if outcome.grad_missing:
        missing = ", ".join(outcome.grad_missing)
        raise fail("grad_missing", claim=f"no gradient reached {missing}: the output does not depend on {'them' if len(outcome.grad_missing) > 1 else 'it'} through autograd",
                   call=call, evidence={**evidence, "missing": list(outcome.grad_missing)})
    expected = EXERCISES[ctx.exercise].vjp(inputs.positional(), cotangent)
    for name in wrt:
        key = name.split(".", 1)[1] if name.startswith("params.") else name
        grad = (outcome.grads or {}).get(name)
        if grad is None:
            raise fail("grad_missing", claim=f"no gradient was returned for {name}", call=call, evidence={**evidence, "missing": [name]})
        mismatch = compare_values(grad, expected[key], ctx.tol, f"d(out)/d{name}")
        if mismatch is not None:
            # Say the forward values are right only when they were.
            claim = f"the gradient with respect to {name} is wrong although the forward values are right" if forward_ok else f"the gradient with respect to {name} is wrong (and so are the forward values)"
            raise fail("gradient", claim=claim, comparison=mismatch.details, call=call, evidence={**evidence, "wrt": name}, hints=["hint.autograd_gap"] if forward_ok else [],
                       claim_hidden=f"the gradient with respect to {name} is wrong")


def _validate_grad(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    if inputs is None:
        return []
    names = gradient_inputs(inputs)
    return [(("params", "wrt"), f"'{w}' is not an array input; choose from {', '.join(names)}") for w in case.params.get("wrt", []) if w not in names]


register(PropertyInfo("matches_reference", "the output equals the reference on these inputs", check_matches_reference, applies_to=on_arrays))
register(PropertyInfo("literal_values", "the output has the literal values of a worked example", check_literal_values, applies_to=on_arrays, params_schema=LITERAL_SCHEMA, validate=validate_literal_values))
register(
    PropertyInfo(
        "scale_discrimination",
        "scores are divided by sqrt(d_head), before the softmax (no other scale fits)",
        check_scale_discrimination,
        applies_to=on_arrays,
        validate=validate_scale_discrimination,
    )
)
register(PropertyInfo("numerical_stability", "large attention scores (~1e3) give finite, correct outputs", check_numerical_stability, applies_to=on_arrays))
register(
    PropertyInfo(
        "single_head_equivalence",
        "with n_heads=1 the sublayer equals single-head attention followed by W_O",
        check_single_head,
        applies_to=takes_n_heads,
        fixed_dims={"n_heads": 1},
    )
)
register(
    PropertyInfo(
        "gradients_match",
        "PyTorch gradients with respect to the inputs (and block parameters) equal the reference's",
        check_gradients,
        applies_to=on_arrays,
        backends=("torch",),
        params_schema=schema(wrt={"type": "array", "minItems": 1, "items": {"type": "string"}}),
        validate=_validate_grad,
    )
)
