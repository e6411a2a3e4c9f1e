# mistakes: block.post_norm
# style: public
# Held-out: the original Transformer's post-norm sublayers, torch.nn.functional.
import math

import torch
import torch.nn.functional as F


def transformer_block(x, params, n_heads, mask=None):
    p = params
    D = x.shape[-1]

    def attend(t):
        B, T, _ = t.shape
        q, k, v = (torch.matmul(t, p[w]).reshape(B, T, n_heads, -1).permute(0, 2, 1, 3) for w in ("W_Q", "W_K", "W_V"))
        s = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
        if mask is not None:
            s = s + mask
        return torch.einsum("bhqk,bhkd->bqhd", s.softmax(-1), v).reshape(B, T, D) @ p["W_O"]

    x = F.layer_norm(x + attend(x), (D,), p["ln1_g"], p["ln1_b"], 1e-5)
    ff = F.gelu(x @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
    return F.layer_norm(x + ff, (D,), p["ln2_g"], p["ln2_b"], 1e-5)
