"""The exercise contracts as data (docs/contracts.md), used by every stage.

Input building, spec validation, static analysis, the worker's signature check and the starter
generator all read argument names, positional order and shapes from here, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("numpy", "torch")
DTYPES = ("float64", "float32", "float16", "bfloat16")
TORCH_ONLY_DTYPES = ("float16", "bfloat16")

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


@dataclass(frozen=True)
class Contract:
    """One function a learner writes: its name, positional arguments, shapes and output."""

    name: str
    args: tuple[str, ...]
    signature: str
    dims: tuple[str, ...]
    arg_shapes: dict[str, tuple[str, ...]]
    output_shape: tuple[str, ...]
    mask_ndims: tuple[int, ...]

    def shape_of(self, arg: str, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] if isinstance(d, str) else d for d in self.arg_shapes[arg])

    def output_shape_for(self, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] for d in self.output_shape)


MANUAL_ATTENTION = Contract(
    name="manual_attention",
    args=("Q", "K", "V", "mask"),
    signature="manual_attention(Q, K, V, mask=None)",
    dims=("batch", "n_heads", "seq_q", "seq_k", "d_head", "d_v"),
    arg_shapes={
        "Q": ("batch", "n_heads", "seq_q", "d_head"),
        "K": ("batch", "n_heads", "seq_k", "d_head"),
        "V": ("batch", "n_heads", "seq_k", "d_v"),
    },
    output_shape=("batch", "n_heads", "seq_q", "d_v"),
    mask_ndims=(2, 4),
)

MULTI_HEAD_ATTENTION = Contract(
    name="multi_head_attention",
    args=("x", "W_Q", "W_K", "W_V", "W_O", "n_heads", "mask"),
    signature="multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None)",
    dims=("batch", "seq", "d_model", "n_heads"),
    arg_shapes={
        "x": ("batch", "seq", "d_model"),
        "W_Q": ("d_model", "d_model"),
        "W_K": ("d_model", "d_model"),
        "W_V": ("d_model", "d_model"),
        "W_O": ("d_model", "d_model"),
    },
    output_shape=("batch", "seq", "d_model"),
    mask_ndims=(2,),
)

TRANSFORMER_BLOCK = Contract(
    name="transformer_block",
    args=("x", "params", "n_heads", "mask"),
    signature="transformer_block(x, params, n_heads, mask=None)",
    dims=("batch", "seq", "d_model", "n_heads", "d_ff"),
    arg_shapes={"x": ("batch", "seq", "d_model"), **{f"params.{k}": v for k, v in BLOCK_PARAM_SHAPES.items()}},
    output_shape=("batch", "seq", "d_model"),
    mask_ndims=(2,),
)

CAUSAL_MASK = Contract(
    name="causal_mask",
    args=("seq_len",),
    signature="causal_mask(seq_len)",
    dims=("seq_len",),
    arg_shapes={},
    output_shape=("seq_len", "seq_len"),
    mask_ndims=(),
)

EXERCISES: dict[str, Contract] = {
    c.name: c for c in (MANUAL_ATTENTION, MULTI_HEAD_ATTENTION, TRANSFORMER_BLOCK)
}
EXERCISE_NAMES = tuple(EXERCISES)

# Helper functions that belong to an exercise and are graded with it.
HELPERS: dict[str, Contract] = {"causal_mask": CAUSAL_MASK}
HELPER_EXERCISE = {"causal_mask": "manual_attention"}

FUNCTIONS: dict[str, Contract] = {**EXERCISES, **HELPERS}

# The sequence axis of each exercise's main input/output (permutations and masks act on it).
SEQ_DIMS = {"manual_attention": ("seq_q", "seq_k"), "multi_head_attention": ("seq", "seq"), "transformer_block": ("seq", "seq")}


def d_head_of(exercise: str, dims: dict[str, int]) -> int:
    if exercise == "manual_attention":
        return dims["d_head"]
    return dims["d_model"] // dims["n_heads"]


def seq_lens(exercise: str, dims: dict[str, int]) -> tuple[int, int]:
    q, k = SEQ_DIMS[exercise]
    return dims[q], dims[k]
