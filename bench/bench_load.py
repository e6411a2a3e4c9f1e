"""How the cost of loading a submission grows with its number of top-level statements.

    python bench/bench_load.py                  # 500, 1500, 4500, 13500 and 40500 statements
    python bench/bench_load.py --sizes 4500 --runs 5

For a correct file with N one-line top-level statements, prints the size of the load message
(each file's code is sent once, with the chunks as line ranges, so it should grow linearly) and
the median wall-clock seconds to load it in a worker (compile and run every chunk). A doubling
of N should roughly double both; the old design (every chunk sent with all the lines before it)
grew with N squared and could not load 4,500 statements at all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from attnspec.runner import Limits, WorkerPool, WorkerSession
from attnspec.submission import load_submission

ROOT = Path(__file__).resolve().parents[1]


def make_file(folder: Path, n: int) -> Path:
    path = folder / f"long_{n}.py"
    body = "".join(f"CONSTANT_{i} = {i}\n" for i in range(n))
    path.write_text(body + (ROOT / "examples" / "correct_numpy.py").read_text())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1500, 4500, 13500, 40500])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    limits = Limits(load_timeout=300.0)
    print(f"{'statements':>10} {'file bytes':>11} {'message bytes':>14} {'load s (median)':>16}")
    with tempfile.TemporaryDirectory() as tmp, WorkerPool() as pool:
        for n in args.sizes:
            path = make_file(Path(tmp), n)
            submission = load_submission(path)
            message = len(json.dumps(submission.load_request()))
            times = []
            for _ in range(args.runs):
                session = WorkerSession(pool, submission.load_request(), limits)
                start = time.perf_counter()
                report = session.start()
                times.append(time.perf_counter() - start)
                session.close()
                assert report.ok and not report.chunk_errors, report.fatal or report.chunk_errors
            print(f"{n:>10} {path.stat().st_size:>11,} {message:>14,} {statistics.median(times):>16.3f}")


if __name__ == "__main__":
    main()
