"""Exercise 4: `post_norm_block(x, params, n_heads, mask=None)`, the original "Add & Normalize" block.

    a   = LN(x + multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask); ln1_g, ln1_b)
    out = LN(a + GELU(a @ W_in + b_in) @ W_out + b_out; ln2_g, ln2_b)

Same params dict, LayerNorm, GELU and mask as `transformer_block`; only where LayerNorm sits differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..reference import gradients
from .base import COURSE, Misconception
from .transformer_block import BlockExercise

COURSE_POST_NORM = (
    "docs/exercises/post_norm_block.md and 'Transformer layers': the original block normalises after each residual add, "
    "x = LN(x + sublayer(x)); the pre-norm block of transformer_block normalises the sublayer's input instead"
)


class PostNormBlock(BlockExercise):
    name = "post_norm_block"
    number = 4
    prefix = "post"
    title = "post-norm transformer block"
    signature = "post_norm_block(x, params, n_heads, mask=None)"

    # attention_input: the sublayer reads x itself (no LayerNorm before it), the StreamExercise default.

    def vjp(self, args: list[Any], cotangent: np.ndarray) -> dict[str, np.ndarray]:
        x, params, n_heads, mask = args
        return gradients.post_norm_block_vjp(x, params, n_heads, mask, cotangent)

    def mistakes(self) -> list[Misconception]:
        n = self.numeric
        course: dict[str, Any] = {"reference": COURSE_POST_NORM}
        return [
            Misconception("post.pre_norm", self.name, "pre-norm instead of post-norm",
                          "LayerNorm is applied to each sublayer's input (x + sublayer(LN(x)), the pre-norm block of transformer_block); "
                          "this block normalises after the residual add: x = LN(x + sublayer(x)).", **course, knobs={"norm": "pre"}),
            Misconception("post.no_ln2", self.name, "second LayerNorm missing",
                          "The output is a + MLP(a), without the final LayerNorm; the MLP's residual sum is normalised too: out = LN2(a + MLP(a)).",
                          **course, knobs={"ln2": False}),
            Misconception("post.no_attn_residual", self.name, "residual missing on the attention",
                          "The attention edit is normalised without adding x: a = LN1(x + MHA(x)), not LN1(MHA(x)).", **course, knobs={"attn_residual": False}),
            Misconception("post.no_mlp_residual", self.name, "residual missing on the MLP",
                          "The MLP's output is normalised without adding a: out = LN2(a + MLP(a)), not LN2(MLP(a)).", **course, knobs={"mlp_residual": False}),
            n("unbiased_variance", "LayerNorm with the unbiased variance",
              "The variance divides by d_model - 1 (np.var(ddof=1) / torch.var default); LayerNorm uses the biased variance (ddof=0, unbiased=False).", "ln", variance="unbiased"),
            n("eps_outside_sqrt", "LayerNorm eps outside the square root",
              "eps is added after the square root, (x - mean) / (sqrt(var) + eps); it belongs inside: sqrt(var + eps).", "ln", eps="outside"),
            Misconception("post.ln_eps", self.name, "LayerNorm with another eps",
                          "LayerNorm uses an eps other than 1e-5 (the fitted value is in the evidence); use eps = 1e-5 inside the square root, as torch.nn.LayerNorm.",
                          COURSE["ln"], knobs={"eps_value": 1e-6}, grid=tuple({"eps_value": e} for e in (0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-3))),
            n("ln_no_affine", "LayerNorm without its gain and bias",
              "LayerNorm does not apply ln_g and ln_b (the learned scale and shift): multiply by g and add b after normalising.", "ln", ln_affine=False),
            Misconception("post.mlp_no_bias", self.name, "MLP biases dropped",
                          "The MLP never adds b_in and b_out: MLP(a) = GELU(a @ W_in + b_in) @ W_out + b_out.", **course, knobs={"mlp_bias": False}),
            n("gelu_tanh", "tanh-approximate GELU",
              "GELU uses the tanh approximation; the exercise uses the exact form 0.5 * x * (1 + erf(x / sqrt(2))).", "gelu", activation="gelu_tanh"),
            n("gelu_sigmoid", "sigmoid-approximate GELU",
              "GELU uses the sigmoid approximation x * sigmoid(1.702 x); the exercise uses the exact form 0.5 * x * (1 + erf(x / sqrt(2))).", "gelu", activation="gelu_sigmoid"),
            n("relu", "ReLU instead of GELU",
              "The MLP uses ReLU; the block's activation is GELU (exact erf form).", "gelu", activation="relu"),
        ]


EXERCISE = PostNormBlock()
