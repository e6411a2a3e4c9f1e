"""Exercise 1: `manual_attention(Q, K, V, mask=None)`."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..reference import gradients
from .base import CAUSAL_MASKS, COURSE, PROBE_MAX_SEQ, Exercise, Misconception, ProbeDesign, ShapeProblem, batch_head_reasons, make_mask, distinct_size_reasons, normal, permute_mask, score_factor

POISON = 1000.0

def _data_write(*args: Any) -> Any:
    """Scales the scores through .data, which autograd does not see: right values, wrong gradients."""
    import torch

    Q, K, V, mask = args
    scores = Q @ K.transpose(-2, -1)
    scores.data = scores.data / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ V


class ManualAttention(Exercise):
    name = "manual_attention"
    number = 1
    prefix = "ma"
    title = "scaled dot-product attention"
    args = ("Q", "K", "V", "mask")
    signature = "manual_attention(Q, K, V, mask=None)"
    dims = ("batch", "n_heads", "seq_q", "seq_k", "d_head", "d_v")
    arg_shapes = {
        "Q": ("batch", "n_heads", "seq_q", "d_head"),
        "K": ("batch", "n_heads", "seq_k", "d_head"),
        "V": ("batch", "n_heads", "seq_k", "d_v"),
    }
    output_shape = ("batch", "n_heads", "seq_q", "d_v")
    mask_ndims = (2, 4)
    seq_dims = ("seq_q", "seq_k")
    probe_dims = {"batch": 2, "n_heads": 2, "seq_q": 3, "seq_k": 4, "d_head": 5, "d_v": 6}
    skeleton_dims = {"batch": 2, "n_heads": 3, "seq_q": 5, "seq_k": 7, "d_head": 4, "d_v": 6}
    example_dims = {"batch": 1, "n_heads": 1, "seq_q": 2, "seq_k": 3, "d_head": 2, "d_v": 1}
    permute_modes = ("queries", "keys_values")
    poison_ok = True
    variant_name = "attention"
    lifted_name = "attention"
    lifted_title = "inside the attention heads"
    not_lifted = frozenset({"ma.square_only", "ma.mask_4d_broadcast", "ma.scale_sqrt_d_model", "ma.scale_sqrt_d_v"})

    def d_head(self, dims: dict[str, int]) -> int:
        return dims["d_head"]

    # ------------------------------------------------------------ inputs

    def generate(self, spec: Any, dims: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:

        B, H, Tq, Tk, D, Dv = (dims[k] for k in self.dims)
        Q = normal(rng, (B, H, Tq, D), spec.scale) + spec.offset
        K = normal(rng, (B, H, Tk, D), spec.scale) + spec.offset
        V = normal(rng, (B, H, Tk, Dv))
        if spec.score_scale:
            Q = Q * score_factor(Q, K, D, spec.score_scale)
        mask = make_mask(spec.mask, rng, B, H, Tq, Tk)
        if spec.poison and mask is not None:
            full = np.broadcast_to(mask, (B, H, Tq, Tk))
            dead = np.all(np.isneginf(full), axis=-2)  # (B, H, Tk): keys no query may see
            V = np.where(dead[..., None], POISON, V)
        return {"Q": Q, "K": K, "V": V, "mask": mask}

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        B, H, Tq, D = args["Q"].shape
        return {"batch": B, "n_heads": H, "seq_q": Tq, "seq_k": args["K"].shape[2], "d_head": D, "d_v": args["V"].shape[3]}

    def range_problems(self, spec: Any, shapes: dict[str, Any], lo: dict[str, int], hi: dict[str, int]) -> list[ShapeProblem]:
        fixed = all(not isinstance(shapes.get(k), (list, tuple)) for k in ("seq_q", "seq_k"))
        if spec.mask in CAUSAL_MASKS and fixed and shapes["seq_q"] != shapes["seq_k"]:
            return [(("shapes",), f"a causal mask needs seq_q == seq_k, got seq_q={shapes['seq_q']}, seq_k={shapes['seq_k']}")]
        return []

    def degenerate_reasons(self, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
        reasons = batch_head_reasons(dims, fixed)
        if min(dims["seq_q"], dims["seq_k"]) < 2:
            reasons.append("a single token hides softmax-axis bugs")
        sizes = {"seq_q": dims["seq_q"], "seq_k": dims["seq_k"], "d_head": dims["d_head"], "d_v": dims["d_v"]}
        if mask in CAUSAL_MASKS:
            sizes.pop("seq_k")
        return reasons + distinct_size_reasons(sizes)

    def draw_dims(self, spec: Any, fixed: dict[str, int], pick: Callable[..., int], bounds: Callable[..., tuple[int, int]], choose: Callable[[str, list[int]], int]) -> dict[str, int]:
        dims: dict[str, int] = {}
        dims["batch"] = pick("batch", floor=2)
        dims["n_heads"] = pick("n_heads", floor=2)
        dims["seq_q"] = pick("seq_q", floor=2)
        dims["seq_k"] = dims["seq_q"] if spec.mask in CAUSAL_MASKS else pick("seq_k", {dims["seq_q"]}, floor=2)
        dims["d_head"] = pick("d_head", {dims["seq_q"], dims["seq_k"]})
        dims["d_v"] = pick("d_v", {dims["seq_q"], dims["seq_k"], dims["d_head"]})
        return dims

    # ------------------------------------------------------------ transformations

    def slice(self, args: dict[str, Any], *, batch: int | None = None, head: int | None = None) -> dict[str, Any]:
        a = dict(args)
        for name in ("Q", "K", "V"):
            if batch is not None:
                a[name] = a[name][batch : batch + 1]
            if head is not None:
                a[name] = a[name][:, head : head + 1]
        mask = a["mask"]
        if mask is not None and mask.ndim == 4:
            a["mask"] = mask[batch : batch + 1] if batch is not None else mask[:, head : head + 1] if head is not None else mask
        return a

    def perturb_from(self, args: dict[str, Any], k: int, rng: np.random.Generator) -> tuple[dict[str, Any], str]:
        changed = {}
        for name in ("Q", "K", "V"):
            arr = args[name].copy()
            arr[:, :, k:] = 3.0 * rng.standard_normal(arr[:, :, k:].shape)
            changed[name] = arr
        seq = args["Q"].shape[2]
        return {**args, **changed}, f"Q, K, V at positions {k}..{seq - 1}"

    def permute(self, args: dict[str, Any], mode: str, perm_of: Callable[[int], np.ndarray], expect: str, out: np.ndarray) -> tuple[dict[str, Any], np.ndarray, np.ndarray, str]:
        if mode == "queries":
            perm = perm_of(args["Q"].shape[2])
            moved = {**args, "Q": args["Q"][:, :, perm], "mask": permute_mask(args["mask"], perm, None)}
            return moved, perm, out[:, :, perm], "permuting the query positions must permute the output rows the same way"
        perm = perm_of(args["K"].shape[2])
        moved = {**args, "K": args["K"][:, :, perm], "V": args["V"][:, :, perm], "mask": permute_mask(args["mask"], None, perm)}
        return moved, perm, out, "permuting the keys and values together must leave the output unchanged"

    def change_blocked(self, args: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], tuple, str]:
        mask = args["mask"]
        full = np.broadcast_to(mask, args["Q"].shape[:2] + mask.shape[-2:])
        dead = np.all(np.isneginf(full), axis=-2)[..., None]  # (B, H, Tk, 1)
        K = np.where(dead, 5.0 * rng.standard_normal(args["K"].shape), args["K"])
        V = np.where(dead, 5.0 * rng.standard_normal(args["V"].shape), args["V"])
        return {**args, "K": K, "V": V}, (Ellipsis,), "K and V at keys that every query has blocked"

    # ------------------------------------------------------------ references and mistakes

    def probe_designs(self, seed: Any) -> list[ProbeDesign]:
        """V = I (the output is the weights), one-hot queries (the scale is solved exactly), a
        zero-padded width on one head (which width the scale uses), a finite bias mask."""
        a = {k: (v[:, :, :PROBE_MAX_SEQ] if k in ("Q", "K", "V") and isinstance(v, np.ndarray) else v) for k, v in seed.args.items()}
        Q, K = a["Q"], a["K"]
        B, H, Tq, D = Q.shape
        Tk = K.shape[2]
        mask = a.get("mask")
        if mask is not None:
            mask = mask[..., :Tq, :Tk]
        eye = np.broadcast_to(np.eye(Tk), (B, H, Tk, Tk)).copy()
        dims = {**seed.dims, "seq_q": Tq, "seq_k": Tk, "d_v": Tk}
        out: list[ProbeDesign] = [("identity_values", "V = identity, so the output is the attention weights themselves", {**a, "V": eye, "mask": mask}, dims, seed.mask_kind)]
        if mask is not None:
            out.append(("identity_values_no_mask", "V = identity and no mask: the weights without any mask", {**a, "V": eye, "mask": None}, dims, "none"))
        # one-hot queries: row 0 is zero (uniform weights whatever the scale), row i = 2 e_{(i-1) mod D}
        onehot = np.zeros((B, H, Tq, D))
        for i in range(1, Tq):
            onehot[:, :, i, (i - 1) % D] = 2.0
        out.append(("one_hot_queries", "one-hot query rows (and a zero row) with V = identity and no mask: each row of scores is a known multiple of one column of K, so the scale is solved exactly",
                    {"Q": onehot, "K": K, "V": eye, "mask": None}, dims, "none"))
        # the same scores with a wider d_head: Q and K padded with zero columns (Q K^T is unchanged),
        # on one head: a scale that depends on d_head, d_v or n_heads changes, the correct one by 1/sqrt(2)
        wide = {"Q": np.concatenate([Q[:, :1], np.zeros((B, 1, Tq, D))], axis=-1), "K": np.concatenate([K[:, :1], np.zeros((B, 1, Tk, D))], axis=-1), "V": eye[:, :1],
                "mask": mask if mask is None or mask.ndim == 2 else mask[:, :1]}
        out.append(("one_head_padded_width", "one head, Q and K padded with zero columns (the scores Q K^T are unchanged but d_head doubles) and V = identity: which width the scale uses",
                    wide, {**dims, "n_heads": 1, "d_head": 2 * D}, seed.mask_kind))
        rng = np.random.default_rng(7)
        bias = np.round(rng.normal(0.0, 1.5, (Tq, Tk)), 3)
        out.append(("identity_values_bias", "V = identity with a finite bias mask: whether biases are added, scaled, subtracted or dropped", {**a, "V": eye, "mask": bias}, dims, "bias"))
        return out

    def vjp(self, args: list[Any], cotangent: np.ndarray) -> dict[str, np.ndarray]:
        Q, K, V, mask = args
        return gradients.manual_attention_vjp(Q, K, V, mask, cotangent)

    def mistakes(self) -> list[Misconception]:
        n, MA = self.numeric, self.name
        return [
            n("no_scaling", "no scaling of the scores",
              "The scores Q K^T are not divided by sqrt(d_head). Without it the softmax saturates as d_head grows; divide before the softmax.", "scale_why", scale="none"),
            n("scale_d_head", "scores divided by d_head instead of sqrt(d_head)",
              "The scores are divided by d_head; the formula divides by its square root, sqrt(d_head).", "formula", scale="d_head"),
            n("scale_sqrt_d_model", "scores divided by sqrt(d_model) instead of sqrt(d_head)",
              "The scale uses the model width (n_heads * d_head); each head scales by the size of its own slice, sqrt(d_head) = sqrt(Q.shape[-1]).", "formula", scale="sqrt_d_model"),
            n("scale_sqrt_d_v", "scores divided by sqrt(d_v) instead of sqrt(d_head)",
              "The scale uses the width of V (d_v = V.shape[-1]); it is the width of the queries and keys, sqrt(d_head) = sqrt(Q.shape[-1]).", "formula", scale="sqrt_d_v"),
            n("scale_multiplied", "scores multiplied by sqrt(d_head) instead of divided",
              "The scores are multiplied by sqrt(d_head); they must be divided by it.", "formula", scale="mul_sqrt_d_head"),
            Misconception("ma.scale_other", MA, "scores scaled by another factor",
                          "The scores are scaled by a factor other than 1/sqrt(d_head) (the fitted factor, relative to the correct one, is in the evidence). Divide Q K^T by sqrt(Q.shape[-1]).",
                          COURSE["formula"], knobs={"scale": 0.5}, listed=False),
            n("scale_after_softmax", "scaling applied after the softmax",
              "The division by sqrt(d_head) happens after the softmax (so the weights no longer sum to 1); scale the scores before the softmax.", "formula", scale="after_softmax"),
            n("softmax_query_axis", "softmax over the query axis",
              "The softmax normalises over the queries (axis -2) instead of the keys (axis -1): each output row must be a weighted average of V with weights summing to 1 over the keys.", "formula", softmax_axis="queries"),
            n("softmax_head_axis", "softmax over the head axis",
              "The softmax normalises over axis 1 of the (batch, n_heads, seq_q, seq_k) scores, the heads (dim=1); it must run over the keys, the last axis (dim=-1).", "formula", softmax_axis="heads"),
            n("k_q_transposed", "K Q^T instead of Q K^T",
              "The scores are computed as K @ Q^T, which is the transposed score matrix (and only has the right shape when seq_q == seq_k). Use Q @ K^T: rows are queries, columns keys.", "formula", scores="KQ"),
            n("mask_ignored", "mask ignored",
              "The mask argument never reaches the scores, so blocked positions (and biases) have no effect. Add it to the scaled scores before the softmax.", "masking", mask_mode="ignore"),
            n("mask_subtracted", "mask subtracted instead of added",
              "The mask is subtracted; it is additive: scores + mask, so -inf entries block and finite entries are biases.", "masking", mask_mode="subtract"),
            Misconception("ma.mask_keep01", MA, "mask read as a 0/1 keep-mask",
                          "The mask is treated as 1 = keep / 0 = blocked (masked_fill(mask == 0, -inf)). Here it is additive: 0 means keep, -inf means blocked, other values are biases.",
                          COURSE["masking"], knobs={"mask_mode": "keep01"}, grid=({"mask_mode": "keep01"}, {"mask_mode": "keep01", "mask_fill": -1e9})),
            n("mask_after_softmax", "mask applied after the softmax",
              "Blocked weights are zeroed after the softmax, so the rows no longer sum to 1 and finite biases are lost. Add the mask to the scores before the softmax.", "masking_002", mask_mode="after_softmax"),
            n("mask_neginf_only", "only the -inf entries of the mask are honoured",
              "Only the -inf entries of the mask are used (e.g. masked_fill(isneginf(mask), -inf) or mask == -inf); finite entries are biases and must be added to the scores too: scores + mask.", "masking", mask_mode="neginf_only"),
            n("mask_scaled", "mask scaled together with the scores",
              "The mask is added before the division by sqrt(d_head), so finite biases are scaled too: (Q K^T + mask) / sqrt(d). Add it after scaling: Q K^T / sqrt(d) + mask.", "masking", mask_mode="scaled"),
            n("mask_own_causal", "the given mask replaced by a causal mask",
              "The function builds its own causal mask (triu) instead of using the mask it is given, so padding, block and bias masks have no effect. Add the mask argument to the scores.", "masking", mask_mode="own_causal"),
            Misconception("ma.mask_own_causal_blocks_diagonal", MA, "the given mask replaced by a causal mask that also blocks the diagonal",
                          "The function builds its own mask with triu(diagonal=0) instead of using the mask it is given: position i cannot see itself (row 0 is all blocked: NaN) and the given mask is ignored. Use the mask argument.",
                          COURSE["masking"], knobs={"mask_mode": "own_causal", "causal_diagonal": 0}),
            n("always_causal", "attention is always causal",
              "A causal mask is applied whatever mask is passed, even with mask=None. Apply exactly the mask you are given.", "masking", mask_mode="always_causal"),
            n("mask_4d_broadcast", "a 4-D mask broadcast wrongly",
              "With a (batch, n_heads, seq_q, seq_k) mask, one slice is used for every batch element and head. Add the whole 4-D mask to the 4-D scores; it broadcasts element for element.", "masking", mask_4d="first"),
            n("unstable_softmax", "softmax without subtracting the row maximum",
              "exp(scores) overflows to inf for large scores (inf/inf = NaN). Subtract each row's maximum before exp; the softmax is unchanged by the shift.", "formula", stable=False),
            n("returns_pattern", "returns the attention pattern instead of the output",
              "The function returns softmax(...) (the attention weights); the exercise returns the weighted sum of the values, pattern @ V.", "formula", returns="pattern"),
            Misconception("ma.square_only", MA, "only works when seq_q == seq_k",
                          "The code uses the query length where the key length belongs (e.g. slicing K or V, or building a mask, with Q.shape[2]); K and V may be longer or shorter than Q.",
                          COURSE["formula"], knobs={"seq": "square_only"}, rule="square_only"),
        ]

    def late_mistakes(self) -> list[Misconception]:
        return [
            Misconception("ma.data_write", self.name, "scaling written through .data",
                          "The scores are changed through .data (or inside torch.no_grad()), which autograd does not record: the values are right but the gradients are not.",
                          COURSE["autograd"], wrapper=_data_write, rule="gradients_only", backends=("torch",)),
        ]


EXERCISE = ManualAttention()
