"""`attnspec grade` starts its master worker before its own imports (harness/launch.py,
harness/masterproc.py): the first worker pool takes it over, and one nobody takes is ended."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from attnspec import masterproc
from attnspec.runner import WorkerPool

ROOT = Path(__file__).resolve().parents[1]


def test_the_first_pool_takes_the_early_master_and_the_next_one_starts_its_own():
    masterproc.start_early()
    early = masterproc._EARLY[0].proc
    first, second = WorkerPool("none"), WorkerPool("none")
    try:
        assert first._proc is early and second._proc is not early
        assert masterproc.take_early() is None
        first.preload(["numpy"])
        assert first.wait_preloaded() == {"numpy": None}  # the early master serves as any other
    finally:
        first.close()
        second.close()
    assert early.poll() is not None


def test_a_forked_copy_of_the_process_never_takes_its_parents_early_master():
    """Grader processes are forked from the command: two of them on one master socket would mix
    their messages, so only the process that started the early master may take it."""
    masterproc.start_early()
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if masterproc.take_early() is None else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        pool = WorkerPool("none")  # the early master is still this process's, and serves it
        try:
            pool.preload(["numpy"])
            assert pool.wait_preloaded() == {"numpy": None}
        finally:
            pool.close()
    finally:
        masterproc._close_untaken()
    assert not masterproc._EARLY


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds `marker` (a master inherits the command's environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_grade_that_fails_before_grading_ends_the_master_it_started(tmp_path):
    marker = f"ATTNSPEC_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "attnspec", "grade", str(tmp_path / "missing.py")], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 2 and "missing.py" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 30
    assert _processes_with(marker) == []  # its early master did not outlive it
