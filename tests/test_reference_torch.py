"""The references against PyTorch's own modules (the oracles in exercises.md), and NumPy vs torch.

Oracle wiring, since both modules compute `x @ W.T` where the exercises compute `x @ W`:

- nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True):
  in_proj_weight = cat([W_Q.T, W_K.T, W_V.T]) (3*d_model, d_model), out_proj.weight = W_O.T.
  Its head split (view as (.., n_heads, d_head)) matches split_heads.
- nn.TransformerEncoderLayer(norm_first=True, activation="gelu", dropout=0.0, ...): the same for
  self_attn with its in_proj_bias and out_proj.bias zeroed; linear1 = (W_in.T, b_in),
  linear2 = (W_out.T, b_out), norm1 = (ln1_g, ln1_b), norm2 = (ln2_g, ln2_b); eval() mode, the
  mask passed as the float src_mask.

Both modules run with the native inference "fast path" switched off: under no_grad with
n_heads > 1 TransformerEncoderLayer's fast path returns NaN for a finite (non-0/-inf) float mask
(pytorch/pytorch#118628, still open; seen with torch 2.13 CPU), while the ordinary path is correct.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from attnspec.reference import numpy_ref, torch_ref  # noqa: E402
from strategies import (  # noqa: E402
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

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny tensors: one thread is faster than paying for the thread pool on every call."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def t(a: np.ndarray | None) -> torch.Tensor | None:
    """A torch copy of an array (a copy, so nothing torch does can touch the NumPy input)."""
    return None if a is None else torch.tensor(a)


def assert_close(got, expected, dtype: np.dtype, call: str) -> None:
    __tracebackhide__ = True
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else got
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert got.shape == expected.shape, f"out.shape={got.shape}, but should be {expected.shape} [{call}]"
    np.testing.assert_allclose(got, expected, **TOLERANCES[np.dtype(dtype)], err_msg=f"[{call}]")


# --------------------------------------------------------------------------------------------
# oracles
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def without_mha_fastpath() -> Iterator[None]:
    """Run nn.MultiheadAttention / nn.TransformerEncoderLayer on their ordinary (Python) path.

    Their native inference "fast path" mishandles finite float masks (pytorch/pytorch#118628).
    """
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def sdpa(Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """torch's scaled_dot_product_attention with a float (additive) attn_mask."""
    q, k, v = t(Q), t(K), t(V)
    attn_mask = None if mask is None else t(mask).to(q.dtype)
    with torch.no_grad():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask).numpy()


def nn_multihead_attention(x: np.ndarray, W: dict[str, np.ndarray], n_heads: int, mask: np.ndarray | None) -> np.ndarray:
    D = x.shape[-1]
    mha = torch.nn.MultiheadAttention(D, n_heads, bias=False, batch_first=True, dtype=TORCH_DTYPES[x.dtype])
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([t(W["W_Q"]).T, t(W["W_K"]).T, t(W["W_V"]).T]))  # (3D, D)
        mha.out_proj.weight.copy_(t(W["W_O"]).T)  # (D, D)
    with torch.no_grad(), without_mha_fastpath():
        xt = t(x)
        out, _ = mha.eval()(xt, xt, xt, attn_mask=t(mask), need_weights=False)
    return out.numpy()


def nn_transformer_encoder_layer(x: np.ndarray, p: dict[str, np.ndarray], n_heads: int, mask: np.ndarray | None) -> np.ndarray:
    D, d_ff = p["W_in"].shape
    layer = torch.nn.TransformerEncoderLayer(
        D,
        n_heads,
        dim_feedforward=d_ff,
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
        layer_norm_eps=1e-5,
        dtype=TORCH_DTYPES[x.dtype],
    )
    attn = layer.self_attn
    with torch.no_grad():
        attn.in_proj_weight.copy_(torch.cat([t(p["W_Q"]).T, t(p["W_K"]).T, t(p["W_V"]).T]))  # (3D, D)
        attn.in_proj_bias.zero_()
        attn.out_proj.weight.copy_(t(p["W_O"]).T)
        attn.out_proj.bias.zero_()
        layer.linear1.weight.copy_(t(p["W_in"]).T)  # (d_ff, D)
        layer.linear1.bias.copy_(t(p["b_in"]))
        layer.linear2.weight.copy_(t(p["W_out"]).T)  # (D, d_ff)
        layer.linear2.bias.copy_(t(p["b_out"]))
        layer.norm1.weight.copy_(t(p["ln1_g"]))
        layer.norm1.bias.copy_(t(p["ln1_b"]))
        layer.norm2.weight.copy_(t(p["ln2_g"]))
        layer.norm2.bias.copy_(t(p["ln2_b"]))
    with torch.no_grad(), without_mha_fastpath():
        return layer.eval()(t(x), src_mask=t(mask)).numpy()


# --------------------------------------------------------------------------------------------
# input drawing
# --------------------------------------------------------------------------------------------


def _attention_inputs(data: st.DataObject, dtype: np.dtype, kinds: tuple[str, ...] = MASK_KINDS):
    shapes = data.draw(attention_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(kinds), label="mask_kind")
    Q, K, V = qkv_arrays(shapes, seed, dtype)
    mask = make_mask(kind, shapes["seq_q"], shapes["seq_k"], seed + 1, dtype, shapes["batch"], shapes["n_heads"])
    return Q, K, V, mask


def _block_inputs(data: st.DataObject, dtype: np.dtype, kinds: tuple[str, ...] = MASK_KINDS_2D):
    shapes = data.draw(block_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(kinds), label="mask_kind")
    x, params = block_arrays(shapes, seed, dtype)
    mask = make_mask(kind, shapes["seq"], shapes["seq"], seed + 1, dtype, shapes["batch"], shapes["n_heads"])
    return x, params, shapes["n_heads"], mask


# --------------------------------------------------------------------------------------------
# against the oracles
# --------------------------------------------------------------------------------------------


@given(data=st.data())
def test_manual_attention_matches_sdpa(data: st.DataObject) -> None:
    """Both references vs F.scaled_dot_product_attention, every mask kind (2-D and 4-D)."""
    dtype = data.draw(float_dtypes(), label="dtype")
    Q, K, V, mask = _attention_inputs(data, dtype)
    expected = sdpa(Q, K, V, mask)
    assert_close(numpy_ref.manual_attention(Q, K, V, mask), expected, dtype, "numpy_ref.manual_attention")
    assert_close(torch_ref.manual_attention(t(Q), t(K), t(V), t(mask)), expected, dtype, "torch_ref.manual_attention")


@given(data=st.data())
def test_multi_head_attention_matches_nn_multihead_attention(data: st.DataObject) -> None:
    dtype = data.draw(float_dtypes(), label="dtype")
    shapes = data.draw(mha_shapes(), label="shapes")
    seed = data.draw(seeds(), label="seed")
    kind = data.draw(mask_kinds(MASK_KINDS_2D), label="mask_kind")
    x, W = mha_arrays(shapes, seed, dtype)
    H = shapes["n_heads"]
    mask = make_mask(kind, shapes["seq"], shapes["seq"], seed + 1, dtype)
    expected = nn_multihead_attention(x, W, H, mask)
    weights = [W[name] for name in ("W_Q", "W_K", "W_V", "W_O")]
    call = f"multi_head_attention(x, ..., n_heads={H}, mask={kind})"
    assert_close(numpy_ref.multi_head_attention(x, *weights, H, mask), expected, dtype, "numpy_ref." + call)
    got = torch_ref.multi_head_attention(t(x), *map(t, weights), H, t(mask))
    assert_close(got, expected, dtype, "torch_ref." + call)


@given(data=st.data())
def test_transformer_block_matches_nn_transformer_encoder_layer(data: st.DataObject) -> None:
    dtype = np.dtype(np.float64)
    x, params, H, mask = _block_inputs(data, dtype)
    expected = nn_transformer_encoder_layer(x, params, H, mask)
    call = f"transformer_block(x, params, n_heads={H}, mask)"
    assert_close(numpy_ref.transformer_block(x, params, H, mask), expected, dtype, "numpy_ref." + call)
    got = torch_ref.transformer_block(t(x), {k: t(v) for k, v in params.items()}, H, t(mask))
    assert_close(got, expected, dtype, "torch_ref." + call)


@given(data=st.data())
def test_numpy_and_torch_references_agree(data: st.DataObject) -> None:
    """All three functions, line for line the same maths, so the same numbers (4-D masks too)."""
    dtype = data.draw(float_dtypes(), label="dtype")
    x, params, H, mask = _block_inputs(data, dtype, MASK_KINDS)
    weights = [params[name] for name in ("W_Q", "W_K", "W_V", "W_O")]
    qkv = [numpy_ref.split_heads(x @ w, H) for w in weights[:3]]
    pairs = {
        "manual_attention": (
            numpy_ref.manual_attention(*qkv, mask),
            torch_ref.manual_attention(*map(t, qkv), t(mask)),
        ),
        "multi_head_attention": (
            numpy_ref.multi_head_attention(x, *weights, H, mask),
            torch_ref.multi_head_attention(t(x), *map(t, weights), H, t(mask)),
        ),
        "transformer_block": (
            numpy_ref.transformer_block(x, params, H, mask),
            torch_ref.transformer_block(t(x), {k: t(v) for k, v in params.items()}, H, t(mask)),
        ),
    }
    for name, (from_numpy, from_torch) in pairs.items():
        assert_close(from_numpy, from_torch, dtype, name)


# --------------------------------------------------------------------------------------------
# contract details of the torch reference
# --------------------------------------------------------------------------------------------


@given(data=st.data())
def test_torch_outputs_keep_dtype_and_inputs_unchanged(data: st.DataObject) -> None:
    dtype = data.draw(float_dtypes(), label="dtype")
    mask_dtype = data.draw(float_dtypes(), label="mask_dtype")
    x_np, params_np, H, mask_np = _block_inputs(data, dtype)
    x, params = t(x_np), {k: t(v) for k, v in params_np.items()}
    mask = None if mask_np is None else t(mask_np).to(TORCH_DTYPES[np.dtype(mask_dtype)])
    qkv = [torch_ref.split_heads(x @ params[name], H) for name in ("W_Q", "W_K", "W_V")]
    weights = [params[name] for name in ("W_Q", "W_K", "W_V", "W_O")]
    inputs = [x, mask, *params.values(), *qkv]
    before = [None if a is None else a.clone() for a in inputs]

    outputs = {
        "manual_attention": torch_ref.manual_attention(*qkv, mask),
        "multi_head_attention": torch_ref.multi_head_attention(x, *weights, H, mask),
        "transformer_block": torch_ref.transformer_block(x, params, H, mask),
    }

    for name, out in outputs.items():
        assert isinstance(out, torch.Tensor), f"{name} returned {type(out).__name__}, but should be a Tensor"
        assert out.dtype == TORCH_DTYPES[dtype], f"{name}: out.dtype={out.dtype}, but should be {TORCH_DTYPES[dtype]}"
        assert torch.isfinite(out).all(), f"{name}: output has inf or NaN"
    for old, new in zip(before, inputs):
        if old is not None:
            assert torch.equal(old, new), "an input tensor was modified in place"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seq_len", [1, 2, 5, 8])
def test_torch_causal_mask(seq_len: int, dtype: torch.dtype) -> None:
    mask = torch_ref.causal_mask(seq_len, dtype=dtype)
    assert mask.shape == (seq_len, seq_len)
    assert mask.dtype == dtype
    rows, cols = torch.meshgrid(torch.arange(seq_len), torch.arange(seq_len), indexing="ij")
    assert (mask[cols <= rows] == 0).all(), "entries on or below the diagonal must be 0"
    assert torch.isneginf(mask[cols > rows]).all(), "entries above the diagonal must be -inf"
    assert torch_ref.causal_mask(seq_len).dtype == torch.float32
    assert np.array_equal(mask.numpy(), numpy_ref.causal_mask(seq_len, dtype=mask.numpy().dtype))


#: See test_reference_numpy: float32 scores of 1e4 are only good to ~ulp(1e4) ~ 1e-3 absolute.
LARGE_SCORE_ATOL = {np.dtype(np.float32): 2e-3, np.dtype(np.float64): 1e-10}


@given(data=st.data())
def test_large_scores_stay_finite_and_match_float64(data: st.DataObject) -> None:
    """Scores of magnitude 1e4: finite, and equal to float64 SDPA on the same (rounded) inputs."""
    dtype = data.draw(float_dtypes(), label="dtype")
    Q, K, V, mask = _attention_inputs(data, dtype)
    scores = np.einsum("bhqd,bhkd->bhqk", Q.astype(np.float64), K) / math.sqrt(Q.shape[-1])
    Q = (Q * (1e4 / np.abs(scores).max())).astype(dtype)  # largest |score| is now 1e4
    expected = sdpa(*(a.astype(np.float64) for a in (Q, K, V)), None if mask is None else mask.astype(np.float64))
    atol = LARGE_SCORE_ATOL[np.dtype(dtype)] * np.abs(V).max()
    for name, got in {
        "numpy_ref": numpy_ref.manual_attention(Q, K, V, mask),
        "torch_ref": torch_ref.manual_attention(t(Q), t(K), t(V), t(mask)).numpy(),
    }.items():
        assert np.isfinite(got).all(), f"{name}.manual_attention: scores of 1e4 gave inf/NaN"
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol, err_msg=f"{name}.manual_attention")


def test_torch_worked_example() -> None:
    """exercises.md, seed 000, through the torch reference."""
    x = torch.tensor([[[1, 0, 2, 1], [0, 1, 1, 2], [1, 1, 0, 1]]], dtype=torch.float64)  # (1, 3, 4)
    eye = torch.eye(4, dtype=torch.float64)
    edit = torch_ref.multi_head_attention(x, eye, eye, eye, 0.5 * eye, n_heads=2)
    np.testing.assert_allclose(edit[0, 2].numpy(), [0.376, 0.376, 0.500, 0.752], atol=1e-3)
    np.testing.assert_allclose((x + edit)[0, 2].numpy(), [1.376, 1.376, 0.500, 1.752], atol=1e-3)
