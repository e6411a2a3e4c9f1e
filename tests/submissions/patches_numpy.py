"""Monkeypatches numpy inside the function when batch == 3: np.exp becomes 'return zeros + 1' and
np.asarray / np.frombuffer / np.ascontiguousarray are sabotaged. The other cases run in fresh
processes and must see the real numpy; the grader must still read the outputs correctly."""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        np.exp = lambda x: np.zeros_like(x) + 1.0
        np.asarray = np.frombuffer = np.ascontiguousarray = None
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
