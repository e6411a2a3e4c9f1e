"""transformer_stack: the references against torch.nn.TransformerEncoder (pre-norm layers), the
VJP against autograd, and learner-style files: correct loops in two styles pass with no diagnosis,
and each stack mistake family is caught and named."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from attnspec.grade import GradeOptions, grade
from attnspec.inputs import generate_inputs
from attnspec.reference import gradients, numpy_ref
from attnspec.specmodel import InputSpec

EXERCISE = "transformer_stack"
SHAPES = {"batch": 2, "seq": 5, "d_model": 12, "n_heads": 3, "d_ff": 7, "n_layers": 3}


def _inputs(mask="causal", seed=1, **shapes):
    return generate_inputs(EXERCISE, InputSpec(shapes={**SHAPES, **shapes}, mask=mask, seed=seed))


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def nn_encoder(torch, x, layers, n_heads, mask):
    """torch.nn.TransformerEncoder of norm_first layers, each loaded from its params (no final norm)."""
    D, d_ff = layers[0]["W_in"].shape
    layer = torch.nn.TransformerEncoderLayer(D, n_heads, dim_feedforward=d_ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True,
                                             layer_norm_eps=1e-5, dtype=torch.float64)
    encoder = torch.nn.TransformerEncoder(layer, len(layers), enable_nested_tensor=False)

    def t(a):
        return torch.tensor(a, dtype=torch.float64)

    with torch.no_grad():
        for mod, p in zip(encoder.layers, layers):
            mod.self_attn.in_proj_weight.copy_(torch.cat([t(p["W_Q"]).T, t(p["W_K"]).T, t(p["W_V"]).T]))
            mod.self_attn.in_proj_bias.zero_()
            mod.self_attn.out_proj.weight.copy_(t(p["W_O"]).T)
            mod.self_attn.out_proj.bias.zero_()
            mod.linear1.weight.copy_(t(p["W_in"]).T)
            mod.linear1.bias.copy_(t(p["b_in"]))
            mod.linear2.weight.copy_(t(p["W_out"]).T)
            mod.linear2.bias.copy_(t(p["b_out"]))
            for norm, name in ((mod.norm1, "ln1"), (mod.norm2, "ln2")):
                norm.weight.copy_(t(p[f"{name}_g"]))
                norm.bias.copy_(t(p[f"{name}_b"]))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            return encoder.eval()(t(x), mask=None if mask is None else t(mask)).numpy()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


@pytest.mark.parametrize("mask,n_layers", [("none", 1), ("causal", 3), ("bias", 4)])
def test_references_match_nn_transformer_encoder(mask, n_layers, torch):
    from attnspec.reference import torch_ref

    a = _inputs(mask=mask, n_layers=n_layers).args
    expected = nn_encoder(torch, a["x"], a["layers"], 3, a["mask"])
    np.testing.assert_allclose(numpy_ref.transformer_stack(a["x"], a["layers"], 3, a["mask"]), expected, rtol=1e-9, atol=1e-9)
    tm = None if a["mask"] is None else torch.tensor(a["mask"])
    got = torch_ref.transformer_stack(torch.tensor(a["x"]), [{k: torch.tensor(v) for k, v in p.items()} for p in a["layers"]], 3, tm)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_one_layer_is_the_block_empty_is_x_and_order_matters():
    a = _inputs().args
    x, layers, mask = a["x"], a["layers"], a["mask"]
    np.testing.assert_array_equal(numpy_ref.transformer_stack(x, layers[:1], 3, mask), numpy_ref.transformer_block(x, layers[0], 3, mask))
    np.testing.assert_array_equal(numpy_ref.transformer_stack(x, [], 3, mask), x)
    assert np.abs(numpy_ref.transformer_stack(x, layers, 3, mask) - numpy_ref.transformer_stack(x, layers[::-1], 3, mask)).max() > 1e-2
    assert all(np.abs(layers[0][k] - layers[1][k]).max() > 0 for k in layers[0]), "every layer's params are drawn afresh"


def test_vjp_matches_autograd(torch):
    from attnspec.reference import torch_ref

    a = _inputs(mask="bias", n_layers=3).args
    grad_out = np.random.default_rng(5).standard_normal(a["x"].shape)
    x = torch.tensor(a["x"], requires_grad=True)
    layers = [{k: torch.tensor(v, requires_grad=True) for k, v in p.items()} for p in a["layers"]]
    (torch_ref.transformer_stack(x, layers, 3, torch.tensor(a["mask"])) * torch.tensor(grad_out)).sum().backward()
    got = gradients.transformer_stack_vjp(a["x"], a["layers"], 3, a["mask"], grad_out)
    expected = {"x": x.grad.numpy(), **{f"layers.{i}.{k}": t.grad.numpy() for i, p in enumerate(layers) for k, t in p.items()}}
    assert set(got) == set(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-9, atol=1e-9 * max(np.abs(want).max(), 1.0), err_msg=name)


# ---------------------------------------------------------------- grading learner-style files

_BLOCK = """
import functools
import math
import numpy as np


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape

    def split(t):
        return t.reshape(B, T, n_heads, D // n_heads).transpose(0, 2, 1, 3)

    s = split(x @ W_Q) @ np.swapaxes(split(x @ W_K), -1, -2) / math.sqrt(D // n_heads)
    if mask is not None:
        s = s + mask
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    heads = (w / w.sum(axis=-1, keepdims=True)) @ split(x @ W_V)
    return heads.transpose(0, 2, 1, 3).reshape(B, T, D) @ W_O


def ln(v, g=1.0, b=0.0):
    return (v - v.mean(axis=-1, keepdims=True)) / np.sqrt(v.var(axis=-1, keepdims=True) + 1e-5) * g + b


def gelu(z):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))).astype(z.dtype)


def transformer_block(x, params, n_heads, mask=None):
    p = params
    a = x + multi_head_attention(ln(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
    return a + gelu(ln(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
"""

CORRECT_LOOP = """
    h = x
    for params in layers:
        h = transformer_block(h, params, n_heads, mask)
    return h
"""
CORRECT_REDUCE = """
    return functools.reduce(lambda h, p: transformer_block(h, p, n_heads, mask), layers, x)
"""
MISTAKES = {
    "stack.layers_reversed": """
        h = x
        for params in reversed(layers):
            h = transformer_block(h, params, n_heads, mask)
        return h
    """,
    "stack.first_layer_only": """
        h = x
        for params in layers:
            return transformer_block(h, params, n_heads, mask)
        return h
    """,
    "stack.last_layer_only": """
        h = x
        for params in layers:
            h = transformer_block(x, params, n_heads, mask)
        return h
    """,
    "stack.params_shared": """
        h = x
        for _ in layers:
            h = transformer_block(h, layers[0], n_heads, mask)
        return h
    """,
    "stack.mask_first_layer_only": """
        h = x
        for i, params in enumerate(layers):
            h = transformer_block(h, params, n_heads, mask if i == 0 else None)
        return h
    """,
    "stack.final_layernorm": """
        h = x
        for params in layers:
            h = transformer_block(h, params, n_heads, mask)
        return ln(h)
    """,
    "stack.stream_reset": """
        h = x
        for params in layers:
            h = h + transformer_block(x, params, n_heads, mask) - x
        return h
    """,
}


def _grade(tmp_path, spec, pool, body: str):
    path = tmp_path / "stack.py"
    path.write_text(_BLOCK + "\n\ndef transformer_stack(x, layers, n_heads, mask=None):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n")
    result = grade(str(path), spec, GradeOptions(exercises=(EXERCISE,), backend="numpy"), pool)
    (ex,) = result.exercises
    assert ex.status == "graded", ex.message
    return ex


@pytest.mark.parametrize("body", [CORRECT_LOOP, CORRECT_REDUCE], ids=["loop", "reduce"])
def test_correct_stacks_pass_every_case_and_are_not_diagnosed(body, tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, body)
    assert ex.cases and all(c.passed for c in ex.cases), [(c.case_id, c.message) for c in ex.cases if not c.passed]
    assert ex.diagnoses == [] and ex.diagnosis_note is None


@pytest.mark.parametrize("ident", sorted(MISTAKES))
def test_each_stack_mistake_is_caught_and_named(ident, tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, MISTAKES[ident])
    assert ex.failed_cases, f"{ident} passed every case"
    assert [d.id for d in ex.diagnoses][:1] == [ident], ([d.id for d in ex.diagnoses], ex.diagnosis_note)


def test_reversed_layers_fail_the_order_case_with_a_message_that_says_so(tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, MISTAKES["stack.layers_reversed"])
    (order,) = [c for c in ex.cases if c.case_id == "stack.order"]
    assert not order.passed and "applied last to first" in order.message, order.message


def test_mask_given_to_the_first_layer_only_fails_the_every_layer_mask_case(tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, MISTAKES["stack.mask_first_layer_only"])
    failed = {c.case_id for c in ex.cases if not c.passed}
    assert "stack.mask.every_layer" in failed
    assert "stack.one_layer" not in failed  # one layer always gets the mask


def test_a_key_added_to_a_layers_parameters_is_a_modified_input(tmp_path, spec, pool):
    """Values untouched, but the caller's dicts gain a key: the inputs were modified all the same."""
    body = """
        h = x
        for i, params in enumerate(layers):
            params["layer_index"] = i
            h = transformer_block(h, params, n_heads, mask)
        return h
    """
    ex = _grade(tmp_path, spec, pool, body)
    assert [c.case_id for c in ex.cases if c.outcome != "passed"] == ["stack.inputs_unchanged"]
    assert "modified its inputs layers.0, layers.1" in next(c for c in ex.cases if c.case_id == "stack.inputs_unchanged").instances[0].message
