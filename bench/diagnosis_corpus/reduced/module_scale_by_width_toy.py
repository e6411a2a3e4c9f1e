# mistakes: ma.scale_sqrt_d_model
# cases: ma.toy.weights, ma.toy.outputs
# Held-out (probes): an nn.Module wrapper whose scale uses the full width n_heads * d_head.
import math

import torch
from torch import nn


class ScaledDotProduct(nn.Module):
    def forward(self, q, k, v, mask=None):
        width = q.shape[1] * q.shape[-1]
        att = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(width)
        if mask is not None:
            att = att + mask
        return att.softmax(dim=-1) @ v


_sdp = ScaledDotProduct()


def manual_attention(Q, K, V, mask=None):
    return _sdp(Q, K, V, mask)


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float("-inf")).triu(1)
