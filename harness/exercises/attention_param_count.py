"""Exercise 6: `attention_param_count(d_model, d_head, n_heads, n_layers)`, an exact integer count.

The course's "Counting Parameters": per head four d_model x d_head maps (query, key, value-down,
value-up), n_heads heads per block, n_layers blocks. Arguments and result are Python integers, so
the NumPy/PyTorch split does not apply: the exercise is graded once, on whichever backend the
submission is written for, and the result must be exactly the integer count.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .base import Exercise, Misconception

COUNTING = "Attention, section 'Counting Parameters': per head W_Q, W_K, Value_down and Value_up are each d_model x d_head; 96 heads per block; 96 layers give just under 58 B for GPT-3"


class AttentionParamCount(Exercise):
    name = "attention_param_count"
    number = 7
    prefix = "apc"
    title = "counting attention parameters"
    args = ("d_model", "d_head", "n_heads", "n_layers")
    signature = "attention_param_count(d_model, d_head, n_heads, n_layers)"
    dims = ("d_model", "d_head", "n_heads", "n_layers")
    arg_shapes: dict[str, tuple[str, ...]] = {}
    output_shape = ()
    mask_ndims = ()
    seq_dims = ("d_model", "d_model")
    probe_dims = {"d_model": 12, "d_head": 3, "n_heads": 4, "n_layers": 2}
    skeleton_dims = {"d_model": 12, "d_head": 3, "n_heads": 4, "n_layers": 2}
    example_dims = {"d_model": 12, "d_head": 3, "n_heads": 4, "n_layers": 2}
    permute_modes = ()
    array_inputs = False
    array_output = False

    def d_head(self, dims: dict[str, int]) -> int:
        return dims["d_head"]

    def generate(self, spec: Any, dims: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
        return {k: int(dims[k]) for k in self.dims}

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        return {k: int(args[k]) for k in self.dims}

    def degenerate_reasons(self, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
        reasons = [f"{k}=1 hides a forgotten factor {k}" for k in ("n_heads", "n_layers") if dims[k] < 2 and k not in fixed]
        if dims["d_model"] == dims["d_head"] and "d_model" not in fixed:
            reasons.append(f"d_model == d_head == {dims['d_model']} hides a full d_model x d_model value map")
        if dims["n_heads"] == dims["n_layers"] and not {"n_heads", "n_layers"} & set(fixed):
            reasons.append(f"n_heads == n_layers == {dims['n_heads']} hides which of the two factors is missing")
        return reasons

    def draw_dims(self, spec: Any, fixed: dict[str, int], pick: Callable[..., int], bounds: Callable[..., tuple[int, int]], choose: Callable[[str, list[int]], int]) -> dict[str, int]:
        dims = {"d_head": pick("d_head")}
        dims["d_model"] = pick("d_model", {dims["d_head"]}, floor=2)
        dims["n_heads"] = pick("n_heads", floor=2)
        dims["n_layers"] = pick("n_layers", {dims["n_heads"]}, floor=2)
        return dims

    def mistakes(self) -> list[Misconception]:
        def m(key: str, title: str, feedback: str, **knobs: Any) -> Misconception:
            return Misconception(f"{self.prefix}.{key}", self.name, title, feedback, COUNTING, knobs=knobs)

        return [
            m("full_value_map", "a full d_model x d_model value map",
              "The value map is counted as one d_model x d_model square (the course's ~151 M per head for GPT-3). It is factored into Value_down (d_model -> d_head) and Value_up (d_head -> d_model): two d_model x d_head maps, like W_Q and W_K.",
              value="full"),
            m("three_maps", "three maps per head (value-up forgotten)",
              "Each head is counted as three d_model x d_head maps (query, key, value). The value map is two: Value_down and Value_up, so a head has four maps, 4 * d_model * d_head.",
              value="down_only"),
            m("no_layers", "the layers factor forgotten",
              "The count is for one block: multiply by n_layers (GPT-3 has 96 attention blocks, one per layer).",
              layers=False),
            m("no_heads", "the heads factor forgotten",
              "The count is for one head per block: every head has its own four maps, so multiply by n_heads.",
              heads=False),
            m("counts_biases", "biases counted",
              "Biases are added to the count; the course counts the weight matrices only (W_Q, W_K, Value_down, Value_up), with no biases.",
              biases=True),
            m("counts_mlp", "the MLP counted",
              "The MLP's weights (8 * d_model^2 per layer) are added; the exercise counts the attention parameters only (about a third of GPT-3's 175 B).",
              mlp=True),
        ]


EXERCISE = AttentionParamCount()
