"""The heads-sum property: "every head proposes a change; the changes are added".

Concatenating the heads and projecting with W_O is the same as adding up one low-rank edit per
head: head h attends with its column slices of W_Q and W_K (h*d_head:(h+1)*d_head), reads values
through the matching slice of W_V (value-down) and writes through the matching rows of W_O
(value-up). The output is linear in W_O, so keeping only head h's rows of W_O (the others zero)
must give head h's edit alone, and the learner's per-head outputs must add up to its full output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..compare import compare_values
from ..exercises import EXERCISES, Exercise
from ..inputs import Inputs
from .base import CaseContext, PropertyInfo, fail, register, value_kind

# Head split/merge mistakes whose per-head edits are told apart here (multi_head_attention knobs).
LAYOUT_MISTAKES = {
    "mha.heads_interleaved": {"split": "interleaved"},
    "mha.split_no_transpose": {"split": "no_transpose"},
    "mha.heads_reversed": {"merge": "reversed"},
    "mha.heads_summed": {"merge": "sum"},
}


def takes_w_o_and_n_heads(exercise: Exercise) -> bool:
    """W_O and n_heads are arguments of their own: the W_O rows of each head can be kept alone."""
    return "W_O" in exercise.args and "n_heads" in exercise.args


def head_edit(x: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, W_V: np.ndarray, W_O: np.ndarray, n_heads: int, h: int, mask: np.ndarray | None) -> np.ndarray:
    """Head h's own edit, written from the slices (not through the reference's split and merge):
    softmax((x W_Q_h)(x W_K_h)^T / sqrt(d_head) + mask) (x W_V_h) W_O_h."""
    from ..reference import numpy_ref

    d_head = x.shape[-1] // n_heads
    cols = slice(h * d_head, (h + 1) * d_head)
    q, k, v = x @ W_Q[:, cols], x @ W_K[:, cols], x @ W_V[:, cols]  # (B, T, d_head) each
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d_head)  # (B, T, T)
    if mask is not None:
        scores = scores + mask
    return numpy_ref.softmax(scores, axis=-1) @ v @ W_O[cols, :]  # value-down, then value-up: (B, T, d_model)


def only_head(W_O: np.ndarray, n_heads: int, h: int) -> np.ndarray:
    """W_O with every row zeroed but head h's (its value-up)."""
    d_head = W_O.shape[0] // n_heads
    kept = np.zeros_like(W_O)
    kept[h * d_head : (h + 1) * d_head] = W_O[h * d_head : (h + 1) * d_head]
    return kept


def _layout_hints(ctx: CaseContext, inputs: Inputs, got: np.ndarray) -> list[str]:
    exercise = EXERCISES[inputs.exercise]
    found = []
    with np.errstate(all="ignore"):
        for ident, knobs in LAYOUT_MISTAKES.items():
            try:
                alt = exercise.variant(*inputs.positional(), **knobs)
            except (ValueError, IndexError, RuntimeError):
                continue
            if compare_values(got, alt, ctx.tol) is None:
                found.append(ident)
    return found


def check_heads_sum(ctx: CaseContext, inputs: Inputs) -> None:
    a: dict[str, Any] = inputs.args
    n_heads = int(a["n_heads"])
    d_head = a["x"].shape[-1] // n_heads
    full = ctx.output_of(inputs)
    per_head, wrong = [], []
    first: tuple[int, Inputs, np.ndarray, dict[str, Any]] | None = None
    for h in range(n_heads):
        one = inputs.with_args(W_O=only_head(a["W_O"], n_heads, h))
        got = ctx.output_of(one)
        want = head_edit(a["x"], a["W_Q"], a["W_K"], a["W_V"], a["W_O"], n_heads, h, a["mask"])
        mismatch = compare_values(got, want, ctx.tol, f"out(only head {h}'s rows of W_O)", against=f"head {h}'s own edit")
        if mismatch is not None:
            wrong.append(h)
            if first is None:
                first = (h, one, got, mismatch.details)
        per_head.append(got)
    if first is not None:
        h, one, got, details = first
        rows = f"{h * d_head}:{(h + 1) * d_head}"
        found = _layout_hints(ctx, one, got)
        raise fail(value_kind(details), claim=f"head {h}'s edit is wrong{f' (so are heads {wrong[1:]})' if len(wrong) > 1 else ''}: with only rows {rows} of W_O kept, "
                   f"the output must be softmax((x W_Q[:, {rows}])(x W_K[:, {rows}])^T / sqrt({d_head}) + mask) (x W_V[:, {rows}]) W_O[{rows}, :], "
                   f"head {h} reading its own column slice and writing through its own rows",
                   comparison=details, call=ctx.describe_call(one), hints=found or ["hint.mixes_heads"], evidence={"head": h, "wrong_heads": wrong, "reproduced_by": found},
                   claim_hidden="one head's edit (only its rows of W_O kept) is not that head's own low-rank edit")
    total = np.sum(per_head, axis=0)
    mismatch = compare_values(full, total, ctx.tol, "out", against=f"the sum of the {n_heads} one-head outputs")
    if mismatch is not None:
        raise fail("relation", claim=f"each head's edit is right alone, but the output with all of W_O is not their sum over the {n_heads} heads "
                   "(concatenate-then-project is linear in W_O)", comparison=mismatch.details, call=ctx.describe_call(inputs),
                   claim_hidden="the output is not the sum of the heads' edits")


register(
    PropertyInfo(
        "heads_sum",
        "the output is the sum over heads of each head's own low-rank edit (W_O rows of one head kept at a time)",
        check_heads_sum,
        applies_to=takes_w_o_and_n_heads,
        relational=False,
    )
)
