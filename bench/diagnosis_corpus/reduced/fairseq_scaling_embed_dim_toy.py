# mistakes: mha.scale_sqrt_d_model
# cases: mha.toy.worked_example
# style: public (fairseq MultiheadAttention: q scaled before the matmul)
# Held-out: self.scaling computed from embed_dim instead of head_dim.
import numpy as np


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    bsz, tgt_len, embed_dim = x.shape
    head_dim = embed_dim // n_heads
    scaling = embed_dim ** -0.5
    q = (x @ W_Q) * scaling
    k = x @ W_K
    v = x @ W_V
    q = q.reshape(bsz, tgt_len, n_heads, head_dim).transpose(0, 2, 1, 3)
    k = k.reshape(bsz, tgt_len, n_heads, head_dim).transpose(0, 2, 1, 3)
    v = v.reshape(bsz, tgt_len, n_heads, head_dim).transpose(0, 2, 1, 3)
    attn_weights = q @ k.transpose(0, 1, 3, 2)
    if mask is not None:
        attn_weights = attn_weights + mask
    attn_weights = attn_weights - attn_weights.max(-1, keepdims=True)
    attn_probs = np.exp(attn_weights)
    attn_probs = attn_probs / attn_probs.sum(-1, keepdims=True)
    attn = (attn_probs @ v).transpose(0, 2, 1, 3).reshape(bsz, tgt_len, embed_dim)
    return attn @ W_O
