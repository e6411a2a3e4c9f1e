"""Properties that compare the submission with itself: permutation equivariance, batch and head
independence. They need no reference values, so they catch bugs a reference match cannot name."""

from __future__ import annotations

import numpy as np

from ..compare import compare_values
from ..inputs import CAUSAL_MASKS, Inputs, dims_of
from ..specmodel import Case
from .base import CaseContext, PropertyInfo, fail, register, require_nondegenerate, schema


def _permutation(ctx: CaseContext, n: int) -> np.ndarray:
    perm = ctx.rng(salt=3).permutation(n)
    if np.array_equal(perm, np.arange(n)):
        perm = np.roll(perm, 1)
    return perm


def _permute_mask(mask: np.ndarray | None, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    if rows is not None:
        mask = np.take(mask, rows, axis=-2)
    if cols is not None:
        mask = np.take(mask, cols, axis=-1)
    return mask


def check_permutation(ctx: CaseContext, inputs: Inputs) -> None:
    mode = ctx.params.get("permute", "queries" if ctx.exercise == "manual_attention" else "tokens")
    expect = ctx.params.get("expect", "holds")
    out = ctx.output_of(inputs)
    a = inputs.args
    if mode == "queries":
        perm = _permutation(ctx, a["Q"].shape[2])
        moved = inputs.with_args(Q=a["Q"][:, :, perm], mask=_permute_mask(a["mask"], perm, None))
        target, what = out[:, :, perm], "permuting the query positions must permute the output rows the same way"
    elif mode == "keys_values":
        perm = _permutation(ctx, a["K"].shape[2])
        moved = inputs.with_args(K=a["K"][:, :, perm], V=a["V"][:, :, perm], mask=_permute_mask(a["mask"], None, perm))
        target, what = out, "permuting the keys and values together must leave the output unchanged"
    else:
        perm = _permutation(ctx, a["x"].shape[1])
        mask = a["mask"] if expect == "breaks" else _permute_mask(a["mask"], perm, perm)
        moved = inputs.with_args(x=a["x"][:, perm], mask=mask)
        target, what = out[:, perm], "permuting the tokens must permute the output the same way"
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
    problems = []
    if mode in ("queries", "keys_values") and case.exercise != "manual_attention":
        problems.append((("params", "permute"), f"permute: {mode} applies to manual_attention; use permute: tokens"))
    if mode == "tokens" and case.exercise == "manual_attention":
        problems.append((("params", "permute"), "manual_attention takes Q, K, V separately: use permute: queries or keys_values"))
    if expect == "breaks":
        if case.exercise == "manual_attention":
            problems.append((("params", "expect"), "expect: breaks applies to multi_head_attention and transformer_block, whose mask stays in place"))
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
    a = dict(inputs.args)
    if inputs.exercise == "manual_attention":
        for name in ("Q", "K", "V"):
            if batch is not None:
                a[name] = a[name][batch : batch + 1]
            if head is not None:
                a[name] = a[name][:, head : head + 1]
        mask = a["mask"]
        if mask is not None and mask.ndim == 4:
            a["mask"] = mask[batch : batch + 1] if batch is not None else mask[:, head : head + 1]
    else:
        a["x"] = a["x"][batch : batch + 1]
    sliced = inputs.with_args(**a)
    sliced.dims = dims_of(sliced)
    return sliced


def check_head_independence(ctx: CaseContext, inputs: Inputs) -> None:
    if ctx.exercise == "manual_attention":
        out = ctx.output_of(inputs)
        for h in range(min(out.shape[1], 3)):
            one = _slice(inputs, head=h)
            got = ctx.output_of(one)
            mismatch = compare_values(got, out[:, h : h + 1], ctx.tol, f"out(head {h} alone)", against="that head's output among all heads")
            if mismatch is not None:
                raise fail("relation", claim=f"head {h} gives a different result alone than among {out.shape[1]} heads", comparison=mismatch.details,
                           call=ctx.describe_call(one), hints=["hint.mixes_heads"], claim_hidden="a head gives a different result alone than among all heads")
        return
    # multi_head_attention: with W_O = I the output columns of head h come from head h alone.
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
        validate=_validate_permutation,
        relational=True,
    )
)
register(PropertyInfo("batch_independence", "each batch element is computed independently", check_batch_independence, relational=True))
register(
    PropertyInfo(
        "head_independence",
        "each head is computed independently and lands in its own slot",
        check_head_independence,
        exercises=("manual_attention", "multi_head_attention"),
        relational=True,
    )
)
