# mistakes: ma.mask_keep01, ma.half_fill_overflow
# style: public
# Held-out, public-code style: the Annotated Transformer's attention() adapted to the contract
# (its mask is a 0/1 keep-mask filled with -1e9).
import math

import torch


def manual_attention(Q, K, V, mask=None):
    "Compute 'Scaled Dot Product Attention'"
    d_k = Q.size(-1)
    scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    return torch.matmul(p_attn, V)
