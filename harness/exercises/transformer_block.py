"""Exercise 3: `transformer_block(x, params, n_heads, mask=None)`, the pre-norm block.

`BlockExercise` holds what every block with this params dict shares (inputs, sizes, lifting the
attention sublayer's mistakes); the post-norm block reuses it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..reference import gradients
from .base import COURSE, PROBE_MAX_SEQ, Exercise, Misconception, ProbeDesign, StreamExercise, normal

BLOCK_PARAM_SHAPES = {
    "ln1_g": ("d_model",),
    "ln1_b": ("d_model",),
    "W_Q": ("d_model", "d_model"),
    "W_K": ("d_model", "d_model"),
    "W_V": ("d_model", "d_model"),
    "W_O": ("d_model", "d_model"),
    "ln2_g": ("d_model",),
    "ln2_b": ("d_model",),
    "W_in": ("d_model", "d_ff"),
    "b_in": ("d_ff",),
    "W_out": ("d_ff", "d_model"),
    "b_out": ("d_model",),
}


class BlockExercise(StreamExercise):
    """A transformer block `f(x, params, n_heads, mask=None)` with the params of BLOCK_PARAM_SHAPES."""

    args = ("x", "params", "n_heads", "mask")
    dims: tuple[str, ...] = ("batch", "seq", "d_model", "n_heads", "d_ff")
    arg_shapes = {"x": ("batch", "seq", "d_model"), **{f"params.{k}": v for k, v in BLOCK_PARAM_SHAPES.items()}}
    probe_dims = {"batch": 2, "seq": 3, "d_model": 8, "n_heads": 2, "d_ff": 5}
    skeleton_dims = {"batch": 2, "seq": 5, "d_model": 12, "n_heads": 3, "d_ff": 7}
    example_dims = {"batch": 1, "seq": 2, "d_model": 4, "n_heads": 2, "d_ff": 3}
    sublayers: tuple[str, ...] = ("manual_attention", "multi_head_attention")

    def more_params(self, rng: np.random.Generator, dims: dict[str, int], w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        Dm, F = dims["d_model"], dims["d_ff"]
        return {
            "ln1_g": 1.0 + normal(rng, (Dm,), 0.2),
            "ln1_b": normal(rng, (Dm,), 0.1),
            **w,
            "ln2_g": 1.0 + normal(rng, (Dm,), 0.2),
            "ln2_b": normal(rng, (Dm,), 0.1),
            "W_in": normal(rng, (Dm, F), 1 / math.sqrt(Dm)),
            "b_in": normal(rng, (F,), 0.1),
            "W_out": normal(rng, (F, Dm), 1 / math.sqrt(F)),
            "b_out": normal(rng, (Dm,), 0.1),
        }

    def pack(self, x: np.ndarray, params: dict[str, np.ndarray], n_heads: int, mask: np.ndarray | None) -> dict[str, Any]:
        return {"x": x, "params": params, "n_heads": n_heads, "mask": mask}

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        return {**super().dims_of(args), "d_ff": args["params"]["W_in"].shape[1]}

    def more_reasons(self, dims: dict[str, int]) -> list[str]:
        if dims["d_ff"] in (dims["d_model"], dims["seq"]):
            return [f"d_ff={dims['d_ff']} equals another size and hides a transposed W_in/W_out"]
        return []

    def draw_more(self, dims: dict[str, int], pick: Callable[..., int]) -> None:
        dims["d_ff"] = pick("d_ff", {dims["d_model"], dims["seq"]})

    def attention_knobs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        return {"mha": {"attention": knobs}}

    def lift(self, lower: Exercise, knobs: dict[str, Any]) -> dict[str, Any]:
        return self.attention_knobs(knobs) if lower.name == "manual_attention" else {"mha": knobs}

    def probe_designs(self, seed: Any) -> list[ProbeDesign]:
        """Each sublayer switched off in turn, rows of x with a tiny variance (LayerNorm's eps shows;
        with both sublayers off, a post-norm block shows its eps), a single head."""
        a = seed.args
        x, p = a["x"], a["params"]
        B, T, D = x.shape
        if T > PROBE_MAX_SEQ:
            return []
        no_mlp = {**p, **{k: np.zeros_like(p[k]) for k in ("W_in", "b_in", "W_out", "b_out")}}
        no_attn = {**p, "W_V": np.zeros_like(p["W_V"])}
        rng = np.random.default_rng(11)
        tiny = np.round(rng.normal(0.0, 1.0, (B, T, 1)), 3) + 3e-3 * np.round(rng.normal(0.0, 1.0, (B, T, D)), 3)
        quiet = {**no_mlp, "W_V": np.zeros_like(p["W_V"])}
        tinier = np.round(rng.normal(0.0, 1.0, (B, T, 1)), 3) + 1e-6 * np.round(rng.normal(0.0, 1.0, (B, T, D)), 3)
        return [
            ("no_mlp", "MLP weights and biases zero: the output is the residual stream after the attention half alone", {**a, "params": no_mlp}, seed.dims, seed.mask_kind),
            ("no_attention", "W_V = 0: the attention adds nothing, so the output shows the LayerNorms and the MLP alone", {**a, "params": no_attn}, seed.dims, seed.mask_kind),
            ("tiny_variance", "rows of x with a variance near 1e-5: LayerNorm's eps (and where it is added) shows in the output", {**a, "x": tiny}, seed.dims, seed.mask_kind),
            ("tiny_variance_sublayers_off", "rows of x with a variance near 1e-12 and both sublayers switched off: a pre-norm block returns x, a post-norm block shows its LayerNorm's eps",
             {**a, "x": tinier, "params": quiet}, seed.dims, seed.mask_kind),
            ("single_head", "n_heads = 1: head split and merge layouts cannot matter", {**a, "n_heads": 1}, {**seed.dims, "n_heads": 1}, seed.mask_kind),
        ]


class TransformerBlock(BlockExercise):
    name = "transformer_block"
    number = 3
    prefix = "block"
    title = "pre-norm transformer block"
    signature = "transformer_block(x, params, n_heads, mask=None)"
    lifted_name = "block"  # its mistakes seen through transformer_stack: stack.block.<key>
    lifted_title = "in a layer's block"

    def attention_input(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        from ..reference import numpy_ref

        return numpy_ref.layer_norm(x, params["ln1_g"], params["ln1_b"])

    def vjp(self, args: list[Any], cotangent: np.ndarray) -> dict[str, np.ndarray]:
        x, params, n_heads, mask = args
        return gradients.transformer_block_vjp(x, params, n_heads, mask, cotangent)

    def mistakes(self) -> list[Misconception]:
        n = self.numeric
        return [
            n("post_norm", "post-norm instead of pre-norm",
              "LayerNorm is applied after each residual add (x = LN(x + sublayer(x))); this block is pre-norm: x + sublayer(LN(x)).", "block", norm="post"),
            n("no_mlp_residual", "residual missing on the MLP",
              "The MLP's output is returned without adding it to a: out = a + MLP(LN(a)).", "block", mlp_residual=False),
            n("unbiased_variance", "LayerNorm with the unbiased variance",
              "The variance divides by d_model - 1 (np.var(ddof=1) / torch.var default); LayerNorm uses the biased variance (ddof=0, unbiased=False).", "ln", variance="unbiased"),
            n("eps_outside_sqrt", "LayerNorm eps outside the square root",
              "eps is added after the square root, (x - mean) / (sqrt(var) + eps); it belongs inside: sqrt(var + eps).", "ln", eps="outside"),
            Misconception("block.ln_eps", self.name, "LayerNorm with another eps",
                          "LayerNorm uses an eps other than 1e-5 (the fitted value is in the evidence); use eps = 1e-5 inside the square root, as torch.nn.LayerNorm.",
                          COURSE["ln"], knobs={"eps_value": 1e-6}, grid=tuple({"eps_value": e} for e in (0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-3))),
            n("ln_no_affine", "LayerNorm without its gain and bias",
              "LayerNorm does not apply ln_g and ln_b (the learned scale and shift): multiply by g and add b after normalising.", "ln", ln_affine=False),
            n("mlp_no_bias", "MLP biases dropped",
              "The MLP never adds b_in and b_out: h = GELU(x @ W_in + b_in) @ W_out + b_out.", "block", mlp_bias=False),
            n("no_attn_residual", "residual missing on the attention",
              "The attention edit is not added to x: a = x + attention(LN(x)).", "block", attn_residual=False),
            n("gelu_sigmoid", "sigmoid-approximate GELU",
              "GELU uses the sigmoid approximation x * sigmoid(1.702 x); the exercise uses the exact form 0.5 * x * (1 + erf(x / sqrt(2))).", "gelu", activation="gelu_sigmoid"),
            n("gelu_tanh", "tanh-approximate GELU",
              "GELU uses the tanh approximation; the exercise uses the exact form 0.5 * x * (1 + erf(x / sqrt(2))).", "gelu", activation="gelu_tanh"),
            n("relu", "ReLU instead of GELU",
              "The MLP uses ReLU; the block's activation is GELU (exact erf form).", "gelu", activation="relu"),
            n("ln2_on_input", "second LayerNorm applied to x instead of the attention output",
              "The MLP branch normalises the block input x; it must normalise a = x + attention edit.", "block", ln2_input="x"),
        ]


EXERCISE = TransformerBlock()
