# mistakes: ma.mask_neginf_only
# style: public
# Held-out: d2l-style masked_softmax, adapted: blocked entries are replaced by a large negative
# value; finite mask entries are not used.
import math

import numpy as np


def masked_softmax(X, mask):
    if mask is None:
        e = np.exp(X - X.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    X = np.where(np.isneginf(np.broadcast_to(mask, X.shape)), -np.inf, X)
    e = np.exp(X - X.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def manual_attention(Q, K, V, mask=None):
    d = Q.shape[-1]
    scores = np.matmul(Q, np.swapaxes(K, -1, -2)) / math.sqrt(d)
    attention_weights = masked_softmax(scores, mask)
    return np.matmul(attention_weights, V)
