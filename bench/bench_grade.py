"""How long grading takes, against the cost every Python grader pays: starting Python and
importing numpy and torch.

    python bench/bench_grade.py                 # defaults: 5 runs, examples/correct_both.py
    python bench/bench_grade.py --runs 9 --class-size 20

Prints medians (and min/max) of wall-clock seconds for:
  - bare:   python -c "import numpy, torch"           (the floor for any torch grader)
  - grade:  attnspec grade SUBMISSION (every case, every backend the file supports)
  - class:  attnspec grade DIR with N submissions, one worker start for all of them
and the ratios the project targets (grade <= 2x bare; per-submission cost in a class run).
Timings are noisy on shared machines: compare medians, and rerun before concluding anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASS_SOURCES = [
    "examples/correct_numpy.py",
    "examples/correct_torch.py",
    "examples/correct_notebook.ipynb",
    "examples/buggy/softmax_wrong_axis.py",
    "examples/buggy/no_scaling_torch.py",
    "examples/buggy/heads_no_transpose.py",
    "examples/buggy/post_norm_block.py",
    "examples/buggy/mask_ignored.py",
]


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - start, proc


def summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples):6.2f} s  (min {min(samples):.2f}, max {max(samples):.2f}, n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--submission", default="examples/correct_both.py")
    parser.add_argument("--class-size", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=2, help="-j for the class run")
    args = parser.parse_args()
    python = sys.executable

    bare = [timed([python, "-c", "import numpy, torch"])[0] for _ in range(args.runs)]
    print(f"bare   python -c 'import numpy, torch'        {summary(bare)}")

    grades, report = [], None
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            seconds, proc = timed([python, "-m", "attnspec", "grade", args.submission, "--format", "json", "--output", str(out)])
            if proc.returncode not in (0, 1):
                sys.exit(f"grading failed:\n{proc.stderr}")
            grades.append(seconds)
            report = json.loads(out.read_text())
    assert report is not None
    cases = [c for e in report["exercises"] for c in e["cases"]]
    instances = sum(len(c["instances"]) for c in cases)
    calls = sum(i["calls"] for c in cases for i in c["instances"])
    backends = sorted({b for e in report["exercises"] for b in e["backends"]})
    print(f"grade  {args.submission:38} {summary(grades)}")
    print(f"       {len(cases)} cases, {instances} case instances ({', '.join(backends)}), {calls} calls of learner code, score {report['score']:g}/{report['max_score']:g}")
    ratio = statistics.median(grades) / statistics.median(bare)
    print(f"       grade / bare = {ratio:.2f}x   (target <= 2x)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(args.class_size):
            src = ROOT / CLASS_SOURCES[i % len(CLASS_SOURCES)]
            shutil.copy(src, folder / f"learner{i:03d}{src.suffix}")
        seconds, proc = timed([python, "-m", "attnspec", "grade", str(folder), "--format", "json", "--output-dir", str(Path(tmp) / "reports"), "-j", str(args.jobs)])
        if proc.returncode not in (0, 1):
            sys.exit(f"class grading failed:\n{proc.stderr}")
    per = seconds / args.class_size
    print(f"class  {args.class_size} submissions in one run (-j {args.jobs})      {seconds:6.2f} s total, {per:.2f} s per submission")
    print(f"       per submission / bare import = {per / statistics.median(bare):.2f}x")


if __name__ == "__main__":
    main()
