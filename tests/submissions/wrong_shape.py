"""Correct, except that it returns (batch, seq_q, n_heads, d_v) when batch == 8 (case iso.shape_b8)."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 8:
        return np.swapaxes(_attention(Q, K, V, mask), 1, 2)
    return _attention(Q, K, V, mask)


def _attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
