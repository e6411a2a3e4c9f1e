# mistakes: block.post_norm, block.ln_eps
# cases: block.reference.causal
# style: public (HF BERT layer: post-norm BertSelfOutput / BertOutput, layer_norm_eps=1e-12)
# Held-out: the block written like a BERT layer: LayerNorm(x + sublayer(x)), eps 1e-12.
import math

import torch
import torch.nn.functional as F


def _ln(t, g, b):
    return F.layer_norm(t, t.shape[-1:], g, b, eps=1e-12)


def transformer_block(x, params, n_heads, mask=None):
    p = params
    B, T, D = x.shape
    hs = D // n_heads

    def transpose_for_scores(t):
        return t.view(B, T, n_heads, hs).permute(0, 2, 1, 3)

    q, k, v = (transpose_for_scores(x @ p[w]) for w in ("W_Q", "W_K", "W_V"))
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hs)
    if mask is not None:
        scores = scores + mask
    ctx = torch.matmul(scores.softmax(-1), v).permute(0, 2, 1, 3).reshape(B, T, D)
    attention_output = _ln(ctx @ p["W_O"] + x, p["ln1_g"], p["ln1_b"])
    intermediate = F.gelu(attention_output @ p["W_in"] + p["b_in"])
    return _ln(intermediate @ p["W_out"] + p["b_out"] + attention_output, p["ln2_g"], p["ln2_b"])
