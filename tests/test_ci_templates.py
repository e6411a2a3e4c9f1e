"""The CI templates under exercises/ci/: the Gradescope scripts and the GitHub Actions workflow.

run_autograder runs for real against a fake autograder tree in a temporary directory
(AUTOGRADER_ROOT), with the attnspec of this Python; setup.sh runs in its dry-run mode, since
installing packages is not something a test may do. The workflow's grading step is extracted
from the YAML and run with bash on a fake course repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "exercises" / "ci"
RUN_AUTOGRADER = CI / "gradescope" / "run_autograder"
SETUP = CI / "gradescope" / "setup.sh"
WORKFLOW = CI / "github" / "attnspec.yml"
STARTER = ROOT / "exercises" / "starters" / "numpy" / "manual_attention.py"
TEST_SPEC = ROOT / "tests" / "specs" / "exercises"
SCHEMA = json.loads((ROOT / "harness" / "schemas" / "gradescope.schema.json").read_text())
BIN = str(Path(sys.executable).parent)
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

CORRECT = '''
import math

import numpy as np


def causal_mask(seq_len):
    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + np.asarray(mask).astype(scores.dtype)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True) @ V
'''


def torch_pin() -> str:
    text = (ROOT / "constraints.txt").read_text()
    return re.search(r"^torch==(\S+)", text, re.M).group(1)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTNSPEC", "SUBMISSION", "AUTOGRADER"))}
    env["PATH"] = os.pathsep.join([BIN, "/usr/bin", "/bin"])
    env.update(extra)
    return env


def autograde(root: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([BASH, str(RUN_AUTOGRADER)], env=base_env(AUTOGRADER_ROOT=str(root), **env), capture_output=True, text=True, timeout=120)
    results = root / "results" / "results.json"
    assert results.exists(), proc.stdout + proc.stderr
    data = json.loads(results.read_text())
    jsonschema.validate(data, SCHEMA)
    return proc, data


def submit(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / "submission" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


FAST_SPEC = {"ATTNSPEC_ARGS": "--no-builtin", "ATTNSPEC_SPEC_DIRS": str(TEST_SPEC), "ATTNSPEC_EXERCISES": "manual_attention"}


# ---------------------------------------------------------------- run_autograder


def test_scripts_parse_and_are_executable():
    for script in (RUN_AUTOGRADER, SETUP):
        assert subprocess.run([BASH, "-n", str(script)], capture_output=True).returncode == 0, script
        assert os.access(script, os.X_OK), f"{script} must be executable (Gradescope runs it directly)"


def test_untouched_starter_scores_zero_with_a_not_implemented_test(tmp_path):
    submit(tmp_path, {"manual_attention.py": STARTER.read_text()})
    proc, data = autograde(tmp_path, ATTNSPEC_EXERCISES="manual_attention")
    assert proc.returncode == 0
    assert data["score"] == 0
    names = [t["name"] for t in data["tests"]]
    assert any(n.startswith("manual_attention: not implemented") for n in names), names
    assert data["extra_data"]["attnspec_status"] == "graded"


def test_correct_submission_gets_full_marks_with_the_course_spec(tmp_path):
    submit(tmp_path, {"manual_attention.py": CORRECT})
    proc, data = autograde(tmp_path, **FAST_SPEC)
    graded = [t for t in data["tests"] if "max_score" in t]
    assert graded and all(t["status"] == "passed" for t in graded), [t["output"] for t in graded if t["status"] != "passed"]
    assert data["score"] == sum(t["max_score"] for t in graded) > 0
    assert any(t["name"].startswith("manual_attention: ") and "[ex.ma." in t["name"] for t in graded), "the course spec's cases were graded"


def test_the_file_that_defines_the_exercise_is_graded_not_a_helper(tmp_path):
    submit(tmp_path, {"a_notes.py": "print('not the solution')\n", "work/manual_attention.py": CORRECT, "zz/other.ipynb": "{}"})
    proc, data = autograde(tmp_path, **FAST_SPEC)
    assert "grading work/manual_attention.py (manual_attention)" in proc.stdout
    assert data["score"] > 0


def test_no_file_defining_the_exercise_is_explained(tmp_path):
    submit(tmp_path, {"one.py": "x = 1\n", "two.py": "def helper():\n    return 2\n"})
    _, data = autograde(tmp_path, ATTNSPEC_EXERCISES="manual_attention")
    assert data["score"] == 0
    assert "No file in the submission defines manual_attention()" in data["output"]
    assert "def manual_attention(Q, K, V, mask=None)" in data["output"]
    assert "one.py" in data["output"] and "two.py" in data["output"]
    assert str(tmp_path) not in json.dumps(data)


def test_empty_submission_is_explained(tmp_path):
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "README.txt").write_text("oops")
    _, data = autograde(tmp_path)
    assert data["score"] == 0
    assert "no .py file or .ipynb notebook" in data["output"]
    assert str(tmp_path) not in json.dumps(data)


def test_attnspec_missing_still_leaves_results(tmp_path):
    submit(tmp_path, {"manual_attention.py": CORRECT})
    proc, data = autograde(tmp_path, PATH="/usr/bin:/bin", ATTNSPEC="attnspec-not-installed-here")
    assert proc.returncode == 0
    assert data["score"] == 0
    assert "attnspec is not installed" in data["output"]
    assert data["tests"][0]["status"] == "failed"


def test_attnspec_crashing_still_leaves_results(tmp_path):
    fake = tmp_path / "bin" / "attnspec"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "Traceback: ImportError: numpy is broken" >&2\nexit 3\n')
    fake.chmod(0o755)
    submit(tmp_path, {"manual_attention.py": CORRECT})
    _, data = autograde(tmp_path, ATTNSPEC=str(fake))
    assert data["score"] == 0
    assert "exit code 3" in data["output"]
    assert "numpy is broken" in data["output"]


def test_stale_results_from_an_earlier_run_are_not_reused(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.json").write_text('{"score": 100}')
    fake = tmp_path / "bin" / "attnspec"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 2\n")
    fake.chmod(0o755)
    submit(tmp_path, {"manual_attention.py": CORRECT})
    _, data = autograde(tmp_path, ATTNSPEC=str(fake))
    assert data["score"] == 0


# ---------------------------------------------------------------- setup.sh


def _dry_setup(tmp_path: Path, **env: str) -> str:
    proc = subprocess.run([BASH, str(SETUP)], env=base_env(AUTOGRADER_ROOT=str(tmp_path), DRY_RUN="1", SKIP_APT="1", **env), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_setup_installs_the_shipped_copy_with_the_torch_pin(tmp_path):
    out = _dry_setup(tmp_path)
    install = [line for line in out.splitlines() if "pip install --constraint" in line]
    assert len(install) == 1, out
    assert f"{tmp_path}/source/attnspec\\[torch\\]" in install[0] or f"{tmp_path}/source/attnspec[torch]" in install[0]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in install[0]
    assert f"torch=={torch_pin()}" in out
    assert f"{tmp_path}/venv/bin/attnspec --version" in out


def test_setup_accepts_a_url_or_a_requirement(tmp_path):
    url = _dry_setup(tmp_path, ATTNSPEC_SOURCE="git+https://example.invalid/attnspec@v0.1.0")
    assert "attnspec\\[torch\\]\\ @\\ git+https://example.invalid/attnspec@v0.1.0" in url
    numpy_only = _dry_setup(tmp_path, ATTNSPEC_SOURCE="attnspec==0.1.0", ATTNSPEC_EXTRAS="")
    assert re.search(r"pip install .* attnspec==0\.1\.0$", numpy_only, re.M), numpy_only


# ---------------------------------------------------------------- the GitHub workflow


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["grade"]["steps"]


def test_workflow_runs_on_push_with_python_311_and_the_pin(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "push" in triggers
    setup = next(s for s in _steps(workflow) if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert workflow["env"]["TORCH_VERSION"] == torch_pin()


def test_workflow_grades_once_to_json_then_renders_for_github_and_uploads_always(workflow):
    steps = _steps(workflow)
    grade = next(s for s in steps if s.get("id") == "grade")
    assert "--format json" in grade["run"]
    assert 'attnspec autograder github "${reports[@]}" --min-score "$MIN_SCORE" --junit-dir reports' in grade["run"]
    assert "args+=(--sandbox strict)" in grade["run"]  # learner code only inside the sandbox, or not at all
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()", "the reports must be uploaded even when grading fails the job"
    assert upload["with"]["path"].rstrip("/") == "reports"
    assert steps.index(upload) > steps.index(grade)


SCALE_AFTER_SOFTMAX = CORRECT.replace(
    "    scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])\n",
    "    scores = Q @ np.swapaxes(K, -1, -2)\n",
).replace("return weights / weights.sum(axis=-1, keepdims=True) @ V", "return (weights / weights.sum(axis=-1, keepdims=True)) / math.sqrt(Q.shape[-1]) @ V")


def _commands(stdout: str, name: str) -> list[dict]:
    """Parse ::name key=value,...::message workflow commands (GitHub's escaping undone)."""
    out = []
    for line in stdout.splitlines():
        m = re.match(rf"::{name}(?: (?P<props>[^:]*))?::(?P<msg>.*)$", line)
        if not m:
            continue
        unescape = lambda t: t.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")  # noqa: E731
        props = dict(p.split("=", 1) for p in (m.group("props") or "").split(",") if p)
        out.append({**{k: unescape(v) for k, v in props.items()}, "message": unescape(m.group("msg"))})
    return out


def test_workflow_grading_step_fails_below_the_threshold(workflow, tmp_path):
    script = next(s for s in _steps(workflow) if s.get("id") == "grade")["run"]
    for student, text in (("alice", STARTER.read_text()), ("bob", CORRECT), ("carol", SCALE_AFTER_SOFTMAX)):
        (tmp_path / "submissions" / student).mkdir(parents=True)
        (tmp_path / "submissions" / student / "manual_attention.py").write_text(text)
    env = base_env(**{k: str(v) for k, v in workflow["env"].items()})
    summary_file = tmp_path / "summary.md"
    env.update(MIN_SCORE="80", ATTNSPEC_ARGS=f"--no-builtin --spec {TEST_SPEC}", GITHUB_STEP_SUMMARY=str(summary_file), GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(tmp_path))
    proc = subprocess.run([BASH, "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr

    # The log: every text report in a collapsed group.
    groups = re.findall(r"^::group::attnspec report: (\S+)$", proc.stdout, re.M)
    assert sorted(groups) == [f"submissions/{s}/manual_attention.py" for s in ("alice", "bob", "carol")]
    assert proc.stdout.count("::endgroup::") == 3
    assert "Score" in proc.stdout or "points" in proc.stdout

    # Annotations: failed cases of alice and carol, at the line of their function; none for bob.
    errors = _commands(proc.stdout, "error")
    files = {e["file"] for e in errors}
    assert files == {"submissions/alice/manual_attention.py", "submissions/carol/manual_attention.py"}
    def_line = SCALE_AFTER_SOFTMAX.splitlines().index("def manual_attention(Q, K, V, mask=None):") + 1
    carol = [e for e in errors if "carol" in e["file"]]
    assert carol and all(e["line"] == str(def_line) for e in carol)
    assert any("[ex.ma.reference_causal]" in e["title"] for e in carol)
    assert any("scaling applied after the softmax" in e["message"] for e in carol), [e["message"] for e in carol]
    notices = _commands(proc.stdout, "notice")
    assert any(n["file"] == "submissions/bob/manual_attention.py" and "(passes)" in n["message"] for n in notices)

    # The job summary: scores, a named mistake, the failed cases.
    summary = summary_file.read_text()
    assert summary.startswith("## attnspec: 1 of 3 files passed")
    assert ":white_check_mark: `submissions/bob/manual_attention.py`" in summary
    assert ":x: `submissions/carol/manual_attention.py`" in summary
    assert "**Named mistakes**" in summary and "scaling applied after the softmax" in summary
    assert "`ex.ma.reference_causal`" in summary

    # The artifact: JSON and JUnit per file.
    reports = {p.name: ET.parse(p).getroot() for p in (tmp_path / "reports").glob("*.xml")}
    assert sorted(reports) == [f"submissions__{s}__manual_attention.py.xml" for s in ("alice", "bob", "carol")]

    def failures(root: ET.Element) -> int:
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        return sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)

    assert failures(reports["submissions__bob__manual_attention.py.xml"]) == 0
    assert failures(reports["submissions__alice__manual_attention.py.xml"]) > 0
    assert len(list((tmp_path / "reports").glob("*.json"))) == 3


def test_github_format_escapes_learner_text():
    from attnspec.reports import render
    from attnspec.reports.github import github_summary
    from attnspec.results import CaseResult, ExerciseResult, GradeResult, InstanceResult

    case = CaseResult("ma.x", "manual_attention", "a, title: with colons", "matches_reference", "visible", 1.0, 0.0, "failed",
                      [InstanceResult("numpy", "float64", "failed", "100% <script>|x|</script>\nsecond line")])
    ex = ExerciseResult("manual_attention", "graded", score=0.0, max_score=1.0, cases=[case], location="sub.py, line 7")
    result = GradeResult({"path": "dir/sub,1.py"}, {}, "graded", 0.0, 1.0, [ex])
    text = render(result, "github")
    error = _commands(text, "error")[0]
    assert error["file"] == "dir/sub,1.py" and error["line"] == "7" and error["title"] == "manual_attention: a, title: with colons [ma.x]"
    assert error["message"].startswith("100% <script>|x|</script>\nsecond line")
    error_lines = [line for line in text.splitlines() if line.startswith("::error")]
    assert len(error_lines) == 1 and "%0Asecond line" in error_lines[0] and "100%25" in error_lines[0]
    summary = github_summary(result)
    assert "<script>" not in summary and "&lt;script&gt;" in summary and "\\|x\\|" in summary


def test_learner_text_in_the_github_log_is_never_run_as_a_workflow_command():
    """A message that prints workflow commands (as the runner reads them: after leading spaces,
    ::name::, or the older ##[name]) is shown in the log but not run; only attnspec's own
    commands are, and the same report prints the same log."""
    from attnspec.reports import render
    from attnspec.results import CaseResult, ExerciseResult, GradeResult, InstanceResult

    forged = "x\n  ::notice title=attnspec score::38/38 points (passes)\n::stop-commands::zz\n::error::forged\n##[error]forged too\n::zz::"
    case = CaseResult("ma.x", "manual_attention", "title", "matches_reference", "visible", 1.0, 0.0, "failed", [InstanceResult("numpy", "float64", "failed", forged)])
    result = GradeResult({"path": "sub.py"}, {}, "graded", 0.0, 1.0, [ExerciseResult("manual_attention", "graded", score=0.0, max_score=1.0, cases=[case])])
    text = render(result, "github")
    assert text == render(result, "github")
    run, resume = [], None
    for line in text.splitlines():  # the runner's reading of the log
        line = line.lstrip()
        if resume is not None:
            resume = None if line == f"::{resume}::" else resume
            continue
        if line.startswith("::stop-commands::"):
            resume = line.split("::")[2]
        elif line.startswith(("::", "##[")):
            run.append(line)
    assert resume is None
    assert [c.split(" ")[0].split("::")[1] for c in run] == ["group", "endgroup", "error", "notice"], run
    assert "forged" not in "".join(c for c in run if not c.startswith("::error file=sub.py"))
    assert "::notice title=attnspec score::38/38" in text  # shown, as text
