# mistakes: mha.attention.always_causal, mha.weights_transposed
# style: public
# Held-out: minGPT-style causal self-attention (weights used as nn.Linear does, x @ W.T; a causal
# tril buffer applied whatever mask is passed).
import math

import torch
from torch.nn import functional as F


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, C = x.size()
    q = F.linear(x, W_Q).view(B, T, n_heads, C // n_heads).transpose(1, 2)
    k = F.linear(x, W_K).view(B, T, n_heads, C // n_heads).transpose(1, 2)
    v = F.linear(x, W_V).view(B, T, n_heads, C // n_heads).transpose(1, 2)
    bias = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = att.masked_fill(bias[:, :, :T, :T] == 0, float('-inf'))
    att = F.softmax(att, dim=-1)
    y = att @ v
    y = y.transpose(1, 2).contiguous().view(B, T, C)
    return F.linear(y, W_O)
