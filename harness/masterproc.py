"""Starting the master worker process (harness/worker.py), and starting it early.

Kept free of numpy and of the rest of attnspec: `attnspec grade` starts its master here before it
imports anything else (harness/launch.py), so that the interpreter's start and the worker's own
imports (~0.3 s) overlap the command's imports instead of preceding the master's torch import,
which every grading waits for. The first WorkerPool of the process takes that master over; a
master nobody took is shut down at exit.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import IO


@dataclass
class StartedMaster:
    sock: socket.socket
    log: IO[bytes]
    cwd: tempfile.TemporaryDirectory[str]
    proc: subprocess.Popen[bytes]


_EARLY: list[StartedMaster] = []
_OWNER: list[int] = []  # the pid that started it: a forked copy of this process must not take it


def start_master() -> StartedMaster:
    """`python -m attnspec.worker FD` with its socket, log file and working folder; OSError if the
    interpreter cannot be started."""
    sock, theirs = socket.socketpair()
    log: IO[bytes] = tempfile.TemporaryFile()
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONSTARTUP", None)
    cwd = tempfile.TemporaryDirectory(prefix="attnspec-worker-")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "attnspec.worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=cwd.name,
            env=env,
        )
    except OSError:
        sock.close()
        log.close()
        cwd.cleanup()
        raise
    finally:
        theirs.close()
    return StartedMaster(sock, log, cwd, proc)


def start_early() -> None:
    """Start a master now for the first WorkerPool to take (no-op if one is waiting already, or if
    it cannot start: the pool then starts its own and reports the error)."""
    if _EARLY:
        return
    try:
        _EARLY.append(start_master())
    except OSError:
        return
    _OWNER[:] = [os.getpid()]
    atexit.register(_close_untaken)


def take_early() -> StartedMaster | None:
    """The master started early, once, in the process that started it; None if there is none (or
    it has exited already)."""
    if not _EARLY or _OWNER != [os.getpid()]:
        return None
    started = _EARLY.pop()
    if started.proc.poll() is not None:
        _close(started)
        return None
    return started


def _close_untaken() -> None:
    while _EARLY and _OWNER == [os.getpid()]:
        _close(_EARLY.pop())


def _close(started: StartedMaster) -> None:
    """End a master that never served a grader (it ran nothing, so nothing is lost)."""
    started.proc.kill()
    started.proc.wait()
    started.sock.close()
    started.log.close()
    started.cwd.cleanup()
