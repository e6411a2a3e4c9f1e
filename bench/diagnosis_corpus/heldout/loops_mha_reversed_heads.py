# mistakes: mha.heads_reversed
# Held-out (probes): NumPy loop over heads; the head outputs are collected by inserting at the
# front of a list, so they are concatenated in reverse order.
import math

import numpy as np


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape
    dh = D // n_heads
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    pieces = []
    for h in range(n_heads):
        sl = slice(h * dh, (h + 1) * dh)
        s = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2) / math.sqrt(dh)
        if mask is not None:
            s = s + (mask[:, h] if mask.ndim == 4 else mask)
        s = s - s.max(-1, keepdims=True)
        w = np.exp(s)
        w = w / w.sum(-1, keepdims=True)
        pieces.insert(0, w @ v[..., sl])
    return np.concatenate(pieces, axis=-1) @ W_O
