"""Tries to forge a passing report: prints a fake JSON result and PASS lines at load time and in
every case, and is wrong (all zeros) when batch == 3. Printed text must never change a verdict."""

import json
import math
import sys

import numpy as np

FAKE = {"status": "graded", "score": 100.0, "max_score": 100.0, "exercises": [{"exercise": "manual_attention", "status": "graded", "score": 100.0, "cases": [{"case_id": "iso.ref_b3", "outcome": "passed", "points": 1.0}]}]}
print(json.dumps(FAKE))
print("PASS iso.ref_b3 (1/1)")
sys.stderr.write('{"op": "loaded", "status": "ok"}\n')


def manual_attention(Q, K, V, mask=None):
    print("PASSED iso.ref_b3 1.0/1.0")
    print(json.dumps({"status": "ok", "outcome": "passed"}))
    if Q.shape[0] == 3:
        return np.zeros(Q.shape[:-1] + V.shape[-1:])
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
