# mistakes: mha.scale_sqrt_d_model
# style: public
# Held-out: scores of every head divided by sqrt(d_model), torch.bmm over flattened heads.
import math

import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape
    dh = D // n_heads

    def flat(t):
        return t.reshape(B, T, n_heads, dh).permute(0, 2, 1, 3).reshape(B * n_heads, T, dh)

    q, k, v = flat(x @ W_Q), flat(x @ W_K), flat(x @ W_V)
    s = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(D)
    if mask is not None:
        s = s + (mask.reshape(B * n_heads, T, T) if mask.dim() == 4 else mask)
    o = torch.bmm(torch.softmax(s, -1), v).reshape(B, n_heads, T, dh).permute(0, 2, 1, 3).reshape(B, T, D)
    return o @ W_O
