# mistakes: block.unbiased_variance, block.eps_outside_sqrt
# style: public
# Held-out: the Annotated Transformer's LayerNorm (torch.std is unbiased, eps added to the std).
import math

import torch


class LayerNorm(torch.nn.Module):
    def __init__(self, a_2, b_2, eps=1e-5):
        super().__init__()
        self.a_2, self.b_2, self.eps = a_2, b_2, eps

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


def _mha(x, p, n_heads, mask):
    B, T, D = x.shape
    h = D // n_heads
    q, k, v = [(x @ p[w]).view(B, T, n_heads, h).transpose(1, 2) for w in ("W_Q", "W_K", "W_V")]
    s = q @ k.transpose(-2, -1) / math.sqrt(h)
    if mask is not None:
        s = s + mask
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D) @ p["W_O"]


def transformer_block(x, params, n_heads, mask=None):
    p = params
    a = x + _mha(LayerNorm(p["ln1_g"], p["ln1_b"])(x), p, n_heads, mask)
    h = torch.nn.functional.gelu(LayerNorm(p["ln2_g"], p["ln2_b"])(a) @ p["W_in"] + p["b_in"])
    return a + h @ p["W_out"] + p["b_out"]
