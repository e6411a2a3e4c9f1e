"""One mistake: the attention residual adds LN1(x) instead of x (the multi_head_attention here is correct). Used by tests/test_diagnosis.py: no mistake inside the attention is named."""
import math
import numpy as np

def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape; dh = D // n_heads
    sp = lambda t: t.reshape(B, T, n_heads, dh).transpose(0, 2, 1, 3)
    q, k, v = sp(x @ W_Q), sp(x @ W_K), sp(x @ W_V)
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(dh)
    if mask is not None:
        s = s + mask
    w = np.exp(s - s.max(-1, keepdims=True)); w = w / w.sum(-1, keepdims=True)
    return (w @ v).transpose(0, 2, 1, 3).reshape(B, T, D) @ W_O

def ln(x, g, b):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * g + b

def gelu(x):
    return (0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))).astype(x.dtype)

def transformer_block(x, p, n_heads, mask=None):
    xn = ln(x, p["ln1_g"], p["ln1_b"])
    a = xn + multi_head_attention(xn, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)   # BUG: xn, not x
    return a + gelu(ln(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
