"""Correct; at load it tries to PTRACE_ATTACH to, and read /proc/PID/mem of, every other process
it can see (the grader among them, were it visible) and prints how many it reached."""

import ctypes
import math
import os

import numpy as np

libc = ctypes.CDLL(None, use_errno=True)
reached = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) == os.getpid():
        continue
    pid = int(name)
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
        reached.append(("ptrace", pid))
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    try:
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.read(1)
        reached.append(("mem", pid))
    except OSError:
        pass
print("visible:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "reached:", reached)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V

