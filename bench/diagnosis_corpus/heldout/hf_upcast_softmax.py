# mistakes: ma.float32_internal
# style: public
# Held-out: the softmax upcast to float32 "for stability" and cast back (as in several HF models).
import math

import torch


def manual_attention(Q, K, V, mask=None):
    attn = torch.matmul(Q, K.transpose(2, 3)) / math.sqrt(Q.shape[-1])
    if mask is not None:
        attn = attn + mask
    attn = torch.nn.functional.softmax(attn, dim=-1, dtype=torch.float32).to(Q.dtype)
    return torch.matmul(attn, V)
