"""Properties of a stack of blocks (transformer_stack): one layer is the block, the order of the
layers matters, and an empty list is zero edits. (That the mask reaches every layer is
mask_future_independence on a stack of several layers.)"""

from __future__ import annotations

import numpy as np

from ..compare import compare_values
from ..exercises import EXERCISES
from ..inputs import Inputs
from ..specmodel import Case
from .base import CaseContext, PropertyInfo, fail, register, value_kind

STACKS = ("transformer_stack",)


def _reproduced_by(ctx: CaseContext, inputs: Inputs, got: np.ndarray, candidates: dict[str, dict]) -> list[str]:
    """The stack mistakes (catalogue ids) whose variant gives `got` on these inputs."""
    exercise = EXERCISES[inputs.exercise]
    found = []
    with np.errstate(all="ignore"):
        for ident, knobs in candidates.items():
            if compare_values(got, exercise.variant(*inputs.positional(), **knobs), ctx.tol) is None:
                found.append(ident)
    return found


# ---------------------------------------------------------------- one layer is the block


def check_one_layer_is_block(ctx: CaseContext, inputs: Inputs) -> None:
    from ..reference import numpy_ref

    a = inputs.args
    got = ctx.output_of(inputs)
    block = numpy_ref.transformer_block(a["x"], a["layers"][0], int(a["n_heads"]), a["mask"])
    mismatch = compare_values(got, block, ctx.tol, "transformer_stack(x, [params], ...)", against="transformer_block(x, params, ...)")
    if mismatch is not None:
        found = _reproduced_by(ctx, inputs, got, {"stack.final_layernorm": {"final_ln": True}})
        raise fail(value_kind(mismatch.details), claim="with a one-element list the stack must be transformer_block(x, layers[0], n_heads, mask) itself: "
                   "the difference is in the block, or in something done before or after the loop", comparison=mismatch.details,
                   call=ctx.describe_call(inputs), hints=found, evidence={"reproduced_by": found},
                   claim_hidden="with a one-element list the stack must be transformer_block itself")


# ---------------------------------------------------------------- order matters

ORDER_MISTAKES = {"stack.layers_reversed": {"order": "reversed"}, "stack.params_shared": {"params": "shared"}, "stack.first_layer_only": {"apply": "first"},
                  "stack.last_layer_only": {"apply": "last"}, "stack.stream_reset": {"stream": "reset"}}


def check_layer_order(ctx: CaseContext, inputs: Inputs) -> None:
    layers = inputs.args["layers"]
    flipped = inputs.with_args(layers=layers[::-1])
    got = ctx.output_of(inputs)
    got_flipped = ctx.output_of(flipped)
    expected, expected_flipped = ctx.expected(inputs), ctx.expected(flipped)
    n = len(layers)
    if compare_values(got, expected_flipped, ctx.tol) is None and compare_values(got_flipped, expected, ctx.tol) is None:
        raise fail("relation", claim=f"the {n} layers are applied last to first: out(layers) is the reference's out(reversed(layers)) and the other way round",
                   call=ctx.describe_call(inputs), hints=["stack.layers_reversed"], evidence={"reproduced_by": ["stack.layers_reversed"]},
                   claim_hidden="the layers are applied last to first")
    if compare_values(got, got_flipped, ctx.tol) is None:
        found = _reproduced_by(ctx, inputs, got, ORDER_MISTAKES)
        raise fail("relation", claim=f"reversing the list of {n} different layers did not change the output: the order of the layers is lost",
                   call=ctx.describe_call(flipped), hints=found, evidence={"reproduced_by": found}, claim_hidden="reversing the layers did not change the output")
    for out, want, which, call_inputs in ((got, expected, "in the given order", inputs), (got_flipped, expected_flipped, "reversed", flipped)):
        mismatch = compare_values(out, want, ctx.tol)
        if mismatch is not None:
            found = _reproduced_by(ctx, call_inputs, out, ORDER_MISTAKES)
            raise fail(value_kind(mismatch.details), claim=f"with the {n} layers {which} the output differs from the reference's", comparison=mismatch.details,
                       call=ctx.describe_call(call_inputs), hints=found, evidence={"reproduced_by": found, "order": which},
                       claim_hidden="the output differs from the reference's for one order of the layers")


def validate_layer_order(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    """The case must have several layers whose two orders give clearly different outputs."""
    if inputs is None:
        shapes = case.inputs.shapes if case.inputs is not None else {}
        low = shapes.get("n_layers", 2)
        low = low[0] if isinstance(low, (list, tuple)) else low
        return [(("inputs", "shapes", "n_layers"), "layer_order needs at least 2 layers")] if low < 2 else []
    layers = inputs.args["layers"]
    if len(layers) < 2:
        return [(("inputs", "shapes", "n_layers"), "layer_order needs at least 2 layers")]
    ref = EXERCISES[case.exercise].reference("numpy")
    a = inputs.args
    forward = ref(a["x"], layers, a["n_heads"], a["mask"])
    backward = ref(a["x"], layers[::-1], a["n_heads"], a["mask"])
    for dtype, tol in case.tolerances.items():
        if dtype in case.dtypes and compare_values(forward, backward, type(tol)(tol.atol * 10, tol.rtol * 10)) is None:
            return [(("inputs",), f"these inputs do not tell the two orders of the layers apart within 10x the {dtype} tolerance")]
    return []


# ---------------------------------------------------------------- empty list


def check_empty_stack(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    mismatch = compare_values(got, inputs.args["x"], ctx.tol, "transformer_stack(x, [], ...)", against="x")
    if mismatch is not None:
        found = _reproduced_by(ctx, inputs, got, {"stack.final_layernorm": {"final_ln": True}})
        raise fail(value_kind(mismatch.details), claim="with an empty list of layers there are no edits: the stack must return x unchanged",
                   comparison=mismatch.details, call=ctx.describe_call(inputs), hints=found, evidence={"reproduced_by": found},
                   claim_hidden="with an empty list of layers the stack must return x unchanged")


register(
    PropertyInfo(
        "one_layer_is_block",
        "a one-element list of layers gives transformer_block's output",
        check_one_layer_is_block,
        applies_to=STACKS,
        fixed_dims={"n_layers": 1},
    )
)
register(
    PropertyInfo(
        "layer_order",
        "reversing the list of layers changes the output, and both orders match the reference",
        check_layer_order,
        applies_to=STACKS,
        validate=validate_layer_order,
    )
)
register(
    PropertyInfo(
        "empty_stack_identity",
        "an empty list of layers returns x unchanged",
        check_empty_stack,
        applies_to=STACKS,
        fixed_dims={"n_layers": 0},
    )
)
