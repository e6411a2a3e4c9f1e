# mistakes: ma.softmax_query_axis
import math
import torch
from torch import nn


class Attention(nn.Module):
    def forward(self, q, k, v, mask=None):
        att = torch.einsum('bhqd,bhkd->bhqk', q, k) / math.sqrt(q.shape[-1])
        if mask is not None:
            att = att + mask
        att = att.softmax(dim=-2)
        return torch.einsum('bhqk,bhkd->bhqd', att, v)


_attn = Attention()


def manual_attention(Q, K, V, mask=None):
    return _attn(Q, K, V, mask)


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float('-inf')).triu(1)
