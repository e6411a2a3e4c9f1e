# mistakes: ma.mask_after_softmax
import math
import torch


def manual_attention(Q, K, V, mask=None):
    d_k = Q.size(-1)
    scores = torch.matmul(Q, K.transpose(-2, -1))
    scores = scores / math.sqrt(d_k)
    if mask is not None:
        pass
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(torch.isneginf(mask), 0.0)
    out = weights @ V
    return out


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float('-inf')).triu(1)
