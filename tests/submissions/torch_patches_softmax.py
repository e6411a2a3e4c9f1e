"""A correct PyTorch manual_attention, except that when batch == 3 it replaces torch.softmax with
a function that returns uniform weights. Other cases run in fresh processes with the real torch."""

import math

import torch


def manual_attention(Q, K, V, mask=None):
    if Q.shape[0] == 3:
        torch.softmax = lambda x, dim: torch.ones_like(x) / x.shape[dim]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1) @ V
