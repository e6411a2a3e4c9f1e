"""Properties about the form of the output, each judged alone: shape, dtype, array type,
and whether the inputs were left untouched. A wrong dtype costs the dtype case only."""

from __future__ import annotations

from ..exercises import EXERCISES
from ..inputs import Inputs
from .base import CaseContext, Failed, PropertyInfo, register

EXPECTED_KIND = {"numpy": ("ndarray", "numpy.ndarray"), "torch": ("tensor", "torch.Tensor")}


def check_output_shape(ctx: CaseContext, inputs: Inputs) -> None:
    contract = EXERCISES[ctx.exercise]
    outcome = ctx.call(inputs)
    ctx.values(outcome, inputs, contract.output_shape_for(inputs.dims))


def check_output_dtype(ctx: CaseContext, inputs: Inputs) -> None:
    outcome, call = ctx.call_ok(inputs)
    out = outcome.output
    if out is None or out.dtype is None:
        raise Failed(f"out is {out.describe() if out else 'None'}, which has no dtype; it should be a {ctx.dtype} array [{call}]")
    if out.dtype != ctx.dtype:
        likely = None
        if ctx.backend == "numpy" and ctx.dtype == "float32" and out.dtype == "float64":
            likely = (
                "NumPy 2 promotes a float32 array combined with a float64 NumPy scalar (such as np.sqrt(d)) to float64; "
                "divide by math.sqrt(d) (a Python float) or cast the scalar to the input's dtype"
            )
        elif ctx.backend == "torch" and out.dtype == "float64":
            likely = "a float64 tensor (e.g. torch.tensor(d, dtype=torch.float64) or .double()) promoted the result; keep the computation in the inputs' dtype"
        elif out.dtype in ("float32", "float64") and ctx.dtype in ("float16", "bfloat16"):
            likely = f"part of the computation was done in {out.dtype} and not cast back; return the inputs' dtype"
        raise Failed(f"out.dtype={out.dtype}, but should be {ctx.dtype} (the inputs' dtype) [{call}]", likely=likely)


def check_output_array_type(ctx: CaseContext, inputs: Inputs) -> None:
    outcome, call = ctx.call_ok(inputs)
    kind, name = EXPECTED_KIND[ctx.backend]
    out = outcome.output
    if out is None or out.kind != kind:
        got = out.describe() if out else "None"
        likely = None
        if out is not None and out.kind in ("list", "tuple"):
            likely = "a .tolist() or a Python list built in a loop; return an array (np.stack / torch.stack the pieces)"
        elif out is not None and out.kind == "ndarray" and ctx.backend == "torch":
            likely = "the tensors were converted to NumPy (.numpy()) and the NumPy result returned; stay in torch"
        elif out is not None and out.kind == "tensor" and ctx.backend == "numpy":
            likely = "the NumPy inputs were converted to torch; a NumPy submission should return a numpy.ndarray"
        raise Failed(f"out is {got}, but should be a {name} (the inputs' array type) [{call}]", likely=likely)


def check_inputs_unchanged(ctx: CaseContext, inputs: Inputs) -> None:
    outcome, call = ctx.call_ok(inputs)
    if outcome.mutated:
        names = ", ".join(outcome.mutated)
        raise Failed(
            f"{ctx.exercise} modified its input{'s' if len(outcome.mutated) > 1 else ''} {names} in place; inputs must be left unchanged [{call}]",
            likely="an in-place operation on an argument, such as Q /= ..., scores += mask on a view of an input, x[...] = ..., or torch's add_()/masked_fill_()",
        )


register(PropertyInfo("output_shape", "the output has the contract's shape", check_output_shape))
register(PropertyInfo("output_dtype", "the output keeps the inputs' dtype", check_output_dtype))
register(PropertyInfo("output_array_type", "the output is the inputs' array type (numpy.ndarray / torch.Tensor)", check_output_array_type))
register(PropertyInfo("inputs_unchanged", "the function does not modify its inputs", check_inputs_unchanged))
