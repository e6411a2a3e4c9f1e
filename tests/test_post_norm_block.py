"""post_norm_block: the references against torch.nn.TransformerEncoderLayer(norm_first=False),
its VJP against autograd and finite differences, and pre-norm / post-norm confusion diagnosed
both ways by grading learner-style files.

Oracle wiring as for the pre-norm block (tests/test_reference_torch.py): self_attn's in-projection
is cat([W_Q.T, W_K.T, W_V.T]) with zero biases, out_proj = (W_O.T, 0), linear1 = (W_in.T, b_in),
linear2 = (W_out.T, b_out), norm1 = ln1, norm2 = ln2; eval() mode, the mask as the float
src_mask, and the native fast path off (see that file for why).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnspec.grade import GradeOptions, grade, torch_available
from attnspec.loader import load_spec
from attnspec.reference import gradients, numpy_ref
from strategies import MASK_KINDS_2D, block_arrays, block_shapes, grad_out_like, make_mask, mask_kinds, seeds

EXERCISE = "post_norm_block"


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def nn_post_norm_layer(torch, x: np.ndarray, p: dict[str, np.ndarray], n_heads: int, mask: np.ndarray | None) -> np.ndarray:
    D, d_ff = p["W_in"].shape
    layer = torch.nn.TransformerEncoderLayer(
        D, n_heads, dim_feedforward=d_ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=False, layer_norm_eps=1e-5, dtype=torch.float64
    )

    def t(a):
        return torch.tensor(a, dtype=torch.float64)

    attn = layer.self_attn
    with torch.no_grad():
        attn.in_proj_weight.copy_(torch.cat([t(p["W_Q"]).T, t(p["W_K"]).T, t(p["W_V"]).T]))
        attn.in_proj_bias.zero_()
        attn.out_proj.weight.copy_(t(p["W_O"]).T)
        attn.out_proj.bias.zero_()
        layer.linear1.weight.copy_(t(p["W_in"]).T)
        layer.linear1.bias.copy_(t(p["b_in"]))
        layer.linear2.weight.copy_(t(p["W_out"]).T)
        layer.linear2.bias.copy_(t(p["b_out"]))
        layer.norm1.weight.copy_(t(p["ln1_g"]))
        layer.norm1.bias.copy_(t(p["ln1_b"]))
        layer.norm2.weight.copy_(t(p["ln2_g"]))
        layer.norm2.bias.copy_(t(p["ln2_b"]))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            return layer.eval()(t(x), src_mask=None if mask is None else t(mask)).numpy()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_references_match_nn_transformer_encoder_layer_post_norm(data: st.DataObject, torch) -> None:
    from attnspec.reference import torch_ref

    shapes = data.draw(block_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(MASK_KINDS_2D), label="mask_kind")
    x, params = block_arrays(shapes, seed)
    H = shapes["n_heads"]
    mask = make_mask(kind, shapes["seq"], shapes["seq"], seed + 1, np.float64, shapes["batch"], H)
    expected = nn_post_norm_layer(torch, x, params, H, mask)
    np.testing.assert_allclose(numpy_ref.post_norm_block(x, params, H, mask), expected, rtol=1e-9, atol=1e-9, err_msg=f"numpy_ref, n_heads={H}, mask={kind}")
    got = torch_ref.post_norm_block(torch.tensor(x), {k: torch.tensor(v) for k, v in params.items()}, H, None if mask is None else torch.tensor(mask))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9, err_msg=f"torch_ref, n_heads={H}, mask={kind}")


def test_post_norm_differs_from_pre_norm_and_ends_normalised() -> None:
    """The two blocks differ on the same inputs, and the post-norm output is LN2's (mean ln2_b per feature on average)."""
    x, params = block_arrays({"batch": 2, "seq": 4, "n_heads": 2, "d_model": 6, "d_ff": 5}, seed=3)
    plain = {**params, "ln2_g": np.ones(6), "ln2_b": np.zeros(6)}
    post = numpy_ref.post_norm_block(x, plain, 2)
    assert np.abs(post - numpy_ref.transformer_block(x, plain, 2)).max() > 1e-2
    np.testing.assert_allclose(post.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(post.var(axis=-1), 1.0, rtol=1e-4)


def _assert_grads_close(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], rtol: float) -> None:
    assert set(got) == set(expected)
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=rtol, atol=rtol * max(np.abs(want).max(initial=0.0), 1.0), err_msg=name)


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_vjp_matches_autograd(data: st.DataObject, torch) -> None:
    from attnspec.reference import torch_ref

    shapes = data.draw(block_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(("none", "causal", "causal_bias")), label="mask_kind")
    x, params = block_arrays(shapes, seed)
    H, T = shapes["n_heads"], shapes["seq"]
    mask = make_mask(kind, T, T, seed + 1, np.float64, shapes["batch"], H)
    grad_out = grad_out_like(x.shape, seed + 2)
    leaves = {name: torch.tensor(v, requires_grad=True) for name, v in {"x": x, **params}.items()}
    out = torch_ref.post_norm_block(leaves["x"], {k: leaves[k] for k in params}, H, None if mask is None else torch.tensor(mask))
    (out * torch.tensor(grad_out)).sum().backward()
    expected = {name: leaf.grad.numpy() for name, leaf in leaves.items()}
    _assert_grads_close(gradients.post_norm_block_vjp(x, params, H, mask, grad_out), expected, 1e-9)


def test_vjp_matches_finite_differences() -> None:
    x, params = block_arrays({"batch": 1, "seq": 3, "n_heads": 2, "d_model": 4, "d_ff": 5}, seed=7)
    mask = make_mask("causal", 3, 3, seed=8)
    grad_out = grad_out_like(x.shape, seed=9)
    inputs = {"x": x, **params}

    def loss(values: dict[str, np.ndarray]) -> float:
        return float(np.sum(numpy_ref.post_norm_block(values["x"], {k: values[k] for k in params}, 2, mask) * grad_out))

    expected = {}
    step = 1e-6
    for name, value in inputs.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in inputs.items()}
            shifted[name][index] = value[index] + step
            plus = loss(shifted)
            shifted[name][index] = value[index] - step
            grad[index] = (plus - loss(shifted)) / (2 * step)
        expected[name] = grad
    _assert_grads_close(gradients.post_norm_block_vjp(x, params, 2, mask, grad_out), expected, 1e-6)


# ---------------------------------------------------------------- grading learner-style files

_HELPERS = """
import math
import numpy as np


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    return (w / w.sum(axis=-1, keepdims=True)) @ V


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape

    def split(t):
        return t.reshape(B, T, n_heads, D // n_heads).transpose(0, 2, 1, 3)

    heads = manual_attention(split(x @ W_Q), split(x @ W_K), split(x @ W_V), mask)
    return heads.transpose(0, 2, 1, 3).reshape(B, T, D) @ W_O


def ln(v, g, b):
    return (v - v.mean(axis=-1, keepdims=True)) / np.sqrt(v.var(axis=-1, keepdims=True) + 1e-5) * g + b


def gelu(z):
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))).astype(z.dtype)


def mlp(v, p):
    return gelu(v @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]


def attn(v, p, n_heads, mask):
    return multi_head_attention(v, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
"""

PRE_NORM = """
    a = x + attn(ln(x, params["ln1_g"], params["ln1_b"]), params, n_heads, mask)
    return a + mlp(ln(a, params["ln2_g"], params["ln2_b"]), params)
"""
POST_NORM = """
    a = ln(x + attn(x, params, n_heads, mask), params["ln1_g"], params["ln1_b"])
    return ln(a + mlp(a, params), params["ln2_g"], params["ln2_b"])
"""


def _grade(tmp_path, spec, pool, function: str, body: str):
    path = tmp_path / f"{function}.py"
    path.write_text(_HELPERS + f"\n\ndef {function}(x, params, n_heads, mask=None):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n")
    result = grade(str(path), spec, GradeOptions(exercises=(function,), backend="numpy"), pool)
    (ex,) = result.exercises
    assert ex.status == "graded", ex.message
    return ex


def test_correct_post_norm_code_passes_and_is_not_diagnosed(tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, EXERCISE, POST_NORM)
    assert ex.cases and all(c.passed for c in ex.cases), [c.message for c in ex.cases if not c.passed]
    assert ex.diagnoses == [] and ex.diagnosis_note is None


def test_pre_norm_code_submitted_as_post_norm_is_named(tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, EXERCISE, PRE_NORM)
    assert ex.failed_cases
    assert [d.id for d in ex.diagnoses][:1] == ["post.pre_norm"], [d.id for d in ex.diagnoses]


def test_post_norm_code_submitted_as_transformer_block_is_named(tmp_path, spec, pool):
    ex = _grade(tmp_path, spec, pool, "transformer_block", POST_NORM)
    assert ex.failed_cases
    assert [d.id for d in ex.diagnoses][:1] == ["block.post_norm"], [d.id for d in ex.diagnoses]


def test_missing_second_layernorm_is_named(tmp_path, spec, pool):
    body = """
        a = ln(x + attn(x, params, n_heads, mask), params["ln1_g"], params["ln1_b"])
        return a + mlp(a, params)
    """
    ex = _grade(tmp_path, spec, pool, EXERCISE, body)
    assert [d.id for d in ex.diagnoses][:1] == ["post.no_ln2"], [d.id for d in ex.diagnoses]


@pytest.mark.skipif(not torch_available(), reason="needs torch")
def test_spec_check_kills_every_post_norm_mistake_and_passes_the_reference():
    from attnspec.spec_check import build_kill_matrix

    matrix = build_kill_matrix(load_spec(), ["numpy", "torch"], (EXERCISE,))
    assert matrix.reference_failures == []
    assert [r.id for r in matrix.survivors] == [] and [r.id for r in matrix.unchecked] == []
    assert {"post.pre_norm", "post.no_ln2", "post.no_attn_residual", "post.no_mlp_residual"} <= {r.id for r in matrix.rows if r.killed}
