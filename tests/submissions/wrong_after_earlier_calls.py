"""Wrong (zeros) for batch 3 once its process has been called with another batch size, right
otherwise: a verdict that depends on what ran before it in the same process, kept where the
grader's check of a child's state does not look (a closure's cell). Run alone, in a fresh child,
the batch-3 case passes; the grader must find that out and report the fresh verdict."""

import math

import numpy as np


def _attention_with_memory():
    seen = set()

    def manual_attention(Q, K, V, mask=None):
        seen.add(Q.shape[0])
        scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
        if mask is not None:
            scores = scores + mask
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        out = weights / weights.sum(axis=-1, keepdims=True) @ V
        return np.zeros_like(out) if Q.shape[0] == 3 and len(seen) > 1 else out

    return manual_attention


manual_attention = _attention_with_memory()
