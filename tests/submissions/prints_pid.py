"""Correct, except that when batch == 3 it returns zeros; every call prints its process id and
changes nothing else. Cases that change nothing share their child process, failing ones too."""

import math
import os

import numpy as np


def manual_attention(Q, K, V, mask=None):
    print(f"pid {os.getpid()} batch {Q.shape[0]}")
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    out = weights / weights.sum(axis=-1, keepdims=True) @ V
    return np.zeros_like(out) if Q.shape[0] == 3 else out
