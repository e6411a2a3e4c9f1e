"""Defines a correct manual_attention, then prints without end at module level. The output limit
must stop it at load time (not fill the disk until the chunk timeout); the function is graded."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V


while True:
    print("training step " + "z" * 100_000)
