"""Class-run speed: the 20-notebook benchmark graded with -j 1 and -j 2 (median of N runs each).

    python bench/bench_class.py --variants PATH/make_submissions.py [--runs 3] [--jobs 1 2] [--sandbox none|auto|strict]
    ATTNSPEC_BENCH_VARIANTS=PATH/make_submissions.py python bench/bench_class.py

The 20 submissions are the learner variants of the otter/nbgrader comparison (14 correct styles
of manual_attention, 6 buggy): PATH is the module that defines `variants()` -> [(stem, name,
code)]. Each is written as a plain notebook with nbformat: one import cell and the learner's
cell. Every run grades into a fresh output folder with --no-cache (a cached run measures
nothing). Prints each run, the medians, and the -j 1 / -j N speed-up.
Targets: -j 2 <= 6 s on 2 cores and >= 1.7x faster than -j 1. Timings are noisy on a shared
machine: report the load (printed) with the figures.

Each run also reports the CPU time the machine spent while it ran (from /proc/stat, so on a quiet
machine: the run's own processes) and the cores that kept busy on average. Those bound what more
jobs can give: a run that needs C CPU-seconds takes at least C / cores seconds, so -j N can be at
most (-j 1's time) x cores / (-j N's CPU) times faster than -j 1. A -j 1 run already keeps more
than one core busy (the grader and the submission's processes work at the same time).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = "import math\nimport torch\nimport torch.nn.functional as F\n"


def load_variants(path: str | None) -> list[tuple[str, str, str]]:
    if not path:
        sys.exit("bench_class: give --variants PATH (or ATTNSPEC_BENCH_VARIANTS): the make_submissions.py that defines variants()")
    p = Path(path)
    if not p.is_file():
        sys.exit(f"bench_class: {p}: no such file (expected the make_submissions.py that defines variants())")
    spec = importlib.util.spec_from_file_location("bench_variants", p)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "variants"):
        sys.exit(f"bench_class: {p} defines no variants()")
    return list(module.variants())


def write_notebooks(variants: list[tuple[str, str, str]], folder: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    folder.mkdir(parents=True, exist_ok=True)
    for stem, _name, code in variants:
        nb = new_notebook(cells=[new_code_cell(IMPORTS), new_code_cell(code)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{stem}.ipynb")


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq),
    or None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def one_run(folder: Path, jobs: int, extra: list[str]) -> tuple[float, float | None]:
    """(wall seconds, busy CPU seconds of the machine during the run, or None)."""
    with tempfile.TemporaryDirectory(prefix="attnspec-bench-out-") as out:
        cmd = [sys.executable, "-m", "attnspec", "grade", str(folder), "-j", str(jobs), "--format", "json", "--output-dir", out, "--no-cache", "--progress", "never", *extra]
        busy = busy_seconds()
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        busy_after = busy_seconds()
        if proc.returncode not in (0, 1):
            sys.exit(f"bench_class: grading failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        reports = list(Path(out).glob("*.json"))
        if len(reports) != len(list(folder.glob("*.ipynb"))):
            sys.exit(f"bench_class: expected one report per notebook, got {len(reports)}")
    return elapsed, (busy_after - busy if busy is not None and busy_after is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=os.environ.get("ATTNSPEC_BENCH_VARIANTS"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--exercise", default="", help="grade only this exercise (default: what each file defines, as the original measurement)")
    parser.add_argument("--sandbox", choices=["auto", "strict", "none"], default="", help="the sandbox level (default: attnspec's own default, auto)")
    args = parser.parse_args()
    variants = load_variants(args.variants)
    extra = ["--exercise", args.exercise] if args.exercise else []
    extra += ["--sandbox", args.sandbox] if args.sandbox else []
    with tempfile.TemporaryDirectory(prefix="attnspec-bench-") as tmp:
        folder = Path(tmp) / "class"
        write_notebooks(variants, folder)
        print(f"{len(variants)} notebooks; {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}")
        one_run(folder, max(args.jobs), extra)  # warm-up (file caches, .pyc)
        cores = os.cpu_count() or 1
        medians: dict[int, float] = {}
        cpu: dict[int, float] = {}
        for jobs in args.jobs:
            samples = [one_run(folder, jobs, extra) for _ in range(args.runs)]
            medians[jobs] = statistics.median(s for s, _ in samples)
            line = f"-j {jobs}: median {medians[jobs]:.2f} s  (runs: {', '.join(f'{s:.2f}' for s, _ in samples)})"
            if all(b is not None for _, b in samples):
                cpu[jobs] = statistics.median(b for _, b in samples if b is not None)
                line += f"; CPU {cpu[jobs]:.1f} s, {cpu[jobs] / medians[jobs]:.2f} cores busy on average, so at least {cpu[jobs] / cores:.2f} s on {cores} cores"
            print(line)
        base = medians.get(1)
        for jobs, m in medians.items():
            if base and jobs != 1:
                bound = f" (at most {base * cores / cpu[jobs]:.2f}x with this much CPU on {cores} cores)" if jobs in cpu else ""
                print(f"speed-up -j {jobs} vs -j 1: {base / m:.2f}x{bound}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
