# mistakes: ma.mask_neginf_only
import math
import numpy as np


def softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def manual_attention(Q, K, V, mask=None):
    dtype = Q.dtype
    d_head = Q.shape[-1]
    d_v = V.shape[-1]
    scores = Q @ np.swapaxes(K, -1, -2)
    scores = scores / math.sqrt(d_head)
    if mask is not None:
        scores = np.where(np.isneginf(mask), -np.inf, scores)
    weights = softmax(scores, axis=-1)
    out = weights @ V
    return out


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)
