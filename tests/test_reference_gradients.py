"""The analytic VJPs in reference/gradients.py, checked two independent ways.

1. Against torch autograd through torch_ref, in float64, over hypothesis shapes and masks
   (needs torch; skipped without it).
2. Against central finite differences of numpy_ref on one tiny shape per function (no torch), so
   the VJPs are not only as right as torch_ref is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnspec.reference import gradients, numpy_ref
from strategies import (
    attention_shapes,
    block_arrays,
    block_shapes,
    grad_out_like,
    make_mask,
    mask_kinds,
    mha_arrays,
    mha_shapes,
    qkv_arrays,
    seeds,
)

#: The mask kinds the gradients are checked under: none, causal, and mixed -inf/finite 4-D.
GRAD_MASK_KINDS = ("none", "causal", "4d")
AUTOGRAD_RTOL = 1e-9
WEIGHT_NAMES = ("W_Q", "W_K", "W_V", "W_O")


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def torch_ref(torch):
    from attnspec.reference import torch_ref

    return torch_ref


def autograd_vjp(torch, fn: Callable, inputs: dict[str, np.ndarray], grad_out: np.ndarray) -> dict[str, np.ndarray]:
    """d(sum(fn(**inputs) * grad_out)) / d(each input), by torch autograd in float64."""
    leaves = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in inputs.items()}
    out = fn(leaves)
    (out * torch.tensor(grad_out)).sum().backward()
    return {name: leaf.grad.numpy() for name, leaf in leaves.items()}


def assert_grads_close(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], rtol: float, call: str) -> None:
    """Same keys, shapes and values; atol scales with each gradient's size so tiny entries pass."""
    __tracebackhide__ = True
    assert set(got) == set(expected), f"keys {sorted(got)}, but should be {sorted(expected)} [{call}]"
    for name, want in expected.items():
        have = got[name]
        assert have.shape == want.shape, f"grad[{name!r}].shape={have.shape}, but should be {want.shape} [{call}]"
        assert np.isfinite(have).all(), f"grad[{name!r}] has inf or NaN [{call}]"
        atol = rtol * max(np.abs(want).max(initial=0.0), 1.0)
        np.testing.assert_allclose(have, want, rtol=rtol, atol=atol, err_msg=f"grad[{name!r}] [{call}]")


def _mask(kind: str, shapes: dict[str, int], seq_q: int, seq_k: int, seed: int) -> np.ndarray | None:
    return make_mask(kind, seq_q, seq_k, seed, np.float64, shapes["batch"], shapes["n_heads"])


# --------------------------------------------------------------------------------------------
# against torch autograd
# --------------------------------------------------------------------------------------------


@given(data=st.data())
def test_manual_attention_vjp_matches_autograd(data: st.DataObject, torch, torch_ref) -> None:
    shapes = data.draw(attention_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(GRAD_MASK_KINDS), label="mask_kind")
    Q, K, V = qkv_arrays(shapes, seed)
    mask = _mask(kind, shapes, shapes["seq_q"], shapes["seq_k"], seed + 1)
    grad_out = grad_out_like((*Q.shape[:-1], V.shape[-1]), seed + 2)
    mask_t = None if mask is None else torch.tensor(mask)

    expected = autograd_vjp(torch, lambda a: torch_ref.manual_attention(a["Q"], a["K"], a["V"], mask_t), {"Q": Q, "K": K, "V": V}, grad_out)
    got = gradients.manual_attention_vjp(Q, K, V, mask, grad_out)
    assert_grads_close(got, expected, AUTOGRAD_RTOL, f"manual_attention_vjp(mask={kind})")


@given(data=st.data())
def test_multi_head_attention_vjp_matches_autograd(data: st.DataObject, torch, torch_ref) -> None:
    shapes = data.draw(mha_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(GRAD_MASK_KINDS), label="mask_kind")
    x, W = mha_arrays(shapes, seed)
    H, T = shapes["n_heads"], shapes["seq"]
    mask = _mask(kind, shapes, T, T, seed + 1)
    grad_out = grad_out_like(x.shape, seed + 2)
    mask_t = None if mask is None else torch.tensor(mask)

    def fn(a):
        return torch_ref.multi_head_attention(a["x"], *(a[name] for name in WEIGHT_NAMES), H, mask_t)

    expected = autograd_vjp(torch, fn, {"x": x, **W}, grad_out)
    got = gradients.multi_head_attention_vjp(x, *(W[name] for name in WEIGHT_NAMES), H, mask, grad_out)
    assert_grads_close(got, expected, AUTOGRAD_RTOL, f"multi_head_attention_vjp(n_heads={H}, mask={kind})")


@given(data=st.data())
def test_transformer_block_vjp_matches_autograd(data: st.DataObject, torch, torch_ref) -> None:
    shapes = data.draw(block_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(GRAD_MASK_KINDS), label="mask_kind")
    x, params = block_arrays(shapes, seed)
    H, T = shapes["n_heads"], shapes["seq"]
    mask = _mask(kind, shapes, T, T, seed + 1)
    grad_out = grad_out_like(x.shape, seed + 2)
    mask_t = None if mask is None else torch.tensor(mask)

    def fn(a):
        return torch_ref.transformer_block(a["x"], {name: a[name] for name in params}, H, mask_t)

    expected = autograd_vjp(torch, fn, {"x": x, **params}, grad_out)
    got = gradients.transformer_block_vjp(x, params, H, mask, grad_out)
    assert_grads_close(got, expected, AUTOGRAD_RTOL, f"transformer_block_vjp(n_heads={H}, mask={kind})")


# --------------------------------------------------------------------------------------------
# blocked keys
# --------------------------------------------------------------------------------------------


@given(data=st.data())
def test_blocked_keys_get_exactly_zero_gradient(data: st.DataObject) -> None:
    """A key that every query has blocked (-inf) cannot affect the output: its K, V grads are 0.0."""
    shapes = data.draw(attention_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(("causal", "4d")), label="mask_kind")
    Q, K, V = qkv_arrays(shapes, seed)
    mask = _mask(kind, shapes, shapes["seq_q"], shapes["seq_k"], seed + 1)
    grads = gradients.manual_attention_vjp(Q, K, V, mask, grad_out_like((*Q.shape[:-1], V.shape[-1]), seed + 2))

    for name, grad in grads.items():
        assert np.isfinite(grad).all(), f"grad[{name!r}] has inf or NaN under a {kind} mask"
    blocked_for_all = np.broadcast_to(np.isneginf(mask), (*Q.shape[:2], *mask.shape[-2:])).all(axis=-2)  # (B, H, Tk)
    assert (grads["K"][blocked_for_all] == 0.0).all(), "a key blocked for every query has a non-zero K gradient"
    assert (grads["V"][blocked_for_all] == 0.0).all(), "a key blocked for every query has a non-zero V gradient"


def test_causal_mask_blocks_trailing_keys_exactly() -> None:
    """seq_q < seq_k with a causal mask: keys seq_q.. are blocked for every query."""
    shapes = {"batch": 2, "n_heads": 2, "seq_q": 2, "seq_k": 5, "d_head": 3, "d_v": 4}
    Q, K, V = qkv_arrays(shapes, seed=11)
    mask = make_mask("causal", 2, 5, seed=0)
    grads = gradients.manual_attention_vjp(Q, K, V, mask, grad_out_like((2, 2, 2, 4), seed=12))
    assert np.all(grads["K"][:, :, 2:] == 0.0) and np.all(grads["V"][:, :, 2:] == 0.0)
    assert np.all(grads["V"][:, :, :2] != 0.0), "visible keys must receive gradient"


# --------------------------------------------------------------------------------------------
# against central finite differences (no torch)
# --------------------------------------------------------------------------------------------


def finite_difference_vjp(fn: Callable[..., np.ndarray], inputs: dict[str, np.ndarray], grad_out: np.ndarray, step: float = 1e-6) -> dict[str, np.ndarray]:
    """d(sum(fn(inputs) * grad_out)) / d(each entry), by central differences, one entry at a time."""
    grads = {}
    for name, value in inputs.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in inputs.items()}
            shifted[name][index] = value[index] + step
            plus = np.sum(fn(**shifted) * grad_out)
            shifted[name][index] = value[index] - step
            minus = np.sum(fn(**shifted) * grad_out)
            grad[index] = (plus - minus) / (2 * step)
        grads[name] = grad
    return grads


#: Central differences with step 1e-6 in float64 are good to ~1e-9 absolute (truncation ~step^2,
#: rounding ~1e-16 / step); 1e-6 leaves a wide margin while a wrong formula is off by O(1).
FD_RTOL = 1e-6


def test_manual_attention_vjp_matches_finite_differences() -> None:
    shapes = {"batch": 1, "n_heads": 2, "seq_q": 3, "seq_k": 4, "d_head": 2, "d_v": 3}
    Q, K, V = qkv_arrays(shapes, seed=1)
    mask = make_mask("4d", 3, 4, seed=2, batch=1, n_heads=2)
    grad_out = grad_out_like((1, 2, 3, 3), seed=3)
    assert np.isneginf(mask).any() and np.isfinite(mask).any(), "the check should mix blocked and biased keys"

    expected = finite_difference_vjp(lambda Q, K, V: numpy_ref.manual_attention(Q, K, V, mask), {"Q": Q, "K": K, "V": V}, grad_out)
    got = gradients.manual_attention_vjp(Q, K, V, mask, grad_out)
    assert_grads_close(got, expected, FD_RTOL, "manual_attention_vjp vs finite differences")


def test_multi_head_attention_vjp_matches_finite_differences() -> None:
    shapes = {"batch": 2, "seq": 3, "n_heads": 2, "d_model": 4}
    x, W = mha_arrays(shapes, seed=4)
    mask = make_mask("causal_bias", 3, 3, seed=5)
    grad_out = grad_out_like(x.shape, seed=6)

    def fn(x, W_Q, W_K, W_V, W_O):
        return numpy_ref.multi_head_attention(x, W_Q, W_K, W_V, W_O, 2, mask)

    expected = finite_difference_vjp(fn, {"x": x, **W}, grad_out)
    got = gradients.multi_head_attention_vjp(x, *(W[name] for name in WEIGHT_NAMES), 2, mask, grad_out)
    assert_grads_close(got, expected, FD_RTOL, "multi_head_attention_vjp vs finite differences")


def test_transformer_block_vjp_matches_finite_differences() -> None:
    shapes = {"batch": 1, "seq": 3, "n_heads": 2, "d_model": 4, "d_ff": 5}
    x, params = block_arrays(shapes, seed=7)
    mask = make_mask("causal", 3, 3, seed=8)
    grad_out = grad_out_like(x.shape, seed=9)

    def fn(x, **params):
        return numpy_ref.transformer_block(x, params, 2, mask)

    expected = finite_difference_vjp(fn, {"x": x, **params}, grad_out)
    got = gradients.transformer_block_vjp(x, params, 2, mask, grad_out)
    assert_grads_close(got, expected, FD_RTOL, "transformer_block_vjp vs finite differences")


def test_vjps_take_float32_and_leave_inputs_unchanged() -> None:
    """float32 inputs are promoted (float64 gradients out) and never written to."""
    shapes = {"batch": 1, "seq": 3, "n_heads": 2, "d_model": 4, "d_ff": 5}
    x64, params64 = block_arrays(shapes, seed=10)
    x32, params32 = x64.astype(np.float32), {k: v.astype(np.float32) for k, v in params64.items()}
    mask = make_mask("causal", 3, 3, seed=0, dtype=np.float32)
    before = [x32.copy(), mask.copy(), *(v.copy() for v in params32.values())]
    grad_out = grad_out_like(x64.shape, seed=11)

    got = gradients.transformer_block_vjp(x32, params32, 2, mask, grad_out)
    expected = gradients.transformer_block_vjp(x32.astype(np.float64), {k: v.astype(np.float64) for k, v in params32.items()}, 2, mask.astype(np.float64), grad_out)

    for name, grad in got.items():
        assert grad.dtype == np.float64, f"grad[{name!r}].dtype={grad.dtype}, but should be float64"
        np.testing.assert_array_equal(grad, expected[name])
    for old, new in zip(before, [x32, mask, *params32.values()]):
        assert np.array_equal(old, new), "an input array was modified in place"
