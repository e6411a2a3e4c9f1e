"""The pytest plugin (`pytest --attnspec SUBMISSION`), run in pytest subprocesses on a small spec.

The spec and submissions are written into pytester's folder, so these tests do not depend on the
shipped spec. The plugin starts worker processes, hence runpytest_subprocess throughout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

SPEC = """\
spec_version: 1
exercise: manual_attention
defaults:
  tolerances:
    float64: {atol: 1.0e-10, rtol: 1.0e-08}
  dtypes: [float64]
rules:
  points: 1
  forbidden:
  - call: torch.nn.functional.scaled_dot_product_attention
    reason: write the attention yourself
cases:
- id: ma.values.small
  title: the output equals the reference
  property: matches_reference
  inputs:
    shapes: {batch: 2, n_heads: 3, seq_q: 5, seq_k: 7, d_head: 4, d_v: 6}
    mask: none
    seed: 0
- id: ma.mask.future_independence
  title: causal outputs ignore later tokens
  property: mask_future_independence
  inputs:
    shapes: {batch: 2, n_heads: 3, seq_q: 5, seq_k: 5, d_head: 4, d_v: 6}
    mask: causal
    seed: 1
- id: ma.shape.basic
  title: the output has the contract's shape
  property: output_shape
  inputs:
    shapes: {batch: 2, n_heads: 3, seq_q: 4, seq_k: 5, d_head: 6, d_v: 7}
    mask: none
    seed: 2
- id: ma.scale.sqrt_d
  title: scores are divided by sqrt(d_head)
  property: scale_discrimination
  inputs:
    shapes: {batch: 2, n_heads: 3, seq_q: 4, seq_k: 5, d_head: 16, d_v: 6}
    mask: none
    seed: 3
"""

GOOD = """\
import numpy as np


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True) @ V
"""

NO_SCALING = GOOD.replace(" / np.sqrt(Q.shape[-1])", "")
FLAGS = ["--attnspec-no-builtin", "--attnspec-spec", "spec", "-p", "no:cacheprovider"]
IDS = [
    "manual_attention::status",
    "manual_attention::ma.values.small[numpy]",
    "manual_attention::ma.mask.future_independence[numpy]",
    "manual_attention::ma.shape.basic[numpy]",
    "manual_attention::ma.scale.sqrt_d[numpy]",
    "manual_attention::manual_attention.implementation_rules",
]


@pytest.fixture
def tmp(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "spec").mkdir()
    (pytester.path / "spec" / "ma.yaml").write_text(SPEC, encoding="utf-8")
    pytester.makepyfile(good=GOOD, no_scaling=NO_SCALING, empty="import numpy as np\n")
    return pytester


def run(pytester: pytest.Pytester, submission: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--attnspec", submission, *FLAGS, *args)


def test_collects_one_item_per_case_and_backend_with_readable_ids(tmp: pytest.Pytester) -> None:
    result = run(tmp, "good.py", "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if line.startswith("good.py::")]
    assert ids == [f"good.py::{i}" for i in IDS]
    assert result.ret == pytest.ExitCode.OK


def test_correct_submission_passes_every_item(tmp: pytest.Pytester) -> None:
    result = run(tmp, "good.py", "-v")
    result.assert_outcomes(passed=len(IDS))
    result.stdout.fnmatch_lines(["good.py::manual_attention::ma.values.small[[]numpy[]] PASSED*", "manual_attention: 5/5 points, 5 of 5 cases passed"])


def test_notebook_submission_is_collected_too(tmp: pytest.Pytester) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Attention"), nbformat.v4.new_code_cell(GOOD)]
    nbformat.write(nb, str(tmp.path / "good.ipynb"))
    run(tmp, "good.ipynb").assert_outcomes(passed=len(IDS))


def test_k_selects_items_and_only_their_cases_are_graded(tmp: pytest.Pytester) -> None:
    result = run(tmp, "good.py", "-k", "future_independence or scale_discrimination")
    result.assert_outcomes(passed=2, deselected=4)
    # The summary counts what was graded: the two selected cases, no rules, no others.
    result.stdout.fnmatch_lines(["manual_attention: 2/2 points, 2 of 2 cases passed"])


def test_x_stops_at_the_first_failure(tmp: pytest.Pytester) -> None:
    result = run(tmp, "no_scaling.py", "-x")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_failures_carry_the_messages_of_attnspec_grade(tmp: pytest.Pytester) -> None:
    result = run(tmp, "no_scaling.py", "-ra")
    result.assert_outcomes(passed=4, failed=2)
    cli = subprocess.run(
        [sys.executable, "-m", "attnspec", "grade", "no_scaling.py", "--spec", "spec", "--no-builtin", "--format", "json"],
        cwd=tmp.path, capture_output=True, text=True, timeout=120,
    )
    report = json.loads(cli.stdout)
    failed = [c for e in report["exercises"] for c in e["cases"] if c["outcome"] == "failed"]
    assert {c["case_id"] for c in failed} == {"ma.values.small", "ma.scale.sqrt_d"}
    out = result.stdout.str()
    for case in failed:
        bad = next(i for i in case["instances"] if i["outcome"] != "passed")
        assert bad["message"].splitlines()[0] in out
        assert f"Reproduce: {case['repro']}" in out
        if bad["likely"]:
            assert f"Likely mistake: {bad['likely']}" in out
    result.stdout.fnmatch_lines(["FAILED no_scaling.py::manual_attention::ma.scale.sqrt_d[[]numpy[]] - out differs*"])
    assert "Traceback" not in out and "pytest_plugin.py" not in out


def test_missing_function_is_one_failing_item(tmp: pytest.Pytester) -> None:
    result = run(tmp, "empty.py", "-ra")
    result.assert_outcomes(failed=1, skipped=len(IDS) - 1)
    result.stdout.fnmatch_lines(["FAILED empty.py::manual_attention::status - manual_attention is not*"])
    # With the status item deselected, the case items report it instead of passing by skipping.
    run(tmp, "empty.py", "-k", "values").assert_outcomes(failed=1, deselected=len(IDS) - 1)


def test_backend_the_submission_does_not_handle_is_skipped_with_the_reason(tmp: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    result = run(tmp, "good.py", "--attnspec-backend", "both", "-ra")
    result.assert_outcomes(passed=len(IDS), skipped=4)
    result.stdout.fnmatch_lines(["SKIPPED [[]4[]] good.py*: not graded on torch: with torch inputs it *"])


def test_a_grading_error_fails_the_status_item_without_a_traceback(tmp: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp.mkdir("broken") / "torch"
    broken.mkdir()
    (broken / "__init__.py").write_text('raise ImportError("torch is broken here")\n', encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    result = run(tmp, "good.py", "--attnspec-backend", "torch", "-ra")
    result.assert_outcomes(failed=1, skipped=len(IDS) - 1)
    result.stdout.fnmatch_lines(["grading failed: PyTorch could not be imported in the worker: ImportError: torch is broken here"])
    assert "Traceback" not in result.stdout.str()


def test_an_invalid_spec_is_one_clear_failure(tmp: pytest.Pytester) -> None:
    (tmp.path / "spec" / "broken.yaml").write_text("spec_version: 1\ncases:\n- id: Bad Id\n", encoding="utf-8")
    result = run(tmp, "good.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["the spec is invalid:", "spec/broken.yaml:*"])
    assert "Traceback" not in result.stdout.str()


def test_bad_options_are_usage_errors(tmp: pytest.Pytester) -> None:
    result = run(tmp, "missing.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--attnspec missing.py: no such file*"])


def test_without_the_option_the_plugin_adds_nothing_and_imports_nothing_heavy(tmp: pytest.Pytester) -> None:
    tmp.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = tmp.runpytest_subprocess("--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == ["test_plain.py::test_plain"]
    probe = textwrap.dedent(
        """
        import sys, pytest
        assert pytest.main(["-q", "-p", "no:cacheprovider", "test_plain.py"]) == 0
        assert "attnspec.pytest_plugin" in sys.modules, "the entry point did not load the plugin"
        heavy = sorted(m for m in sys.modules if m in ("numpy", "torch", "yaml") or m.startswith("attnspec.") and m != "attnspec.pytest_plugin")
        assert not heavy, heavy
        """
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp.path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
