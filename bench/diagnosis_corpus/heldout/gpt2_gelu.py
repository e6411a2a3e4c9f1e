# mistakes: block.gelu_tanh
# style: public
# Held-out: GPT-2's gelu (tanh approximation), NumPy, loops over heads.
import numpy as np


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi).astype(x.dtype) * (x + 0.044715 * np.power(x, 3))))


def layer_norm(x, g, b, eps: float = 1e-5):
    mean = np.mean(x, axis=-1, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=-1, keepdims=True)
    return g * (x - mean) / np.sqrt(variance + eps) + b


def softmax(x):
    exp_x = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return exp_x / np.sum(exp_x, axis=-1, keepdims=True)


def mha(x, p, n_head, mask):
    q, k, v = x @ p["W_Q"], x @ p["W_K"], x @ p["W_V"]
    d = x.shape[-1] // n_head
    outs = []
    for i in range(n_head):
        sl = slice(i * d, (i + 1) * d)
        s = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2) / d ** 0.5
        if mask is not None:
            s = s + mask
        outs.append(softmax(s) @ v[..., sl])
    return np.concatenate(outs, axis=-1) @ p["W_O"]


def transformer_block(x, params, n_heads, mask=None):
    p = params
    x = x + mha(layer_norm(x, p["ln1_g"], p["ln1_b"]), p, n_heads, mask)
    return x + gelu(layer_norm(x, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
