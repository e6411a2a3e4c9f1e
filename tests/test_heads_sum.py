"""heads_sum: the multi-head output is the sum of every head's own low-rank edit. The reference and
the correct submissions in every style (the bundled examples: none in tests/submissions defines
multi_head_attention) pass it; head split/merge layout mistakes fail it, with a
message that names the head whose edit is wrong."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from attnspec.grade import GradeOptions, grade, torch_available
from attnspec.properties.heads import head_edit, only_head
from attnspec.reference import numpy_ref

CASE = "mha.heads_sum"


def _case(path, spec, pool, backend="numpy"):
    result = grade(str(path), spec, GradeOptions(exercises=("multi_head_attention",), case_ids=(CASE,), backend=backend), pool)
    (ex,) = result.exercises
    assert ex.status == "graded", ex.message
    (case,) = [c for c in ex.cases if c.case_id == CASE]
    return case


def test_the_sum_of_head_edits_is_the_reference_output():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 12))
    W = [rng.standard_normal((12, 12)) / 3 for _ in range(4)]
    mask = numpy_ref.causal_mask(5)
    full = numpy_ref.multi_head_attention(x, *W, 3, mask)
    edits = [head_edit(x, *W, 3, h, mask) for h in range(3)]
    np.testing.assert_allclose(sum(edits), full, atol=1e-12)
    for h in range(3):  # zeroing the other heads' rows of W_O leaves exactly that head's edit
        np.testing.assert_allclose(numpy_ref.multi_head_attention(x, W[0], W[1], W[2], only_head(W[3], 3, h), 3, mask), edits[h], atol=1e-12)
    assert min(np.abs(e).max() for e in edits) > 1e-2  # every head contributes: a wrong head cannot hide


@pytest.mark.parametrize("path", ["examples/correct_numpy.py", "examples/correct_both.py", "examples/correct_notebook.ipynb"])
def test_correct_submissions_pass(path, spec, pool):
    case = _case(path, spec, pool)
    assert case.passed, case.message


@pytest.mark.skipif(not torch_available(), reason="needs torch")
def test_correct_torch_submission_passes(spec, pool):
    case = _case("examples/correct_torch.py", spec, pool, backend="torch")
    assert case.passed, case.message


MHA = """
import math
import numpy as np


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape
    Dh = D // n_heads
{body}
"""

SPLITS = {
    # head h takes columns h, h + n_heads, ...: reshape to (..., d_head, n_heads)
    "interleaved": """
    def split(t):
        return t.reshape(B, T, Dh, n_heads).transpose(0, 3, 1, 2)

    def merge(t):
        return t.transpose(0, 2, 3, 1).reshape(B, T, D)
""",
    # merged with a transpose of the wrong axes: (B, H, T, Dh) -> (B, T, Dh, H) -> (B, T, D)
    "transposed_merge": """
    def split(t):
        return t.reshape(B, T, n_heads, Dh).transpose(0, 2, 1, 3)

    def merge(t):
        return t.transpose(0, 2, 3, 1).reshape(B, T, D)
""",
    # a loop over the heads in the other style: slices and concatenate (correct)
    "correct_loop": """
    def split(t):
        return np.stack([t[..., h * Dh:(h + 1) * Dh] for h in range(n_heads)], axis=1)

    def merge(t):
        return np.concatenate([t[:, h] for h in range(n_heads)], axis=-1)
""",
}
ATTEND = """
    q, k, v = split(x @ W_Q), split(x @ W_K), split(x @ W_V)
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(Dh)
    if mask is not None:
        s = s + mask
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return merge((w / w.sum(axis=-1, keepdims=True)) @ v) @ W_O
"""


def _write(tmp_path, kind):
    path = tmp_path / f"{kind}.py"
    path.write_text(MHA.format(body=textwrap.indent(textwrap.dedent(SPLITS[kind]), "    ").rstrip() + "\n" + ATTEND))
    return path


def test_a_loop_over_head_slices_passes(tmp_path, spec, pool):
    case = _case(_write(tmp_path, "correct_loop"), spec, pool)
    assert case.passed, case.message


@pytest.mark.parametrize("kind", ["interleaved", "transposed_merge"])
def test_head_layout_mistakes_fail_and_name_the_head(kind, tmp_path, spec, pool):
    case = _case(_write(tmp_path, kind), spec, pool)
    assert not case.passed
    assert "head 0's edit is wrong" in case.message or "head 1's edit is wrong" in case.message, case.message
    assert "W_O" in case.message


def test_interleaved_heads_are_hinted_by_name(tmp_path, spec, pool):
    case = _case(_write(tmp_path, "interleaved"), spec, pool)
    failure = case.first_failure.failure
    assert "mha.heads_interleaved" in failure["hints"], failure
    assert failure["evidence"]["head"] == failure["evidence"]["wrong_heads"][0]
