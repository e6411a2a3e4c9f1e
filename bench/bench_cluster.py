"""A class of generated submissions graded locally (-j 1, -j 2) and on a 2-worker Dask LocalCluster.

    python bench/bench_cluster.py                          # 200 submissions, the shipped spec
    python bench/bench_cluster.py --class-size 40 --small  # quicker: the test suite's small spec

The class is generated from the bundled examples/ (correct and buggy, .py and .ipynb): each copy
gets its own header comment, an unused constant and a different layout of blank lines, so no two
files have the same bytes (as in a real class) while their verdicts stay those of the original.
Every run writes JSON reports with --no-timings; the script checks that the cluster's reports are
byte-identical to the local -j 1 reports and prints wall-clock seconds and submissions per second.
The LocalCluster runs on this machine, so it measures the overhead of Dask, not extra hardware:
on N real machines the cluster row divides by about N. Timings are noisy on shared machines.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in (".py", ".ipynb") and p.is_file())


def vary_python(text: str, n: int, rng: random.Random) -> str:
    header = f"# Submission {n:03d}, generated for bench_cluster.py\n_SUBMISSION_ID = {n}\n"
    lines = text.splitlines()
    out = []
    for line in lines:
        out.append(line)
        if line == "" and rng.random() < 0.3:
            out.append("")  # a different layout of blank lines
    return header + "\n".join(out) + "\n"


def vary_notebook(text: str, n: int, rng: random.Random) -> str:
    nb = json.loads(text)
    cell = {"cell_type": "markdown", "metadata": {}, "source": [f"Submission {n:03d} ({rng.random():.6f})"]}
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell["id"] = f"bench-{n:03d}"
    nb.setdefault("cells", []).insert(0, cell)
    return json.dumps(nb, indent=1)


def make_class(folder: Path, size: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    names = []
    for n in range(size):
        source = SOURCES[n % len(SOURCES)]
        text = source.read_text(encoding="utf-8")
        body = vary_notebook(text, n, rng) if source.suffix == ".ipynb" else vary_python(text, n, rng)
        student = folder / f"student{n:03d}"
        student.mkdir(parents=True, exist_ok=True)
        target = student / f"{source.stem}_{n:03d}{source.suffix}"
        target.write_text(body, encoding="utf-8")
        names.append(str(target.relative_to(folder)))
    return names


def grade(folder: Path, names: list[str], out: str, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "attnspec", "grade", *names, "--format", "json", "--no-timings", "--output-dir", out, *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        print(proc.stderr[-3000:], file=sys.stderr)
    return elapsed


def same_reports(a: Path, b: Path) -> tuple[int, list[str]]:
    names = sorted(p.name for p in a.iterdir())
    differ = [n for n in names if not (b / n).exists() or (a / n).read_bytes() != (b / n).read_bytes()]
    return len(names), differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--class-size", type=int, default=200)
    parser.add_argument("--small", action="store_true", help="grade with tests/specs/exercises only (a few cases per exercise)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers in the LocalCluster")
    args = parser.parse_args()
    from distributed import LocalCluster

    extra = ["--no-builtin", "--spec", str(ROOT / "tests" / "specs" / "exercises")] if args.small else []
    with tempfile.TemporaryDirectory(prefix="attnspec-bench-cluster-") as tmp:
        folder = Path(tmp)
        names = make_class(folder, args.class_size)
        print(f"{len(names)} submissions from {len(SOURCES)} examples; spec: {'small test spec' if args.small else 'shipped'}")
        rows = []
        for label, more in (("local -j 1", ["-j", "1"]), ("local -j 2", ["-j", "2"])):
            out = label.replace(" ", "_").replace("-", "")
            rows.append((label, grade(folder, names, out, [*extra, *more]), out))
        started = time.perf_counter()
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
            startup = time.perf_counter() - started
            rows.append((f"LocalCluster {args.workers} workers", grade(folder, names, "cluster", [*extra, "--cluster", cluster.scheduler_address]), "cluster"))
        base = rows[0][1]
        for label, seconds, _ in rows:
            print(f"{label:24} {seconds:7.1f} s  {len(names) / seconds:6.2f} submissions/s  speed-up vs -j 1: {base / seconds:4.2f}x")
        print(f"(cluster start-up, not counted above: {startup:.1f} s)")
        for label, _, out in rows[1:]:
            count, differ = same_reports(folder / rows[0][2], folder / out)
            print(f"{label}: {count - len(differ)} of {count} JSON reports byte-identical to local -j 1" + (f"; differ: {differ[:5]}" if differ else ""))
        shutil.rmtree(folder / "cluster", ignore_errors=True)


if __name__ == "__main__":
    main()
