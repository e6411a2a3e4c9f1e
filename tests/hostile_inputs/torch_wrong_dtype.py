"""Honest counterpart of torch_function_lies.py: correct values, but computed and returned in
float64 whatever the inputs' dtype (so the float32 dtype case iso.dtype_b6 fails)."""

import math

import torch


def manual_attention(Q, K, V, mask=None):
    Q, K, V = Q.double(), K.double(), V.double()
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask.double()
    return torch.softmax(scores, dim=-1) @ V
