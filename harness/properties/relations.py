"""Properties that compare the submission with itself: permutation equivariance, batch and head
independence. They need no reference values, so they catch bugs a reference match cannot name."""

from __future__ import annotations

import numpy as np

from ..compare import compare_values
from ..exercises import EXERCISES
from ..exercises.base import join_and
from ..inputs import CAUSAL_MASKS, Inputs, dims_of
from ..specmodel import Case
from .base import CaseContext, PropertyInfo, on_arrays, fail, register, require_nondegenerate, schema


def _permutation(ctx: CaseContext, n: int) -> np.ndarray:
    perm = ctx.rng(salt=3).permutation(n)
    if np.array_equal(perm, np.arange(n)):
        perm = np.roll(perm, 1)
    return perm


def check_permutation(ctx: CaseContext, inputs: Inputs) -> None:
    exercise = EXERCISES[ctx.exercise]
    mode = ctx.params.get("permute", exercise.permute_modes[0])
    expect = ctx.params.get("expect", "holds")
    out = ctx.output_of(inputs)
    args, perm, target, what = exercise.permute(inputs.args, mode, lambda n: _permutation(ctx, n), expect, out)
    moved = inputs.with_args(**args)
    require_nondegenerate(ctx, out, inputs, axis=-2)
    got = ctx.output_of(moved)
    call = ctx.describe_call(moved)
    mismatch = compare_values(got, target, ctx.tol, "out(permuted)", against="the correspondingly permuted original output")
    if expect == "holds" and mismatch is not None:
        raise fail("relation", claim=f"{what} (permutation {perm.tolist()})", comparison=mismatch.details, call=call, hints=["hint.mixes_tokens"], claim_hidden=what)
    if expect == "breaks":
        margin = 100 * (ctx.tol.atol + ctx.tol.rtol * float(np.max(np.abs(target))))
        if float(np.max(np.abs(got - target))) <= margin:
            raise fail("relation", claim=f"with a causal mask the output must change when the tokens are reordered (token i sees only tokens 0..i), "
                       f"but out(permuted x) equals the permuted out (permutation {perm.tolist()})", call=call, hints=["ma.mask_ignored", "hint.mask_not_applied"],
                       claim_hidden="with a causal mask the output must change when the tokens are reordered, but it did not")


def _validate_permutation(case: Case, inputs: Inputs | None) -> list[tuple[tuple, str]]:
    mode = case.params.get("permute")
    expect = case.params.get("expect", "holds")
    exercise = EXERCISES[case.exercise]
    problems = []
    if mode is not None and mode not in exercise.permute_modes:
        if len(exercise.permute_modes) > 1:
            arrays = ", ".join(a for a in exercise.args if a != "mask")
            problems.append((("params", "permute"), f"{exercise.name} takes {arrays} separately: use permute: {' or '.join(exercise.permute_modes)}"))
        else:
            owners = join_and([e.name for e in EXERCISES.values() if mode in e.permute_modes])
            problems.append((("params", "permute"), f"permute: {mode} applies to {owners}; use permute: {exercise.permute_modes[0]}"))
    if expect == "breaks":
        if not exercise.mask_moves_with_tokens:
            owners = join_and([e.name for e in EXERCISES.values() if e.mask_moves_with_tokens])
            problems.append((("params", "expect"), f"expect: breaks applies to {owners}, whose mask stays in place"))
        elif case.inputs is None or case.inputs.mask not in CAUSAL_MASKS:
            problems.append((("params", "expect"), "expect: breaks needs a causal mask (without one, permuting tokens permutes the output)"))
    return problems


def check_batch_independence(ctx: CaseContext, inputs: Inputs) -> None:
    out = ctx.output_of(inputs)
    for b in range(min(out.shape[0], 3)):
        one = _slice(inputs, batch=b)
        got = ctx.output_of(one)
        mismatch = compare_values(got, out[b : b + 1], ctx.tol, f"out(batch element {b} alone)", against="that element's output within the batch")
        if mismatch is not None:
            raise fail("relation", claim=f"batch element {b} gives a different result alone than inside the batch of {out.shape[0]}", comparison=mismatch.details,
                       call=ctx.describe_call(one), hints=["hint.mixes_batch"], evidence={"batch_element": b}, claim_hidden="a batch element gives a different result alone than inside the batch")


def _slice(inputs: Inputs, *, batch: int | None = None, head: int | None = None) -> Inputs:
    sliced = inputs.with_args(**EXERCISES[inputs.exercise].slice(inputs.args, batch=batch, head=head))
    sliced.dims = dims_of(sliced)
    return sliced


def check_head_independence(ctx: CaseContext, inputs: Inputs) -> None:
    if "n_heads" in EXERCISES[ctx.exercise].output_shape:  # heads are an axis of the inputs and the output: slice one
        out = ctx.output_of(inputs)
        for h in range(min(out.shape[1], 3)):
            one = _slice(inputs, head=h)
            got = ctx.output_of(one)
            mismatch = compare_values(got, out[:, h : h + 1], ctx.tol, f"out(head {h} alone)", against="that head's output among all heads")
            if mismatch is not None:
                raise fail("relation", claim=f"head {h} gives a different result alone than among {out.shape[1]} heads", comparison=mismatch.details,
                           call=ctx.describe_call(one), hints=["hint.mixes_heads"], claim_hidden="a head gives a different result alone than among all heads")
        return
    # heads live in column blocks of W_Q, W_K, W_V: with W_O = I the output columns of head h come from head h alone.
    a = inputs.args
    d_model, n_heads = a["x"].shape[-1], int(a["n_heads"])
    d_head = d_model // n_heads
    base = inputs.with_args(W_O=np.eye(d_model))
    out = ctx.output_of(base)
    rng = ctx.rng(salt=11)
    for h in sorted({0, n_heads - 1}):
        cols = slice(h * d_head, (h + 1) * d_head)
        changed = {}
        for name in ("W_Q", "W_K", "W_V"):
            w = a[name].copy()
            w[:, cols] = rng.standard_normal((d_model, d_head)) / np.sqrt(d_model)
            changed[name] = w
        moved = base.with_args(**changed)
        got = ctx.output_of(moved)
        others = np.ones(d_model, dtype=bool)
        others[cols] = False
        mismatch = compare_values(got[..., others], out[..., others], ctx.tol, "out(other heads' columns)", against="the outputs before the change")
        if mismatch is not None:
            raise fail("relation", claim=f"with W_O = I, changing only head {h}'s columns {cols.start}:{cols.stop} of W_Q, W_K, W_V must change only "
                       f"output columns {cols.start}:{cols.stop}; other columns changed too", comparison=mismatch.details, call=ctx.describe_call(moved),
                       hints=["mha.split_no_transpose", "mha.heads_interleaved", "hint.mixes_heads"], claim_hidden="changing one head's projections changed other heads' output columns")
        if np.allclose(got[..., cols], out[..., cols], rtol=0, atol=0):
            raise fail("degenerate", claim=f"with W_O = I, changing head {h}'s projections did not change its output columns {cols.start}:{cols.stop}", call=ctx.describe_call(moved),
                       claim_hidden="changing a head's projections did not change its output columns")


register(
    PropertyInfo(
        "permutation_equivariance",
        "without a mask, reordering tokens reorders the output (and a causal mask breaks this)",
        check_permutation,
        params_schema=schema(permute={"enum": ["queries", "keys_values", "tokens"]}, expect={"enum": ["holds", "breaks"]}),
        applies_to=on_arrays,
        validate=_validate_permutation,
        relational=True,
    )
)
register(PropertyInfo("batch_independence", "each batch element is computed independently", check_batch_independence, applies_to=on_arrays, relational=True))
register(
    PropertyInfo(
        "head_independence",
        "each head is computed independently and lands in its own slot",
        check_head_independence,
        applies_to=("manual_attention", "multi_head_attention"),
        relational=True,
    )
)
