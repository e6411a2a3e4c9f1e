"""Buggy example (PyTorch): the softmax goes through NumPy, which cuts the autograd graph."""

import math

import numpy as np
import torch
import torch.nn.functional as F


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float("-inf")).triu(1)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    s = scores.detach().numpy()  # BUG: leaves autograd
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    weights = torch.from_numpy(e / e.sum(axis=-1, keepdims=True))
    return weights @ V


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape

    def split(t):  # (B, T, D) -> (B, H, T, D // H)
        return t.view(B, T, n_heads, D // n_heads).transpose(1, 2)

    heads = manual_attention(split(x @ W_Q), split(x @ W_K), split(x @ W_V), mask)
    return heads.transpose(1, 2).reshape(B, T, D) @ W_O


def transformer_block(x, params, n_heads, mask=None):
    p = params
    D = x.shape[-1]
    h = F.layer_norm(x, (D,), p["ln1_g"], p["ln1_b"], eps=1e-5)
    a = x + multi_head_attention(h, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    h = F.layer_norm(a, (D,), p["ln2_g"], p["ln2_b"], eps=1e-5)
    return a + F.gelu(h @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
