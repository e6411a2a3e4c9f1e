"""PyTorch reference for the attention exercises, line for line like `numpy_ref`.

Differentiable end to end, so its gradients are the ones a learner's code must reproduce.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Integer arithmetic, the same on both backends: one definition (numpy_ref's).
from .numpy_ref import attention_param_count  # noqa: F401  (the backend's reference for the count)

LAYER_NORM_EPS = 1e-5


def causal_mask(seq_len: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Additive mask: 0 where position i may see j (j <= i), -inf above the diagonal."""
    return torch.triu(torch.full((seq_len, seq_len), float("-inf"), dtype=dtype), diagonal=1)


def manual_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d_head) + mask) V, softmax over the key axis."""
    B, H, Tq, D = Q.shape
    scores = (Q @ K.transpose(-2, -1)) / math.sqrt(D)  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores + mask.to(scores.dtype)  # (Tq, Tk) or (B, H, Tq, Tk) broadcasts
    pattern = torch.softmax(scores, dim=-1)  # (B, H, Tq, Tk); subtracts the row max internally
    return pattern @ V  # (B, H, Tq, Dv)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, d_model) -> (B, n_heads, T, d_head); head h owns columns h*d_head:(h+1)*d_head."""
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)  # (B, H, T, Dh)


def merge_heads(heads: torch.Tensor) -> torch.Tensor:
    """(B, n_heads, T, d_head) -> (B, T, n_heads*d_head), heads concatenated in order."""
    B, H, T, Dh = heads.shape
    return heads.transpose(1, 2).reshape(B, T, H * Dh)  # (B, T, H*Dh)


def multi_head_attention(
    x: torch.Tensor,
    W_Q: torch.Tensor,
    W_K: torch.Tensor,
    W_V: torch.Tensor,
    W_O: torch.Tensor,
    n_heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The attention edit for the residual stream (not added to x)."""
    q = split_heads(x @ W_Q, n_heads)  # (B, H, T, Dh)
    k = split_heads(x @ W_K, n_heads)  # (B, H, T, Dh)
    v = split_heads(x @ W_V, n_heads)  # (B, H, T, Dh)
    heads = manual_attention(q, k, v, mask)  # (B, H, T, Dh)
    return merge_heads(heads) @ W_O  # (B, T, d_model)


def layer_norm(x: torch.Tensor, g: torch.Tensor, b: torch.Tensor, eps: float = LAYER_NORM_EPS) -> torch.Tensor:
    """Normalise the last axis with the biased variance, eps inside the square root."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by d_model
    return (x - mean) / torch.sqrt(var + eps) * g + b


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, x * Phi(x), with the error function (not the tanh approximation)."""
    return F.gelu(x, approximate="none")


def transformer_block(x: torch.Tensor, params: dict, n_heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pre-norm block: two residual lines, attention then MLP."""
    p = params
    a = x + multi_head_attention(layer_norm(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    return a + gelu(layer_norm(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]


def post_norm_block(x: torch.Tensor, params: dict, n_heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Post-norm block (the original "Add & Normalize"): LayerNorm after each residual add."""
    p = params
    a = layer_norm(x + multi_head_attention(x, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask), p["ln1_g"], p["ln1_b"])
    return layer_norm(a + gelu(a @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"], p["ln2_g"], p["ln2_b"])


def transformer_stack(x: torch.Tensor, layers: list, n_heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pre-norm blocks in list order, each reading the residual stream the previous one wrote.

    An empty list is zero edits: x comes back unchanged."""
    for params in layers:
        x = transformer_block(x, params, n_heads, mask)  # (B, T, d_model), the same mask for every layer
    return x

