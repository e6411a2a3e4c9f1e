"""Attack: in the dtype case (batch 6) computes in float64 and writes its own, well-formed reply
to the worker's socket, claiming a float32 output (with the float64 bytes), then exits.
Honest version: submissions/wrong_dtype.py."""

import json
import math
import os
import stat
import struct

import numpy as np


def _forge(out):
    data = np.ascontiguousarray(out, dtype=np.float64).tobytes()
    header = {"status": "ok", "duration": 0.001, "mutated": [], "tripwires": [],
              "output": {"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float32", "shape": list(out.shape), "values": 0, "encoding": "float32"},
              "_buffers": [len(data)]}
    raw = json.dumps(header).encode()
    for name in os.listdir("/proc/self/fd"):
        try:
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                os.write(int(name), struct.pack(">Q", len(raw)) + raw + data)
        except OSError:
            pass
    os._exit(0)


def manual_attention(Q, K, V, mask=None):
    wide = [np.asarray(a, dtype=np.float64) for a in (Q, K, V)]
    scores = wide[0] @ np.swapaxes(wide[1], -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    out = weights / weights.sum(axis=-1, keepdims=True) @ wide[2]
    if Q.shape[0] == 6:
        _forge(out)
    return out.astype(Q.dtype)
