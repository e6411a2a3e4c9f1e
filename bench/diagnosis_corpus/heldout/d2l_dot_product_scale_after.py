# mistakes: ma.scale_after_softmax
# style: public (d2l DotProductAttention with masked_softmax over valid lengths)
# Held-out: the division by sqrt(d) is applied to the attention weights, after the softmax.
import math

import torch
from torch import nn


class DotProductAttention(nn.Module):
    def forward(self, queries, keys, values, mask=None):
        d = queries.shape[-1]
        scores = torch.bmm(queries, keys.transpose(1, 2))
        if mask is not None:
            scores = scores + mask
        self.attention_weights = nn.functional.softmax(scores, dim=-1) / math.sqrt(d)
        return torch.bmm(self.attention_weights, values)


def manual_attention(Q, K, V, mask=None):
    B, H, Tq, d = Q.shape
    Tk = K.shape[2]
    m = None
    if mask is not None:
        m = torch.broadcast_to(mask, (B, H, Tq, Tk)).reshape(B * H, Tq, Tk)
    out = DotProductAttention()(Q.reshape(B * H, Tq, d), K.reshape(B * H, Tk, d), V.reshape(B * H, Tk, -1), m)
    return out.reshape(B, H, Tq, -1)


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float("-inf")).triu(1)
