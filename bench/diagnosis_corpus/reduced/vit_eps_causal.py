# mistakes: block.ln_eps
# cases: block.reference.causal
# style: public
# Held-out: a ViT-style block with LayerNorm(eps=1e-6).
import math

import torch
import torch.nn.functional as F


def transformer_block(x, params, n_heads, mask=None):
    p = params
    B, N, C = x.shape
    ln = lambda t, g, b: F.layer_norm(t, (C,), g, b, eps=1e-6)  # noqa: E731
    h = ln(x, p["ln1_g"], p["ln1_b"])
    qkv = torch.stack([h @ p["W_Q"], h @ p["W_K"], h @ p["W_V"]]).reshape(3, B, N, n_heads, C // n_heads).permute(0, 1, 3, 2, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)) * (C // n_heads) ** -0.5
    if mask is not None:
        attn = attn + mask
    x = x + (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C) @ p["W_O"]
    return x + F.gelu(ln(x, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
