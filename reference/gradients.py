"""Analytic vector-Jacobian products of the reference functions, in NumPy float64.

The grader checks a learner's PyTorch gradients against these without importing torch. Each
`*_vjp` returns d(sum(f(...) * grad_out)) / d(input) for every differentiable input. Inputs of
any float dtype are promoted to float64 first, so the result is float64 whatever came in.

The forward pass reuses `numpy_ref`'s helpers; the backward pass is written one short section per
forward step, in reverse order. The mask is a constant (no gradient): blocked (-inf) entries give
a softmax weight of exactly 0, so exactly 0 gradient flows through them and no NaN appears.
"""

from __future__ import annotations

import math

import numpy as np

from . import numpy_ref
from .numpy_ref import LAYER_NORM_EPS, attention_pattern, erf, merge_heads, split_heads

__all__ = ["manual_attention_vjp", "multi_head_attention_vjp", "transformer_block_vjp", "post_norm_block_vjp", "transformer_stack_vjp"]


def _f64(a: np.ndarray) -> np.ndarray:
    """Float64 view or copy of an input; never written to, so the caller's array is safe."""
    return np.asarray(a, dtype=np.float64)


def _f64_mask(mask: np.ndarray | None) -> np.ndarray | None:
    return None if mask is None else _f64(mask)


def _sum_to_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over batch and position of the outer products a^T b: (B, T, I), (B, T, J) -> (I, J)."""
    return np.einsum("bti,btj->ij", a, b)


# --------------------------------------------------------------------------------------------
# manual_attention
# --------------------------------------------------------------------------------------------


def _attention_backward(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, pattern: np.ndarray, grad_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of Q, K, V given the forward pattern and d(loss)/d(output)."""
    D = Q.shape[-1]
    # out = pattern @ V
    grad_V = np.swapaxes(pattern, -1, -2) @ grad_out  # (B, H, Tk, Dv)
    grad_pattern = grad_out @ np.swapaxes(V, -1, -2)  # (B, H, Tq, Tk)
    # pattern = softmax(scores): ds = p * (dp - sum_k(dp * p)); p == 0 where blocked, so ds == 0 there
    row_dot = (grad_pattern * pattern).sum(axis=-1, keepdims=True)  # (B, H, Tq, 1)
    grad_scores = pattern * (grad_pattern - row_dot)  # (B, H, Tq, Tk)
    # scores = Q K^T / sqrt(D) + mask; the mask is a constant
    grad_Q = grad_scores @ K / math.sqrt(D)  # (B, H, Tq, D)
    grad_K = np.swapaxes(grad_scores, -1, -2) @ Q / math.sqrt(D)  # (B, H, Tk, D)
    return grad_Q, grad_K, grad_V


def manual_attention_vjp(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray | None, grad_out: np.ndarray
) -> dict[str, np.ndarray]:
    """Gradients of sum(manual_attention(Q, K, V, mask) * grad_out) w.r.t. Q, K and V."""
    Q, K, V, grad_out = _f64(Q), _f64(K), _f64(V), _f64(grad_out)
    pattern = attention_pattern(Q, K, _f64_mask(mask))  # (B, H, Tq, Tk)
    grad_Q, grad_K, grad_V = _attention_backward(Q, K, V, pattern, grad_out)
    return {"Q": grad_Q, "K": grad_K, "V": grad_V}


# --------------------------------------------------------------------------------------------
# multi_head_attention
# --------------------------------------------------------------------------------------------


def _mha_backward(
    x: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    W_O: np.ndarray,
    n_heads: int,
    mask: np.ndarray | None,
    grad_out: np.ndarray,
) -> dict[str, np.ndarray]:
    """Recompute the forward pass of multi_head_attention, then run it backwards (all float64)."""
    # forward, as numpy_ref.multi_head_attention, keeping the intermediates
    q = split_heads(x @ W_Q, n_heads)  # (B, H, T, Dh)
    k = split_heads(x @ W_K, n_heads)  # (B, H, T, Dh)
    v = split_heads(x @ W_V, n_heads)  # (B, H, T, Dh)
    pattern = attention_pattern(q, k, mask)  # (B, H, T, T)
    merged = merge_heads(pattern @ v)  # (B, T, d_model)

    # out = merged @ W_O
    grad_W_O = _sum_to_matrix(merged, grad_out)  # (d_model, d_model)
    grad_merged = grad_out @ W_O.T  # (B, T, d_model)
    # merge_heads is a pure relayout; split_heads is its inverse
    grad_heads = split_heads(grad_merged, n_heads)  # (B, H, T, Dh)
    grad_q, grad_k, grad_v = _attention_backward(q, k, v, pattern, grad_heads)
    # q = split_heads(x @ W_Q) and likewise k, v: undo the split, then the projections
    grad_q, grad_k, grad_v = merge_heads(grad_q), merge_heads(grad_k), merge_heads(grad_v)  # (B, T, d_model)
    grad_x = grad_q @ W_Q.T + grad_k @ W_K.T + grad_v @ W_V.T  # (B, T, d_model)
    return {
        "x": grad_x,
        "W_Q": _sum_to_matrix(x, grad_q),
        "W_K": _sum_to_matrix(x, grad_k),
        "W_V": _sum_to_matrix(x, grad_v),
        "W_O": grad_W_O,
    }


def multi_head_attention_vjp(
    x: np.ndarray,
    W_Q: np.ndarray,
    W_K: np.ndarray,
    W_V: np.ndarray,
    W_O: np.ndarray,
    n_heads: int,
    mask: np.ndarray | None,
    grad_out: np.ndarray,
) -> dict[str, np.ndarray]:
    """Gradients of sum(multi_head_attention(...) * grad_out) w.r.t. x, W_Q, W_K, W_V, W_O."""
    return _mha_backward(
        _f64(x), _f64(W_Q), _f64(W_K), _f64(W_V), _f64(W_O), n_heads, _f64_mask(mask), _f64(grad_out)
    )


# --------------------------------------------------------------------------------------------
# transformer_block
# --------------------------------------------------------------------------------------------


def _layer_norm_backward(
    x: np.ndarray, g: np.ndarray, grad_y: np.ndarray, eps: float = LAYER_NORM_EPS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of y = (x - mean) / sqrt(var + eps) * g + b w.r.t. x, g and b (biased variance).

    With x_hat the normalised input and r = 1 / sqrt(var + eps), the chain rule through the mean
    and the variance collapses to dx = r * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
    """
    mean = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # (B, T, 1), biased
    inv_std = 1.0 / np.sqrt(var + eps)  # (B, T, 1)
    x_hat = (x - mean) * inv_std  # (B, T, D)
    grad_g = (grad_y * x_hat).sum(axis=(0, 1))  # (D,)
    grad_b = grad_y.sum(axis=(0, 1))  # (D,)
    grad_x_hat = grad_y * g  # (B, T, D)
    grad_x = inv_std * (
        grad_x_hat
        - grad_x_hat.mean(axis=-1, keepdims=True)
        - x_hat * (grad_x_hat * x_hat).mean(axis=-1, keepdims=True)
    )  # (B, T, D)
    return grad_x, grad_g, grad_b


def _gelu_derivative(u: np.ndarray) -> np.ndarray:
    """d/du [u * Phi(u)] = Phi(u) + u * phi(u), the exact-erf GELU's slope."""
    cdf = 0.5 * (1.0 + erf(u / math.sqrt(2.0)))  # Phi(u)
    pdf = np.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)  # phi(u)
    return cdf + u * pdf


def transformer_block_vjp(
    x: np.ndarray, params: dict, n_heads: int, mask: np.ndarray | None, grad_out: np.ndarray
) -> dict[str, np.ndarray]:
    """Gradients of sum(transformer_block(x, params, n_heads, mask) * grad_out) w.r.t. x and params."""
    x, grad_out, mask = _f64(x), _f64(grad_out), _f64_mask(mask)
    p = {name: _f64(value) for name, value in params.items()}

    # forward, as numpy_ref.transformer_block, keeping the intermediates
    h1 = numpy_ref.layer_norm(x, p["ln1_g"], p["ln1_b"])  # (B, T, d_model)
    a = x + numpy_ref.multi_head_attention(h1, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    h2 = numpy_ref.layer_norm(a, p["ln2_g"], p["ln2_b"])  # (B, T, d_model)
    u = h2 @ p["W_in"] + p["b_in"]  # (B, T, d_ff)
    z = numpy_ref.gelu(u)  # (B, T, d_ff)

    # second residual line: out = a + z @ W_out + b_out
    grad_a = grad_out.copy()  # the residual path carries grad_out straight through
    grad_W_out = _sum_to_matrix(z, grad_out)  # (d_ff, d_model)
    grad_b_out = grad_out.sum(axis=(0, 1))  # (d_model,)
    grad_z = grad_out @ p["W_out"].T  # (B, T, d_ff)
    # z = gelu(u)
    grad_u = grad_z * _gelu_derivative(u)  # (B, T, d_ff)
    # u = h2 @ W_in + b_in
    grad_W_in = _sum_to_matrix(h2, grad_u)  # (d_model, d_ff)
    grad_b_in = grad_u.sum(axis=(0, 1))  # (d_ff,)
    grad_h2 = grad_u @ p["W_in"].T  # (B, T, d_model)
    # h2 = LN(a; ln2_g, ln2_b)
    grad_a_ln, grad_ln2_g, grad_ln2_b = _layer_norm_backward(a, p["ln2_g"], grad_h2)
    grad_a = grad_a + grad_a_ln

    # first residual line: a = x + multi_head_attention(h1, ...)
    grad_x = grad_a.copy()
    mha = _mha_backward(h1, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask, grad_a)
    # h1 = LN(x; ln1_g, ln1_b)
    grad_x_ln, grad_ln1_g, grad_ln1_b = _layer_norm_backward(x, p["ln1_g"], mha["x"])
    grad_x = grad_x + grad_x_ln

    return {
        "x": grad_x,
        "ln1_g": grad_ln1_g,
        "ln1_b": grad_ln1_b,
        "W_Q": mha["W_Q"],
        "W_K": mha["W_K"],
        "W_V": mha["W_V"],
        "W_O": mha["W_O"],
        "ln2_g": grad_ln2_g,
        "ln2_b": grad_ln2_b,
        "W_in": grad_W_in,
        "b_in": grad_b_in,
        "W_out": grad_W_out,
        "b_out": grad_b_out,
    }


# --------------------------------------------------------------------------------------------
# post_norm_block
# --------------------------------------------------------------------------------------------


def post_norm_block_vjp(
    x: np.ndarray, params: dict, n_heads: int, mask: np.ndarray | None, grad_out: np.ndarray
) -> dict[str, np.ndarray]:
    """Gradients of sum(post_norm_block(x, params, n_heads, mask) * grad_out) w.r.t. x and params."""
    x, grad_out, mask = _f64(x), _f64(grad_out), _f64_mask(mask)
    p = {name: _f64(value) for name, value in params.items()}

    # forward, as numpy_ref.post_norm_block, keeping the intermediates
    s1 = x + numpy_ref.multi_head_attention(x, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)  # (B, T, d_model)
    a = numpy_ref.layer_norm(s1, p["ln1_g"], p["ln1_b"])  # (B, T, d_model)
    u = a @ p["W_in"] + p["b_in"]  # (B, T, d_ff)
    z = numpy_ref.gelu(u)  # (B, T, d_ff)
    s2 = a + z @ p["W_out"] + p["b_out"]  # (B, T, d_model)

    # out = LN(s2; ln2_g, ln2_b)
    grad_s2, grad_ln2_g, grad_ln2_b = _layer_norm_backward(s2, p["ln2_g"], grad_out)
    # s2 = a + z @ W_out + b_out: the residual path carries grad_s2 straight to a
    grad_a = grad_s2.copy()
    grad_W_out = _sum_to_matrix(z, grad_s2)  # (d_ff, d_model)
    grad_b_out = grad_s2.sum(axis=(0, 1))  # (d_model,)
    grad_z = grad_s2 @ p["W_out"].T  # (B, T, d_ff)
    # z = gelu(u); u = a @ W_in + b_in
    grad_u = grad_z * _gelu_derivative(u)  # (B, T, d_ff)
    grad_W_in = _sum_to_matrix(a, grad_u)  # (d_model, d_ff)
    grad_b_in = grad_u.sum(axis=(0, 1))  # (d_ff,)
    grad_a = grad_a + grad_u @ p["W_in"].T
    # a = LN(s1; ln1_g, ln1_b)
    grad_s1, grad_ln1_g, grad_ln1_b = _layer_norm_backward(s1, p["ln1_g"], grad_a)
    # s1 = x + multi_head_attention(x, ...): x gets the residual and the attention's gradient
    mha = _mha_backward(x, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask, grad_s1)
    grad_x = grad_s1 + mha["x"]

    return {
        "x": grad_x,
        "ln1_g": grad_ln1_g,
        "ln1_b": grad_ln1_b,
        "W_Q": mha["W_Q"],
        "W_K": mha["W_K"],
        "W_V": mha["W_V"],
        "W_O": mha["W_O"],
        "ln2_g": grad_ln2_g,
        "ln2_b": grad_ln2_b,
        "W_in": grad_W_in,
        "b_in": grad_b_in,
        "W_out": grad_W_out,
        "b_out": grad_b_out,
    }


# --------------------------------------------------------------------------------------------
# transformer_stack
# --------------------------------------------------------------------------------------------


def transformer_stack_vjp(
    x: np.ndarray, layers: list, n_heads: int, mask: np.ndarray | None, grad_out: np.ndarray
) -> dict[str, np.ndarray]:
    """Gradients of sum(transformer_stack(x, layers, n_heads, mask) * grad_out) w.r.t. x and every
    layer's params, keyed 'x' and 'layers.<i>.<name>' (the names the grader asks for)."""
    x, grad_out = _f64(x), _f64(grad_out)
    # forward, keeping each layer's input (the residual stream before it)
    inputs = []
    h = x
    for params in layers:
        inputs.append(h)
        h = numpy_ref.transformer_block(h, {k: _f64(v) for k, v in params.items()}, n_heads, _f64_mask(mask))
    # backward, last layer first: each layer's x-gradient is the cotangent of the layer before it
    grads: dict[str, np.ndarray] = {}
    grad_h = grad_out
    for i in range(len(layers) - 1, -1, -1):
        block = transformer_block_vjp(inputs[i], layers[i], n_heads, mask, grad_h)
        grad_h = block.pop("x")
        grads.update({f"layers.{i}.{name}": g for name, g in block.items()})
    return {"x": grad_h.copy(), **grads}
