"""Correct, except that when batch == 3 it SIGKILLs its parent: the submission's zygote worker.
The grader must replace the worker; only that case fails."""

import math
import os
import signal

import numpy as np


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        os.kill(os.getppid(), signal.SIGKILL)
        while True:
            pass
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
