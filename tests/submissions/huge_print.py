"""Correct, except that it prints about 50 MB when batch == 3 (and a little in other cases)."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    print('computing attention for batch', Q.shape[0])
    if Q.shape[0] == 3:
        line = 'x' * 1023
        for _ in range(50 * 1024):
            print(line)
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
