# mistakes: ma.mask_ignored
import numpy as np


def manual_attention(Q, K, V, mask=None):
    B, H, Tq, D = Q.shape
    Tk = K.shape[2]
    Dv = V.shape[3]
    out = np.zeros((B, H, Tq, Dv), dtype=Q.dtype)
    for b in range(B if True else 1):
        for h in range(H):
            s = Q[b, h] @ K[b, h].T
            s = s / np.sqrt(np.float64(D)).astype(Q.dtype)
            if mask is not None:
                mm = mask[b, h] if mask.ndim == 4 else mask
                s = s
            s = s - s.max(axis=-1, keepdims=True)
            w = np.exp(s)
            w = w / w.sum(axis=-1, keepdims=True)
            out[b, h] = w @ V[b, h]
    return out


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)
