# mistakes: ma.returns_tuple
# style: public
# Held-out: attention that returns (output, attention weights), as many reference implementations do.
import math

import torch
import torch.nn.functional as F


def manual_attention(Q, K, V, mask=None):
    scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(Q.size(-1))
    if mask is not None:
        scores = scores + mask
    p_attn = F.softmax(scores, dim=-1)
    return torch.matmul(p_attn, V), p_attn
