"""The exercises whose arguments are integers: `causal_mask(seq_len)` (its own exercise now, no
longer a helper graded inside manual_attention) and `attention_param_count(...)` (an exact count)."""

from __future__ import annotations

import textwrap

import pytest

from attnspec import misconceptions
from attnspec.exercises import EXERCISES, HELPER_EXERCISE
from attnspec.grade import GradeOptions, grade, torch_available
from attnspec.reference import numpy_ref, variants
from attnspec.runner import WorkerPool

NUMPY_FILE = """
import numpy as np


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -1e9), k=1)   # a finite fill blocks as well


def attention_param_count(d_model, d_head, n_heads, n_layers):
    per_matrix = d_model * d_head
    return np.int64(4 * per_matrix * n_heads * n_layers)
"""

TORCH_FILE = """
import torch


def causal_mask(seq_len):
    mask = torch.tril(torch.ones(seq_len, seq_len))            # the course's version
    return mask.masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, 0.0)


def attention_param_count(d_model, d_head, n_heads, n_layers):
    return torch.tensor(4 * d_model * d_head) * n_heads * n_layers   # a 0-d int64 tensor
"""


@pytest.fixture(scope="module")
def pool():
    with WorkerPool() as p:
        if torch_available():
            p.preload(["torch"])
        yield p


def write(tmp_path, text, name="sub.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def by_name(result):
    return {e.exercise: e for e in result.exercises}


def failure_text(ex):
    return "\n".join(i.message or "" for c in ex.cases for i in c.instances if i.outcome != "passed")


# ---------------------------------------------------------------- the registry and the spec


def test_gpt3_figures_of_the_reference():
    count = numpy_ref.attention_param_count
    assert count(12288, 128, 1, 1) == 4 * 1_572_864 == 6_291_456
    assert count(12288, 128, 96, 1) == 603_979_776
    assert count(12288, 128, 96, 96) == 57_982_058_496
    assert isinstance(count(12288, 128, 96, 96), int)
    assert variants.attention_param_count(12288, 128, 96, 96, value="full") // (96 * 96) - 2 * 1_572_864 == 12288 * 12288  # the course's ~151 M


def test_causal_mask_is_an_exercise_and_manual_attention_no_longer_carries_it(spec):
    assert "causal_mask" in EXERCISES and "causal_mask" not in HELPER_EXERCISE
    ma = [c for c in spec.cases if c.exercise == "manual_attention"]
    assert not any("causal_mask" in c.property or "causal_mask" in c.id for c in ma)
    cm = [c for c in spec.cases if c.exercise == "causal_mask"]
    sizes = {n for c in cm if c.property == "causal_mask_function" for n in c.params["sizes"]}
    assert 1 in sizes and len(sizes) >= 4
    assert any(c.property == "causal_mask_dtype" for c in cm)
    assert not any(m.id.startswith("ma.causal_mask") for m in misconceptions.CATALOGUE)
    assert {"cm.blocks_diagonal", "cm.sees_next", "cm.keep01", "cm.boolean"} <= set(misconceptions.BY_ID)


def test_integer_exercises_have_no_array_families():
    for name in ("causal_mask", "attention_param_count"):
        ids = {m.id for m in misconceptions.for_exercise(name)}
        prefix = EXERCISES[name].prefix
        assert not {f"{prefix}.batch_one_only", f"{prefix}.wrong_dtype", f"{prefix}.modifies_inputs", f"{prefix}.no_grad"} & ids


# ---------------------------------------------------------------- grading


def test_a_learner_style_numpy_file_gets_full_marks_once(spec, pool, tmp_path):
    result = grade(write(tmp_path, NUMPY_FILE), spec, GradeOptions(), pool)
    ex = by_name(result)
    assert sorted(ex) == ["attention_param_count", "causal_mask"]
    assert result.score == result.max_score > 0, [failure_text(e) for e in result.exercises]
    assert ex["causal_mask"].backends == ["numpy"]
    assert ex["attention_param_count"].backends == ["numpy"]
    for case in ex["attention_param_count"].cases:
        if case.property != "implementation_rules":
            assert [(i.backend, i.dtype) for i in case.instances] == [("any", "any")], case.case_id  # graded once, no backend or dtype shown
    for case in ex["causal_mask"].cases:
        if case.property != "implementation_rules":
            assert [(i.backend, i.dtype) for i in case.instances] == [("numpy", "any")], case.case_id


def test_a_learner_style_torch_file_gets_full_marks_once_even_with_both_backends(spec, pool, tmp_path):
    pytest.importorskip("torch")
    result = grade(write(tmp_path, TORCH_FILE), spec, GradeOptions(backend="both"), pool)
    ex = by_name(result)
    assert result.score == result.max_score > 0, [failure_text(e) for e in result.exercises]
    assert ex["causal_mask"].backends == ["torch"]  # the mask is a tensor, whatever the candidates
    assert all(len(c.instances) == 1 for e in result.exercises for c in e.cases)
    assert not any(e.backend_notes for e in result.exercises)


def test_a_float_count_is_refused_even_when_whole(spec, pool, tmp_path):
    path = write(tmp_path, """
        def attention_param_count(d_model, d_head, n_heads, n_layers):
            return 4.0 * d_model * d_head * n_heads * n_layers
        """)
    ex = by_name(grade(path, spec, GradeOptions(), pool))["attention_param_count"]
    rules = [c for c in ex.cases if c.property == "implementation_rules"]
    assert ex.score == sum(c.points for c in rules)  # every count case fails
    assert "57982058496.0, a float; return the exact integer count" in failure_text(ex)


@pytest.mark.parametrize("key", ["full_value_map", "three_maps", "no_layers", "no_heads", "counts_biases", "counts_mlp"])
def test_each_counting_mistake_is_named(key, spec, pool, tmp_path):
    knobs = misconceptions.BY_ID[f"apc.{key}"].knobs
    formula = {
        "full_value_map": "(2 * d_model * d_head + d_model * d_model) * n_heads * n_layers",
        "three_maps": "3 * d_model * d_head * n_heads * n_layers",
        "no_layers": "4 * d_model * d_head * n_heads",
        "no_heads": "4 * d_model * d_head * n_layers",
        "counts_biases": "(4 * d_model * d_head + 3 * d_head + d_model) * n_heads * n_layers",
        "counts_mlp": "(4 * d_model * d_head * n_heads + 8 * d_model * d_model) * n_layers",
    }[key]
    assert eval(formula, {}, dict(d_model=12, d_head=3, n_heads=4, n_layers=2)) == variants.attention_param_count(12, 3, 4, 2, **knobs)
    path = write(tmp_path, f"def attention_param_count(d_model, d_head, n_heads, n_layers):\n    return {formula}\n")
    ex = by_name(grade(path, spec, GradeOptions(), pool))["attention_param_count"]
    assert ex.failed_cases
    assert [d.id for d in ex.diagnoses] == [f"apc.{key}"], (ex.diagnosis_note, failure_text(ex))


@pytest.mark.parametrize("body,named", [
    ("return np.triu(np.full((seq_len, seq_len), -np.inf), k=0)", "cm.blocks_diagonal"),
    ("return np.triu(np.full((seq_len, seq_len), -np.inf), k=2)", "cm.sees_next"),
    ("return np.tril(np.ones((seq_len, seq_len)))", "cm.keep01"),
    ("return np.tril(np.ones((seq_len, seq_len))).astype(bool)", "cm.boolean"),
    ("return np.tril(np.full((seq_len, seq_len), -np.inf), k=-1)", "cm.blocks_past"),
])
def test_each_causal_mask_mistake_is_named(body, named, spec, pool, tmp_path):
    path = write(tmp_path, f"import numpy as np\n\n\ndef causal_mask(seq_len):\n    {body}\n")
    ex = by_name(grade(path, spec, GradeOptions(), pool))["causal_mask"]
    assert ex.failed_cases
    assert [d.id for d in ex.diagnoses] == [named], (ex.diagnoses, ex.diagnosis_note, failure_text(ex))  # one mistake, one name


@pytest.mark.parametrize("exercise,body", [
    ("attention_param_count", "return 4 * d_model * d_head * n_heads * n_layers + 1"),
    ("attention_param_count", "return 4 * d_model * (d_model // n_heads) * n_heads * n_layers"),
    ("causal_mask", "return np.zeros((seq_len, seq_len))"),
    ("causal_mask", "return np.triu(np.full((seq_len, seq_len), -10**9), k=1)"),  # right values, int64
    ("causal_mask", "return np.triu(np.ones((seq_len, seq_len)), k=1) * -np.inf"),  # 0 * -inf is NaN below
])
def test_a_wrong_answer_outside_the_catalogue_is_graded_and_not_named(exercise, body, spec, pool, tmp_path):
    args = "seq_len" if exercise == "causal_mask" else "d_model, d_head, n_heads, n_layers"
    path = write(tmp_path, f"import numpy as np\n\n\ndef {exercise}({args}):\n    {body}\n")
    ex = by_name(grade(path, spec, GradeOptions(), pool))[exercise]
    assert ex.status == "graded" and ex.failed_cases, ex.message
    assert ex.diagnoses == [], (ex.diagnoses, failure_text(ex))
    assert not [i.likely for c in ex.cases for i in c.instances if i.likely], failure_text(ex)


def test_a_file_without_causal_mask_is_told_it_is_not_defined(spec, pool, tmp_path):
    path = write(tmp_path, """
        import numpy as np


        def manual_attention(Q, K, V, mask=None):
            s = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1]).item()
            if mask is not None:
                s = s + mask
            e = np.exp(s - s.max(axis=-1, keepdims=True))
            return (e / e.sum(axis=-1, keepdims=True)) @ V
        """)
    alone = grade(path, spec, GradeOptions(), pool)
    assert [e.exercise for e in alone.exercises] == ["manual_attention"]
    assert alone.score == alone.max_score, failure_text(alone.exercises[0])  # full marks on what it defines: no causal_mask points inside
    asked = by_name(grade(path, spec, GradeOptions(exercises=("causal_mask",)), pool))["causal_mask"]
    assert asked.status == "missing" and asked.score == 0
    assert asked.message.startswith(f"causal_mask is not defined in {path}; expected def causal_mask(seq_len):")
    assert "NameError" not in asked.message
