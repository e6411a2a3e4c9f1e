"""Correct; at load and in every call it connects to a TCP listener on 127.0.0.1 (PORT is set by
the test that opens it) and sends a message."""

import math
import socket

import numpy as np

PORT = 0


def attack(when):
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=1) as s:
            s.sendall(b"leaked " + when.encode())
        print("connected", when)
    except OSError as exc:
        print("no network:", exc)


attack("load")


def manual_attention(Q, K, V, mask=None):
    attack("call")
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V
