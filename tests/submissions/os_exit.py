"""Correct, except that it calls os._exit(0) when batch == 3: the process ends without a word."""

import math
import os
import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        os._exit(0)
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
