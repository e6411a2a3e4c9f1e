"""The cost of the per-submission sandbox: `--sandbox strict` against `--sandbox none`, in one run.

    python bench/bench_sandbox.py --anchors /path/to/bench-anchors      # or ATTNSPEC_BENCH_ANCHORS=...
    python bench/bench_sandbox.py --runs 5 --jobs 2

Times (median of --runs, the two levels alternated so that machine load hits both alike):
  - grade:  attnspec grade examples/correct_torch.py
  - class:  attnspec grade DIR -j N on the 20-notebook class (the anchors' `variants()`, each
            written as a plain notebook: an import cell and the learner's cell)
and prints strict/none as a ratio (the target for the class run is <= 1.15); also the time to
start one submission's zygote (spawn, in a warm worker pool) at each level, the sandbox's own cost.
The anchors folder holds make_submissions.py; it is imported from there, not copied.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
IMPORT_CELL = "import math\n\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"


def class_notebooks(anchors: str, folder: Path) -> list[Path]:
    """Write the anchors' 20 variants as notebooks (import cell + learner cell) into `folder`."""
    import nbformat

    source = Path(anchors) / "make_submissions.py"
    if not source.is_file():
        sys.exit(f"bench_sandbox: {source} not found; pass --anchors DIR (or set ATTNSPEC_BENCH_ANCHORS) to the folder holding make_submissions.py")
    spec = importlib.util.spec_from_file_location("anchor_submissions", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = []
    for stem, _name, code in module.variants():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(IMPORT_CELL), nbformat.v4.new_code_cell(code)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = folder / f"{stem}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "attnspec", "grade", *args], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"bench_sandbox: attnspec grade {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def compare(label: str, args: Callable[[str], list[str]], runs: int) -> float:
    samples: dict[str, list[float]] = {"none": [], "strict": []}
    timed(args("none"))  # warm the page cache
    for _ in range(runs):
        for level in ("none", "strict"):
            samples[level].append(timed(args(level)))
    none, strict = statistics.median(samples["none"]), statistics.median(samples["strict"])
    ratio = strict / none
    print(f"{label:6} none {none:6.2f} s   strict {strict:6.2f} s   ratio {ratio:.3f}   (medians of {runs}; strict min {min(samples['strict']):.2f}, none min {min(samples['none']):.2f})")
    return ratio


def same_reports(none: Path, strict: Path) -> bool:
    """The two levels' reports agree on everything but the sandbox field and wall-clock times."""
    from attnspec.results import strip_timings

    def load(path: Path) -> dict:
        data = json.loads(path.read_text())
        data.pop("sandbox", None)
        return strip_timings(data)

    names = sorted(p.name for p in none.iterdir())
    return names == sorted(p.name for p in strict.iterdir()) and all(load(none / n) == load(strict / n) for n in names)


def spawn_cost(count: int = 20) -> None:
    """Median seconds to start one zygote in a warm pool, per level (what a grade waits for)."""
    sys.path.insert(0, str(ROOT))
    from attnspec.runner import WorkerPool

    medians = {}
    for level in ("none", "strict"):
        with WorkerPool(level) as pool:
            pool.sandbox_info()
            samples = []
            for _ in range(count):
                time.sleep(0.3)  # a submission's grading, during which the next sandbox is built ahead
                start = time.perf_counter()
                sock, pid = pool.spawn()
                samples.append(time.perf_counter() - start)
                sock.close()
                try:
                    os.killpg(pid, 9)
                except OSError:
                    pass
        medians[level] = statistics.median(samples)
    print(f"spawn  none {medians['none'] * 1000:6.1f} ms  strict {medians['strict'] * 1000:6.1f} ms  (+{(medians['strict'] - medians['none']) * 1000:.1f} ms per submission; medians of {count})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anchors", default=os.environ.get("ATTNSPEC_BENCH_ANCHORS"), help="folder with make_submissions.py")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--submission", default="examples/correct_torch.py")
    args = parser.parse_args()
    if not args.anchors:
        sys.exit("bench_sandbox: pass --anchors DIR (or set ATTNSPEC_BENCH_ANCHORS) to the folder holding make_submissions.py")
    spawn_cost()
    with tempfile.TemporaryDirectory(prefix="attnspec-bench-") as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        class_notebooks(args.anchors, folder)
        out = Path(tmp) / "reports"
        compare("grade", lambda level: [args.submission, "--format", "json", "--output", str(out / f"one-{level}.json")], args.runs)
        ratio = compare("class", lambda level: [str(folder), "-j", str(args.jobs), "--format", "json", "--output-dir", str(out / f"class-{level}")], args.runs)
        print(f"class reports identical at both levels (apart from the sandbox field and times): {same_reports(out / 'class-none', out / 'class-strict')}")
    print(f"class-run target strict/none <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
