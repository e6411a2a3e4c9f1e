"""The NumPy reference on its own: no torch needed, so these run in a NumPy-only install.

The oracle here is an independent float64 attention written with `np.logaddexp.reduce` (a
log-sum-exp softmax, a different code path from `numpy_ref.softmax`). The PyTorch oracles named in
exercises.md live in test_reference_torch.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnspec.reference import numpy_ref
from strategies import (
    MASK_KINDS,
    MASK_KINDS_2D,
    attention_shapes,
    block_arrays,
    block_shapes,
    float_dtypes,
    make_mask,
    mask_kinds,
    mha_arrays,
    mha_shapes,
    qkv_arrays,
    TOLERANCES,
    seeds,
)



def assert_close(got: np.ndarray, expected: np.ndarray, dtype: np.dtype, call: str) -> None:
    __tracebackhide__ = True
    assert got.shape == expected.shape, f"out.shape={got.shape}, but should be {expected.shape} [{call}]"
    np.testing.assert_allclose(got, expected, **TOLERANCES[np.dtype(dtype)], err_msg=f"[{call}]")


def logsumexp_attention(Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Float64 attention whose softmax is exp(s - logsumexp(s)), independent of numpy_ref.softmax."""
    Q, K, V = (np.asarray(a, dtype=np.float64) for a in (Q, K, V))
    scores = np.einsum("bhqd,bhkd->bhqk", Q, K) / math.sqrt(Q.shape[-1])  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores + np.asarray(mask, dtype=np.float64)
    log_norm = np.logaddexp.reduce(scores, axis=-1, keepdims=True)  # (B, H, Tq, 1)
    return np.einsum("bhqk,bhkv->bhqv", np.exp(scores - log_norm), V)  # (B, H, Tq, Dv)


def _attention_inputs(data: st.DataObject, dtype: np.dtype, kinds: tuple[str, ...] = MASK_KINDS):
    shapes = data.draw(attention_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(kinds), label="mask_kind")
    Q, K, V = qkv_arrays(shapes, seed, dtype)
    mask = make_mask(kind, shapes["seq_q"], shapes["seq_k"], seed + 1, dtype, shapes["batch"], shapes["n_heads"])
    return Q, K, V, mask


@given(data=st.data())
def test_manual_attention_matches_logsumexp_oracle(data: st.DataObject) -> None:
    dtype = data.draw(float_dtypes(), label="dtype")
    Q, K, V, mask = _attention_inputs(data, dtype)
    got = numpy_ref.manual_attention(Q, K, V, mask)
    assert_close(got, logsumexp_attention(Q, K, V, mask), dtype, "manual_attention(Q, K, V, mask)")


@given(data=st.data())
def test_outputs_keep_dtype_and_inputs_unchanged(data: st.DataObject) -> None:
    """float32 in -> float32 out (a float64 mask must not promote), and no input is written to."""
    dtype = data.draw(float_dtypes(), label="dtype")
    mask_dtype = data.draw(float_dtypes(), label="mask_dtype")
    shapes = data.draw(block_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(MASK_KINDS_2D), label="mask_kind")
    x, params = block_arrays(shapes, seed, dtype)
    T, H = shapes["seq"], shapes["n_heads"]
    mask = make_mask(kind, T, T, seed + 1, mask_dtype)
    qkv = [numpy_ref.split_heads(x @ params[name], H) for name in ("W_Q", "W_K", "W_V")]
    weights = [params[name] for name in ("W_Q", "W_K", "W_V", "W_O")]
    inputs = [x, mask, *params.values(), *qkv]
    before = [None if a is None else a.copy() for a in inputs]

    outputs = {
        "manual_attention": numpy_ref.manual_attention(*qkv, mask),
        "multi_head_attention": numpy_ref.multi_head_attention(x, *weights, H, mask),
        "transformer_block": numpy_ref.transformer_block(x, params, H, mask),
    }

    for name, out in outputs.items():
        assert isinstance(out, np.ndarray), f"{name} returned {type(out).__name__}, but should be ndarray"
        assert out.dtype == dtype, f"{name}: out.dtype={out.dtype}, but should be {dtype}"
        assert np.isfinite(out).all(), f"{name}: output has inf or NaN"
    for old, new in zip(before, inputs):
        if old is not None:
            assert np.array_equal(old, new), "an input array was modified in place"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seq_len", [1, 2, 5, 8])
def test_causal_mask(seq_len: int, dtype: type) -> None:
    mask = numpy_ref.causal_mask(seq_len, dtype=dtype)
    assert mask.shape == (seq_len, seq_len)
    assert mask.dtype == dtype
    rows, cols = np.indices(mask.shape)
    assert (mask[cols <= rows] == 0).all(), "entries on or below the diagonal must be 0"
    assert np.isneginf(mask[cols > rows]).all(), "entries above the diagonal must be -inf"
    assert numpy_ref.causal_mask(seq_len).dtype == np.float64


def scale_to_large_scores(Q: np.ndarray, K: np.ndarray, magnitude: float = 1e4) -> np.ndarray:
    """Q rescaled so that the largest |score| is `magnitude`; exp of such scores overflows."""
    scores = np.einsum("bhqd,bhkd->bhqk", Q.astype(np.float64), K) / math.sqrt(Q.shape[-1])
    return (Q * (magnitude / np.abs(scores).max())).astype(Q.dtype)


#: Scores of 1e4 in float32 carry an absolute rounding error of about ulp(1e4) ~ 1e-3, and an
#: output moves by at most max|V| / 2 per unit of score error (a two-way tie), so 2e-3 * max|V|
#: bounds float32 (observed: <= 3e-5 over 2000 random draws); float64 keeps a tight tolerance.
LARGE_SCORE_ATOL = {np.dtype(np.float32): 2e-3, np.dtype(np.float64): 1e-10}


@given(data=st.data())
def test_large_scores_stay_finite_and_exact(data: st.DataObject) -> None:
    dtype = data.draw(float_dtypes(), label="dtype")
    Q, K, V, mask = _attention_inputs(data, dtype)
    Q = scale_to_large_scores(Q, K)
    got = numpy_ref.manual_attention(Q, K, V, mask)
    assert np.isfinite(got).all(), "scores of 1e4 gave inf/NaN: subtract the row max before exp"
    expected = logsumexp_attention(Q, K, V, mask)  # float64 from the same (rounded) inputs
    np.testing.assert_allclose(got, expected, rtol=0, atol=LARGE_SCORE_ATOL[np.dtype(dtype)] * np.abs(V).max())


def test_worked_example() -> None:
    """exercises.md, seed 000: two heads, identity projections, W_O = 0.5 I."""
    x = np.array([[[1, 0, 2, 1], [0, 1, 1, 2], [1, 1, 0, 1]]], dtype=np.float64)  # (1, 3, 4)
    eye = np.eye(4)
    q = numpy_ref.split_heads(x, 2)  # (1, 2, 3, 2): with identity projections q = k = v
    pattern = numpy_ref.softmax(q @ np.swapaxes(q, -1, -2) / math.sqrt(2))  # (1, 2, 3, 3)
    np.testing.assert_allclose(pattern[0, 0, 2], [0.248, 0.248, 0.503], atol=1e-3)
    np.testing.assert_allclose(pattern[0, 1, 2], [0.248, 0.503, 0.248], atol=1e-3)
    heads = numpy_ref.manual_attention(q, q, q)  # (1, 2, 3, 2)
    np.testing.assert_allclose(heads[0, 0, 2], [0.751, 0.751], atol=1e-3)
    np.testing.assert_allclose(heads[0, 1, 2], [0.999, 1.503], atol=1e-3)

    edit = numpy_ref.multi_head_attention(x, eye, eye, eye, 0.5 * eye, n_heads=2)
    np.testing.assert_allclose(edit[0, 2], [0.376, 0.376, 0.500, 0.752], atol=1e-3)
    np.testing.assert_allclose((x + edit)[0, 2], [1.376, 1.376, 0.500, 1.752], atol=1e-3)


@given(data=st.data())
def test_split_and_merge_heads_are_inverse(data: st.DataObject) -> None:
    """merge_heads(split_heads(x)) == x, and head h holds columns h*d_head:(h+1)*d_head."""
    shapes = data.draw(mha_shapes(), label="shapes")
    x, _ = mha_arrays(shapes, data.draw(seeds(), label="seed"))
    H = shapes["n_heads"]
    Dh = shapes["d_model"] // H
    heads = numpy_ref.split_heads(x, H)
    assert heads.shape == (shapes["batch"], H, shapes["seq"], Dh)
    for h in range(H):
        assert np.array_equal(heads[:, h], x[..., h * Dh : (h + 1) * Dh])
    assert np.array_equal(numpy_ref.merge_heads(heads), x)
