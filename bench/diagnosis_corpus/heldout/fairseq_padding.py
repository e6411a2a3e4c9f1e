# mistakes: mha.attention.mask_neginf_only
# style: public
# Held-out: fairseq-style: the scaling applied to q, the mask used as a padding mask (masked_fill -inf).
import torch


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    bsz, tgt_len, embed_dim = x.shape
    head_dim = embed_dim // n_heads
    scaling = head_dim ** -0.5
    q = (x @ W_Q) * scaling
    k = x @ W_K
    v = x @ W_V
    q = q.view(bsz, tgt_len, n_heads, head_dim).transpose(1, 2)
    k = k.view(bsz, tgt_len, n_heads, head_dim).transpose(1, 2)
    v = v.view(bsz, tgt_len, n_heads, head_dim).transpose(1, 2)
    attn_weights = torch.matmul(q, k.transpose(2, 3))
    if mask is not None:
        attn_weights = attn_weights.masked_fill(torch.isinf(mask), float("-inf"))
    attn_probs = torch.softmax(attn_weights, dim=-1)
    attn = torch.matmul(attn_probs, v).transpose(1, 2).reshape(bsz, tgt_len, embed_dim)
    return attn @ W_O
