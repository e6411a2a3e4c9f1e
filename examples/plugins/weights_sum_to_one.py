"""An attnspec plugin: the attention weights of every query sum to one.

With V = the identity (d_v = seq_k), manual_attention's output *is* its attention weights:
out[b, h, i, j] = softmax(scores)[b, h, i, j]. So each output row must be a probability
distribution over the keys: finite, non-negative, summing to 1, and 0 on keys the mask blocks
with -inf. A softmax over the wrong axis, a mask applied after the softmax or a forgotten
normalisation break it, whatever the scale of the scores.

Use it with:  attnspec grade SUBMISSION --plugins examples/plugins/weights_sum_to_one.py \
                  --spec examples/plugins/weights_sum_to_one.yaml
See docs/plugins.md.
"""

from dataclasses import replace

import numpy as np

from attnspec.plugins import fail, register_property


@register_property(
    "attention_weights_sum_to_one",
    exercises=["manual_attention"],
    params_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            # How far a row sum may be from 1 (default: the case's atol + rtol for the dtype).
            "atol": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
            # Also require weight 0 on keys the mask blocks with -inf (default true).
            "blocked_are_zero": {"type": "boolean"},
        },
    },
)
def check_weights_sum_to_one(ctx, inputs):
    """with V = identity the output rows are the attention weights: each sums to 1 over the keys"""
    B, H, seq_k = inputs.dims["batch"], inputs.dims["n_heads"], inputs.dims["seq_k"]
    identity = np.broadcast_to(np.eye(seq_k), (B, H, seq_k, seq_k)).copy()
    probe = replace(inputs, args={**inputs.args, "V": identity}, dims={**inputs.dims, "d_v": seq_k})
    weights = ctx.output_of(probe)  # the learner's function, called in its sandbox; checks the shape
    call = ctx.describe_call(probe)
    if not np.all(np.isfinite(weights)):
        raise fail("nonfinite", claim="with V = identity the output (the attention weights) contains NaN or inf", call=call)
    atol = ctx.params.get("atol", ctx.tol.atol + ctx.tol.rtol)
    lowest = float(weights.min())
    if lowest < -atol:
        where = [int(i) for i in np.unravel_index(int(weights.argmin()), weights.shape)]
        raise fail("weights_negative", claim=f"with V = identity out[{', '.join(map(str, where))}]={lowest:.6g} is an attention weight, and weights cannot be negative",
                   call=call, where=where, got=lowest, expected=0.0, claim_hidden="an attention weight is negative")
    sums = weights.sum(axis=-1)
    error = np.abs(sums - 1.0)
    if float(error.max()) > atol:
        b, h, i = (int(x) for x in np.unravel_index(int(error.argmax()), error.shape))
        # Normalised over the queries instead? Then every column sums to 1.
        by_query = np.abs(weights.sum(axis=-2) - 1.0).max() <= atol
        raise fail("weights_sum", claim=f"with V = identity the output rows are the attention weights, so each must sum to 1 over the keys; row out[{b}, {h}, {i}, :] sums to {float(sums[b, h, i]):.6g}",
                   call=call, where=[b, h, i], got=float(sums[b, h, i]), expected=1.0, evidence={"columns_sum_to_one": bool(by_query)},
                   hints=["ma.softmax_query_axis"] if by_query else [], claim_hidden="the attention weights of a query do not sum to 1")
    mask = inputs.args.get("mask")
    if mask is not None and ctx.params.get("blocked_are_zero", True):
        blocked = np.broadcast_to(np.isneginf(np.asarray(mask, dtype=float)), weights.shape)
        if blocked.any() and float(np.abs(weights[blocked]).max()) > atol:
            where = [int(i) for i in np.argwhere(blocked & (np.abs(weights) > atol))[0]]
            raise fail("weights_blocked", claim=f"out[{', '.join(map(str, where))}]={float(weights[tuple(where)]):.6g} is the weight of a key the mask blocks with -inf; it must be 0",
                       call=call, where=where, got=float(weights[tuple(where)]), expected=0.0, claim_hidden="a key blocked with -inf gets a non-zero weight")
