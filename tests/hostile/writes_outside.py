"""Correct; at load it tries to create a file in every folder of TARGETS (set by the test: its own
folder, the output folder, the grader's working folder...) and in a few system places."""

import math
import os

import numpy as np

TARGETS = []
wrote = []
for folder in [*TARGETS, "/", "/usr", "/etc", os.path.expanduser("~")]:
    try:
        with open(os.path.join(folder, "hostile-was-here.txt"), "w") as f:
            f.write("x")
        wrote.append(folder)
    except OSError:
        pass
print("wrote into:", wrote)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V

