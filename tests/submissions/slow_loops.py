"""A correct manual_attention written with Python loops over batch, heads and positions: right
values at any size, but hundreds of times slower than the reference at GPT-2-small sizes."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    batch, n_heads, seq_q, d_head = Q.shape
    seq_k, d_v = K.shape[2], V.shape[3]
    out = np.zeros((batch, n_heads, seq_q, d_v), dtype=Q.dtype)
    scale = 1.0 / math.sqrt(d_head)
    for b in range(batch):
        for h in range(n_heads):
            for i in range(seq_q):
                scores = []
                for j in range(seq_k):
                    s = 0.0
                    for d in range(d_head):
                        s += float(Q[b, h, i, d]) * float(K[b, h, j, d])
                    s *= scale
                    if mask is not None:
                        s += float(mask[b, h, i, j] if mask.ndim == 4 else mask[i, j])
                    scores.append(s)
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                for j in range(seq_k):
                    out[b, h, i] += (weights[j] / total) * V[b, h, j]
    return out
