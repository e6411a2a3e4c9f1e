"""Defines a correct manual_attention, then loops forever at module level (a stray training
loop). The load-time chunk timeout stops the loop; the function defined before it is graded."""

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


step = 0
while True:
    step += 1
