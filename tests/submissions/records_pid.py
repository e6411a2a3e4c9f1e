"""Correct; at load time it leaves marks in its process (an environment variable, a builtins
attribute) and prints its pid, so a test can check that it never ran in the grading process."""

import builtins
import math
import os

import numpy as np

os.environ["ATTNSPEC_ISOLATION_MARK"] = "learner code ran here"
builtins.ATTNSPEC_ISOLATION_MARK = True
print(f"learner pid={os.getpid()}")


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
