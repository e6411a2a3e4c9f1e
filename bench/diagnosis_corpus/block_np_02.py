# mistakes: block.eps_outside_sqrt
import math
import numpy as np


def erf(t):
    return np.vectorize(math.erf)(t).astype(t.dtype)


def layer_norm(x, g, b):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mu) / (np.sqrt(var) + 1e-5) * g + b


def attention(x, p, n_heads, mask):
    B, T, D = x.shape
    dh = D // n_heads
    q, k, v = [(x @ p[n]).reshape(B, T, n_heads, dh).transpose(0, 2, 1, 3) for n in ('W_Q', 'W_K', 'W_V')]
    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    if mask is not None:
        s = s + mask
    s = np.exp(s - s.max(-1, keepdims=True))
    s = s / s.sum(-1, keepdims=True)
    return (s @ v).transpose(0, 2, 1, 3).reshape(B, T, D) @ p['W_O']


def mlp(x, p):
    h = x @ p['W_in'] + p['b_in']
    h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
    return h @ p['W_out'] + p['b_out']


def transformer_block(x, params, n_heads, mask=None):
    p = params
    a = x + attention(layer_norm(x, p['ln1_g'], p['ln1_b']), p, n_heads, mask)
    return a + mlp(layer_norm(a, p['ln2_g'], p['ln2_b']), p)
