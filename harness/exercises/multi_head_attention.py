"""Exercise 2: `multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None)`: the attention edit."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..reference import gradients
from .base import PROBE_MAX_SEQ, Exercise, Misconception, ProbeDesign, StreamExercise


class MultiHeadAttention(StreamExercise):
    name = "multi_head_attention"
    number = 2
    prefix = "mha"
    title = "multi-head attention"
    args = ("x", "W_Q", "W_K", "W_V", "W_O", "n_heads", "mask")
    signature = "multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None)"
    arg_shapes = {
        "x": ("batch", "seq", "d_model"),
        "W_Q": ("d_model", "d_model"),
        "W_K": ("d_model", "d_model"),
        "W_V": ("d_model", "d_model"),
        "W_O": ("d_model", "d_model"),
    }
    probe_dims = {"batch": 2, "seq": 3, "d_model": 8, "n_heads": 2}
    skeleton_dims = {"batch": 2, "seq": 5, "d_model": 12, "n_heads": 3}
    example_dims = {"batch": 1, "seq": 3, "d_model": 4, "n_heads": 2}
    lifted_name = "mha"
    lifted_title = "in the attention sublayer"
    sublayers = ("manual_attention",)

    def attention_knobs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        return {"attention": knobs}

    def lift(self, lower: Exercise, knobs: dict[str, Any]) -> dict[str, Any]:
        return self.attention_knobs(knobs)

    def probe_designs(self, seed: Any) -> list[ProbeDesign]:
        """A single head (a head-layout mistake disappears, any other stays) and identity value and
        output maps (nothing hides how the heads were combined)."""
        a = seed.args
        D = a["x"].shape[2]
        if a["x"].shape[1] > PROBE_MAX_SEQ:
            return []
        ident = np.eye(D)
        one = {**seed.dims, "n_heads": 1}
        return [
            ("single_head", "n_heads = 1: how heads are split and merged cannot matter, so a head-layout mistake disappears and any other stays", {**a, "n_heads": 1}, one, seed.mask_kind),
            ("identity_projections", "W_V = W_O = identity: the values are x itself and no output projection hides how the heads were combined",
             {**a, "W_V": ident, "W_O": ident}, seed.dims, seed.mask_kind),
            ("single_head_identity", "n_heads = 1 with W_V = W_O = identity: the attention weights applied to x, nothing else", {**a, "W_V": ident, "W_O": ident, "n_heads": 1}, one, seed.mask_kind),
        ]

    def vjp(self, args: list[Any], cotangent: np.ndarray) -> dict[str, np.ndarray]:
        x, W_Q, W_K, W_V, W_O, n_heads, mask = args
        return gradients.multi_head_attention_vjp(x, W_Q, W_K, W_V, W_O, n_heads, mask, cotangent)

    def mistakes(self) -> list[Misconception]:
        n = self.numeric
        return [
            n("split_no_transpose", "heads split with reshape/view and no transpose",
              "x @ W is reshaped straight to (batch, n_heads, seq, d_head), which mixes tokens and heads. Reshape to (batch, seq, n_heads, d_head), then transpose to (batch, n_heads, seq, d_head).", "mha", split="no_transpose"),
            n("heads_interleaved", "heads take interleaved columns",
              "Head h takes columns h, h + n_heads, ... ; it must take the contiguous slice h*d_head:(h+1)*d_head (reshape to (..., n_heads, d_head), not (..., d_head, n_heads)).", "mha", split="interleaved"),
            n("heads_reversed", "heads concatenated in the wrong order",
              "The heads are concatenated in reverse order; head h must land in columns h*d_head:(h+1)*d_head before W_O.", "mha_block", merge="reversed"),
            n("heads_summed", "heads summed instead of concatenated",
              "The head outputs are added together; they must be concatenated (back to width d_model) and then mixed by W_O.", "mha_block", merge="sum"),
            n("no_w_o", "W_O forgotten",
              "The concatenated heads are returned without the output projection W_O.", "mha_block", w_o=False),
            n("weights_transposed", "weights applied as x @ W.T",
              "The projections are applied as x @ W.T (the nn.Linear convention); this exercise applies them as x @ W.", "mha", weights="x@W.T"),
            n("scale_sqrt_d_model", "heads scaled by sqrt(d_model)",
              "Each head's scores are divided by sqrt(d_model); they must be divided by sqrt(d_head) = sqrt(d_model / n_heads).", "mha", attention={"scale": "sqrt_d_model"}),
            n("residual_inside", "residual added inside the sublayer",
              "The function returns x + edit; it must return only the edit (the block adds it to the residual stream).", "mha_block", residual=True),
        ]


EXERCISE = MultiHeadAttention()
