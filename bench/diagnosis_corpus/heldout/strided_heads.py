# mistakes: mha.heads_interleaved
# Held-out: heads taken as strided column slices, stacked with a list comprehension.
import numpy as np


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    heads = []
    for h in range(n_heads):
        q = x @ W_Q[:, h::n_heads]
        k = x @ W_K[:, h::n_heads]
        v = x @ W_V[:, h::n_heads]
        s = q @ k.transpose(0, 2, 1) / q.shape[-1] ** 0.5
        if mask is not None:
            s = s + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        heads.append((s / s.sum(-1, keepdims=True)) @ v)
    out = np.zeros_like(x)
    for h in range(n_heads):
        out[..., h::n_heads] = heads[h]
    return out @ W_O
