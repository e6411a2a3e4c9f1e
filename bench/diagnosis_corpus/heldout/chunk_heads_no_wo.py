# mistakes: mha.no_w_o
# Held-out: heads via torch.chunk and torch.cat, output projection forgotten.
import math

import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    outs = []
    for q, k, v in zip((x @ W_Q).chunk(n_heads, -1), (x @ W_K).chunk(n_heads, -1), (x @ W_V).chunk(n_heads, -1)):
        s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            s = s + mask
        outs.append(torch.softmax(s, -1) @ v)
    return torch.cat(outs, dim=-1)
