"""Build the pictures the HTML work is judged by, and time them, into bench/out/ (git-ignored).

    python bench/html_showcase.py ANCHORS_DIR

ANCHORS_DIR is the class-grading benchmark's folder (it holds make_submissions.py, whose
`variants()` gives 20 learner versions of manual_attention). Writes:

- softmax_wrong_axis.html / .png: the HTML report of examples/buggy/softmax_wrong_axis.py and a
  headless-Chromium screenshot of it (expected and learner attention patterns side by side);
- notebook_check.ipynb / .txt / .html / .png: the numpy manual_attention starter run in a real
  Jupyter kernel (nbclient) with the function fixed in memory, never saved, then its check cell;
- class/: the 20 notebooks' JSON and HTML reports, and class.html / class.png: the dashboard.

Prints wall-clock seconds per step (a shared machine is noisy: rerun before concluding anything).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
FIX = """\
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


def timed(label: str, command: list[str]) -> subprocess.CompletedProcess:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    print(f"{label}: {time.perf_counter() - start:.1f} s (exit {proc.returncode})")
    return proc


def screenshot(page: Path, height: int = 2400) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: no screenshot (apt-get install -y chromium)")
        return
    shot = page.with_suffix(".png")
    timed(f"screenshot {shot.name}", [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size=1200,{height}", f"--screenshot={shot}", page.as_uri()])


def buggy_report() -> None:
    page = OUT / "softmax_wrong_axis.html"
    timed("grade --format html (softmax over the query axis, manual_attention)", [sys.executable, "-m", "attnspec", "grade", "examples/buggy/softmax_wrong_axis.py", "--exercise", "manual_attention", "--format", "html", "-o", str(page)])
    screenshot(page)


def notebook_check() -> None:
    from nbclient import NotebookClient

    work = OUT / "notebook"
    work.mkdir(parents=True, exist_ok=True)
    target = work / "manual_attention.ipynb"
    shutil.copy(ROOT / "exercises" / "starters" / "numpy" / "manual_attention.ipynb", target)
    nb = nbformat.read(target, as_version=4)
    solution = next(i for i, c in enumerate(nb.cells) if c.get("id") == "solution")
    nb.cells.insert(solution + 1, nbformat.v4.new_code_cell(FIX))
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    print(f"starter notebook in a kernel, fixed in memory, checked: {time.perf_counter() - start:.1f} s")
    nbformat.write(nb, OUT / "notebook_check.ipynb")
    data: dict = {}
    for output in nb.cells[-1].outputs:
        data.update(output.get("data", {}))
    (OUT / "notebook_check.txt").write_text(data.get("text/plain", ""), encoding="utf-8")
    page = OUT / "notebook_check.html"
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>check()</title></head><body>{data.get('text/html', '')}</body></html>", encoding="utf-8")
    screenshot(page, 1400)


def class_dashboard(anchors: Path) -> None:
    spec = importlib.util.spec_from_file_location("anchor_submissions", anchors / "make_submissions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    subs = OUT / "class" / "notebooks"
    reports = OUT / "class" / "reports"
    shutil.rmtree(OUT / "class", ignore_errors=True)
    subs.mkdir(parents=True)
    for stem, _name, code in module.variants():
        cells = [nbformat.v4.new_code_cell("import math\n\nimport torch"), nbformat.v4.new_code_cell(code)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), subs / f"{stem}.ipynb")
    timed("grade 20 notebooks --format json -j 2", [sys.executable, "-m", "attnspec", "grade", str(subs), "--format", "json", "--output-dir", str(reports), "-j", "2"])
    timed("grade 20 notebooks --format html -j 2", [sys.executable, "-m", "attnspec", "grade", str(subs), "--format", "html", "--output-dir", str(reports), "-j", "2"])
    page = OUT / "class.html"
    timed("attnspec dashboard", [sys.executable, "-m", "attnspec", "dashboard", str(reports), "-o", str(page)])
    screenshot(page, 3000)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not (Path(argv[1]) / "make_submissions.py").is_file():
        print(__doc__, file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    buggy_report()
    notebook_check()
    class_dashboard(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
