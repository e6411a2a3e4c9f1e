"""The reference computation with knobs: each knob setting other than the default is a known
learner mistake (wrong scale, softmax over the wrong axis, post-norm, tanh GELU, ...).

Written once for NumPy and PyTorch through a handful of backend ops, so every mistake exists on
both backends. With all knobs at their defaults these functions equal the reference; the
misconception library (`attnspec.misconceptions`) names the other settings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import numpy_ref

# ---------------------------------------------------------------- backend ops


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _swap(x: Any) -> Any:
    return x.transpose(-2, -1) if is_torch(x) else np.swapaxes(x, -1, -2)


def _permute(x: Any, axes: tuple[int, ...]) -> Any:
    return x.permute(*axes) if is_torch(x) else x.transpose(axes)


def _max(x: Any, axis: int) -> Any:
    return x.amax(dim=axis, keepdim=True) if is_torch(x) else x.max(axis=axis, keepdims=True)


def _sum(x: Any, axis: int) -> Any:
    return x.sum(dim=axis, keepdim=True) if is_torch(x) else x.sum(axis=axis, keepdims=True)


def _mean(x: Any, axis: int) -> Any:
    return x.mean(dim=axis, keepdim=True) if is_torch(x) else x.mean(axis=axis, keepdims=True)


def _exp(x: Any) -> Any:
    return x.exp() if is_torch(x) else np.exp(x)


def _sqrt(x: Any) -> Any:
    return x.sqrt() if is_torch(x) else np.sqrt(x)


def _tanh(x: Any) -> Any:
    return x.tanh() if is_torch(x) else np.tanh(x)


def _erf(x: Any) -> Any:
    if is_torch(x):
        return x.erf()
    return numpy_ref.erf(x).astype(x.dtype, copy=False)


def _where(cond: Any, a: Any, b: Any) -> Any:
    if is_torch(a) or is_torch(b):
        import torch

        ref = a if is_torch(a) else b
        a = a if is_torch(a) else torch.as_tensor(a, dtype=ref.dtype)
        b = b if is_torch(b) else torch.as_tensor(b, dtype=ref.dtype)
        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def _cat(xs: list[Any], axis: int) -> Any:
    if is_torch(xs[0]):
        import torch

        return torch.cat(xs, dim=axis)
    return np.concatenate(xs, axis=axis)


def _neg_inf_like(x: Any) -> Any:
    return x * 0 - math.inf


def _fill_like(x: Any, value: float) -> Any:
    return x * 0 + value


def _from_numpy(a: np.ndarray, like: Any) -> Any:
    if is_torch(like):
        import torch

        return torch.as_tensor(a)
    return a


def _as_mask(mask: Any, like: Any) -> Any:
    if is_torch(like):
        return mask.to(like.dtype)
    return np.asarray(mask).astype(like.dtype, copy=False)


# ---------------------------------------------------------------- attention

ATTENTION_DEFAULTS = {
    "scale": "sqrt_d_head",  # none | d_head | sqrt_d_v | sqrt_d_model | mul_sqrt_d_head | after_softmax | a float: that multiple of 1/sqrt(d_head)
    "scores": "QK",  # KQ: K @ Q^T
    "softmax_axis": "keys",  # queries | heads (axis 1 of the 4-D scores)
    "mask_mode": "add",  # ignore | subtract | keep01 | after_softmax | neginf_only | scaled | own_causal | always_causal
    "causal_diagonal": 1,  # own_causal / always_causal: triu(diagonal=...) of the learner's own mask
    "mask_fill": -math.inf,  # keep01 / neginf_only: the value blocked scores are set to (e.g. -1e9)
    "mask_4d": "ok",  # first: mask[0, 0] used for every (batch, head)
    "stable": True,  # False: exp without subtracting the row max
    "returns": "output",  # pattern
    "seq": "ok",  # square_only: uses seq_q where seq_k belongs (an error when they differ)
    "batch": "ok",  # first_broadcast: batch element 0 copied to all | first_only: a batch of 1
    "precision": "native",  # float32: computed in float32 whatever the inputs' dtype
}


def softmax(scores: Any, axis: int = -1, stable: bool = True) -> Any:
    if stable:
        scores = scores - _max(scores, axis)
    weights = _exp(scores)
    return weights / _sum(weights, axis)


def attention(Q: Any, K: Any, V: Any, mask: Any = None, **knobs: Any) -> Any:
    """manual_attention with knobs (see ATTENTION_DEFAULTS)."""
    k = {**ATTENTION_DEFAULTS, **knobs}
    if k["batch"] != "ok" or k["precision"] != "native":
        inner = {**k, "batch": "ok", "precision": "native"}
        return _exercise_wrapper(_attention_plain, (Q, K, V, mask), inner, k["batch"], k["precision"], batch_args=3)
    B, H, Tq, D = Q.shape
    if k["scores"] == "KQ":
        scores = K @ _swap(Q)  # (B, H, Tk, Tq): only fits when seq_q == seq_k
    else:
        scores = Q @ _swap(K)  # (B, H, Tq, Tk)
    if k["seq"] == "square_only":
        scores = scores.reshape(B, H, Tq, Tq)  # the query length used for the key axis: fails unless seq_q == seq_k
    factor = _scale_factor(k["scale"], D, H, V.shape[-1])
    mode = k["mask_mode"]
    if mode == "always_causal" or (mode == "own_causal" and mask is not None):
        own = np.triu(np.full((Tq, K.shape[2]), -np.inf), k=k["causal_diagonal"])  # the learner's own mask, whatever was passed
        mask = _as_mask(_from_numpy(own, Q), scores)
        mode = "add"
    if mask is not None and mode == "scaled":
        scores = scores + _as_mask(mask, scores)  # the mask added before the division: scaled with the scores
    scores = scores * factor
    if mask is not None:
        mask = _as_mask(mask, scores)
        if k["mask_4d"] == "first" and mask.ndim == 4:
            mask = mask[0, 0]
        if mode == "add":
            scores = scores + mask
        elif mode == "subtract":
            scores = scores - mask
        elif mode == "keep01":
            scores = _where(mask == 0, _fill_like(scores, k["mask_fill"]), scores)
        elif mode == "neginf_only":  # masked_fill(isneginf(mask), -inf): finite biases dropped
            scores = _where(mask == -math.inf, _fill_like(scores, k["mask_fill"]), scores)
    axis = {"keys": -1, "queries": -2, "heads": 1}[k["softmax_axis"]]
    pattern = softmax(scores, axis=axis, stable=k["stable"])
    if k["scale"] == "after_softmax":
        pattern = pattern / math.sqrt(D)
    if mask is not None and mode == "after_softmax":
        pattern = _where(mask == -math.inf, pattern * 0, pattern)
    if k["returns"] == "pattern":
        return pattern
    return pattern @ V


_attention_plain = attention  # the function itself, even where a submission redefines the public name

def _scale_factor(scale: Any, d_head: int, n_heads: int, d_v: int) -> float:
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        return float(scale) / math.sqrt(d_head)  # a fitted multiple of the correct factor
    return {
        "sqrt_d_head": 1 / math.sqrt(d_head),
        "none": 1.0,
        "d_head": 1 / d_head,
        "sqrt_d_v": 1 / math.sqrt(d_v),
        "sqrt_d_model": 1 / math.sqrt(d_head * n_heads),
        "mul_sqrt_d_head": math.sqrt(d_head),
        "after_softmax": 1.0,
    }[scale]


def _to_float32(a: Any) -> Any:
    if isinstance(a, dict):
        return {k: _to_float32(v) for k, v in a.items()}
    if isinstance(a, list):
        return [_to_float32(v) for v in a]
    if is_torch(a):
        return a.float()
    if isinstance(a, np.ndarray):
        return a.astype(np.float32)
    return a


def _exercise_wrapper(fn: Any, given: tuple[Any, ...], knobs: dict, batch: str, precision: str, *, batch_args: int = 1) -> Any:
    """Batch and precision mistakes, shared by the three exercises: computed on batch element 0
    only (copied to every batch position, or returned as a batch of 1), or in float32."""
    args = list(given)
    dtype = args[0].dtype
    if batch != "ok":
        n = args[0].shape[0]
        for i in range(batch_args):
            args[i] = args[i][:1]
        mask = args[-1]
        if mask is not None and getattr(mask, "ndim", 0) == 4:
            args[-1] = mask[:1]
    if precision == "float32":
        args = [_to_float32(a) for a in args]
    out = fn(*args, **knobs)
    if precision == "float32":
        out = out.to(dtype) if is_torch(out) else out.astype(dtype)
    if batch == "first_broadcast":
        if is_torch(out):
            return out.expand(n, *out.shape[1:]).clone()
        return np.repeat(out, n, axis=0)
    return out


# ---------------------------------------------------------------- causal mask

def causal_mask(seq_len: int, *, like: Any = None, diagonal: int = 1, keep01: bool = False, boolean: bool = False, past: bool = False) -> Any:
    """diagonal=1 is correct (i sees 0..i); 0 also blocks i itself; 2 lets i see i+1.
    keep01 returns a 0/1 keep-mask (1 = may see) instead of an additive one; boolean the same
    as a bool array (True = may see); past blocks the positions before i instead of after it."""
    if keep01 or boolean:
        m = np.tril(np.ones((seq_len, seq_len)))
        m = m.astype(bool) if boolean else m
    elif past:
        m = np.tril(np.full((seq_len, seq_len), -np.inf), k=-diagonal)
    else:
        m = np.triu(np.full((seq_len, seq_len), -np.inf), k=diagonal)
    if like is not None and is_torch(like):
        import torch

        return torch.as_tensor(m)
    return m


# ---------------------------------------------------------------- multi-head attention

MHA_DEFAULTS = {
    "split": "ok",  # no_transpose | interleaved
    "merge": "ok",  # reversed | sum
    "weights": "x@W",  # x@W.T
    "w_o": True,  # False: W_O forgotten
    "residual": False,  # True: returns x + edit
    "attention": None,  # knobs for the per-head attention
    "batch": "ok",  # first_broadcast | first_only (see ATTENTION_DEFAULTS)
    "precision": "native",  # float32
}


def split_heads(x: Any, n_heads: int, how: str = "ok") -> Any:
    B, T, Dm = x.shape
    Dh = Dm // n_heads
    if how == "no_transpose":
        return x.reshape(B, n_heads, T, Dh)  # wrong: mixes tokens and heads
    if how == "interleaved":
        return _permute(x.reshape(B, T, Dh, n_heads), (0, 3, 1, 2))  # head h gets columns h::n_heads
    return _permute(x.reshape(B, T, n_heads, Dh), (0, 2, 1, 3))


def merge_heads(heads: Any, how: str = "ok") -> Any:
    B, H, T, Dh = heads.shape
    if how == "reversed":
        heads = heads[:, list(range(H - 1, -1, -1))] if is_torch(heads) else heads[:, ::-1]
    if how == "sum":
        return heads.sum(1)  # (B, T, Dh): heads added instead of concatenated
    return _permute(heads, (0, 2, 1, 3)).reshape(B, T, H * Dh)


def multi_head_attention(x: Any, W_Q: Any, W_K: Any, W_V: Any, W_O: Any, n_heads: int, mask: Any = None, **knobs: Any) -> Any:
    """multi_head_attention with knobs (see MHA_DEFAULTS)."""
    k = {**MHA_DEFAULTS, **knobs}
    if k["batch"] != "ok" or k["precision"] != "native":
        inner = {**k, "batch": "ok", "precision": "native"}
        return _exercise_wrapper(_mha_plain, (x, W_Q, W_K, W_V, W_O, n_heads, mask), inner, k["batch"], k["precision"])
    if k["weights"] == "x@W.T":
        W_Q, W_K, W_V, W_O = (_swap(w) for w in (W_Q, W_K, W_V, W_O))
    q = split_heads(x @ W_Q, n_heads, k["split"])
    kk = split_heads(x @ W_K, n_heads, k["split"])
    v = split_heads(x @ W_V, n_heads, k["split"])
    heads = attention(q, kk, v, mask, **(k["attention"] or {}))
    if k["split"] == "no_transpose":
        B, H, T, Dh = heads.shape
        merged = heads.reshape(B, T, H * Dh)
    elif k["split"] == "interleaved":
        B, H, T, Dh = heads.shape
        merged = _permute(heads, (0, 2, 3, 1)).reshape(B, T, H * Dh)
    else:
        merged = merge_heads(heads, k["merge"])
    if k["merge"] == "sum":
        out = merged @ W_O[: merged.shape[-1]] if k["w_o"] else merged
    else:
        out = merged @ W_O if k["w_o"] else merged
    return x + out if k["residual"] else out


_mha_plain = multi_head_attention  # the function itself, even where a submission redefines the public name

# ---------------------------------------------------------------- transformer block

BLOCK_DEFAULTS = {
    "norm": "pre",  # post
    "mlp_residual": True,
    "variance": "biased",  # unbiased
    "eps": "inside",  # outside: (x - mean) / (sqrt(var) + eps)
    "activation": "gelu",  # gelu_tanh | relu
    "ln2_input": "a",  # x: second LayerNorm applied to the block input
    "mha": None,  # knobs for the attention sublayer
    "eps_value": None,  # another LayerNorm eps (default 1e-5)
    "ln_affine": True,  # False: LayerNorm without its gain and bias
    "mlp_bias": True,  # False: b_in and b_out never added
    "attn_residual": True,  # False: the attention edit is not added to x
    "ln2": True,  # False: the second LayerNorm is left out
    "batch": "ok",
    "precision": "native",
}


def layer_norm(x: Any, g: Any, b: Any, *, variance: str = "biased", eps: str = "inside", eps_value: float | None = None) -> Any:
    D = x.shape[-1]
    e = numpy_ref.LAYER_NORM_EPS if eps_value is None else eps_value
    mean = _mean(x, -1)
    var = _mean((x - mean) ** 2, -1)
    if variance == "unbiased":
        var = var * D / (D - 1)
    if eps == "outside":
        return (x - mean) / (_sqrt(var) + e) * g + b
    return (x - mean) / _sqrt(var + e) * g + b


def activation(x: Any, kind: str = "gelu") -> Any:
    if kind == "relu":
        return x * (x > 0)
    if kind == "gelu_sigmoid":
        return x / (1 + _exp(-1.702 * x))
    if kind == "gelu_tanh":
        return 0.5 * x * (1 + _tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2.0)))


def transformer_block(x: Any, params: dict, n_heads: int, mask: Any = None, **knobs: Any) -> Any:
    """transformer_block with knobs (see BLOCK_DEFAULTS)."""
    k = {**BLOCK_DEFAULTS, **knobs}
    if k["batch"] != "ok" or k["precision"] != "native":
        inner = {**k, "batch": "ok", "precision": "native"}
        return _exercise_wrapper(_block_plain, (x, params, n_heads, mask), inner, k["batch"], k["precision"])
    p = params

    def ln(t: Any, which: str) -> Any:
        if not k["ln_affine"]:
            return layer_norm(t, 1.0, 0.0, variance=k["variance"], eps=k["eps"], eps_value=k["eps_value"])
        return layer_norm(t, p[f"{which}_g"], p[f"{which}_b"], variance=k["variance"], eps=k["eps"], eps_value=k["eps_value"])

    def mha(t: Any) -> Any:
        return _mha_plain(t, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask, **(k["mha"] or {}))

    def mlp(t: Any) -> Any:
        if not k["mlp_bias"]:
            return activation(t @ p["W_in"], k["activation"]) @ p["W_out"]
        return activation(t @ p["W_in"] + p["b_in"], k["activation"]) @ p["W_out"] + p["b_out"]

    if k["norm"] == "post":
        a = ln(x + mha(x) if k["attn_residual"] else mha(x), "ln1")
        out = a + mlp(a) if k["mlp_residual"] else mlp(a)
        return ln(out, "ln2") if k["ln2"] else out
    a = x + mha(ln(x, "ln1")) if k["attn_residual"] else mha(ln(x, "ln1"))
    second = a if k["ln2_input"] == "a" else x
    h = mlp(ln(second, "ln2") if k["ln2"] else second)
    return a + h if k["mlp_residual"] else h


_block_plain = transformer_block  # the function itself, even where a submission redefines the public name


# ---------------------------------------------------------------- post-norm block


def post_norm_block(x: Any, params: dict, n_heads: int, mask: Any = None, **knobs: Any) -> Any:
    """post_norm_block with knobs: transformer_block's knobs, with norm='post' by default
    (norm='pre' is pre-norm code submitted as the post-norm block)."""
    return _block_plain(x, params, n_heads, mask, **{"norm": "post", **knobs})


# ---------------------------------------------------------------- stack of blocks

STACK_DEFAULTS = {
    "order": "forward",  # reversed: the layers applied last to first
    "apply": "all",  # first | last: only one layer applied
    "params": "own",  # shared: layers[0]'s params used for every layer
    "mask_to": "every",  # first_only: the mask reaches the first layer only
    "final_ln": False,  # True: a LayerNorm (no gain or bias) added after the last layer
    "stream": "carried",  # reset: every layer reads the original x; the edits are summed
    "block": None,  # knobs for every block (transformer_block's)
    "batch": "ok",
    "precision": "native",
}


def transformer_stack(x: Any, layers: list, n_heads: int, mask: Any = None, **knobs: Any) -> Any:
    """transformer_stack with knobs (see STACK_DEFAULTS)."""
    k = {**STACK_DEFAULTS, **knobs}
    if k["batch"] != "ok" or k["precision"] != "native":
        inner = {**k, "batch": "ok", "precision": "native"}
        return _exercise_wrapper(_stack_plain, (x, layers, n_heads, mask), inner, k["batch"], k["precision"])
    layers = list(layers)
    if k["order"] == "reversed":
        layers = layers[::-1]
    if k["apply"] == "first":
        layers = layers[:1]
    elif k["apply"] == "last":
        layers = layers[-1:]
    if k["params"] == "shared" and layers:
        layers = [layers[0]] * len(layers)
    h = x
    for i, p in enumerate(layers):
        m = mask if k["mask_to"] == "every" or i == 0 else None
        if k["stream"] == "reset":
            h = h + (_block_plain(x, p, n_heads, m, **(k["block"] or {})) - x)
        else:
            h = _block_plain(h, p, n_heads, m, **(k["block"] or {}))
    if k["final_ln"]:
        h = layer_norm(h, 1.0, 0.0)
    return h


_stack_plain = transformer_stack  # the function itself, even where a submission redefines the public name


# ---------------------------------------------------------------- attention parameter count


def attention_param_count(d_model: int, d_head: int, n_heads: int, n_layers: int, *, value: str = "factored", layers: bool = True,
                          heads: bool = True, biases: bool = False, mlp: bool = False) -> int:
    """The attention weights of a model, with knobs: value='full' counts a d_model x d_model value
    map (the course's "151 M"), 'down_only' forgets the value-up map (3 maps per head); layers or
    heads False leave out that factor; biases adds a bias per map; mlp adds the MLP's 8 d_model^2."""
    maps = {"factored": 4 * d_model * d_head, "full": 2 * d_model * d_head + d_model * d_model, "down_only": 3 * d_model * d_head}[value]
    per_head = maps + ((3 * d_head + d_model) if biases else 0)
    per_block = per_head * (n_heads if heads else 1) + (8 * d_model * d_model if mlp else 0)
    return int(per_block * (n_layers if layers else 1))
