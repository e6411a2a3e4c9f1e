# mistakes: block.ln_no_affine
# Held-out: LayerNorm without its parameters (a functional call that forgot weight and bias).
import math

import torch
import torch.nn.functional as F


def attention_sublayer(x, p, n_heads, mask):
    B, T, D = x.shape
    hd = D // n_heads
    q = (x @ p["W_Q"]).unflatten(-1, (n_heads, hd)).transpose(1, 2)
    k = (x @ p["W_K"]).unflatten(-1, (n_heads, hd)).transpose(1, 2)
    v = (x @ p["W_V"]).unflatten(-1, (n_heads, hd)).transpose(1, 2)
    w = q @ k.mT / math.sqrt(hd)
    if mask is not None:
        w = w + mask
    return (w.softmax(-1) @ v).transpose(1, 2).flatten(2) @ p["W_O"]


def transformer_block(x, params, n_heads, mask=None):
    D = x.shape[-1]
    a = x + attention_sublayer(F.layer_norm(x, (D,)), params, n_heads, mask)
    return a + F.gelu(F.layer_norm(a, (D,)) @ params["W_in"] + params["b_in"]) @ params["W_out"] + params["b_out"]
