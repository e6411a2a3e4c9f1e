# mistakes: none
# cases: ma.mask.random_blocks, ma.toy.weights
# Held-out: correct code with one einsum per step, float64 accumulation cast back.
import numpy as np


def manual_attention(Q, K, V, mask=None):
    scale = 1.0 / float(np.sqrt(Q.shape[-1]))
    logits = np.einsum("bhqd,bhkd->bhqk", Q.astype(np.float64), K.astype(np.float64)) * scale
    if mask is not None:
        logits = logits + mask
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", probs, V.astype(np.float64)).astype(Q.dtype)
