"""NumPy reference for the attention exercises.

Written to be read by a learner after the deadline: named dimensions, a shape comment on every
reshape, one code path. Every function keeps the dtype of its inputs and never writes to them.
"""

from __future__ import annotations

import math

import numpy as np

LAYER_NORM_EPS = 1e-5


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax that never overflows: the row maximum is subtracted before exp."""
    shifted = scores - scores.max(axis=axis, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=axis, keepdims=True)


def causal_mask(seq_len: int, dtype=np.float64) -> np.ndarray:
    """Additive mask: 0 where position i may see j (j <= i), -inf above the diagonal."""
    return np.triu(np.full((seq_len, seq_len), -np.inf, dtype=dtype), k=1)


def attention_pattern(Q: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(Q K^T / sqrt(d_head) + mask) over the key axis: how much each query reads each key."""
    B, H, Tq, D = Q.shape
    scores = (Q @ np.swapaxes(K, -1, -2)) / math.sqrt(D)  # (B, H, Tq, Tk)
    if mask is not None:
        # (Tq, Tk) or (B, H, Tq, Tk); cast so a float64 mask cannot promote float32 scores
        scores = scores + np.asarray(mask).astype(scores.dtype, copy=False)
    return softmax(scores, axis=-1)  # (B, H, Tq, Tk), each row sums to 1


def manual_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """softmax(Q K^T / sqrt(d_head) + mask) V, softmax over the key axis."""
    pattern = attention_pattern(Q, K, mask)  # (B, H, Tq, Tk)
    return pattern @ V  # (B, H, Tq, Dv)


def split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """(B, T, d_model) -> (B, n_heads, T, d_head); head h owns columns h*d_head:(h+1)*d_head."""
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, D // n_heads).transpose(0, 2, 1, 3)  # (B, H, T, Dh)


def merge_heads(heads: np.ndarray) -> np.ndarray:
    """(B, n_heads, T, d_head) -> (B, T, n_heads*d_head), heads concatenated in order."""
    B, H, T, Dh = heads.shape
    return heads.transpose(0, 2, 1, 3).reshape(B, T, H * Dh)  # (B, T, H*Dh)


def multi_head_attention(
    x: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    W_O: np.ndarray,
    n_heads: int,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The attention edit for the residual stream (not added to x)."""
    q = split_heads(x @ W_Q, n_heads)  # (B, H, T, Dh)
    k = split_heads(x @ W_K, n_heads)  # (B, H, T, Dh)
    v = split_heads(x @ W_V, n_heads)  # (B, H, T, Dh)
    heads = manual_attention(q, k, v, mask)  # (B, H, T, Dh)
    return merge_heads(heads) @ W_O  # (B, T, d_model)


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """Normalise the last axis with the biased variance, eps inside the square root."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased: divide by d_model
    return (x - mean) / np.sqrt(var + eps) * g + b


erf = np.vectorize(math.erf, otypes=[np.float64])
erf.__doc__ = "The error function, elementwise, in float64 (NumPy has none; math.erf per element)."


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x), with the error function (not the tanh approximation)."""
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype, copy=False)


def transformer_block(x: np.ndarray, params: dict, n_heads: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Pre-norm block: two residual lines, attention then MLP."""
    p = params
    a = x + multi_head_attention(layer_norm(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    return a + gelu(layer_norm(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]


def post_norm_block(x: np.ndarray, params: dict, n_heads: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Post-norm block (the original "Add & Normalize"): LayerNorm after each residual add."""
    p = params
    a = layer_norm(x + multi_head_attention(x, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask), p["ln1_g"], p["ln1_b"])
    return layer_norm(a + gelu(a @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"], p["ln2_g"], p["ln2_b"])


def transformer_stack(x: np.ndarray, layers: list, n_heads: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Pre-norm blocks in list order, each reading the residual stream the previous one wrote.

    An empty list is zero edits: x comes back unchanged."""
    for params in layers:
        x = transformer_block(x, params, n_heads, mask)  # (B, T, d_model), the same mask for every layer
    return x


def attention_param_count(d_model: int, d_head: int, n_heads: int, n_layers: int) -> int:
    """Attention weights of a model (no biases): per head W_Q, W_K, Value_down and Value_up, each
    d_model x d_head; n_heads heads per block; n_layers blocks. An exact Python int."""
    per_matrix = d_model * d_head
    per_head = 4 * per_matrix
    per_block = n_heads * per_head
    return int(n_layers * per_block)
