"""Properties about the form of the output, each judged alone: shape, dtype, array type,
and whether the inputs were left untouched. A wrong dtype costs the dtype case only."""

from __future__ import annotations

from ..exercises import EXERCISES
from ..inputs import Inputs
from .base import CaseContext, PropertyInfo, on_arrays, fail, register

EXPECTED_KIND = {"numpy": ("ndarray", "numpy.ndarray"), "torch": ("tensor", "torch.Tensor")}


def check_output_shape(ctx: CaseContext, inputs: Inputs) -> None:
    contract = EXERCISES[ctx.exercise]
    outcome = ctx.call(inputs)
    ctx.values(outcome, inputs, contract.output_shape_for(inputs.dims))


def check_output_dtype(ctx: CaseContext, inputs: Inputs) -> None:
    outcome, call = ctx.call_ok(inputs)
    out = outcome.output
    if out is None or out.dtype is None:
        raise fail("not_array", claim=f"out is {out.describe() if out else 'None'}, which has no dtype; it should be a {ctx.dtype} array", call=call, got=out.kind if out else "none")
    if out.dtype != ctx.dtype:
        hints = []
        if ctx.backend == "numpy" and ctx.dtype == "float32" and out.dtype == "float64":
            hints = ["hint.numpy_promotion"]
        elif out.dtype in ("float32", "float64") and ctx.dtype in ("float16", "bfloat16"):
            hints = ["hint.half_not_cast_back"]
        raise fail("dtype", claim=f"out.dtype={out.dtype}, but should be {ctx.dtype} (the inputs' dtype)", call=call, got=out.dtype, expected=ctx.dtype, hints=hints)


def check_output_array_type(ctx: CaseContext, inputs: Inputs) -> None:
    outcome, call = ctx.call_ok(inputs)
    kind, name = EXPECTED_KIND[ctx.backend]
    out = outcome.output
    if out is None or out.kind != kind:
        got = out.describe() if out else "None"
        hints = []
        if out is None or out.kind == "none":
            hints = ["hint.missing_return"]
        elif out.kind == "list":
            hints = ["hint.tolist"]
        elif out is not None and out.kind == "ndarray" and ctx.backend == "torch":
            hints = ["hint.torch_to_numpy"]
        elif out is not None and out.kind == "tensor" and ctx.backend == "numpy":
            hints = ["hint.numpy_to_torch"]
        raise fail("array_type", claim=f"out is {got}, but should be a {name} (the inputs' array type)", call=call, got=out.kind if out else "none", expected=kind, hints=hints)


def check_inputs_unchanged(ctx: CaseContext, inputs: Inputs) -> None:
    outcome, call = ctx.call_ok(inputs)
    if outcome.mutated:
        names = ", ".join(outcome.mutated)
        raise fail("mutated", claim=f"{ctx.exercise} modified its input{'s' if len(outcome.mutated) > 1 else ''} {names} in place; inputs must be left unchanged", call=call,
                   got=list(outcome.mutated), hints=["hint.in_place"], claim_hidden=f"{ctx.exercise} modified its inputs in place")


register(PropertyInfo("output_shape", "the output has the contract's shape", check_output_shape, applies_to=on_arrays))
register(PropertyInfo("output_dtype", "the output keeps the inputs' dtype", check_output_dtype, applies_to=on_arrays))
register(PropertyInfo("output_array_type", "the output is the inputs' array type (numpy.ndarray / torch.Tensor)", check_output_array_type, applies_to=on_arrays))
register(PropertyInfo("inputs_unchanged", "the function does not modify its inputs", check_inputs_unchanged, applies_to=on_arrays))
