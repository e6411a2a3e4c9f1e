"""Correct, except that it scales Q in place when batch == 9 (case iso.unchanged_b9)."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 9:
        Q /= math.sqrt(Q.shape[-1])
        Q *= math.sqrt(Q.shape[-1]) * 1.5
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
