"""Correct, except that when batch == 3 it returns zeros; every call counts itself in a global and
prints the count. A case that changes a global leaves its child behind: every case starts in a
fresh child, so every count starts at 1."""

import math

import numpy as np

CALLS = 0


def manual_attention(Q, K, V, mask=None):
    global CALLS
    CALLS += 1
    print(f"call {CALLS} batch {Q.shape[0]}")
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    out = weights / weights.sum(axis=-1, keepdims=True) @ V
    return np.zeros_like(out) if Q.shape[0] == 3 else out
