# mistakes: ma.mask_own_causal
# cases: ma.mask.random_blocks
# Held-out (probes): NumPy loops over batch and heads; when a mask is passed the code builds its
# own lower-triangular mask instead of using it.
import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    B, H, Tq, d = Q.shape
    Tk = K.shape[2]
    out = np.empty((B, H, Tq, V.shape[-1]), dtype=Q.dtype)
    for b in range(B):
        for h in range(H):
            s = Q[b, h] @ K[b, h].T / math.sqrt(d)
            if mask is not None:
                allowed = np.tril(np.ones((Tq, Tk), dtype=bool))
                s = np.where(allowed, s, -np.inf)
            s = s - s.max(axis=1, keepdims=True)
            w = np.exp(s)
            w = w / w.sum(axis=1, keepdims=True)
            out[b, h] = w @ V[b, h]
    return out


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)
