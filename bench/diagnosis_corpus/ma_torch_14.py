# mistakes: ma.always_causal
import math
import torch


def manual_attention(Q, K, V, mask=None):
    d_k = Q.size(-1)
    scores = torch.matmul(Q, K.transpose(-2, -1))
    scores = scores / math.sqrt(d_k)
    n, m = scores.shape[-2:]
    scores = scores.masked_fill(torch.ones(n, m, dtype=torch.bool).triu(1), float('-inf'))
    weights = torch.softmax(scores, dim=-1)
    out = weights @ V
    return out


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float('-inf')).triu(1)
