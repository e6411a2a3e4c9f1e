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
    assert [e.exercise for e in result.exercises] == ["manual_attention", "multi_head_attention", "transformer_block", "causal_mask"]
    for ex in result.exercises:
        assert ex.status == "graded"
        assert ex.diagnoses == [] and ex.diagnosis_note is None
        assert all(c.passed for c in ex.cases)
    if "both" in example:
        # causal_mask(seq_len) takes an int: it is graded once, on the backend its mask is in
        assert all(sorted(e.backends) == (["numpy", "torch"] if e.exercise != "causal_mask" else ["numpy"]) for e in result.exercises)


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


@pytest.mark.parametrize("reach,api", [
    ("getattr(torch.ops.aten, 'scaled_dot_' + 'product_attention')", "torch.ops.aten.scaled_dot_product_attention"),  # an op packet, called through its Python __call__
    ("getattr(torch.ops.aten, 'scaled_dot_' + 'product_attention').default", "torch.ops.aten.scaled_dot_product_attention.default"),
    ("getattr(torch, '_scaled_dot_product_' + 'attention_math')", "torch._scaled_dot_product_attention_math"),
])
def test_pytorch_own_attention_reached_another_way_is_caught_at_run_time(reach, api, spec, pool, tmp_path):
    pytest.importorskip("torch")
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "import torch\n\n"
        f"ATTEND = {reach}\n\n"
        "def manual_attention(Q, K, V, mask=None):\n"
        "    out = ATTEND(Q, K, V, mask)\n"
        "    return out[0] if isinstance(out, tuple) else out\n"
    )
    options = GradeOptions(exercises=("manual_attention",), case_ids=("manual_attention.implementation_rules",))  # the probe call alone must reveal it
    ex = grade(str(sneaky), spec, options, pool).exercises[0]
    rules = next(c for c in ex.cases if c.property == "implementation_rules")
    assert rules.outcome == "failed"
    assert f"called {api} at run time (line 6)" in rules.message, rules.message


def test_kill_matrix_on_numpy_only_marks_torch_only_mistakes_unchecked_not_surviving():
    matrix = build_kill_matrix(load_spec(), ["numpy"], ("manual_attention",))
    assert {r.id for r in matrix.unchecked} == {"ma.numpy_roundtrip", "ma.data_write", "ma.no_grad", "ma.half_fill_overflow"}
    assert matrix.survivors == [] and matrix.ok


# ---------------------------------------------------------------- inference: pairs, regressions, never wrong

from pathlib import Path  # noqa: E402

import jsonschema  # noqa: E402

from attnspec.misconceptions import BY_ID, Misconception  # noqa: E402
from attnspec.reports import render  # noqa: E402
from attnspec.results import GradeResult  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "diagnosis_corpus"


def _grade_source(tmp_path, name, source, spec, pool, exercise, backend="numpy", **options):
    path = tmp_path / name
    path.write_text(source)
    return grade(str(path), spec, GradeOptions(exercises=(exercise,), backend=backend, **options), pool)


def _pair(exercise, first, second):
    a, b = BY_ID[first], BY_ID[second]
    knobs = _merge(dict(a.knobs), b.knobs)
    return Misconception(f"{first}+{second}", exercise, "pair", "pair", "", knobs=knobs)


def _merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


PAIRS = [
    ("transformer_block", "block.gelu_tanh", "block.attention.mask_neginf_only"),
    ("transformer_block", "block.gelu_tanh", "block.mlp_no_bias"),
    ("manual_attention", "ma.no_scaling", "ma.mask_ignored"),
    ("manual_attention", "ma.scale_sqrt_d_v", "ma.softmax_query_axis"),
    ("multi_head_attention", "mha.no_w_o", "mha.attention.no_scaling"),
]


@pytest.mark.parametrize("exercise,first,second", PAIRS, ids=lambda x: x if isinstance(x, str) else "")
def test_two_mistakes_at_once_are_named_as_two(exercise, first, second, spec, pool, tmp_path):
    m = _pair(exercise, first, second)
    result = _grade_source(tmp_path, "pair.py", learner_source(m, "numpy"), spec, pool, exercise)
    ids = {d.id for d in result.exercises[0].diagnoses}
    assert ids == {first, second}, (ids, result.exercises[0].diagnosis_note)
    for d in result.exercises[0].diagnoses:
        assert d.evidence["calls_reproduced"] >= 1 and sorted(d.evidence["model"]) == sorted([first, second])


OWN_TRIU0 = """
import math
import numpy as np

def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + np.triu(np.full(scores.shape[-2:], -np.inf), k=0)
    scores = scores - scores.max(axis=-1, keepdims=True)
    w = np.exp(scores)
    return w / w.sum(axis=-1, keepdims=True) @ V
"""


def test_own_triu_diagonal_0_is_not_called_batch_one_only(spec, pool, tmp_path):
    result = _grade_source(tmp_path, "triu0.py", OWN_TRIU0, spec, pool, "manual_attention")
    ids = [d.id for d in result.exercises[0].diagnoses]
    assert "ma.batch_one_only" not in ids
    assert ids == ["ma.mask_own_causal_blocks_diagonal"], (ids, result.exercises[0].diagnosis_note)


NO_W_O_TORCH = """
import math
import torch

def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    B, T, D = x.shape
    dh = D // n_heads
    q, k, v = [(x @ w).view(B, T, n_heads, dh).transpose(1, 2) for w in (W_Q, W_K, W_V)]
    s = q @ k.transpose(-2, -1) / math.sqrt(dh)
    if mask is not None:
        s = s + mask
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
"""


def test_missing_w_o_in_torch_is_not_called_a_numpy_round_trip(spec, pool, tmp_path):
    pytest.importorskip("torch")
    result = _grade_source(tmp_path, "no_w_o.py", NO_W_O_TORCH, spec, pool, "multi_head_attention", backend="torch")
    ids = [d.id for d in result.exercises[0].diagnoses]
    assert ids == ["mha.no_w_o"], (ids, result.exercises[0].diagnosis_note)
    grads = [i for c in result.exercises[0].cases if c.property == "gradients_match" for i in c.instances if i.outcome != "passed"]
    assert grads and all(i.failure["kind"] != "no_graph" for i in grads)


def test_softmax_axis_case_hints_never_blame_the_mask(spec, pool, tmp_path):
    m = BY_ID["ma.softmax_query_axis"]
    result = _grade_source(tmp_path, "axis.py", learner_source(m, "numpy"), spec, pool, "manual_attention")
    ex = result.exercises[0]
    assert [d.id for d in ex.diagnoses] == ["ma.softmax_query_axis"]
    for case in ex.failed_cases:
        for inst in case.instances:
            assert set((inst.failure or {}).get("hints", [])) <= {"ma.softmax_query_axis"}, (case.case_id, inst.failure)
    text = render(result, "text")
    assert "causal mask does not reach" not in text and "the mask does not reach" not in text


def test_forward_values_are_called_right_only_when_they_were(spec, pool, tmp_path):
    pytest.importorskip("torch")
    wrong_values = learner_source(BY_ID["ma.no_scaling"], "torch")
    result = _grade_source(tmp_path, "noscale.py", wrong_values, spec, pool, "manual_attention", backend="torch")
    for case in result.exercises[0].cases:
        for inst in case.instances:
            assert "forward values are right" not in inst.message
    right_values = learner_source(BY_ID["ma.data_write"], "torch")
    result = _grade_source(tmp_path, "data.py", right_values, spec, pool, "manual_attention", backend="torch")
    grads = [i for c in result.exercises[0].cases if c.property == "gradients_match" for i in c.instances if i.outcome != "passed"]
    assert grads and all(i.failure["evidence"]["forward_ok"] for i in grads)
    assert [d.id for d in result.exercises[0].diagnoses] == ["ma.data_write"]


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("ok_*.py")))
def test_correct_code_in_other_styles_is_never_diagnosed(name, spec, pool):
    if "torch" in (CORPUS / name).read_text():
        pytest.importorskip("torch")
    result = grade(str(CORPUS / name), spec, GradeOptions(), pool)
    assert result.score == result.max_score > 0
    assert all(ex.diagnoses == [] and ex.diagnosis_note is None for ex in result.exercises)


def test_reference_variants_with_default_knobs_are_never_diagnosed(spec, pool, tmp_path):
    m = Misconception("block.reference", "transformer_block", "t", "f", "", knobs={})
    result = _grade_source(tmp_path, "ref.py", learner_source(m, "numpy"), spec, pool, "transformer_block")
    assert result.score == result.max_score and result.exercises[0].diagnoses == []


def test_structured_failures_round_trip_and_validate(spec, pool, tmp_path):
    result = _grade_source(tmp_path, "scaled.py", learner_source(BY_ID["ma.mask_scaled"], "numpy"), spec, pool, "manual_attention")
    text = render(result, "json")
    data = json.loads(text)
    assert next(iter(data)) == "headline"
    assert data["headline"][0]["mistakes"] == ["ma.mask_scaled"]
    schema = json.loads((Path(__file__).resolve().parent.parent / "harness" / "schemas" / "report.schema.json").read_text())
    jsonschema.validate(data, schema)
    again = GradeResult.from_dict(data)
    assert render(again, "json") == text
    failures = [i.failure for c in again.cases for i in c.instances if i.outcome != "passed"]
    assert failures and all(f["kind"] and isinstance(f["hints"], list) for f in failures)


def test_hidden_cases_drop_fields_not_text(spec, pool, tmp_path):
    result = _grade_source(tmp_path, "noscale.py", learner_source(BY_ID["ma.no_scaling"], "numpy"), spec, pool, "manual_attention")
    hidden = [i for c in result.exercises[0].cases if c.visibility == "hidden" for i in c.instances if i.outcome != "passed"]
    assert hidden
    for inst in hidden:
        f = inst.failure
        assert f["hidden"] and "call" not in f and "evidence" not in f and "where" not in f
        assert set(f.get("comparison", {})) <= {"max_abs_error", "max_rel_error", "what", "against"}
        assert inst.message.endswith("[hidden case: inputs not shown]") and "(" not in inst.message


def test_headline_first_in_text_junit_and_gradescope_and_max_failures(spec, pool, tmp_path):
    result = _grade_source(tmp_path, "mask.py", learner_source(BY_ID["ma.mask_ignored"], "numpy"), spec, pool, "manual_attention")
    ex = result.exercises[0]
    assert len(ex.failed_cases) >= 3
    text = render(result, "text")
    lines = text.splitlines()
    first_fail = next(i for i, line in enumerate(lines) if line.strip().startswith("FAIL"))
    named = next(i for i, line in enumerate(lines) if "[ma.mask_ignored] --" in line)
    assert named < first_fail
    one = render(result, "text", max_failures=1)
    assert sum(1 for line in one.splitlines() if line.strip().startswith("FAIL")) == 1
    assert f"and {len(ex.failed_cases) - 1} more failing cases not shown" in one
    concise = render(result, "text", concise=True)
    shown = [line.split()[1] for line in concise.splitlines() if line.strip().startswith("FAIL")]
    props = [next(c.property for c in ex.cases if c.case_id == s) for s in shown]
    assert len(props) == len(set(props)) == len({c.property for c in ex.failed_cases})
    gs = json.loads(render(result, "gradescope"))
    failed = [t for t in gs["tests"] if t["status"] == "failed"]
    assert failed and all(t["output"].startswith("Likely mistake: mask ignored") for t in failed)
    junit = render(result, "junit")
    body = junit[junit.index("<failure"):]
    assert body[body.index(">") + 1 :].startswith("Likely mistake: mask ignored [ma.mask_ignored]")


def test_fitted_parameters_are_reported(spec, pool, tmp_path):
    m = Misconception("block.ln_eps", "transformer_block", "t", "f", "", knobs={"eps_value": 1e-8})
    result = _grade_source(tmp_path, "eps.py", learner_source(m, "numpy"), spec, pool, "transformer_block")
    (d,) = result.exercises[0].diagnoses
    assert d.id == "block.ln_eps" and d.params == {"eps_value": 1e-8} and d.confidence in ("high", "medium")


def test_unknown_scale_is_solved_for(spec, pool, tmp_path):
    m = Misconception("ma.fitted_scale", "manual_attention", "t", "f", "", knobs={"scale": 0.71})
    result = _grade_source(tmp_path, "scale.py", learner_source(m, "numpy"), spec, pool, "manual_attention")
    (d,) = result.exercises[0].diagnoses
    assert d.id == "ma.scale_other" and abs(d.params["scale"] - 0.71) < 0.01


DETACH_MIDDLE = """
import math
import torch

def manual_attention(Q, K, V, mask=None):
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    weights = torch.softmax(scores, dim=-1).detach()
    return weights @ V

def causal_mask(n):
    return torch.full((n, n), float("-inf")).triu(1)

def debug(Q, K, V):
    print(manual_attention(Q, K, V).numpy())
"""


def test_a_graph_cut_by_detach_is_not_called_a_numpy_round_trip_even_with_numpy_elsewhere(spec, pool, tmp_path):
    pytest.importorskip("torch")
    result = _grade_source(tmp_path, "detach.py", DETACH_MIDDLE, spec, pool, "manual_attention", backend="torch")
    ex = result.exercises[0]
    assert ex.failed_cases and all(c.property == "gradients_match" for c in ex.failed_cases)
    assert ex.diagnoses == [] and ex.diagnosis_note


def test_code_that_always_raises_gets_no_name_from_models_that_also_raise(spec, pool, tmp_path):
    source = "import numpy as np\n\ndef manual_attention(Q, K, V, mask=None):\n    return Q @ V\n"
    result = _grade_source(tmp_path, "raises.py", source, spec, pool, "manual_attention")
    ex = result.exercises[0]
    assert ex.failed_cases and ex.diagnoses == []


# ---------------------------------------------------------------- designed probes

OWN_TRIL = (CORPUS / "heldout" / "loops_own_tril_mask.py").read_text()
MASK_CASES = ("ma.mask.random_blocks",)


class _NoProbes:
    """A prober whose probes all return nothing (as if each crashed)."""

    def __init__(self, *args, **kwargs):
        pass

    def run(self, probes):
        for p in probes:
            p.status = "crashed"


def _verdict(result):
    ex = result.exercises[0]
    return ([d.id for d in ex.diagnoses], ex.diagnosis_note, ex.diagnosis_facts, result.score, [(c.case_id, c.outcome, c.points) for c in ex.cases])


def _mask_case_ids(spec):
    return tuple(c.id for c in spec.cases if c.id in MASK_CASES)


def test_a_probe_names_what_the_case_outputs_leave_open(spec, pool, tmp_path, monkeypatch):
    """With only masked calls, 'builds its own causal mask when given one' and 'always causal'
    give the same outputs; the probe without a mask (V = I) tells them apart."""
    cases = _mask_case_ids(spec)
    assert cases
    import attnspec.grade

    with monkeypatch.context() as m:
        m.setattr(attnspec.grade, "SessionProber", _NoProbes)
        alone = _grade_source(tmp_path, "own_tril.py", OWN_TRIL, spec, pool, "manual_attention", case_ids=cases)
    ex = alone.exercises[0]
    assert ex.diagnoses == [] and ex.diagnosis_note.startswith("Several different mistakes"), ex.diagnosis_note
    assert "ma.always_causal" in ex.diagnosis_note and "ma.mask_own_causal" in ex.diagnosis_note
    probed = _grade_source(tmp_path, "own_tril.py", OWN_TRIL, spec, pool, "manual_attention", case_ids=cases)
    (d,) = probed.exercises[0].diagnoses
    assert d.id == "ma.mask_own_causal"
    by_name = {p["probe"]: p for p in d.evidence["probes"]}
    assert by_name["identity_values_no_mask"]["status"] == "ok" and by_name["identity_values_no_mask"]["reproduced"]
    assert not by_name["identity_values_no_mask"]["differs_from_reference"]  # without a mask the learner is right: not always causal
    assert d.evidence["failed_cases"] and all(not c.startswith("probe:") for c in d.evidence["failed_cases"])
    # scores never depend on probes
    assert probed.score == alone.score and _verdict(probed)[4] == _verdict(alone)[4]


CRASH_ON_PROBE = OWN_TRIL.replace(
    "    B, H, Tq, d = Q.shape\n",
    "    B, H, Tq, d = Q.shape\n    if V.shape[-1] == V.shape[-2] and np.array_equal(V[0, 0], np.eye(V.shape[-1])):\n        import os\n        os._exit(3)\n",
)


def test_a_crashing_probe_changes_neither_verdict_nor_scores(spec, pool, tmp_path, monkeypatch):
    cases = _mask_case_ids(spec)
    import attnspec.grade

    assert CRASH_ON_PROBE != OWN_TRIL
    crashed = _grade_source(tmp_path, "crash.py", CRASH_ON_PROBE, spec, pool, "manual_attention", case_ids=cases)
    with monkeypatch.context() as m:
        m.setattr(attnspec.grade, "SessionProber", _NoProbes)
        alone = _grade_source(tmp_path, "crash.py", CRASH_ON_PROBE, spec, pool, "manual_attention", case_ids=cases)
    assert _verdict(crashed) == _verdict(alone)
    assert crashed.exercises[0].diagnoses == [] and crashed.exercises[0].diagnosis_note.startswith("Several different mistakes")


def test_one_hot_queries_solve_an_unusual_scale_exactly(spec):
    """The scale is read in closed form from the one-hot-queries probe (in process: trusted code)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "diagnosis_ambiguity.py"
    mod_spec = importlib.util.spec_from_file_location("diagnosis_ambiguity", path)
    amb = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(amb)
    result = amb.grade_in_process(spec, "manual_attention", {"scale": 0.0137}, "numpy", True, {"ma.reference.fixed"})
    (d,) = result.diagnoses
    assert d.id == "ma.scale_other" and abs(d.params["scale"] - 0.0137) < 1e-5
    assert any(p["probe"] == "one_hot_queries" and p["reproduced"] for p in d.evidence["probes"])


def test_a_function_that_returns_nothing_is_a_missing_return_not_a_wrong_array_type(spec, pool, tmp_path):
    pytest.importorskip("torch")
    path = tmp_path / "no_return.py"
    path.write_text(
        "import math\nimport torch\n\n"
        "def manual_attention(Q, K, V, mask=None):\n"
        "    s = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])\n"
        "    out = torch.softmax(s if mask is None else s + mask, dim=-1) @ V\n"
    )
    ex = grade(str(path), spec, GradeOptions(exercises=("manual_attention",)), pool).exercises[0]
    assert ex.failed_cases and [d.id for d in ex.diagnoses] == [], ex.diagnoses
    array_type = next(c for c in ex.cases if c.property == "output_array_type")
    assert {i.likely for i in array_type.instances} == {"a missing return statement [hint.missing_return]"}


def test_a_block_that_calls_its_own_correct_attention_is_not_told_its_attention_is_wrong(spec, pool):
    """The residual is taken from LN(x) instead of x. 'No attention residual' plus 'the attention
    returns x + edit' reproduces that, but the learner's multi_head_attention passed every case
    of its own and the block calls it: no mistake inside it is named."""
    result = grade(str(Path(__file__).parent / "submissions" / "block_residual_from_ln.py"), spec, GradeOptions(backend="numpy"), pool)
    exercises = {e.exercise: e for e in result.exercises}
    assert not exercises["multi_head_attention"].failed_cases
    block = exercises["transformer_block"]
    assert block.failed_cases
    assert not [d.id for d in block.diagnoses if d.id.startswith("block.mha.")], block.diagnoses
