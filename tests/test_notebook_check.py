"""attnspec.check(): the kernel's functions are graded by source, and the report says so.

The main test runs a starter notebook in a real Jupyter kernel (nbclient): a cell added in memory
redefines the functions correctly, the starter's own check cell runs, and the report must be for
the in-memory version while the saved file (still the stubs) is reported as different.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from attnspec.errors import UsageError
from attnspec.notebook_check import check, kernel_source

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "exercises" / "starters" / "numpy" / "manual_attention.ipynb"

CORRECT = textwrap.dedent(
    """\
    def manual_attention(Q, K, V, mask=None):
        scores = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])
        if mask is not None:
            scores = scores + mask
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        return (weights / weights.sum(axis=-1, keepdims=True)) @ V


    def causal_mask(seq_len):
        return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)
    """
)
QUERY_AXIS = CORRECT.replace("axis=-1", "axis=-2")  # softmax over the queries


def namespace_from_cells(*cells: str) -> dict:
    """A kernel-like namespace: cells executed in order, without source files (only `In` has them)."""
    ns: dict = {"__name__": "__main__", "In": ["", *cells]}
    for i, cell in enumerate(cells, start=1):
        exec(compile(cell, f"<cell-{i}>", "exec"), ns)
    return ns


def test_kernel_source_carries_imports_constants_and_helpers_from_the_history():
    ns = namespace_from_cells(
        "import math\nimport numpy as np\nimport attnspec\nSCALE_FLOOR = 1e-12\nunused = object()\n",
        "def helper(s):\n    return s - s.max(axis=-1, keepdims=True)\n",
        "def manual_attention(Q, K, V, mask=None):\n    s = helper(Q @ np.swapaxes(K, -1, -2)) / max(math.sqrt(Q.shape[-1]), SCALE_FLOOR)\n    return s @ V\n",
        "def manual_attention(Q, K, V, mask=None):\n    return helper(Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])) @ V  # redefined\n",
    )
    source = kernel_source(ns, ["manual_attention"])
    assert "import numpy as np" in source.text and "import math" in source.text
    assert "attnspec" not in source.text.split("\n", 1)[1]  # never imports the grader's package
    assert "# redefined" in source.functions["manual_attention"]  # the latest definition
    assert set(source.functions) == {"manual_attention", "helper"}
    assert "SCALE_FLOOR" not in source.text  # only what the current definitions use
    compile(source.text, "kernel.py", "exec")


def test_check_grades_the_kernel_and_names_the_differing_saved_file(tmp_path):
    saved = tmp_path / "lesson.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import math\nimport numpy as np"), nbformat.v4.new_code_cell(CORRECT)])
    nbformat.write(nb, saved)
    ns = namespace_from_cells("import math\nimport numpy as np\n", QUERY_AXIS)
    result = check("manual_attention", notebook=saved, namespace=ns)
    assert "Graded the code defined in this kernel now, not the saved file" in result.note
    assert "lesson.ipynb differs from the kernel (manual_attention differs)" in result.note
    failed = {c.case_id for c in result.result.cases if c.outcome == "failed"}
    assert "ma.reference.fixed" in failed  # the kernel's (buggy) version was graded, not the saved one
    assert result.result.submission["graded_from"] == "kernel"
    assert all(str(saved) in c.repro for c in result.result.cases if c.repro)
    html = result._repr_html_()
    assert "Graded the code defined in this kernel" in html and "softmax over the query axis" in html
    assert str(result).startswith("Graded the code defined in this kernel")


def test_check_without_a_definition_says_what_to_do():
    with pytest.raises(UsageError, match="run the cell that defines"):
        check(namespace=namespace_from_cells("import numpy as np\n"))


@pytest.mark.slow
def test_starter_notebook_in_a_real_kernel_reports_the_in_memory_version(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    target = tmp_path / STARTER.name
    shutil.copy(STARTER, target)
    saved_bytes = target.read_bytes()
    nb = nbformat.read(target, as_version=4)
    solution = next(i for i, c in enumerate(nb.cells) if c.get("id") == "solution")
    nb.cells.insert(solution + 1, nbformat.v4.new_code_cell(CORRECT))  # edited in memory, never saved
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    check_cell = nb.cells[-1]
    assert "%attnspec_check manual_attention" in check_cell.source
    data = {}
    for output in check_cell.outputs:
        data.update(output.get("data", {}))
    assert "text/html" in data, check_cell.outputs
    html, text = data["text/html"], data["text/plain"]
    for shown in (html, text):
        assert "Graded the code defined in this kernel now, not the saved file" in shown
        assert "manual_attention.ipynb differs from the kernel" in shown
    assert "Every graded case passed." in html  # the in-memory fix, not the saved stub
    assert "not implemented" not in text
    assert target.read_bytes() == saved_bytes  # nothing was saved
