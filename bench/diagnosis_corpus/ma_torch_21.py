# mistakes: ma.float32_internal
import math
import torch


def manual_attention(Q, K, V, mask=None):
    dtype = Q.dtype
    Q, K, V = Q.float(), K.float(), V.float()
    mask = mask.float() if mask is not None else None
    d_k = Q.size(-1)
    scores = torch.matmul(Q, K.transpose(-2, -1))
    scores = scores / math.sqrt(d_k)
    if mask is not None:
        scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    out = weights @ V
    out, weights = out.to(dtype), weights.to(dtype)
    return out


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float('-inf')).triu(1)
