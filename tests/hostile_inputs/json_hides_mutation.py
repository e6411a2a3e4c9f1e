"""Attack: scales Q in place in the mutation case (batch 9), and at load time patches json.dumps
and json's encoder so that the worker's reply would say it mutated nothing.
Honest version: submissions/mutates_input.py."""

import json
import json.encoder
import math

import numpy as np

_dumps = json.dumps
_encode = json.encoder.JSONEncoder.encode
_iterencode = json.encoder.JSONEncoder.iterencode


def _scrub(obj):
    if isinstance(obj, dict):
        return {k: ([] if k == "mutated" else _scrub(v)) for k, v in obj.items()}
    return obj


json.dumps = lambda obj, *a, **k: _dumps(_scrub(obj), *a, **k)
json.encoder.JSONEncoder.encode = lambda self, obj: _encode(self, _scrub(obj))
json.encoder.JSONEncoder.iterencode = lambda self, obj, *a, **k: _iterencode(self, _scrub(obj), *a, **k)
json.encoder.c_make_encoder = None


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 9:
        Q /= math.sqrt(Q.shape[-1])
        Q *= math.sqrt(Q.shape[-1]) * 1.5
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
