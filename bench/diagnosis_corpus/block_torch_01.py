# mistakes: block.unbiased_variance
import math
import torch
import torch.nn.functional as F


def ln(t, g, b):
    return (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, keepdim=True) + 1e-5) * g + b


def transformer_block(x, params, n_heads, mask=None):
    p = params
    B, T, D = x.shape
    dh = D // n_heads

    def attn(t):
        q, k, v = (torch.matmul(t, p[n]).view(B, T, n_heads, dh).transpose(1, 2) for n in ('W_Q', 'W_K', 'W_V'))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if mask is not None:
            s = s + mask
        return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D) @ p['W_O']

    def mlp(t):
        h = t @ p['W_in'] + p['b_in']
        h = F.gelu(h)
        return h @ p['W_out'] + p['b_out']

    a = x + attn(ln(x, p['ln1_g'], p['ln1_b']))
    out = a + mlp(ln(a, p['ln2_g'], p['ln2_b']))
    return out
