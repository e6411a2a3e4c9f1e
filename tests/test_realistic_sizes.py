"""Realistic-size cases (GPT-2 small) and their `time_factor`: correct vectorised code passes them,
correct but loop-by-loop code fails them with how much slower it is and where the time went."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from attnspec import timing
from attnspec.exercises import EXERCISES
from attnspec.grade import GradeOptions, grade
from attnspec.loader import load_spec
from attnspec.protocol import CallReply

ROOT = Path(__file__).resolve().parent.parent
SLOW = ROOT / "tests" / "submissions" / "slow_loops.py"


@pytest.fixture
def realistic(monkeypatch):
    monkeypatch.setenv(timing.SKIP_ENV, "0")
    return load_spec()


def test_every_exercise_has_realistic_timed_cases_at_gpt2_small_sizes(realistic):
    timed = [c for c in realistic.cases if c.time_factor is not None]
    on_arrays = {e.name for e in EXERCISES.values() if e.array_inputs}  # (causal_mask and the count take ints)
    assert on_arrays >= {"manual_attention", "multi_head_attention", "transformer_block", "post_norm_block", "transformer_stack"}
    assert {c.exercise for c in timed} == on_arrays
    for case in timed:
        shapes = case.inputs.shapes
        assert shapes["batch"] == 2 and shapes.get("n_heads") == 12, case.id
        assert shapes.get("d_model", 768) == 768 and shapes.get("d_head", 64) == 64, case.id
        seq = [v for k, v in shapes.items() if k.startswith("seq")]
        assert all(min(s) >= 128 if isinstance(s, tuple) else s >= 128 for s in seq), case.id
        assert case.examples <= 2 or not case.inputs.is_drawn, case.id
    assert any(c.inputs.mask == "causal" for c in timed if c.exercise == "transformer_block")


def test_the_skip_switch_drops_only_timed_cases(monkeypatch, realistic):
    monkeypatch.setenv(timing.SKIP_ENV, "1")
    quick = load_spec()
    assert {c.id for c in realistic.cases} - {c.id for c in quick.cases} == {c.id for c in realistic.cases if c.time_factor is not None}


@pytest.mark.parametrize("path", ["examples/correct_numpy.py", "examples/correct_torch.py", "tests/submissions/correct.py"])
def test_vectorised_submissions_pass_the_realistic_cases(realistic, path):
    ids = tuple(c.id for c in realistic.cases if c.time_factor is not None)
    result = grade(str(ROOT / path), realistic, GradeOptions(case_ids=ids))
    cases = [c for e in result.exercises for c in e.cases if c.case_id in ids]
    assert cases, path
    assert all(c.outcome == "passed" for c in cases), [(c.case_id, [i.message for i in c.instances]) for c in cases if c.outcome != "passed"]


def test_a_python_loop_implementation_fails_with_how_much_slower_and_its_loop_line(realistic):
    result = grade(str(SLOW), realistic, GradeOptions(case_ids=("ma.realistic.values", "ma.reference.fixed")))
    cases = {c.case_id: c for e in result.exercises for c in e.cases}
    assert cases["ma.reference.fixed"].outcome == "passed"  # right values at toy sizes
    inst = cases["ma.realistic.values"].instances[0]
    assert cases["ma.realistic.values"].outcome == "failed" and inst.failure["kind"] == "slow"
    ev = inst.failure["evidence"]
    # the numbers of the message are consistent with each other
    assert ev["seconds"] > ev["allowed"] == pytest.approx(max(ev["floor"], ev["factor"] * ev["reference_seconds"]), rel=1e-3, abs=1e-3)
    assert ev["factor"] == 20 and ev["floor"] >= timing.TIME_FLOOR_S
    assert ev["ratio"] == pytest.approx(ev["seconds"] / ev["reference_seconds"], rel=0.01)
    assert ev["sizes"] == "batch 2, n_heads 12, seq_q 128, seq_k 128, d_head 64, d_v 64"
    text = inst.message
    assert "the reference takes" in text and "x slower" in text and "allowed 20x" in text
    assert f"{ev['ratio']:,.0f}x slower" in text
    # where the time went: the loop, with the submission's own source line
    lines = SLOW.read_text().splitlines()
    loop = next(i for i, t in enumerate(lines, 1) if t.strip() == "for b in range(batch):")
    hot = ev["hotspots"][0]
    assert hot["line"] == loop and hot["loop"] and hot["source"] == "for b in range(batch):"
    assert f"in the loop at line {loop}: `for b in range(batch):`" in text
    assert "s += float(Q[b, h, i, d]) * float(K[b, h, j, d])" in text  # the hottest line inside it
    # the call was stopped well before the case's hard limit, so the budget is not spent on it
    assert cases["ma.realistic.values"].duration < 15


def test_hotspots_group_lines_by_their_outermost_loop_and_quote_the_source():
    source = "def f(x):\n    total = 0\n    for i in range(3):\n        for j in range(4):\n            total += i * j\n    return total\n"
    samples = [{"file": "s.py", "line": 5, "count": 80}, {"file": "s.py", "line": 4, "count": 7}, {"file": "s.py", "line": 6, "count": 13}]
    hot = timing.hotspots(samples, {"s.py": source})
    assert hot[0]["line"] == 3 and hot[0]["share"] == 0.87 and hot[0]["hottest_line"] == 5
    assert timing.hotspot_text(hot) == "87 % of the time in the loop at line 3: `for i in range(3):`, most of it in line 5: `total += i * j` (80 %)"
    assert hot[1]["line"] == 6 and not hot[1]["loop"]
    assert timing.hotspots([], {"s.py": source}) == []


def test_the_reply_carries_samples_within_bounds():
    reply = CallReply.parse({"status": "ok", "samples": [{"file": "s.py", "line": 3, "count": 2}], "sample_interval": 0.01, "stopped": 1.5})
    assert reply.samples[0].line == 3 and reply.stopped == 1.5
    assert math.isclose(timing.allowed_seconds(20, 0.01), timing.TIME_FLOOR_S)


def test_a_vectorised_stack_passes_its_realistic_case(realistic, tmp_path):
    from test_transformer_stack import _BLOCK, CORRECT_LOOP

    path = tmp_path / "stack.py"
    path.write_text(_BLOCK + "\n\ndef transformer_stack(x, layers, n_heads, mask=None):\n" + CORRECT_LOOP + "\n")
    result = grade(str(path), realistic, GradeOptions(case_ids=("stack.realistic.causal",), exercises=("transformer_stack",)))
    (case,) = [c for e in result.exercises for c in e.cases]
    assert case.case_id == "stack.realistic.causal" and case.passed, case.message


def test_the_floor_counts_every_array_sent_including_a_stacks_layers():
    import numpy as np

    from attnspec.inputs import Inputs

    x = np.zeros((2, 128, 768))
    layer = {"W_Q": np.zeros((768, 768)), "b_in": np.zeros(3072)}
    dims = {"batch": 2, "seq": 128, "d_model": 768, "n_heads": 12, "d_ff": 3072, "n_layers": 2}
    one = Inputs("transformer_stack", {"x": x, "layers": [layer], "n_heads": 12, "mask": None}, dims, "none")
    two = Inputs("transformer_stack", {"x": x, "layers": [layer, layer], "n_heads": 12, "mask": None}, dims, "none")
    per_layer = (768 * 768 + 3072) * 8 / 1e6
    assert math.isclose(timing.input_megabytes(one), x.size * 8 / 1e6 + per_layer)
    assert math.isclose(timing.input_megabytes(two) - timing.input_megabytes(one), per_layer)
    assert timing.floor_seconds(two) > timing.floor_seconds(one) > timing.TIME_FLOOR_S
