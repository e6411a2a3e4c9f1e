"""Correct, except that it loops forever when batch == 3 (case iso.ref_b3)."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        n = 0
        while True:
            n += 1
            n -= 1
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
