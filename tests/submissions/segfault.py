"""Correct, except that it dereferences a NULL pointer (SIGSEGV) when batch == 3."""

import math
import ctypes
import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        ctypes.string_at(0)
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
