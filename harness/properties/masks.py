"""Mask properties: a causal mask hides the future, -inf blocks exactly, finite entries are biases."""

from __future__ import annotations

import numpy as np

from ..compare import compare_values
from ..exercises import EXERCISES
from ..inputs import BIAS_MASKS, BLOCKING_MASKS, CAUSAL_MASKS, PADDING_MASKS, Inputs
from .base import CaseContext, PropertyInfo, on_arrays, fail, register, require_nondegenerate, schema, value_kind
from .values import likely_variant

MASK_MISTAKES = {
    "ma.mask_ignored": {"mask_mode": "ignore"},
    "ma.mask_subtracted": {"mask_mode": "subtract"},
    "ma.mask_keep01": {"mask_mode": "keep01"},
    "ma.mask_after_softmax": {"mask_mode": "after_softmax"},
    "ma.mask_4d_broadcast": {"mask_4d": "first"},
    "ma.mask_neginf_only": {"mask_mode": "neginf_only"},
    "ma.mask_scaled": {"mask_mode": "scaled"},
    "ma.mask_own_causal": {"mask_mode": "own_causal"},
}


def check_future_independence(ctx: CaseContext, inputs: Inputs) -> None:
    out = ctx.output_of(inputs)
    seq = out.shape[-2]
    k = int(ctx.params.get("position", max(1, seq // 2)))
    k = min(max(k, 1), seq - 1)
    rng = ctx.rng(salt=5)
    args, what = EXERCISES[inputs.exercise].perturb_from(inputs.args, k, rng)
    moved = inputs.with_args(**args)
    got = ctx.output_of(moved)
    call = ctx.describe_call(moved)
    past = (Ellipsis, slice(0, k), slice(None))
    mismatch = compare_values(got[past], out[past], ctx.tol, f"out[..., :{k}, :]", against="the outputs before the change")
    if mismatch is not None:
        found = likely_variant(ctx, inputs, out, MASK_MISTAKES)
        raise fail("relation", claim=f"changing {what} changed outputs at earlier positions 0..{k - 1}, which must not see them", comparison=mismatch.details, call=call,
                   hints=found or ["hint.mask_not_applied"], evidence={"reproduced_by": found}, claim_hidden="changing later tokens changed outputs at earlier positions, which must not see them")
    future = (Ellipsis, slice(k, None), slice(None))
    if np.allclose(got[future], out[future], rtol=0, atol=0):
        raise fail("degenerate", claim=f"changing {what} did not change the outputs at those positions either: the output does not depend on the tokens", call=call,
                   claim_hidden="the output does not depend on the tokens")


def check_blocks_exactly(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    expected = ctx.expected(inputs)
    mismatch = compare_values(got, expected, ctx.tol)
    if mismatch is not None:
        poison = "blocked keys carry poison values of 1000, so any leak shows up as a large value" if ctx.case.inputs and ctx.case.inputs.poison else None
        found = likely_variant(ctx, inputs, got, MASK_MISTAKES)
        raise fail(value_kind(mismatch.details), comparison=mismatch.details, note=poison, call=ctx.describe_call(inputs), hints=found, evidence={"reproduced_by": found})
    if inputs.mask_kind not in PADDING_MASKS:
        return
    # Keys blocked for every query must have no influence at all: change them, nothing may move.
    rng = ctx.rng(salt=9)
    args, keep, what = EXERCISES[inputs.exercise].change_blocked(inputs.args, rng)
    moved = inputs.with_args(**args)
    moved_out = ctx.output_of(moved)
    mismatch = compare_values(moved_out[keep], got[keep], ctx.tol, "out", against="the outputs before the change")
    if mismatch is not None:
        raise fail("relation", claim=f"changing {what} changed other outputs: -inf entries must block exactly", comparison=mismatch.details, call=ctx.describe_call(moved),
                   claim_hidden="changing blocked keys changed other outputs: -inf entries must block exactly")


def check_additive_bias(ctx: CaseContext, inputs: Inputs) -> None:
    got = ctx.output_of(inputs)
    expected = ctx.expected(inputs)
    mismatch = compare_values(got, expected, ctx.tol)
    if mismatch is not None:
        found = likely_variant(ctx, inputs, got, MASK_MISTAKES)
        raise fail(value_kind(mismatch.details), claim="finite mask entries must act as additive biases", comparison=mismatch.details, call=ctx.describe_call(inputs),
                   hints=found, evidence={"reproduced_by": found}, claim_hidden="finite mask entries must act as additive biases")
    # Adding the same constant to every entry of a mask row cannot change a softmax.
    shifted = inputs.with_args(mask=inputs.args["mask"] + 5.0)
    require_nondegenerate(ctx, got, inputs, axis=-2)
    moved = ctx.output_of(shifted)
    mismatch = compare_values(moved, got, ctx.tol, "out(mask + 5)", against="the output with the original mask")
    if mismatch is not None:
        raise fail("relation", claim="adding 5 to every mask entry must not change the output (softmax is shift-invariant)", comparison=mismatch.details, call=ctx.describe_call(shifted),
                   claim_hidden="adding 5 to every mask entry changed the output (softmax is shift-invariant)")


register(
    PropertyInfo(
        "mask_future_independence",
        "with a causal mask, output i does not change when tokens after i change",
        check_future_independence,
        applies_to=on_arrays,
        params_schema=schema(position={"type": "integer", "minimum": 1}),
        masks=CAUSAL_MASKS,
        relational=True,
    )
)
register(
    PropertyInfo(
        "mask_blocks_exactly",
        "-inf mask entries block exactly: blocked keys have no influence",
        check_blocks_exactly,
        applies_to=on_arrays,
        masks=BLOCKING_MASKS,
    )
)
register(
    PropertyInfo(
        "mask_additive_bias",
        "finite mask entries act as additive biases on the scaled scores",
        check_additive_bias,
        applies_to=on_arrays,
        masks=BIAS_MASKS,
    )
)
