"""Diagnosis: every catalogued mistake, submitted as a learner file, is named by `attnspec grade`;
correct submissions are never diagnosed; the kill matrix proves the shipped spec catches all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attnspec import misconceptions
from attnspec.grade import GradeOptions, grade, torch_available
from attnspec.loader import load_spec
from attnspec.runner import WorkerPool
from attnspec.spec_check import build_kill_matrix
from misconception_files import learner_source

LISTED = [m for m in misconceptions.CATALOGUE if m.listed]


@pytest.fixture(scope="module")
def spec():
    return load_spec()


@pytest.fixture(scope="module")
def pool():
    with WorkerPool() as p:
        if torch_available():
            p.preload(["torch"])
        yield p


def backend_for(m):
    return "numpy" if "numpy" in m.backends else "torch"


@pytest.mark.parametrize("m", LISTED, ids=lambda m: m.id)
def test_each_misconception_as_a_learner_file_is_diagnosed_by_name(m, spec, pool, tmp_path):
    backend = backend_for(m)
    if backend == "torch" and not torch_available():
        pytest.skip("needs torch")
    path = tmp_path / f"{m.id.replace('.', '_')}.py"
    path.write_text(learner_source(m, backend))
    result = grade(str(path), spec, GradeOptions(exercises=(m.exercise,), backend=backend), pool)
    ex = result.exercises[0]
    assert ex.status == "graded", ex.message
    assert ex.failed_cases, f"{m.id} was not caught by any case"
    ids = [d.id for d in ex.diagnoses]
    assert m.id in ids, f"{m.id} not diagnosed; got {ids} / {ex.diagnosis_note}; failing: {[c.case_id for c in ex.failed_cases]}"
    diagnosis = next(d for d in ex.diagnoses if d.id == m.id)
    assert diagnosis.evidence["failed_cases"]
    assert diagnosis.title == m.title and diagnosis.feedback == m.feedback


@pytest.mark.parametrize("example", ["examples/correct_numpy.py", "examples/correct_notebook.ipynb", "examples/correct_torch.py", "examples/correct_both.py"])
def test_correct_examples_get_full_marks_and_no_diagnosis(example, spec, pool):
    if "torch" in example or "both" in example:
        pytest.importorskip("torch")
    result = grade(example, spec, GradeOptions(), pool)
    assert result.score == result.max_score > 0
    assert [e.exercise for e in result.exercises] == ["manual_attention", "multi_head_attention", "transformer_block"]
    for ex in result.exercises:
        assert ex.status == "graded"
        assert ex.diagnoses == [] and ex.diagnosis_note is None
        assert all(c.passed for c in ex.cases)
    if "both" in example:
        assert all(sorted(e.backends) == ["numpy", "torch"] for e in result.exercises)


BUGGY = {
    "examples/buggy/softmax_wrong_axis.py": {"manual_attention": "ma.softmax_query_axis", "transformer_block": "block.attention.softmax_query_axis"},
    "examples/buggy/mask_ignored.py": {"manual_attention": "ma.mask_ignored", "multi_head_attention": "mha.attention.mask_ignored"},
    "examples/buggy/float64_promotion.py": {"manual_attention": "ma.wrong_dtype"},
    "examples/buggy/post_norm_block.py": {"transformer_block": "block.post_norm"},
    "examples/buggy/no_scaling_torch.py": {"manual_attention": "ma.no_scaling"},
    "examples/buggy/heads_no_transpose.py": {"multi_head_attention": "mha.split_no_transpose", "transformer_block": "block.mha.split_no_transpose"},
    "examples/buggy/numpy_roundtrip_torch.py": {"manual_attention": "ma.numpy_roundtrip"},
}


@pytest.mark.parametrize("path", sorted(BUGGY))
def test_bundled_buggy_examples_lose_points_and_are_diagnosed(path, spec, pool):
    if "torch" in path:
        pytest.importorskip("torch")
    result = grade(path, spec, GradeOptions(), pool)
    assert result.score < result.max_score
    by_name = {e.exercise: e for e in result.exercises}
    for exercise, expected in BUGGY[path].items():
        assert expected in [d.id for d in by_name[exercise].diagnoses]
        # the failing cases name the property that failed
        assert all(c.property for c in by_name[exercise].failed_cases)


def test_forbidden_api_fails_only_the_rules_case_and_names_call_and_line(spec, pool):
    pytest.importorskip("torch")
    result = grade("examples/buggy/uses_sdpa.py", spec, GradeOptions(exercises=("manual_attention",)), pool)
    ex = result.exercises[0]
    failed = [c.case_id for c in ex.failed_cases]
    assert failed == ["manual_attention.implementation_rules"]
    message = ex.failed_cases[0].message
    assert "torch.nn.functional.scaled_dot_product_attention" in message and "line 14" in message
    assert ex.score == ex.max_score - ex.failed_cases[0].max_points


def test_spec_check_on_the_shipped_spec_kills_every_misconception():
    backends = ["numpy", "torch"] if torch_available() else ["numpy"]
    matrix = build_kill_matrix(load_spec(), backends)
    assert matrix.reference_failures == []
    assert [r.id for r in matrix.survivors] == []
    assert {r.id for r in matrix.rows} == {m.id for m in LISTED}


def test_spec_check_cli_json_and_exit_code_on_a_spec_that_misses_a_mistake(tmp_path):
    """A spec with one shape case cannot catch 'no scaling': check names the survivor and exits 1."""
    only = tmp_path / "only_shape.yaml"
    only.write_text(
        "spec_version: 1\nexercise: manual_attention\n"
        "defaults: {tolerances: {float64: {atol: 1.0e-9, rtol: 1.0e-7}}}\n"
        "cases:\n"
        "  - id: course.shape\n    title: shape only\n    property: output_shape\n"
        "    inputs: {shapes: {batch: 2, n_heads: 3, seq_q: 5, seq_k: 7, d_head: 4, d_v: 6}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "attnspec", "spec", "check", "--no-builtin", "--spec", str(only), "--backend", "numpy", "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["reference_failures"] == []
    assert "ma.no_scaling" in report["survivors"]
    killed = {m["id"] for m in report["misconceptions"] if m["killed"]}
    assert "ma.returns_pattern" in killed  # a shape case does catch returning the (seq_q, seq_k) pattern


def test_forbidden_api_reached_by_a_built_name_with_the_profiler_off_is_still_caught(spec, pool, tmp_path):
    pytest.importorskip("torch")
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "import sys\nimport torch\nimport torch.nn.functional as F\n\n"
        "def manual_attention(Q, K, V, mask=None):\n"
        "    sys.setprofile(None)\n"
        "    attend = getattr(F, 'scaled_dot_product_' + 'attention')\n"
        "    return attend(Q, K, V, attn_mask=mask)\n"
    )
    # Only the rules case is selected: the probe call alone must reveal the run-time use.
    options = GradeOptions(exercises=("manual_attention",), case_ids=("manual_attention.implementation_rules",))
    ex = grade(str(sneaky), spec, options, pool).exercises[0]
    (rules,) = ex.cases
    assert rules.outcome == "failed"
    assert "called torch.nn.functional.scaled_dot_product_attention at run time (line 8)" in rules.message


def test_kill_matrix_on_numpy_only_marks_torch_only_mistakes_unchecked_not_surviving():
    matrix = build_kill_matrix(load_spec(), ["numpy"], ("manual_attention",))
    assert {r.id for r in matrix.unchecked} == {"ma.numpy_roundtrip", "ma.data_write"}
    assert matrix.survivors == [] and matrix.ok
