"""Exercise 5: `causal_mask(seq_len)`, the additive mask of a decoder (0 = may see, -inf = blocked)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .base import COURSE, Exercise, Misconception


class CausalMask(Exercise):
    name = "causal_mask"
    number = 6
    prefix = "cm"
    title = "the causal mask"
    args = ("seq_len",)
    signature = "causal_mask(seq_len)"
    dims = ("seq_len",)
    arg_shapes: dict[str, tuple[str, ...]] = {}
    output_shape = ("seq_len", "seq_len")
    mask_ndims = ()
    seq_dims = ("seq_len", "seq_len")
    probe_dims = {"seq_len": 3}
    skeleton_dims = {"seq_len": 5}
    example_dims = {"seq_len": 3}
    permute_modes = ()
    array_inputs = False

    def generate(self, spec: Any, dims: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
        return {"seq_len": int(dims["seq_len"])}

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        return {"seq_len": int(args["seq_len"])}

    def degenerate_reasons(self, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
        return ["a single position has nothing above the diagonal"] if dims["seq_len"] < 2 else []

    def draw_dims(self, spec: Any, fixed: dict[str, int], pick: Callable[..., int], bounds: Callable[..., tuple[int, int]], choose: Callable[[str, list[int]], int]) -> dict[str, int]:
        return {"seq_len": pick("seq_len", floor=2)}

    def mistakes(self) -> list[Misconception]:
        n = self.numeric
        return [
            n("blocks_diagonal", "causal mask blocks the diagonal",
              "causal_mask also blocks position i from seeing itself (triu with k=0); position i must see 0..i, so use k=1.", "masking", diagonal=0),
            n("sees_next", "causal mask lets each position see the next one",
              "causal_mask leaves one future position open (triu with k=2); position i must not see i+1.", "masking", diagonal=2),
            n("blocks_past", "causal mask blocks the past",
              "causal_mask blocks the positions before i instead of after it (tril instead of triu): position i sees 0..i, so block the upper triangle (triu with k=1).", "masking", past=True),
            n("keep01", "causal mask returned as 0/1",
              "causal_mask returns a 0/1 lower-triangular matrix (1 = may see), a multiplicative keep-mask; the contract's mask is additive: 0 where allowed, -inf above the diagonal.", "masking", keep01=True),
            Misconception("cm.boolean", self.name, "causal mask returned as True/False",
                          "causal_mask returns a boolean array (True = may see, as torch.tril(torch.ones(n, n)).bool() or masked_fill's argument); the contract's mask is additive floats: 0.0 where allowed, -inf above the diagonal. The course's version turns the 0/1 matrix into 0/-inf with masked_fill(mask == 0, float('-inf')).",
                          COURSE["masking"], knobs={"boolean": True}, signature=("causal_mask_dtype", "dtype", "bool")),
        ]


EXERCISE = CausalMask()
