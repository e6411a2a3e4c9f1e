"""`attnspec autograder gradescope`: the bundle, end to end on a fake /autograder tree.

The zip is built once, unpacked the way Gradescope does (zip into source/, run_autograder copied
to the root), setup.sh is run in its dry-run mode to check the install commands, and the install
itself is simulated by putting this test's own Python environment first on PATH (installing
packages is not something a test may do). run_autograder then grades a multi-file submission:
the solution, a helper module it imports, and an unrelated file that defines another exercise.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from attnspec.autograder import learner_repro, merge, select
from attnspec.results import ExerciseResult, GradeResult

ROOT = Path(__file__).resolve().parents[1]
TEST_SPEC = ROOT / "tests" / "specs" / "exercises"
SCHEMA = json.loads((ROOT / "harness" / "schemas" / "gradescope.schema.json").read_text())
BIN = str(Path(sys.executable).parent)
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

HELPER = '''
import numpy as np


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
'''

SOLUTION = '''
import math

import numpy as np

from softmax_helpers import softmax


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + np.asarray(mask).astype(scores.dtype)
    return softmax(scores * SCALE_BUG) @ V


SCALE_BUG = 1.0
'''

UNRELATED = '''
print("scratch work")


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    return x
'''

OVERRIDES = '''overrides_version: 1
course: {name: Test course}
cases:
  ex.ma.dtype: {points: 3}
'''


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("ATTNSPEC", "AUTOGRADER"))}
    out["PATH"] = os.pathsep.join([BIN, "/usr/bin", "/bin"])
    out.update(extra)
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    (tmp / "overrides.yaml").write_text(OVERRIDES)
    (tmp / "learner.txt").write_text("scipy\n")
    out = tmp / "autograder.zip"
    proc = subprocess.run(
        [sys.executable, "-m", "attnspec", "autograder", "gradescope", "--exercise", "manual_attention", "--backend", "numpy",
         "--spec", str(TEST_SPEC), "--no-builtin", "--overrides", str(tmp / "overrides.yaml"), "--learner-requirements", str(tmp / "learner.txt"), "--output", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def unpack(bundle: Path, root: Path) -> Path:
    """What Gradescope does with the zip: unpack it into source/, copy run_autograder to the root."""
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # zipfile does not restore permissions
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                (root / "source" / info.filename).chmod(mode)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    return root


def run_autograder(root: Path, files: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict]:
    for rel, text in files.items():
        (root / "submission" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / rel).write_text(text)
    proc = subprocess.run([str(root / "run_autograder")], env=env(AUTOGRADER_ROOT=str(root)), capture_output=True, text=True, timeout=300)
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, SCHEMA)
    return proc, data


def test_bundle_has_the_scripts_the_spec_pins_and_a_wheel(bundle):
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
        settings = zf.read("attnspec.env").decode()
        reqs = zf.read("requirements.txt").decode().split()
        wheel = next(n for n in names if n.startswith("attnspec-") and n.endswith(".whl"))
        import io

        inner = zipfile.ZipFile(io.BytesIO(zf.read(wheel))).namelist()
    assert {"setup.sh", "run_autograder", "overrides.yaml", "learner-requirements.txt", "spec/0-exercises/exercises.yaml"} <= set(names)
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert "ATTNSPEC_EXERCISES=manual_attention" in settings and "ATTNSPEC_NO_BUILTIN=1" in settings
    import numpy

    assert f"numpy=={numpy.__version__}" in reqs
    assert not any(r.startswith("torch") for r in reqs), "a --backend numpy course ships no torch"
    assert "attnspec/autograder.py" in inner and "attnspec/spec/overrides.schema.json" in inner


def test_setup_installs_requirements_wheel_and_learner_packages(bundle, tmp_path):
    root = unpack(bundle, tmp_path)
    proc = subprocess.run([BASH, str(root / "source" / "setup.sh")], env=env(AUTOGRADER_ROOT=str(root), DRY_RUN="1", SKIP_APT="1"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if " pip install " in line]
    assert f"--requirement {root}/source/requirements.txt" in lines[1]
    assert lines[2].endswith(".whl") and "--no-deps" in lines[2]
    assert "--constraint" in lines[3] and "learner-requirements.txt" in lines[3]
    assert not any("download.pytorch.org" in line for line in lines)


@pytest.mark.slow
def test_multi_file_submission_end_to_end(bundle, tmp_path):
    root = unpack(bundle, tmp_path)
    files = {"manual_attention.py": SOLUTION.replace("SCALE_BUG = 1.0", "SCALE_BUG = 2.0"), "softmax_helpers.py": HELPER, "scratch/notes.py": UNRELATED}
    proc, data = run_autograder(root, files)
    assert "grading manual_attention.py (manual_attention)" in proc.stdout, proc.stdout + proc.stderr
    names = [t["name"] for t in data["tests"]]
    assert names and all(n.startswith("manual_attention") for n in names), names  # the pasted mha is not graded
    failed = next(t for t in data["tests"] if "ex.ma.reference_causal" in t["name"])
    assert failed["status"] == "failed"
    assert "Reproduce: attnspec grade manual_attention.py --case ex.ma.reference_causal --backend numpy" in failed["output"]
    mask = next(t for t in data["tests"] if "ex.ma.dtype" in t["name"])
    assert mask["max_score"] == 3 and mask["status"] == "passed"  # the shipped overrides apply
    text = json.dumps(data)
    assert str(root) not in text and "/autograder" not in text and "--spec" not in text


@pytest.mark.slow
def test_correct_multi_file_submission_gets_full_marks(bundle, tmp_path):
    root = unpack(bundle, tmp_path)
    _, data = run_autograder(root, {"manual_attention.py": SOLUTION, "softmax_helpers.py": HELPER, "README.md": "hi"})
    graded = [t for t in data["tests"] if "max_score" in t]
    assert graded and all(t["status"] == "passed" for t in graded), [t["output"] for t in graded if t["status"] != "passed"]
    assert data["score"] == sum(t["max_score"] for t in graded)


def test_missing_solution_is_a_clear_message(bundle, tmp_path):
    root = unpack(bundle, tmp_path)
    _, data = run_autograder(root, {"softmax_helpers.py": HELPER, "scratch/notes.py": UNRELATED})
    assert data["score"] == 0
    assert "No file in the submission defines manual_attention()" in data["output"]
    assert "softmax_helpers.py" in data["output"] and "scratch/notes.py" in data["output"]
    assert str(root) not in json.dumps(data)


# ---------------------------------------------------------------- the pieces


def test_select_prefers_the_file_named_after_the_exercise(tmp_path):
    (tmp_path / "copy.py").write_text(SOLUTION)
    (tmp_path / "manual_attention.py").write_text(SOLUTION)
    (tmp_path / "mha.ipynb").write_text("not json")
    (tmp_path / "softmax_helpers.py").write_text(HELPER)
    plan, problem = select(tmp_path, ("manual_attention",))
    assert problem is None and plan == [("manual_attention.py", ["manual_attention"])]


def test_select_counts_a_def_cut_out_by_a_syntax_error(tmp_path):
    (tmp_path / "work.py").write_text("def manual_attention(Q, K, V, mask=None):\n    return Q @@ K\n")
    (tmp_path / "helper.py").write_text(HELPER)
    plan, problem = select(tmp_path, ("manual_attention",))
    assert problem is None and plan == [("work.py", ["manual_attention"])]


def test_select_two_exercises_in_two_files(tmp_path):
    (tmp_path / "a.py").write_text(SOLUTION)
    (tmp_path / "b.py").write_text(UNRELATED)
    plan, problem = select(tmp_path, ("manual_attention", "multi_head_attention"))
    assert problem is None and plan == [("a.py", ["manual_attention"]), ("b.py", ["multi_head_attention"])]


def test_learner_repro_drops_grader_paths():
    repro = "attnspec grade manual_attention.py --case ma.x --spec /autograder/source/spec/0-c --overrides /autograder/source/overrides.yaml --no-builtin --backend torch"
    assert learner_repro(repro, "work/manual attention.py") == "attnspec grade 'work/manual attention.py' --case ma.x --backend torch"


def test_merge_sums_the_exercises_of_several_files():
    def one(ex: str, score: float) -> GradeResult:
        return GradeResult({"path": ex}, {}, "graded", score, 4.0, [ExerciseResult(ex, "graded", score=score, max_score=4.0)], timings={"total": 1.0})

    merged = merge([one("multi_head_attention", 1.0), one("manual_attention", 3.0)])
    assert [e.exercise for e in merged.exercises] == ["manual_attention", "multi_head_attention"]
    assert (merged.score, merged.max_score) == (4.0, 8.0)


def test_select_without_configured_exercises_grades_what_the_files_define(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.py").write_text(UNRELATED)
    (tmp_path / "sub" / "helpers.py").write_text(HELPER)
    proc = subprocess.run([sys.executable, "-m", "attnspec", "autograder", "select", "--submission-dir", str(tmp_path / "sub"), "--results", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "mine.py\tmulti_head_attention\n"
    (tmp_path / "sub" / "mine.py").unlink()
    proc = subprocess.run([sys.executable, "-m", "attnspec", "autograder", "select", "--submission-dir", str(tmp_path / "sub"), "--results", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert proc.returncode == 1 and "No file in the submission defines manual_attention()" in json.loads((tmp_path / "r.json").read_text())["output"]
