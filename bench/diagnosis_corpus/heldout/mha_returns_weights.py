# mistakes: mha.returns_tuple
# Held-out: like nn.MultiheadAttention, returns (output, averaged attention weights).
import math

import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape
    d = D // n_heads
    q, k, v = ((x @ W).view(B, T, n_heads, d).transpose(1, 2) for W in (W_Q, W_K, W_V))
    s = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        s = s + mask
    w = s.softmax(-1)
    out = (w @ v).transpose(1, 2).reshape(B, T, D) @ W_O
    return out, w.mean(dim=1)
