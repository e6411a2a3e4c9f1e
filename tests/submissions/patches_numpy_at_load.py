"""A correct function, but at load time the module sabotages numpy functions that it never uses
itself (np.frombuffer, np.asarray, np.ascontiguousarray, np.float64) in the process that later
forks every case. The grader's own decoding of inputs and outputs must not depend on them."""

import math

import numpy as np

np.frombuffer = np.asarray = np.ascontiguousarray = None
np.float64 = np.float16


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
