"""What one case child costs: fork a process holding numpy and torch, run a case's worth of calls
in the child, end it (the isolation model: a fresh child per case, see docs/isolation.md).

    python bench/bench_fork.py [--n 40]

Measures with the process's memory as imported, then again after worker.huge_pages() (what a
class run's master does: its heap collapsed into transparent huge pages), and prints per child:
CPU in the parent (fork), in the child (user, system: copy-on-write faults and exit), minor
faults and wall time, for
  - nothing:          fork and exit
  - warm_up:          what a spare child does before its case (callexec.warm_up)
  - case (2 calls):   a torch manual_attention called in float64 and float32 through
                      callexec.execute_call, as a case child does
CPU figures come from the kernel's accounting (os.times, wait4); on a shared machine report the
load average (printed) with them. A class run forks about 35 children per manual_attention
submission (one per case, the backend probe, the zygote), so children cost roughly 35 x "case".
"""

from __future__ import annotations

import argparse
import math
import os
import time


def measure(n: int) -> None:
    from attnspec import callexec
    from attnspec.inputs import InputSpec, generate_inputs
    from attnspec.runner import call_request

    callexec.prepare_torch()
    import torch.nn.functional as F

    def manual_attention(Q, K, V, mask=None):  # noqa: N803 - the exercise's signature
        scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
        if mask is not None:
            scores = scores + mask
        return F.softmax(scores, dim=-1) @ V

    dims = {"batch": 2, "n_heads": 2, "seq_q": 3, "seq_k": 4, "d_head": 5, "d_v": 6}
    inputs = generate_inputs("manual_attention", InputSpec(shapes=dims), dims, seed=0)
    calls = [call_request("manual_attention", inputs, "torch", dtype, None, []) for dtype in ("float64", "float32")]

    def case() -> None:
        for header, buffers in calls:
            callexec.execute_call(manual_attention, header, buffers, set())

    from attnspec.worker import huge_pages

    def rollup() -> str:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in open("/proc/self/smaps_rollup") if line.startswith(("Anonymous", "AnonHugePages"))}
        return f"{fields.get('Anonymous', 0) / 1024:.0f} MiB anonymous, {fields.get('AnonHugePages', 0) / 1024:.0f} MiB of it in huge pages"

    for title in ("as imported", "after worker.huge_pages()"):
        if title != "as imported":
            start = time.perf_counter()
            done = huge_pages()
            title += f" (collapsed {done >> 20} MiB in {time.perf_counter() - start:.2f} s)"
        print(f"{title}: {rollup()}")
        for label, body in (("nothing", lambda: None), ("warm_up", callexec.warm_up), ("case (2 calls)", case), ("warm_up + case", lambda: (callexec.warm_up(), case()))):
            t0, w0, faults = os.times(), time.perf_counter(), 0
            for _ in range(n):
                pid = os.fork()
                if pid == 0:
                    try:
                        body()
                    finally:
                        os._exit(0)
                _, _, usage = os.wait4(pid, 0)
                faults += usage.ru_minflt
            t1 = os.times()
            per = lambda a, b: (b - a) / n * 1e3  # noqa: E731
            print(
                f"  {label:16s} parent sys {per(t0.system, t1.system):5.1f} ms | child user {per(t0.children_user, t1.children_user):5.1f} ms,"
                f" sys {per(t0.children_system, t1.children_system):5.1f} ms | {faults / n:6.0f} faults | wall {(time.perf_counter() - w0) / n * 1e3:5.1f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="children per measurement")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}")
    measure(args.n)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
