# mistakes: mha.no_w_o
import numpy as np


def split(t, n_heads):
    B, T, d_model = t.shape
    d_head = d_model // n_heads
    return t.reshape(B, T, n_heads, d_head).transpose(0, 2, 1, 3)


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, d_model = x.shape
    d_head = d_model // n_heads
    q, k, v = split(x @ W_Q, n_heads), split(x @ W_K, n_heads), split(x @ W_V, n_heads)
    s = q @ k.transpose(0, 1, 3, 2) / d_head ** 0.5
    if mask is not None:
        s = s + mask
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    h = p @ v
    merged = h.transpose(0, 2, 1, 3).reshape(B, T, d_model)
    out = merged
    return out
