# mistakes: ma.mask_after_softmax
# Held-out (probes): einsum; blocked weights are zeroed after the softmax.
import numpy as np


def manual_attention(Q, K, V, mask=None):
    scores = np.einsum("bhqd,bhkd->bhqk", Q, K) / np.sqrt(Q.shape[-1]).astype(Q.dtype)
    scores = scores - scores.max(-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(-1, keepdims=True)
    if mask is not None:
        probs = probs * (np.broadcast_to(mask, probs.shape) != -np.inf)
    return np.einsum("bhqk,bhkv->bhqv", probs, V)


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)
