"""Exercise 5: `transformer_stack(x, layers, n_heads, mask=None)`: pre-norm blocks applied in order.

    h = x
    for params in layers:             # each params dict exactly as transformer_block's
        h = transformer_block(h, params, n_heads, mask)
    return h                          # an empty list returns x unchanged

Every layer has parameters of its own and reads the residual stream the layer before it wrote;
the same mask reaches every layer. There is no final LayerNorm: that belongs to the model, not the stack.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..reference import gradients
from .base import Exercise, Misconception, ProbeDesign, make_mask, normal, score_factor
from .transformer_block import BLOCK_PARAM_SHAPES, BlockExercise

COURSE_STACK = (
    "docs/exercises/transformer_stack.md and 'Transformer layers': the block is repeated, each layer with its own "
    "parameters, reading the residual stream the previous layer wrote; the mask goes to every layer's attention"
)


class TransformerStack(BlockExercise):
    name = "transformer_stack"
    number = 5
    prefix = "stack"
    title = "stack of pre-norm blocks"
    args = ("x", "layers", "n_heads", "mask")
    signature = "transformer_stack(x, layers, n_heads, mask=None)"
    dims = ("batch", "seq", "d_model", "n_heads", "d_ff", "n_layers")
    arg_shapes = {"x": ("batch", "seq", "d_model"), **{f"layers.{k}": v for k, v in BLOCK_PARAM_SHAPES.items()}}
    probe_dims = {"batch": 2, "seq": 3, "d_model": 8, "n_heads": 2, "d_ff": 5, "n_layers": 2}
    skeleton_dims = {"batch": 2, "seq": 5, "d_model": 12, "n_heads": 3, "d_ff": 7, "n_layers": 3}
    example_dims = {"batch": 1, "seq": 2, "d_model": 4, "n_heads": 2, "d_ff": 3, "n_layers": 2}
    sublayers = ("manual_attention", "multi_head_attention", "transformer_block")

    # ------------------------------------------------------------ inputs

    def generate(self, spec: Any, dims: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
        """x, then each layer's params drawn afresh (no two layers alike, so order bugs show)."""
        from ..reference import numpy_ref

        B, T, Dm, H, L = (dims[k] for k in ("batch", "seq", "d_model", "n_heads", "n_layers"))
        x = normal(rng, (B, T, Dm), spec.scale) + spec.offset
        layers = []
        for _ in range(L):
            w = {name: normal(rng, (Dm, Dm), 1 / math.sqrt(Dm)) for name in ("W_Q", "W_K", "W_V", "W_O")}
            layers.append(self.more_params(rng, dims, w))
        if spec.score_scale:  # every layer's largest score, on the stream that layer reads
            h = x
            for p in layers:
                normed = numpy_ref.layer_norm(h, p["ln1_g"], p["ln1_b"])
                q = numpy_ref.split_heads(normed @ p["W_Q"], H)
                k = numpy_ref.split_heads(normed @ p["W_K"], H)
                p["W_Q"] = p["W_Q"] * score_factor(q, k, Dm // H, spec.score_scale)
                h = numpy_ref.transformer_block(h, p, H)
        mask = make_mask(spec.mask, rng, B, H, T, T)
        return {"x": x, "layers": layers, "n_heads": H, "mask": mask}

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        B, T, Dm = args["x"].shape
        layers = args["layers"]
        dims = {"batch": B, "seq": T, "d_model": Dm, "n_heads": int(args["n_heads"]), "n_layers": len(layers)}
        if layers:
            dims["d_ff"] = layers[0]["W_in"].shape[1]
        return dims

    def literal_dims(self, literal: dict[str, Any]) -> dict[str, int]:
        dims = super().literal_dims(literal)
        if isinstance(literal.get("layers"), list):
            dims["n_layers"] = len(literal["layers"])
        return dims

    def degenerate_reasons(self, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
        reasons = super().degenerate_reasons(dims, mask, fixed)
        if dims["n_layers"] < 2 and "n_layers" not in fixed:
            reasons.append("n_layers < 2 hides layer-order bugs (reversed, first or last layer only, params shared)")
        return reasons

    def draw_more(self, dims: dict[str, int], pick: Callable[..., int]) -> None:
        super().draw_more(dims, pick)
        dims["n_layers"] = pick("n_layers", floor=2)

    # ------------------------------------------------------------ references and mistakes

    def attention_knobs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        return {"block": {"mha": {"attention": knobs}}}

    def lift(self, lower: Exercise, knobs: dict[str, Any]) -> dict[str, Any]:
        if lower.name == "manual_attention":
            return self.attention_knobs(knobs)
        if lower.name == "multi_head_attention":
            return {"block": {"mha": knobs}}
        return {"block": knobs}

    def vjp(self, args: list[Any], cotangent: np.ndarray) -> dict[str, np.ndarray]:
        x, layers, n_heads, mask = args
        return gradients.transformer_stack_vjp(x, layers, n_heads, mask, cotangent)

    def probe_designs(self, seed: Any) -> list[ProbeDesign]:
        """None yet: the block's designs switch one params dict's sublayers off, and a stack has a list."""
        return []

    def mistakes(self) -> list[Misconception]:
        course: dict[str, Any] = {"reference": COURSE_STACK}
        return [
            Misconception("stack.layers_reversed", self.name, "layers applied in reverse order",
                          "The layers run last to first (reversed(layers), layers[::-1], or an index counting down); layer 0 reads x first and "
                          "each later layer reads what the one before it wrote.", **course, knobs={"order": "reversed"}),
            Misconception("stack.first_layer_only", self.name, "only the first layer applied",
                          "Only layers[0] is applied (a return inside the loop, or layers[0] instead of a loop); apply every layer in the list, in order.",
                          **course, knobs={"apply": "first"}),
            Misconception("stack.last_layer_only", self.name, "only the last layer applied",
                          "Only the last layer's output survives (each pass of the loop starts again from x, or only layers[-1] is used); "
                          "feed each layer's output to the next: h = transformer_block(h, params, n_heads, mask).", **course, knobs={"apply": "last"}),
            Misconception("stack.params_shared", self.name, "the same layer's params used for every layer",
                          "Every pass of the loop uses the same params (layers[0], or the loop variable of an outer loop); layer i must use layers[i].",
                          **course, knobs={"params": "shared"}),
            Misconception("stack.mask_first_layer_only", self.name, "mask passed to the first layer only",
                          "Only the first layer gets the mask, so later layers let each position see the future; pass the same mask to every layer.",
                          **course, knobs={"mask_to": "first_only"}),
            Misconception("stack.final_layernorm", self.name, "a final LayerNorm added after the layers",
                          "The stack applies a LayerNorm after the last layer; the contract returns the residual stream as the last block left it "
                          "(a model's final LayerNorm comes after the stack, with its own parameters).", **course, knobs={"final_ln": True}),
            Misconception("stack.stream_reset", self.name, "every layer reads the original x",
                          "Each layer is applied to x instead of the running stream (transformer_block(x, ...) inside the loop) and the edits are added up; "
                          "layer i must read the stream that layer i - 1 wrote.", **course, knobs={"stream": "reset"}),
        ]


EXERCISE = TransformerStack()
