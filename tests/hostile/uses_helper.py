"""Honest and correct; uses a helper module `attn_helper` if one can be imported (none ships with
it), so a module planted by another submission would change its result."""

import math

import numpy as np

try:
    from attn_helper import softmax
except ImportError:

    def softmax(x):
        x = x - x.max(axis=-1, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=-1, keepdims=True)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return softmax(scores) @ V
