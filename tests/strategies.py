"""Hypothesis strategies and input builders shared by the reference tests.

Strategies draw only small integers (shapes, seeds, mask kinds) so that shrinking stays cheap and
every failure prints a short, readable example; the arrays themselves are built from a drawn seed
with NumPy's generator. Tests draw through `st.data()` with a `label=` on every draw, so a failing
example reads `shapes = {...}`, `seed = ...`, `mask_kind = ...`.

Every dimension is at most 8 so the whole suite stays fast.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

MAX_DIM = 8
MAX_BATCH = 3
MAX_HEADS = 4
MAX_SEQ = 6

#: Mask kinds understood by `make_mask`. "causal_bias" and "4d" mix -inf and finite entries.
MASK_KINDS = ("none", "causal", "bias", "causal_bias", "4d")
#: The kinds whose mask is (seq_q, seq_k), the only ones the multi-head contract allows.
MASK_KINDS_2D = ("none", "causal", "bias", "causal_bias")


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------


def attention_shapes() -> st.SearchStrategy[dict[str, int]]:
    """Shapes for manual_attention; seq_q, seq_k and d_head, d_v are drawn independently."""
    return st.fixed_dictionaries(
        {
            "batch": st.integers(1, MAX_BATCH),
            "n_heads": st.integers(1, MAX_HEADS),
            "seq_q": st.integers(1, MAX_SEQ),
            "seq_k": st.integers(1, MAX_SEQ),
            "d_head": st.integers(1, MAX_DIM),
            "d_v": st.integers(1, MAX_DIM),
        }
    )


@st.composite
def mha_shapes(draw: st.DrawFn) -> dict[str, int]:
    """Shapes for multi_head_attention: d_model = n_heads * d_head <= MAX_DIM."""
    n_heads = draw(st.integers(1, MAX_HEADS))
    d_head = draw(st.integers(1, MAX_DIM // n_heads))
    return {
        "batch": draw(st.integers(1, MAX_BATCH)),
        "seq": draw(st.integers(1, MAX_SEQ)),
        "n_heads": n_heads,
        "d_model": n_heads * d_head,
    }


@st.composite
def block_shapes(draw: st.DrawFn) -> dict[str, int]:
    """Shapes for transformer_block: mha_shapes() plus the MLP width d_ff."""
    shapes = draw(mha_shapes())
    return {**shapes, "d_ff": draw(st.integers(1, MAX_DIM))}


def float_dtypes() -> st.SearchStrategy[np.dtype]:
    return st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


def seeds() -> st.SearchStrategy[int]:
    return st.integers(0, 2**32 - 1)


def mask_kinds(kinds: tuple[str, ...] = MASK_KINDS) -> st.SearchStrategy[str]:
    return st.sampled_from(kinds)


# --------------------------------------------------------------------------------------------
# arrays from a shape dict and a seed
# --------------------------------------------------------------------------------------------


def _normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, std: float = 1.0) -> np.ndarray:
    return (std * rng.standard_normal(shape)).astype(dtype)


def qkv_arrays(shapes: dict[str, int], seed: int, dtype: np.dtype = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Q (B, H, Tq, Dh), K (B, H, Tk, Dh), V (B, H, Tk, Dv), standard normal."""
    rng = np.random.default_rng(seed)
    B, H, Tq, Tk = shapes["batch"], shapes["n_heads"], shapes["seq_q"], shapes["seq_k"]
    Dh, Dv = shapes["d_head"], shapes["d_v"]
    Q = _normal(rng, (B, H, Tq, Dh), dtype)
    K = _normal(rng, (B, H, Tk, Dh), dtype)
    V = _normal(rng, (B, H, Tk, Dv), dtype)
    return Q, K, V


def mha_arrays(shapes: dict[str, int], seed: int, dtype: np.dtype = np.float64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """x (B, T, d_model) and {W_Q, W_K, W_V, W_O}, each (d_model, d_model) with std 1/sqrt(d_model)."""
    rng = np.random.default_rng(seed)
    B, T, D = shapes["batch"], shapes["seq"], shapes["d_model"]
    x = _normal(rng, (B, T, D), dtype)
    weights = {name: _normal(rng, (D, D), dtype, std=1 / math.sqrt(D)) for name in ("W_Q", "W_K", "W_V", "W_O")}
    return x, weights


def block_arrays(shapes: dict[str, int], seed: int, dtype: np.dtype = np.float64) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """x (B, T, d_model) and a full params dict: LN gains near 1, non-zero biases, random weights."""
    rng = np.random.default_rng(seed)
    D, F = shapes["d_model"], shapes["d_ff"]
    x, weights = mha_arrays(shapes, int(rng.integers(2**32)), dtype)
    params = {
        "ln1_g": 1.0 + _normal(rng, (D,), dtype, std=0.1),
        "ln1_b": _normal(rng, (D,), dtype, std=0.1),
        **weights,
        "ln2_g": 1.0 + _normal(rng, (D,), dtype, std=0.1),
        "ln2_b": _normal(rng, (D,), dtype, std=0.1),
        "W_in": _normal(rng, (D, F), dtype, std=1 / math.sqrt(D)),
        "b_in": _normal(rng, (F,), dtype, std=0.1),
        "W_out": _normal(rng, (F, D), dtype, std=1 / math.sqrt(F)),
        "b_out": _normal(rng, (D,), dtype, std=0.1),
    }
    return x, {name: value.astype(dtype) for name, value in params.items()}


def grad_out_like(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A float64 cotangent for a vector-Jacobian product."""
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------


def _causal(seq_q: int, seq_k: int) -> np.ndarray:
    """(Tq, Tk): query i sees keys 0..i; key 0 is always visible, so no row is fully blocked."""
    return np.triu(np.full((seq_q, seq_k), -np.inf), k=1)


def make_mask(
    kind: str,
    seq_q: int,
    seq_k: int,
    seed: int,
    dtype: np.dtype = np.float64,
    batch: int = 1,
    n_heads: int = 1,
) -> np.ndarray | None:
    """An additive mask of one of MASK_KINDS (0 = keep, -inf = blocked, finite = bias).

    - "none": None.
    - "causal": (Tq, Tk), 0 on and below the diagonal, -inf above.
    - "bias": (Tq, Tk), finite N(0, 2^2) biases only.
    - "causal_bias": (Tq, Tk), causal with finite biases where visible.
    - "4d": (B, H, Tq, Tk), different per batch and head, about 40% -inf and the rest finite
      biases, with at least one visible key in every row.
    """
    rng = np.random.default_rng(seed)
    if kind == "none":
        return None
    if kind == "causal":
        mask = _causal(seq_q, seq_k)
    elif kind == "bias":
        mask = 2.0 * rng.standard_normal((seq_q, seq_k))
    elif kind == "causal_bias":
        mask = _causal(seq_q, seq_k) + 2.0 * rng.standard_normal((seq_q, seq_k))
    elif kind == "4d":
        shape = (batch, n_heads, seq_q, seq_k)
        bias = 2.0 * rng.standard_normal(shape)
        blocked = rng.random(shape) < 0.4  # (B, H, Tq, Tk)
        visible_key = rng.integers(0, seq_k, size=(batch, n_heads, seq_q, 1))  # one per row
        np.put_along_axis(blocked, visible_key, False, axis=-1)
        mask = np.where(blocked, -np.inf, bias)
    else:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")
    return mask.astype(dtype)


# Reference-vs-oracle tolerances per dtype (float64 tight, float32 looser).
TOLERANCES = {
    np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-5},
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-10},
}
