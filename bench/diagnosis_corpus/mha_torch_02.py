# mistakes: mha.residual_inside
import math
import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, d_model = x.shape
    d_head = d_model // n_heads

    def heads(t):
        return t.view(B, T, n_heads, d_head).transpose(1, 2)

    q, k, v = heads(x @ W_Q), heads(x @ W_K), heads(x @ W_V)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)
    if mask is not None:
        scores = scores + mask
    h = torch.softmax(scores, dim=-1) @ v
    out = h.transpose(1, 2).contiguous().view(B, T, d_model)
    out = out @ W_O
    return x + out
