"""Correct, except that when batch == 3 it returns zeros; every call prints how many calls its
process has made. Cases that pass share their child process, so the count goes on across them;
after the failing case the next one starts in a fresh child, so the count starts again."""

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
