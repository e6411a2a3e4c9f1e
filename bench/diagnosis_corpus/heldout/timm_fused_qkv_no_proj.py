# mistakes: mha.no_w_o
# style: public (timm Attention: fused qkv, head_dim ** -0.5)
# Held-out: the three projections are fused into one qkv matrix; the output projection is left out.
import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, N, C = x.shape
    head_dim = C // n_heads
    scale = head_dim ** -0.5
    qkv = (x @ torch.cat([W_Q, W_K, W_V], dim=1)).reshape(B, N, 3, n_heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    attn = (q * scale) @ k.transpose(-2, -1)
    if mask is not None:
        attn = attn + mask
    attn = attn.softmax(dim=-1)
    return (attn @ v).transpose(1, 2).reshape(B, N, C)
