"""The generated exercise starters: current, valid, and graded as the learner workflow expects.

The starters under exercises/starters/ are generated from exercises/source.yaml by
exercises/generate.py. These tests regenerate them and compare with the committed files, check
that notebooks validate and .py files compile, and grade every starter through the real CLI:
untouched, each reports its exercise as not implemented; filled in with a correct solution
(pasted where a learner would paste it), each passes.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from attnspec.exercises import BACKENDS, EXERCISE_NAMES, FUNCTIONS, HELPER_EXERCISE
from attnspec.reference import numpy_ref

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
GENERATOR = EXERCISES / "generate.py"
TEST_SPEC = ROOT / "tests" / "specs" / "exercises"
HAS_TORCH = importlib.util.find_spec("torch") is not None
STARTERS = [(b, e, s) for b in BACKENDS for e in EXERCISE_NAMES for s in (".py", ".ipynb")]
STARTER_IDS = [f"{b}/{e}{s}" for b, e, s in STARTERS]


def _load_generator():
    spec = importlib.util.spec_from_file_location("exercises_generate", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def starter_path(backend: str, exercise: str, suffix: str) -> Path:
    return EXERCISES / "starters" / backend / f"{exercise}{suffix}"


def needs_backend(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")


# ---------------------------------------------------------------- correct solutions

SOLUTIONS = {
    "numpy": {
        "causal_mask": """
            return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)
        """,
        "attention_param_count": """
            return 4 * d_model * d_head * n_heads * n_layers
        """,
        "manual_attention": """
            scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
            if mask is not None:
                scores = scores + np.asarray(mask).astype(scores.dtype)
            scores = scores - scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            return (weights / weights.sum(axis=-1, keepdims=True)) @ V
        """,
        "multi_head_attention": """
            batch, seq, d_model = x.shape
            d_head = d_model // n_heads

            def split(t):
                return t.reshape(batch, seq, n_heads, d_head).transpose(0, 2, 1, 3)

            heads = manual_attention(split(x @ W_Q), split(x @ W_K), split(x @ W_V), mask)
            return heads.transpose(0, 2, 1, 3).reshape(batch, seq, d_model) @ W_O
        """,
        "transformer_block": """
            p = params

            def ln(v, g, b):
                return (v - v.mean(axis=-1, keepdims=True)) / np.sqrt(v.var(axis=-1, keepdims=True) + 1e-5) * g + b

            def gelu(z):
                erf = np.vectorize(math.erf, otypes=[np.float64])
                return (0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))).astype(z.dtype)

            a = x + multi_head_attention(ln(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
            return a + gelu(ln(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
        """,
        "post_norm_block": """
            p = params

            def ln(v, g, b):
                return (v - v.mean(axis=-1, keepdims=True)) / np.sqrt(v.var(axis=-1, keepdims=True) + 1e-5) * g + b

            def gelu(z):
                erf = np.vectorize(math.erf, otypes=[np.float64])
                return (0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))).astype(z.dtype)

            a = ln(x + multi_head_attention(x, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask), p["ln1_g"], p["ln1_b"])
            return ln(a + gelu(a @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"], p["ln2_g"], p["ln2_b"])
        """,
        "transformer_stack": """
            h = x
            for params in layers:
                h = transformer_block(h, params, n_heads, mask)
            return h
        """,
    },
    "torch": {
        "causal_mask": """
            return torch.triu(torch.full((seq_len, seq_len), float("-inf")), diagonal=1)
        """,
        "attention_param_count": """
            return 4 * d_model * d_head * n_heads * n_layers
        """,
        "manual_attention": """
            scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
            if mask is not None:
                scores = scores + torch.as_tensor(mask).to(scores.dtype)
            return torch.softmax(scores, dim=-1) @ V
        """,
        "multi_head_attention": """
            batch, seq, d_model = x.shape
            d_head = d_model // n_heads

            def split(t):
                return t.reshape(batch, seq, n_heads, d_head).transpose(1, 2)

            heads = manual_attention(split(x @ W_Q), split(x @ W_K), split(x @ W_V), mask)
            return heads.transpose(1, 2).reshape(batch, seq, d_model) @ W_O
        """,
        "transformer_block": """
            p = params

            def ln(v, g, b):
                return (v - v.mean(dim=-1, keepdim=True)) / torch.sqrt(v.var(dim=-1, keepdim=True, correction=0) + 1e-5) * g + b

            def gelu(z):
                return 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))

            a = x + multi_head_attention(ln(x, p["ln1_g"], p["ln1_b"]), p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask)
            return a + gelu(ln(a, p["ln2_g"], p["ln2_b"]) @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"]
        """,
        "post_norm_block": """
            p = params

            def ln(v, g, b):
                return (v - v.mean(dim=-1, keepdim=True)) / torch.sqrt(v.var(dim=-1, keepdim=True, correction=0) + 1e-5) * g + b

            def gelu(z):
                return 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))

            a = ln(x + multi_head_attention(x, p["W_Q"], p["W_K"], p["W_V"], p["W_O"], n_heads, mask), p["ln1_g"], p["ln1_b"])
            return ln(a + gelu(a @ p["W_in"] + p["b_in"]) @ p["W_out"] + p["b_out"], p["ln2_g"], p["ln2_b"])
        """,
        "transformer_stack": """
            h = x
            for params in layers:
                h = transformer_block(h, params, n_heads, mask)
            return h
        """,
    },
}

RAISE_LINE = re.compile(r'^    raise NotImplementedError\("(\w+) is not implemented yet"\)$', re.M)
PASTE_BLOCK = re.compile(r"^# ---- Your (.+?) from exercises? .*?^# Only \w+ is graded in this file\.$", re.M | re.S)
COMMENTED_CODE = re.compile(r"^# (.+)$", re.M)


def _body(backend: str, name: str) -> str:
    return textwrap.indent(textwrap.dedent(SOLUTIONS[backend][name]).strip("\n"), "    ")


def fill(code: str, backend: str) -> str:
    """Replace every stub body with a solution, and paste earlier exercises where the starter asks."""

    def pasted(match: re.Match) -> str:
        names = match.group(1).split(" and ")
        return "\n\n\n".join(f"def {FUNCTIONS[n].signature}:\n{_body(backend, n)}" for n in names)

    code = PASTE_BLOCK.sub(pasted, code)
    return RAISE_LINE.sub(lambda m: _body(backend, m.group(1)), code)


def uncomment_code(code: str) -> str:
    """Turn `# statement` lines that parse as Python back into code (the scratch cells' examples)."""

    def maybe(match: re.Match) -> str:
        try:
            ast.parse(match.group(1))
        except SyntaxError:
            return match.group(0)
        return match.group(1)

    return COMMENTED_CODE.sub(maybe, code)


def write_filled(source: Path, target: Path, backend: str) -> None:
    if source.suffix == ".py":
        target.write_text(fill(source.read_text(encoding="utf-8"), backend), encoding="utf-8")
        return
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("id") in ("paste", "solution"):
            cell.source = fill(cell.source, backend)
        if cell.cell_type == "code" and cell.get("id") == "scratch":
            cell.source = uncomment_code(cell.source)
    nbformat.write(nb, target)


def code_of(path: Path) -> str:
    """The Python code of a .py file, or of a notebook's code cells."""
    if path.suffix == ".py":
        return path.read_text(encoding="utf-8")
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def grade_json(paths: list[Path], *args: str, cwd: Path, timeout: float = 120) -> tuple[int, dict[str, dict], str]:
    """Run `python -m attnspec grade ... --format json`; return (exit code, {file name: report}, stderr)."""
    out_dir = cwd / "reports"
    command = [sys.executable, "-m", "attnspec", "grade", *map(str, paths), "--format", "json", "--output-dir", str(out_dir), *args]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    reports = {p.name: json.loads((out_dir / f"{p.stem}.json").read_text()) for p in paths if (out_dir / f"{p.stem}.json").exists()}
    return proc.returncode, reports, proc.stdout + proc.stderr


def exercise_result(report: dict, exercise: str) -> dict:
    return next(e for e in report["exercises"] if e["exercise"] == exercise)


def _copies(tmp: Path, filled: bool) -> dict[tuple[str, str, str], Path]:
    """Each available starter, copied under a unique name (reports are named by file stem)."""
    copies = {}
    for backend, exercise, suffix in STARTERS:
        if backend == "torch" and not HAS_TORCH:
            continue
        target = tmp / f"{backend}_{exercise}_{suffix[1:]}{suffix}"
        if filled:
            write_filled(starter_path(backend, exercise, suffix), target, backend)
        else:
            shutil.copy(starter_path(backend, exercise, suffix), target)
        copies[(backend, exercise, suffix)] = target
    return copies


@pytest.fixture(scope="module")
def graded_untouched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("untouched")
    copies = _copies(tmp, filled=False)
    code, reports, output = grade_json(list(copies.values()), "--no-builtin", "--spec", str(TEST_SPEC), "--visible-only", "--jobs", "4", cwd=tmp)
    return code, {key: reports.get(path.name) for key, path in copies.items()}, output


@pytest.fixture(scope="module")
def graded_filled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("filled")
    copies = _copies(tmp, filled=True)
    code, reports, output = grade_json(list(copies.values()), "--no-builtin", "--spec", str(TEST_SPEC), "--jobs", "4", cwd=tmp)
    return code, {key: reports.get(path.name) for key, path in copies.items()}, output, copies


# ---------------------------------------------------------------- generation


def test_committed_starters_match_a_fresh_generation(tmp_path):
    proc = subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    fresh = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "starters").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(EXERCISES).as_posix() for p in (EXERCISES / "starters").rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb"))
    assert fresh == committed, "the committed starters are not the generated set; run: python exercises/generate.py"
    stale = [rel for rel in fresh if (tmp_path / rel).read_bytes() != (EXERCISES / rel).read_bytes()]
    assert not stale, f"stale starter file(s): {', '.join(stale)}; run: python exercises/generate.py"


def test_generation_is_deterministic():
    assert generate.render_all() == generate.render_all()
    assert generate.differences(generate.render_all(), EXERCISES) == []


def test_check_lists_stale_missing_and_unexpected_files_and_writes_nothing(tmp_path):
    shutil.copytree(EXERCISES / "starters", tmp_path / "starters")
    stale = tmp_path / "starters" / "numpy" / "manual_attention.py"
    stale.write_text(stale.read_text() + "# edited by hand\n")
    (tmp_path / "starters" / "torch" / "transformer_block.ipynb").unlink()
    (tmp_path / "starters" / "numpy" / "old_exercise.py").write_text("pass\n")
    before = stale.read_bytes()

    check = subprocess.run([sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 1
    assert "stale: " in check.stdout and "numpy/manual_attention.py" in check.stdout
    assert "missing: " in check.stdout and "torch/transformer_block.ipynb" in check.stdout
    assert "unexpected: " in check.stdout and "numpy/old_exercise.py" in check.stdout
    assert stale.read_bytes() == before
    assert not (tmp_path / "starters" / "torch" / "transformer_block.ipynb").exists()

    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, capture_output=True, timeout=60)
    again = subprocess.run([sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout
    assert not (tmp_path / "starters" / "numpy" / "old_exercise.py").exists()


def test_source_rejects_a_missing_exercise(tmp_path):
    data = yaml.safe_load((EXERCISES / "source.yaml").read_text())
    data["exercises"] = data["exercises"][:2]
    bad = tmp_path / "source.yaml"
    bad.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, str(GENERATOR), "--source", str(bad), "--check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "transformer_block" in proc.stderr


# ---------------------------------------------------------------- the files themselves


@pytest.mark.parametrize("backend,exercise", [(b, e) for b in BACKENDS for e in EXERCISE_NAMES])
def test_notebook_validates_and_ends_with_its_check_cell(backend, exercise):
    path = starter_path(backend, exercise, ".ipynb")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids)
    assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert [c.cell_type for c in nb.cells[:1]] == ["markdown"] and f"Exercise {EXERCISE_NAMES.index(exercise) + 1}" in nb.cells[0].source
    check = nb.cells[-1]
    assert check.cell_type == "code"
    lines = check.source.splitlines()
    assert all(line.startswith("%") for line in lines), "the check cell must be IPython magics only, which attnspec skips"
    assert lines == ["%load_ext attnspec", f"%attnspec_check {exercise} --backend {backend} --notebook {exercise}.ipynb"]


@pytest.mark.parametrize("backend,exercise", [(b, e) for b in BACKENDS for e in EXERCISE_NAMES])
def test_py_starter_compiles_with_the_contract_signatures(backend, exercise):
    path = starter_path(backend, exercise, ".py")
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(compile(text, str(path), "exec", ast.PyCF_ONLY_AST))
    assert ast.get_docstring(tree).startswith(f"Exercise {EXERCISE_NAMES.index(exercise) + 1} (")
    defined = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    wanted = sorted([exercise] + [h for h, e in HELPER_EXERCISE.items() if e == exercise])
    assert sorted(defined) == wanted
    for name, node in defined.items():
        assert f"{name}({ast.unparse(node.args)})" == FUNCTIONS[name].signature
        raises = [s for s in node.body if isinstance(s, ast.Raise)]
        assert raises and ast.unparse(raises[0].exc).startswith("NotImplementedError(")
    imports = {a.name for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    assert ("torch" in imports) == (backend == "torch")
    assert ("numpy" in imports) == (backend == "numpy")
    main = [n for n in tree.body if isinstance(n, ast.If)]
    assert main and f'"--exercise", "{exercise}", "--backend", "{backend}", "--visible-only"' in ast.get_source_segment(text, main[-1])


def test_worked_example_in_the_statement_matches_the_reference():
    x = np.array([[[1, 0, 2, 1], [0, 1, 1, 2], [1, 1, 0, 1]]], dtype=np.float64)
    eye = np.eye(4)
    edit = numpy_ref.multi_head_attention(x, eye, eye, eye, 0.5 * eye, 2)
    shown = "[" + ", ".join(f"{v:.3f}" for v in edit[0, 2]) + "]"
    updated = "[" + ", ".join(f"{v:.3f}" for v in (x + edit)[0, 2]) + "]"
    assert shown == "[0.376, 0.376, 0.500, 0.752]"
    for backend in BACKENDS:
        text = starter_path(backend, "multi_head_attention", ".ipynb").read_text()
        assert shown in text and updated in text


# ---------------------------------------------------------------- grading the starters


def test_running_a_py_starter_grades_it_against_the_shipped_spec(tmp_path):
    """`python manual_attention.py` runs attnspec on itself (shipped spec, visible cases only)."""
    target = tmp_path / "manual_attention.py"
    shutil.copy(starter_path("numpy", "manual_attention", ".py"), target)
    proc = subprocess.run([sys.executable, target.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not implemented" in proc.stdout
    assert "NOT_IMPLEMENTED" in proc.stdout and "FAIL" not in proc.stdout


def test_a_filled_py_starter_passes_the_shipped_spec(tmp_path):
    target = tmp_path / "manual_attention.py"
    write_filled(starter_path("numpy", "manual_attention", ".py"), target, "numpy")
    code, reports, output = grade_json([target], "--exercise", "manual_attention", "--backend", "numpy", "--visible-only", cwd=tmp_path)
    result = exercise_result(reports[target.name], "manual_attention")
    assert result["status"] == "graded", output
    failed = [c["case_id"] for c in result["cases"] if c["outcome"] != "passed"]
    assert result["cases"] and not failed, f"the reference-style solution failed {failed}"
    assert code == 0


def test_untouched_starters_exit_1(graded_untouched):
    code, reports, output = graded_untouched
    assert code == 1, output
    assert all(r is not None for r in reports.values()), output


@pytest.mark.parametrize("backend,exercise,suffix", STARTERS, ids=STARTER_IDS)
def test_untouched_starter_is_reported_not_implemented(graded_untouched, backend, exercise, suffix):
    needs_backend(backend)
    report = graded_untouched[1][(backend, exercise, suffix)]
    assert report["status"] == "graded"
    result = exercise_result(report, exercise)
    assert result["status"] == "not_implemented"
    assert "not implemented yet" in result["message"]
    assert result["cases"] == [], "an untouched starter must not produce a wall of failures"
    assert report["load"]["errors"] == []
    # A file is graded on the exercises it defines: the other two are not in its report.
    assert [e["exercise"] for e in report["exercises"]] == [exercise]


@pytest.mark.parametrize("backend,exercise,suffix", STARTERS, ids=STARTER_IDS)
def test_filled_starter_is_graded_and_passes(graded_filled, backend, exercise, suffix):
    needs_backend(backend)
    report = graded_filled[1][(backend, exercise, suffix)]
    path = graded_filled[3][(backend, exercise, suffix)]
    assert not RAISE_LINE.search(code_of(path)), "the solution was not filled in"
    result = exercise_result(report, exercise)
    assert result["status"] == "graded", result["message"]
    assert result["backends"] == [backend]
    assert result["cases"] and all(c["outcome"] == "passed" for c in result["cases"]), [c["message"] for c in result["cases"]]
    assert result["score"] == result["max_score"] > 0
    assert report["load"]["errors"] == [], report["load"]["errors"]
    if suffix == ".ipynb" and exercise == "multi_head_attention":
        assert "0.376" in report["load"]["output"], "the scratch cell's worked example did not print the expected edit"
    if suffix == ".ipynb" and exercise == "manual_attention" and backend == "torch":
        assert "True" in report["load"]["output"] and "False" not in report["load"]["output"]
