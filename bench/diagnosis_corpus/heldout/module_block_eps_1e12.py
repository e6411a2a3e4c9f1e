# mistakes: block.ln_eps
# Held-out (probes): an nn.Module block whose LayerNorm eps is 1e-12 (a default copied from BERT).
import math

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, p, n_heads):
        super().__init__()
        self.p, self.h = p, n_heads

    def ln(self, t, g, b):
        mu = t.mean(-1, keepdim=True)
        var = ((t - mu) ** 2).mean(-1, keepdim=True)
        return (t - mu) / torch.sqrt(var + 1e-12) * g + b

    def attn(self, t, mask):
        p, H = self.p, self.h
        B, T, D = t.shape
        split = lambda z: z.view(B, T, H, D // H).transpose(1, 2)  # noqa: E731
        q, k, v = split(t @ p["W_Q"]), split(t @ p["W_K"]), split(t @ p["W_V"])
        s = q @ k.transpose(-2, -1) / math.sqrt(D // H)
        if mask is not None:
            s = s + mask
        return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D) @ p["W_O"]

    def forward(self, x, mask=None):
        p = self.p
        a = x + self.attn(self.ln(x, p["ln1_g"], p["ln1_b"]), mask)
        h = torch.nn.functional.gelu(self.ln(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"])
        return a + h @ p["W_out"] + p["b_out"]


def transformer_block(x, params, n_heads, mask=None):
    return Block(params, n_heads)(x, mask)
