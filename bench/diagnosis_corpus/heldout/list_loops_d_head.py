# mistakes: ma.scale_d_head
# Held-out: nested Python loops over rows, scores divided by d (not sqrt(d)).
import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    B, H, Tq, d = Q.shape
    Tk = K.shape[2]
    out = np.empty(Q.shape[:3] + (V.shape[-1],), dtype=Q.dtype)
    for b in range(B):
        for h in range(H):
            m = None if mask is None else (mask[b, h] if mask.ndim == 4 else mask)
            for i in range(Tq):
                row = np.array([float(Q[b, h, i] @ K[b, h, j]) / d for j in range(Tk)])
                if m is not None:
                    row = row + m[i]
                row = np.exp(row - row.max())
                out[b, h, i] = (row / row.sum()) @ V[b, h]
    return out
