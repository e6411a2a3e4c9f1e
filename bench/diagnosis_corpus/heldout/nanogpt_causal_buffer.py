# mistakes: ma.always_causal
# style: public (nanoGPT CausalSelfAttention, manual path)
# Held-out: a tril "bias" buffer is applied whatever mask is passed (the given mask is ignored).
import math

import torch
import torch.nn.functional as F


def manual_attention(Q, K, V, mask=None):
    T, S = Q.size(-2), K.size(-2)
    bias = torch.tril(torch.ones(T, S)).view(1, 1, T, S)
    att = (Q @ K.transpose(-2, -1)) * (1.0 / math.sqrt(K.size(-1)))
    att = att.masked_fill(bias[:, :, :T, :S] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    return att @ V


def causal_mask(seq_len):
    return torch.full((seq_len, seq_len), float("-inf")).triu(1)
