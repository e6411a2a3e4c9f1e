"""A correct submission written against both NumPy and PyTorch: each function picks the array
library from its inputs. attnspec grades it on both backends and reports each."""

import math

import numpy as np
import torch


def _lib(a):
    return torch if isinstance(a, torch.Tensor) else np


def _softmax(s):
    if isinstance(s, torch.Tensor):
        return torch.softmax(s, dim=-1)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ K.swapaxes(-1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return _softmax(scores) @ V


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape
    split = lambda t: t.reshape(B, T, n_heads, D // n_heads).swapaxes(1, 2)  # noqa: E731
    heads = manual_attention(split(x @ W_Q), split(x @ W_K), split(x @ W_V), mask)
    return heads.swapaxes(1, 2).reshape(B, T, D) @ W_O


def _layer_norm(x, g, b):
    mean = x.mean(-1, keepdims=True) if isinstance(x, np.ndarray) else x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True) if isinstance(x, np.ndarray) else ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / _lib(x).sqrt(var + 1e-5) * g + b


def _gelu(x):
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.gelu(x)
    return (0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))).astype(x.dtype)


def transformer_block(x, params, n_heads, mask=None):
    p = params
    a = x + multi_head_attention(_layer_norm(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    return a + _gelu(_layer_norm(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
