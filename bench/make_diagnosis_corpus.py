"""Write the diagnosis benchmark corpus: learner-style submissions in several styles (NumPy
vectorised, NumPy loops, einsum, PyTorch functional, PyTorch modules, notebooks), each with
the mistakes it makes declared in a header comment (`# mistakes: id, id`; `# mistakes: none`
for correct code). Run once; the files are committed. The held-out files in
bench/diagnosis_corpus/heldout/ are written by hand, not by this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

OUT = Path(__file__).parent / "diagnosis_corpus"

# ---------------------------------------------------------------- manual_attention styles

MA_IDS = {
    ("scale", "none"): "no_scaling", ("scale", "d_head"): "scale_d_head", ("scale", "sqrt_d_v"): "scale_sqrt_d_v",
    ("scale", "mul"): "scale_multiplied", ("scale", "after"): "scale_after_softmax", ("axis", -2): "softmax_query_axis",
    ("mask", "ignore"): "mask_ignored", ("mask", "subtract"): "mask_subtracted", ("mask", "keep01"): "mask_keep01",
    ("mask", "after"): "mask_after_softmax", ("mask", "neginf"): "mask_neginf_only", ("mask", "scaled"): "mask_scaled",
    ("mask", "own_causal"): "mask_own_causal", ("mask", "own_causal0"): "mask_own_causal_blocks_diagonal", ("mask", "always_causal"): "always_causal",
    ("stable", False): "unstable_softmax", ("ret", "pattern"): "returns_pattern", ("ret", "tuple"): "returns_tuple",
    ("none_fails", True): "fails_without_mask", ("batch", "bcast"): "batch_one_only", ("batch", "first"): "batch_first_only",
    ("precision", "f32"): "float32_internal", ("kq", True): "k_q_transposed",
}
MA_DEFAULT = {"scale": "ok", "axis": -1, "mask": "add", "stable": True, "ret": "out", "none_fails": False, "batch": "ok", "precision": "native", "kq": False}


def _scale_expr(k: dict, d_head: str, d_v: str) -> str:
    return {"ok": f"/ math.sqrt({d_head})", "none": "", "d_head": f"/ {d_head}", "sqrt_d_v": f"/ math.sqrt({d_v})", "mul": f"* math.sqrt({d_head})", "after": ""}[k["scale"]]


def ma_numpy_vec(k: dict) -> str:
    k = {**MA_DEFAULT, **k}
    cast_in = "    Q, K, V = Q.astype(np.float32), K.astype(np.float32), V.astype(np.float32)\n" if k["precision"] == "f32" else ""
    batch = "    B = Q.shape[0]\n    Q, K, V = Q[:1], K[:1], V[:1]\n    if mask is not None and mask.ndim == 4:\n        mask = mask[:1]\n" if k["batch"] != "ok" else ""
    scores = "K @ np.swapaxes(Q, -1, -2)" if k["kq"] else "Q @ np.swapaxes(K, -1, -2)"
    s = "import math\nimport numpy as np\n\n\ndef softmax(x, axis=-1):\n"
    s += "    x = x - x.max(axis=axis, keepdims=True)\n" if k["stable"] else ""
    s += "    e = np.exp(x)\n    return e / e.sum(axis=axis, keepdims=True)\n\n\n"
    s += "def manual_attention(Q, K, V, mask=None):\n" + batch + "    dtype = Q.dtype\n" + cast_in
    s += f"    d_head = Q.shape[-1]\n    d_v = V.shape[-1]\n    scores = {scores}\n"
    m = k["mask"]
    if m == "scaled":
        s += "    if mask is not None:\n        scores = scores + mask\n"
    s += f"    scores = scores {_scale_expr(k, 'd_head', 'd_v')}\n" if _scale_expr(k, "d_head", "d_v") else ""
    if k["none_fails"]:
        s += "    scores = scores + mask.astype(scores.dtype)\n"
    if m == "always_causal":
        s += "    scores = scores + np.triu(np.full(scores.shape[-2:], -np.inf, dtype=scores.dtype), k=1)\n"
    elif not k["none_fails"]:
        s += "    if mask is not None:\n" + {
            "add": "        scores = scores + mask\n", "ignore": "        pass  # TODO mask\n", "subtract": "        scores = scores - mask\n",
            "keep01": "        scores = np.where(mask == 0, -np.inf, scores)\n", "after": "        pass\n", "neginf": "        scores = np.where(np.isneginf(mask), -np.inf, scores)\n",
            "scaled": "        pass\n", "own_causal": "        scores = scores + np.triu(np.full(scores.shape[-2:], -np.inf, dtype=scores.dtype), k=1)\n",
            "own_causal0": "        scores = scores + np.triu(np.full(scores.shape[-2:], -np.inf, dtype=scores.dtype), k=0)\n",
        }[m]
    s += f"    weights = softmax(scores, axis={k['axis']})\n"
    if k["scale"] == "after":
        s += "    weights = weights / math.sqrt(d_head)\n"
    if m == "after":
        s += "    if mask is not None:\n        weights = np.where(np.isneginf(mask), 0.0, weights)\n"
    s += "    out = weights @ V\n"
    if k["precision"] == "f32":
        s += "    out = out.astype(dtype)\n    weights = weights.astype(dtype)\n"
    if k["batch"] == "bcast":
        s += "    out = np.repeat(out, B, axis=0)\n    weights = np.repeat(weights, B, axis=0)\n"
    s += {"out": "    return out\n", "pattern": "    return weights\n", "tuple": "    return out, weights\n"}[k["ret"]]
    return s


def ma_numpy_loops(k: dict) -> str:
    """Loops over batch and heads, 2-D matrices inside."""
    k = {**MA_DEFAULT, **k}
    s = "import numpy as np\n\n\ndef manual_attention(Q, K, V, mask=None):\n"
    s += "    B, H, Tq, D = Q.shape\n    Tk = K.shape[2]\n    Dv = V.shape[3]\n"
    s += "    out = np.zeros((B, H, Tq, Dv), dtype=Q.dtype)\n" if k["batch"] == "ok" else "    out = np.zeros((1, H, Tq, Dv), dtype=Q.dtype)\n"
    s += "    for b in range(B if True else 1):\n" if k["batch"] == "ok" else "    for b in range(1):\n"
    s += "        for h in range(H):\n"
    s += "            s = Q[b, h] @ K[b, h].T\n"
    sc = {"ok": " / np.sqrt(np.float64(D)).astype(Q.dtype)", "none": "", "d_head": " / D", "sqrt_d_v": " / Dv ** 0.5", "mul": " * D ** 0.5", "after": ""}[k["scale"]]
    s += f"            s = s{sc}\n" if sc else ""
    m = k["mask"]
    mask_line = {"add": "s = s + mm", "ignore": "s = s", "subtract": "s = s - mm", "keep01": "s = np.where(mm == 0, -np.inf, s)", "neginf": "s = np.where(mm == -np.inf, -np.inf, s)",
                 "after": "s = s", "own_causal": "s = s + np.triu(np.full((Tq, Tk), -np.inf), 1)"}[m]
    s += "            if mask is not None:\n                mm = mask[b, h] if mask.ndim == 4 else mask\n"
    s += f"                {mask_line}\n"
    s += f"            s = s - s.max(axis={k['axis']}, keepdims=True)\n" if k["stable"] else ""
    s += f"            w = np.exp(s)\n            w = w / w.sum(axis={k['axis']}, keepdims=True)\n"
    if k["scale"] == "after":
        s += "            w = w / np.sqrt(D)\n"
    if m == "after":
        s += "            if mask is not None:\n                w = np.where(np.isneginf(mm), 0, w)\n"
    s += "            out[b, h] = w @ V[b, h]\n    return out\n"
    return s


def ma_torch(k: dict) -> str:
    """PyTorch functional, masked_fill style."""
    k = {**MA_DEFAULT, **k}
    s = "import math\nimport torch\n\n\ndef manual_attention(Q, K, V, mask=None):\n"
    if k["batch"] != "ok":
        s += "    B = Q.shape[0]\n    Q, K, V = Q[:1], K[:1], V[:1]\n    if mask is not None and mask.dim() == 4:\n        mask = mask[:1]\n"
    if k["precision"] == "f32":
        s += "    dtype = Q.dtype\n    Q, K, V = Q.float(), K.float(), V.float()\n    mask = mask.float() if mask is not None else None\n"
    s += "    d_k = Q.size(-1)\n"
    s += "    scores = torch.matmul(K, Q.transpose(-2, -1))\n" if k["kq"] else "    scores = torch.matmul(Q, K.transpose(-2, -1))\n"
    m = k["mask"]
    if m == "scaled":
        s += "    if mask is not None:\n        scores = scores + mask\n"
    sc = {"ok": " / math.sqrt(d_k)", "none": "", "d_head": " / d_k", "sqrt_d_v": " / math.sqrt(V.size(-1))", "mul": " * math.sqrt(d_k)", "after": ""}[k["scale"]]
    s += f"    scores = scores{sc}\n" if sc else ""
    if k["none_fails"]:
        s += "    scores = scores + mask.to(scores.dtype)\n"
    elif m == "always_causal":
        s += "    n, m = scores.shape[-2:]\n    scores = scores.masked_fill(torch.ones(n, m, dtype=torch.bool).triu(1), float('-inf'))\n"
    else:
        s += "    if mask is not None:\n" + {
            "add": "        scores = scores + mask\n", "ignore": "        mask = mask\n", "subtract": "        scores = scores - mask\n",
            "keep01": "        scores = scores.masked_fill(mask == 0, float('-inf'))\n", "after": "        pass\n",
            "neginf": "        scores = scores.masked_fill(torch.isneginf(mask), float('-inf'))\n", "scaled": "        pass\n",
            "own_causal": "        n, m = scores.shape[-2:]\n        scores = scores.masked_fill(torch.ones(n, m, dtype=torch.bool).triu(diagonal=1), float('-inf'))\n",
            "own_causal0": "        n, m = scores.shape[-2:]\n        scores = scores.masked_fill(torch.ones(n, m, dtype=torch.bool).triu(diagonal=0), float('-inf'))\n",
            "fill1e9": "        scores = scores.masked_fill(torch.isneginf(mask), -1e9) + mask.masked_fill(torch.isneginf(mask), 0)\n",
        }[m]
    if k["stable"]:
        s += f"    weights = torch.softmax(scores, dim={k['axis']})\n"
    else:
        s += f"    e = torch.exp(scores)\n    weights = e / e.sum(dim={k['axis']}, keepdim=True)\n"
    if k["scale"] == "after":
        s += "    weights = weights / math.sqrt(d_k)\n"
    if m == "after":
        s += "    if mask is not None:\n        weights = weights.masked_fill(torch.isneginf(mask), 0.0)\n"
    s += "    out = weights @ V\n"
    if k["precision"] == "f32":
        s += "    out, weights = out.to(dtype), weights.to(dtype)\n"
    if k["batch"] == "bcast":
        s += "    out = out.expand(B, -1, -1, -1).clone()\n    weights = weights.expand(B, -1, -1, -1)\n"
    s += {"out": "    return out\n", "pattern": "    return weights\n", "tuple": "    return out, weights\n"}[k["ret"]]
    if k.get("no_grad"):
        s = s.replace("def manual_attention", "@torch.no_grad()\ndef manual_attention")
    return s


def ma_torch_module(k: dict) -> str:
    """An nn.Module doing the work, wrapped by the contract function; einsum scores."""
    k = {**MA_DEFAULT, **k}
    sc = {"ok": "/ math.sqrt(q.shape[-1])", "none": "", "d_head": "/ q.shape[-1]", "sqrt_d_v": "/ math.sqrt(v.shape[-1])", "mul": "* math.sqrt(q.shape[-1])", "after": ""}[k["scale"]]
    m = k["mask"]
    mask_line = {"add": "att = att + mask", "ignore": "att = att", "subtract": "att = att - mask", "keep01": "att = att.masked_fill(mask == 0, float('-inf'))",
                 "neginf": "att = att.masked_fill(mask == float('-inf'), float('-inf'))", "after": "att = att"}[m]
    s = "import math\nimport torch\nfrom torch import nn\n\n\nclass Attention(nn.Module):\n    def forward(self, q, k, v, mask=None):\n"
    s += f"        att = torch.einsum('bhqd,bhkd->bhqk', q, k) {sc}\n"
    s += f"        if mask is not None:\n            {mask_line}\n"
    s += f"        att = att.softmax(dim={k['axis']})\n" if k["stable"] else f"        att = att.exp() / att.exp().sum({k['axis']}, keepdim=True)\n"
    if k["scale"] == "after":
        s += "        att = att / math.sqrt(q.shape[-1])\n"
    if m == "after":
        s += "        if mask is not None:\n            att = att * (mask != float('-inf'))\n"
    s += "        return torch.einsum('bhqk,bhkd->bhqd', att, v)\n\n\n_attn = Attention()\n\n\n"
    s += "def manual_attention(Q, K, V, mask=None):\n    return _attn(Q, K, V, mask)\n"
    return s


# ---------------------------------------------------------------- multi_head_attention styles


def mha_numpy(k: dict) -> str:
    sc = {"ok": "d_head ** 0.5", "d_model": "d_model ** 0.5", "none": "1.0"}[k.get("scale", "ok")]
    split = {"ok": "t.reshape(B, T, n_heads, d_head).transpose(0, 2, 1, 3)", "no_transpose": "t.reshape(B, n_heads, T, d_head)",
             "interleaved": "t.reshape(B, T, d_head, n_heads).transpose(0, 3, 1, 2)"}[k.get("split", "ok")]
    merge = {"ok": "h.transpose(0, 2, 1, 3).reshape(B, T, d_model)", "no_transpose": "h.reshape(B, T, d_model)",
             "interleaved": "h.transpose(0, 2, 3, 1).reshape(B, T, d_model)"}[k.get("split", "ok")]
    w = ".T" if k.get("wt") else ""
    mask = {"add": "s = s + mask", "ignore": "s = s", "neginf": "s = np.where(np.isneginf(mask), -np.inf, s)"}[k.get("mask", "add")]
    s = "import numpy as np\n\n\ndef split(t, n_heads):\n    B, T, d_model = t.shape\n    d_head = d_model // n_heads\n"
    s += f"    return {split}\n\n\n"
    s += "def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):\n    B, T, d_model = x.shape\n    d_head = d_model // n_heads\n"
    s += f"    q, k, v = split(x @ W_Q{w}, n_heads), split(x @ W_K{w}, n_heads), split(x @ W_V{w}, n_heads)\n"
    s += f"    s = q @ k.transpose(0, 1, 3, 2) / {sc}\n    if mask is not None:\n        {mask}\n"
    s += f"    s = s - s.max(axis={k.get('axis', -1)}, keepdims=True)\n    p = np.exp(s)\n    p = p / p.sum(axis={k.get('axis', -1)}, keepdims=True)\n"
    s += f"    h = p @ v\n    merged = {merge}\n"
    s += "    out = merged" + ("" if k.get("no_w_o") else f" @ W_O{w}") + "\n"
    s += "    return x + out\n" if k.get("residual") else "    return out\n"
    return s


def mha_torch(k: dict) -> str:
    sc = {"ok": "math.sqrt(d_head)", "d_model": "math.sqrt(d_model)", "none": "1.0"}[k.get("scale", "ok")]
    view = {"ok": "t.view(B, T, n_heads, d_head).transpose(1, 2)", "no_transpose": "t.view(B, n_heads, T, d_head)",
            "interleaved": "t.view(B, T, d_head, n_heads).permute(0, 3, 1, 2)"}[k.get("split", "ok")]
    merge = {"ok": "h.transpose(1, 2).contiguous().view(B, T, d_model)", "no_transpose": "h.contiguous().view(B, T, d_model)",
             "interleaved": "h.permute(0, 2, 3, 1).reshape(B, T, d_model)"}[k.get("split", "ok")]
    w = ".T" if k.get("wt") else ""
    mask = {"add": "scores = scores + mask", "ignore": "pass", "neginf": "scores = scores.masked_fill(torch.isinf(mask), float('-inf'))"}[k.get("mask", "add")]
    s = "import math\nimport torch\n\n\ndef multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):\n"
    s += "    B, T, d_model = x.shape\n    d_head = d_model // n_heads\n\n    def heads(t):\n"
    s += f"        return {view}\n\n"
    s += f"    q, k, v = heads(x @ W_Q{w}), heads(x @ W_K{w}), heads(x @ W_V{w})\n"
    s += f"    scores = q @ k.transpose(-2, -1) / {sc}\n    if mask is not None:\n        {mask}\n"
    s += f"    h = torch.softmax(scores, dim={k.get('axis', -1)}) @ v\n    out = {merge}\n"
    s += "" if k.get("no_w_o") else f"    out = out @ W_O{w}\n"
    s += "    return x + out\n" if k.get("residual") else "    return out\n"
    return s


# ---------------------------------------------------------------- transformer_block styles


def block_numpy(k: dict) -> str:
    eps = k.get("eps", "1e-5")
    var = "x.var(axis=-1, keepdims=True, ddof=1)" if k.get("unbiased") else "x.var(axis=-1, keepdims=True)"
    norm = f"(x - mu) / (np.sqrt(var) + {eps})" if k.get("eps_outside") else f"(x - mu) / np.sqrt(var + {eps})"
    affine = "" if k.get("no_affine") else " * g + b"
    act = {"gelu": "0.5 * h * (1 + erf(h / math.sqrt(2)))", "tanh": "0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))",
           "relu": "np.maximum(h, 0)", "sigmoid": "h / (1 + np.exp(-1.702 * h))"}[k.get("act", "gelu")]
    mask = {"add": "s = s + mask", "neginf": "s = np.where(np.isneginf(mask), -np.inf, s)", "ignore": "s = s"}[k.get("mask", "add")]
    b_in, b_out = ("", "") if k.get("no_bias") else (" + p['b_in']", " + p['b_out']")
    s = "import math\nimport numpy as np\n\n\ndef erf(t):\n    return np.vectorize(math.erf)(t).astype(t.dtype)\n\n\n"
    s += f"def layer_norm(x, g, b):\n    mu = x.mean(axis=-1, keepdims=True)\n    var = {var}\n    return {norm}{affine}\n\n\n"
    s += "def attention(x, p, n_heads, mask):\n    B, T, D = x.shape\n    dh = D // n_heads\n"
    s += "    q, k, v = [(x @ p[n]).reshape(B, T, n_heads, dh).transpose(0, 2, 1, 3) for n in ('W_Q', 'W_K', 'W_V')]\n"
    s += f"    s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)\n    if mask is not None:\n        {mask}\n"
    s += "    s = np.exp(s - s.max(-1, keepdims=True))\n    s = s / s.sum(-1, keepdims=True)\n"
    s += "    return (s @ v).transpose(0, 2, 1, 3).reshape(B, T, D) @ p['W_O']\n\n\n"
    s += f"def mlp(x, p):\n    h = x @ p['W_in']{b_in}\n    h = {act}\n    return h @ p['W_out']{b_out}\n\n\n"
    s += "def transformer_block(x, params, n_heads, mask=None):\n    p = params\n"
    if k.get("post"):
        s += "    a = layer_norm(x + attention(x, p, n_heads, mask), p['ln1_g'], p['ln1_b'])\n    return layer_norm(a + mlp(a, p), p['ln2_g'], p['ln2_b'])\n"
        return s
    s += "    a = " + ("" if k.get("no_attn_res") else "x + ") + "attention(layer_norm(x, p['ln1_g'], p['ln1_b']), p, n_heads, mask)\n"
    s += "    return " + ("" if k.get("no_mlp_res") else "a + ") + "mlp(layer_norm(a, p['ln2_g'], p['ln2_b']), p)\n"
    return s


def block_torch(k: dict) -> str:
    eps = k.get("eps", "1e-5")
    ln = f"F.layer_norm(t, (t.shape[-1],), g, b, eps={eps})" if not k.get("no_affine") else f"F.layer_norm(t, (t.shape[-1],), eps={eps})"
    if k.get("unbiased"):
        ln = f"(t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, keepdim=True) + {eps}) * g + b"
    act = {"gelu": "F.gelu(h)", "tanh": "F.gelu(h, approximate='tanh')", "relu": "torch.relu(h)", "sigmoid": "h * torch.sigmoid(1.702 * h)"}[k.get("act", "gelu")]
    mask = {"add": "s = s + mask", "neginf": "s = s.masked_fill(mask == float('-inf'), float('-inf'))", "ignore": "pass"}[k.get("mask", "add")]
    b_in, b_out = ("", "") if k.get("no_bias") else (" + p['b_in']", " + p['b_out']")
    prec = k.get("precision") == "f32"
    s = "import math\nimport torch\nimport torch.nn.functional as F\n\n\n"
    s += f"def ln(t, g, b):\n    return {ln}\n\n\n"
    s += "def transformer_block(x, params, n_heads, mask=None):\n    p = params\n"
    if prec:
        s += "    dtype = x.dtype\n    x = x.float()\n    p = {n: t.float() for n, t in p.items()}\n    mask = mask.float() if mask is not None else None\n"
    s += "    B, T, D = x.shape\n    dh = D // n_heads\n\n    def attn(t):\n"
    s += "        q, k, v = (torch.matmul(t, p[n]).view(B, T, n_heads, dh).transpose(1, 2) for n in ('W_Q', 'W_K', 'W_V'))\n"
    s += f"        s = q @ k.transpose(-1, -2) / math.sqrt(dh)\n        if mask is not None:\n            {mask}\n"
    s += "        return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D) @ p['W_O']\n\n"
    s += f"    def mlp(t):\n        h = t @ p['W_in']{b_in}\n        h = {act}\n        return h @ p['W_out']{b_out}\n\n"
    if k.get("post"):
        s += "    a = ln(x + attn(x), p['ln1_g'], p['ln1_b'])\n    out = ln(a + mlp(a), p['ln2_g'], p['ln2_b'])\n"
    else:
        s += "    a = " + ("" if k.get("no_attn_res") else "x + ") + "attn(ln(x, p['ln1_g'], p['ln1_b']))\n"
        s += "    out = " + ("" if k.get("no_mlp_res") else "a + ") + "mlp(ln(a, p['ln2_g'], p['ln2_b']))\n"
    s += "    return out.to(dtype)\n" if prec else "    return out\n"
    return s


MHA_IDS = {"no_w_o": "mha.no_w_o", "wt": "mha.weights_transposed", "residual": "mha.residual_inside", ("split", "no_transpose"): "mha.split_no_transpose",
           ("split", "interleaved"): "mha.heads_interleaved", ("scale", "d_model"): "mha.scale_sqrt_d_model", ("scale", "none"): "mha.attention.no_scaling",
           ("mask", "ignore"): "mha.attention.mask_ignored", ("mask", "neginf"): "mha.attention.mask_neginf_only", ("axis", -2): "mha.attention.softmax_query_axis"}
BLOCK_IDS = {"post": "block.post_norm", "unbiased": "block.unbiased_variance", "eps_outside": "block.eps_outside_sqrt", ("act", "tanh"): "block.gelu_tanh",
             ("act", "relu"): "block.relu", ("act", "sigmoid"): "block.gelu_sigmoid", "no_bias": "block.mlp_no_bias", "no_attn_res": "block.no_attn_residual",
             "no_mlp_res": "block.no_mlp_residual", "no_affine": "block.ln_no_affine", ("mask", "neginf"): "block.attention.mask_neginf_only",
             ("mask", "ignore"): "block.attention.mask_ignored", ("eps", "1e-6"): "block.ln_eps", ("eps", "1e-8"): "block.ln_eps", ("precision", "f32"): "block.float32_internal"}


def _ids(table: dict, k: dict) -> list[str]:
    out = []
    for key, ident in table.items():
        if isinstance(key, tuple):
            if k.get(key[0]) == key[1]:
                out.append(ident)
        elif k.get(key):
            out.append(ident)
    return sorted(set(out))


def _ma_ids(k: dict) -> list[str]:
    ids = ["ma." + v for (name, value), v in MA_IDS.items() if {**MA_DEFAULT, **k}[name] == value]
    if k.get("no_grad"):
        ids.append("ma.no_grad")
    if k.get("mask") == "fill1e9":
        ids.append("ma.half_fill_overflow")
    return sorted(ids)


MA_SINGLE = [
    {"scale": "none"}, {"scale": "d_head"}, {"scale": "sqrt_d_v"}, {"scale": "mul"}, {"scale": "after"}, {"axis": -2}, {"mask": "ignore"},
    {"mask": "subtract"}, {"mask": "keep01"}, {"mask": "after"}, {"mask": "neginf"}, {"mask": "scaled"}, {"mask": "own_causal"}, {"mask": "own_causal0"},
    {"mask": "always_causal"}, {"stable": False}, {"ret": "pattern"}, {"ret": "tuple"}, {"none_fails": True}, {"batch": "bcast"}, {"batch": "first"},
    {"precision": "f32"}, {"kq": True},
]
MA_PAIRS = [{"scale": "none", "mask": "ignore"}, {"scale": "d_head", "axis": -2}, {"scale": "sqrt_d_v", "mask": "neginf"}, {"axis": -2, "mask": "subtract"},
            {"scale": "none", "stable": False}, {"mask": "scaled", "axis": -2}]


CAUSAL_NP = "\n\ndef causal_mask(seq_len):\n    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)\n"
CAUSAL_TORCH = "\n\ndef causal_mask(seq_len):\n    return torch.full((seq_len, seq_len), float('-inf')).triu(1)\n"


def _with_causal(source: str) -> str:
    """manual_attention files also define causal_mask, as the exercise asks."""
    return source + (CAUSAL_TORCH if "import torch" in source else CAUSAL_NP)


def corpus() -> list[tuple[str, str, list[str]]]:
    files = [(n, _with_causal(s) if n.startswith(("ma_", "ok_ma_")) else s, ids) for n, s, ids in _corpus()]
    return files


def _corpus() -> list[tuple[str, str, list[str]]]:
    files: list[tuple[str, str, list[str]]] = []
    for i, k in enumerate(MA_SINGLE + MA_PAIRS):
        files.append((f"ma_np_vec_{i:02d}.py", ma_numpy_vec(k), _ma_ids(k)))
    for i, k in enumerate(MA_SINGLE):
        if k.get("mask") in ("scaled", "own_causal0", "always_causal") or k.get("ret") or k.get("none_fails") or k.get("precision") or k.get("kq") or k.get("batch") == "bcast":
            continue
        files.append((f"ma_np_loops_{i:02d}.py", ma_numpy_loops(k), _ma_ids(k)))
    for i, k in enumerate(MA_SINGLE + MA_PAIRS + [{"no_grad": True}, {"mask": "fill1e9"}]):
        files.append((f"ma_torch_{i:02d}.py", ma_torch(k), _ma_ids(k)))
    for i, k in enumerate([{"scale": "none"}, {"axis": -2}, {"mask": "keep01"}, {"mask": "neginf"}, {"scale": "after"}, {"stable": False}, {"scale": "sqrt_d_v", "mask": "ignore"}]):
        files.append((f"ma_torch_module_{i:02d}.py", ma_torch_module(k), _ma_ids(k)))
    mha = [{"no_w_o": True}, {"wt": True}, {"residual": True}, {"split": "no_transpose"}, {"split": "interleaved"}, {"scale": "d_model"}, {"mask": "ignore"},
           {"mask": "neginf"}, {"axis": -2}, {"no_w_o": True, "scale": "none"}, {"split": "interleaved", "mask": "neginf"}]
    for i, k in enumerate(mha):
        files.append((f"mha_np_{i:02d}.py", mha_numpy(k), _ids(MHA_IDS, k)))
        files.append((f"mha_torch_{i:02d}.py", mha_torch(k), _ids(MHA_IDS, k)))
    block = [{"post": True}, {"unbiased": True}, {"eps_outside": True}, {"act": "tanh"}, {"act": "relu"}, {"act": "sigmoid"}, {"no_bias": True},
             {"no_attn_res": True}, {"no_mlp_res": True}, {"no_affine": True}, {"eps": "1e-6"}, {"mask": "neginf"}, {"act": "tanh", "mask": "neginf"},
             {"act": "tanh", "no_bias": True}, {"post": True, "act": "relu"}, {"unbiased": True, "eps": "1e-8"}]
    for i, k in enumerate(block):
        files.append((f"block_np_{i:02d}.py", block_numpy(k), _ids(BLOCK_IDS, k)))
        if not k.get("eps_outside"):
            files.append((f"block_torch_{i:02d}.py", block_torch(k), _ids(BLOCK_IDS, k)))
    files.append(("block_torch_f32.py", block_torch({"precision": "f32"}), ["block.float32_internal"]))
    # correct code in these styles: must get no diagnosis
    files += [("ok_ma_np_vec.py", ma_numpy_vec({}), []), ("ok_ma_np_loops.py", ma_numpy_loops({}), []), ("ok_ma_torch.py", ma_torch({}), []),
              ("ok_ma_torch_module.py", ma_torch_module({}), []), ("ok_mha_np.py", mha_numpy({}), []), ("ok_mha_torch.py", mha_torch({}), []),
              ("ok_block_np.py", block_numpy({}), []), ("ok_block_torch.py", block_torch({}), [])]
    return files


def header(ids: list[str]) -> str:
    return f"# mistakes: {', '.join(ids) if ids else 'none'}\n"


def as_notebook(source: str) -> str:
    """The same code as a notebook: one cell per top-level definition, plus a markdown cell."""
    cells = [nbformat.v4.new_markdown_cell("# Attention exercise")]
    for chunk in source.split("\n\n\n"):
        cells.append(nbformat.v4.new_code_cell(chunk.strip("\n")))
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


def main() -> int:
    OUT.mkdir(exist_ok=True)
    files = corpus()
    for name, source, ids in files:
        (OUT / name).write_text(header(ids) + source)
    # every eighth mistaken file also as a notebook
    for name, source, ids in files[::8]:
        if ids:
            (OUT / (name[:-3] + "_nb.ipynb")).write_text(as_notebook(header(ids) + source))
    print(f"wrote {len(list(OUT.glob('*.py')))} .py and {len(list(OUT.glob('*.ipynb')))} notebooks to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
