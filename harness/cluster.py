"""Grading on a Dask distributed cluster: `attnspec grade SUBMISSIONS --cluster ADDRESS`.

A class that outgrows one machine goes to a cluster: each submission becomes one Dask task. The
task carries the submission's bytes and its name plus the (already loaded and validated) spec, never a
path on the grader's machine; on the Dask worker it is written to a private temporary folder and
graded with `harness.grade.grade` by that worker's own attnspec worker pool (one per Dask worker
process, so torch is imported once per machine, not once per submission). The result comes back
as the plain JSON dict of `GradeResult.to_dict()`; no learner object is ever pickled.

The submission's name replaces the worker's temporary path in the result, so the reports equal
those of a local run byte for byte (with `--no-timings`, which leaves wall-clock times out).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from .errors import UsageError

CONNECT_TIMEOUT = "20s"

_pool_lock = threading.Lock()
_pools: dict[str, Any] = {}


def _worker_pool(sandbox: str = "auto") -> Any:
    """This Dask worker process's attnspec worker pool for a sandbox level, started on first use
    and kept for later tasks (the level travels with the grading options)."""
    with _pool_lock:
        if sandbox not in _pools:
            from .runner import WorkerPool

            if not _pools:
                atexit.register(close_worker_pool)
            _pools[sandbox] = WorkerPool(sandbox)
        return _pools[sandbox]


def close_worker_pool() -> None:
    with _pool_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


def _plugin() -> Any:
    """A WorkerPlugin that closes the pool when the Dask worker shuts down."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class AttnspecPool(WorkerPlugin):
        name = "attnspec-pool"

        def setup(self, worker: Any) -> None:
            # Start the pool (and torch's import, in the background) before the first task arrives.
            from .grade import torch_available

            pool = _worker_pool()
            if torch_available():
                pool.preload(["torch"])

        def teardown(self, worker: Any) -> None:
            close_worker_pool()

    return AttnspecPool()


def _has_plugin(dask_worker: Any) -> bool:
    return "attnspec-pool" in getattr(dask_worker, "plugins", {})


def local_name(name: str) -> PurePosixPath:
    """Where the submission goes inside the task's temporary folder: its relative path, or its file name."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        return PurePosixPath(p.name or "submission.py")
    return p


def grade_task(name: str, content: bytes, spec: Any, options: Any) -> dict[str, Any]:
    """Runs on a Dask worker: grade one submission given as bytes; the result as a JSON dict."""
    from .grade import grade
    from .plugins import ensure_entry_point_plugins

    ensure_entry_point_plugins()  # plugin properties installed on this worker (docs/plugins.md)
    folder = tempfile.mkdtemp(prefix="attnspec-cluster-")
    try:
        target = Path(folder, *local_name(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        result = grade(str(target), spec, options, _worker_pool(getattr(options, "sandbox", "auto")))
        return replace_in_strings(result.to_dict(), {str(target): name, folder + os.sep: "", folder: "."})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def replace_in_strings(data: Any, names: dict[str, str]) -> Any:
    """Every string in `data` with each key of `names` replaced by its value, in order (worker or
    grader paths made into the names a learner knows)."""
    if isinstance(data, str):
        for old, new in names.items():
            data = data.replace(old, new)
        return data
    if isinstance(data, dict):
        return {k: replace_in_strings(v, names) for k, v in data.items()}
    if isinstance(data, list):
        return [replace_in_strings(v, names) for v in data]
    return data


def grade_on_cluster(address: str, paths: list[str], spec: Any, options: Any, on_error: Callable[[str, str], Any], *, connect_timeout: str = CONNECT_TIMEOUT) -> list[tuple[str, Any]]:
    """Grade `paths` on the Dask cluster at `address`, in order; a task that fails becomes `on_error(path, message)`."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--cluster needs Dask distributed: pip install 'attnspec[cluster]'") from None
    from .results import GradeResult

    try:
        client = Client(address, timeout=connect_timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        present = client.run(_has_plugin)  # an earlier run registered it: keep those pools (and their torch)
        if not present or not all(present.values()):
            client.register_plugin(_plugin())
        shared_spec = client.scatter(spec, broadcast=True)
        futures = [client.submit(grade_task, path, Path(path).read_bytes(), shared_spec, options, pure=False, key=f"attnspec-grade-{i}-{os.urandom(4).hex()}") for i, path in enumerate(paths)]
        results = []
        for path, future in zip(paths, futures):
            try:
                results.append((path, GradeResult.from_dict(future.result())))
            except Exception as exc:  # noqa: BLE001 - a lost worker or a failed task: this submission's report says so
                results.append((path, on_error(path, f"grading on the cluster failed: {type(exc).__name__}: {exc}")))
        return results
    finally:
        client.close()
