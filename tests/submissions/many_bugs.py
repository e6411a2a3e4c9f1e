"""A different misbehaviour in several cases (for the CLI and reproducibility tests): raises when
batch == 3, NaN when batch == 4, float64 for float32 inputs, a segfault when batch == 8, and a
line of output in every case. Correct for batch 5, 7 and 9."""

import ctypes
import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    print(f"manual_attention called with batch {Q.shape[0]}")
    if Q.shape[0] == 3:
        raise ValueError("boom: batch 3 is not supported")
    if Q.shape[0] == 8:
        ctypes.string_at(0)
    scale = np.sqrt(np.float64(Q.shape[-1])) if Q.shape[0] == 6 else math.sqrt(Q.shape[-1])
    scores = Q @ np.swapaxes(K, -1, -2) / scale
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    out = weights @ V
    if Q.shape[0] == 4:
        out[0, 0, 0, 0] = np.nan
    return out
