"""Attack: computes in float64, then returns an ndarray subclass whose `dtype` property claims
float32, hoping to pass the dtype case (iso.dtype_b6). Honest version: submissions/wrong_dtype.py."""

import math

import numpy as np


class ClaimsFloat32(np.ndarray):
    @property
    def dtype(self):
        return np.dtype(np.float32)


def manual_attention(Q, K, V, mask=None):
    Q, K, V = (np.asarray(a, dtype=np.float64) for a in (Q, K, V))
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return (weights @ V).view(ClaimsFloat32)
