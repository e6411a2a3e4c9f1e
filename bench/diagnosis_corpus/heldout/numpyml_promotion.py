# mistakes: ma.wrong_dtype
# style: public
# Held-out: a per-batch loop with np.sqrt(d_k) (a float64 NumPy scalar: promotes float32).
import numpy as np


def manual_attention(Q, K, V, mask=None):
    B, H = Q.shape[:2]
    d_k = Q.shape[-1]
    result = []
    for b in range(B):
        scores = np.einsum("hqd,hkd->hqk", Q[b], K[b]) / np.sqrt(d_k)
        if mask is not None:
            scores = scores + (mask[b] if mask.ndim == 4 else mask)
        scores = scores - scores.max(-1, keepdims=True)
        w = np.exp(scores)
        w /= w.sum(-1, keepdims=True)
        result.append(np.einsum("hqk,hkd->hqd", w, V[b]))
    return np.stack(result)
