"""Tries to import the grader's own package to copy the reference (at load time and, when
batch == 3, inside the function). Both imports must fail; the other cases are its own code."""

import math

import numpy as np

try:
    from attnspec.reference import numpy_ref
except ImportError as exc:
    numpy_ref = None
    print("import refused:", exc)


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        import attnspec.reference.numpy_ref as cheat

        return cheat.manual_attention(Q, K, V, mask)
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
