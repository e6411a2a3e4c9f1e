"""Grader side of running a submission: start workers, load code, run calls, survive anything.

`WorkerPool` owns the master worker (one Python start + one torch import per grading run);
`WorkerSession` owns one submission's zygote; `CaseSession` is one case's child. Every method
returns data: a dead or hung worker becomes a `CallOutcome` with status "crashed"/"timeout"/
"worker_lost" for the case that was running, and the next case gets a fresh zygote.
`InProcessRunner` offers the same interface for trusted code (reference, misconceptions).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from . import callexec, masterproc, refcache, sandbox
from .callexec import RAW_ENCODINGS
from .errors import WorkerError
from .exercises import FUNCTIONS
from .inputs import Inputs
from .protocol import (
    Call,
    CallReply,
    CaseEnd,
    CaseEnded,
    CaseStart,
    CaseStarted,
    CaseStop,
    CaseStopped,
    StateAsked,
    StateTold,
    CorruptMessage,
    GradSpec,
    Loaded,
    OutputDesc,
    Spawned,
    ProtocolError,
    Timeout,
    corrupted,
    decode_float64,
    decode_values,
    encode_input,
    mib,
    recv,
    send,
)

WORKER_MARGIN_S = 5.0
# What the grader keeps of the outputs and gradients one zygote's cases return, all together (their
# values stay for the diagnosis): a correct submission of every exercise on both backends keeps
# under 20 MiB; a tampered child that sends outputs of the largest allowed size (64 MB as float64)
# call after call would otherwise fill the grader's memory, and with it a class run's.
KEPT_BYTES_LIMIT = 512 << 20
WATCHDOG_MARGIN_S = 5.0


@dataclass(frozen=True)
class Limits:
    """Resource limits for learner code (seconds, MiB, bytes)."""

    case_timeout: float = 10.0
    load_timeout: float = 60.0
    chunk_timeout: float = 30.0
    memory_mb: int = 2048
    output_bytes: int = 1 << 20
    submission_timeout: float = 600.0
    case_floor: float = 5.0  # a case's limit is max(case_floor, case_factor x the reference's time), capped by the spec's timeout
    case_factor: float = 100.0  # 0: the spec's timeout only


@dataclass
class Output:
    """What a learner function returned, as seen by the grader."""

    kind: str
    type: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    values: np.ndarray | None = None
    requires_grad: bool | None = None
    note: str | None = None

    @classmethod
    def from_desc(cls, desc: OutputDesc, buffers: list[bytes]) -> "Output":
        """From a validated description; its values must fill its shape exactly (CorruptMessage if not)."""
        values = None
        if desc.values is not None:
            if desc.shape is None or desc.encoding is None or not 0 <= desc.values < len(buffers):
                raise CorruptMessage("an output's values come without their shape, encoding or buffer")
            typed = desc.kind in ("ndarray", "tensor")
            if typed and desc.encoding != desc.dtype and (desc.dtype in RAW_ENCODINGS or desc.dtype == "bfloat16"):
                raise CorruptMessage(f"an output said to be {desc.dtype} came with {desc.encoding} values")
            if not typed and desc.encoding != "float64":
                raise CorruptMessage(f"a {desc.kind}'s values came as {desc.encoding}, not float64")
            values = decode_values(desc.encoding, desc.shape, buffers[desc.values])
        return cls(
            kind=desc.kind,
            type=desc.type,
            dtype=desc.dtype,
            shape=tuple(desc.shape) if desc.shape is not None else None,
            values=values,
            requires_grad=desc.requires_grad,
            note=desc.unreadable or desc.repr,
        )

    def describe(self) -> str:
        if self.kind in ("ndarray", "tensor"):
            return f"{self.type} of dtype {self.dtype} and shape {self.shape}"
        if self.kind in ("list", "tuple"):
            return f"a Python {self.kind}" + (f" (as an array: shape {self.shape})" if self.shape is not None else "")
        if self.kind == "none":
            return "None"
        return f"{self.type} {self.note or ''}".strip()


@dataclass
class CallOutcome:
    """One call of a learner function: the value or what went wrong, and what it touched."""

    status: str  # ok | raised | timeout | crashed | worker_lost | output_limit | corrupted
    output: Output | None = None
    error: dict[str, Any] | None = None
    detail: str = ""
    mutated: list[str] = field(default_factory=list)
    grads: dict[str, np.ndarray] | None = None
    grad_error: str | None = None
    grad_missing: list[str] = field(default_factory=list)
    tripwires: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    limit: float | None = None  # timeout: the case's own time limit (s) that was exceeded
    samples: list[dict[str, Any]] = field(default_factory=list)  # where the learner's time went (diagnostic only)
    sample_interval: float | None = None
    stopped: float | None = None  # the call stopped itself after this many seconds (its `stop_after`)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def fatal(self) -> bool:
        """The case's process is gone: later calls in this case cannot run."""
        return self.status in ("timeout", "crashed", "worker_lost", "corrupted")

    def problem(self, limits: Limits | None = None) -> str:
        """One-paragraph description of a call that did not return normally."""
        if self.status == "raised" and self.error:
            message = self.error["message"]
            if self.error.get("type") == "MemoryError":  # its own message is usually empty
                message = f"out of memory{f' (the memory limit is {limits.memory_mb} MiB)' if limits else ''}" + (f": {message}" if message else "")
            return f"raised {self.error['type']}: {message}" + (f"\n{self.error['traceback']}" if self.error.get("traceback") else "")
        if self.status == "timeout":
            where = f"; it was running {self.detail}" if self.detail else ""
            seconds = self.limit if self.limit is not None else (limits.case_timeout if limits else None)
            limit = f" {seconds:g} s" if seconds is not None else ""
            return f"did not finish within the case's time limit{limit} (infinite loop?){where}"
        if self.status == "crashed":
            return f"crashed: {self.detail}"
        if self.status == "worker_lost":
            return f"ran in a worker process that stopped responding and was replaced: {self.detail}"
        if self.status == "corrupted":
            return self.detail
        if self.status == "output_limit":
            return f"printed {self.detail}; remove the prints (or print less) inside the function"
        return self.status



def decode_outcome(reply: dict[str, Any], buffers: list[bytes]) -> CallOutcome:
    """Build a CallOutcome from a worker reply. The reply is believed only as far as its bytes:
    a header that fails validation, or arrays whose buffers do not match, make the outcome
    "corrupted" ("the submission corrupted the worker (...)"), never an exception."""
    try:
        msg = CallReply.parse(reply)
    except CorruptMessage as exc:
        return CallOutcome(status="corrupted", detail=corrupted(str(exc)))
    if msg.tampered:  # the forbidden calls recorded before the tracing was switched off still count
        return CallOutcome(status="corrupted", detail=corrupted(msg.tampered), duration=msg.duration, tripwires=[_plain_dict(h) for h in msg.tripwires])
    outcome = CallOutcome(status=msg.status, detail=msg.detail, duration=msg.duration, limit=msg.limit)
    outcome.error = _plain_dict(msg.error)
    outcome.mutated = list(msg.mutated)
    outcome.tripwires = [_plain_dict(h) for h in msg.tripwires]
    try:
        if msg.output is not None:
            outcome.output = Output.from_desc(msg.output, buffers)
        if msg.grads is not None:
            outcome.grads = {name: decode_float64(_plain_dict(ref), buffers) for name, ref in msg.grads.items()}
    except CorruptMessage as exc:
        return CallOutcome(status="corrupted", detail=corrupted(str(exc)), duration=msg.duration)
    outcome.grad_error = msg.grad_error
    outcome.grad_missing = list(msg.grad_missing)
    outcome.samples, outcome.sample_interval, outcome.stopped = [_plain_dict(x) for x in msg.samples], msg.sample_interval, msg.stopped
    if msg.output_exceeded:
        outcome.status = "output_limit"
        # The capture file stops growing just past the limit, so its size says nothing more.
        limit = msg.output_limit
        outcome.detail = f"more than the {mib(limit)} output limit" if limit is not None else f"{mib(msg.output_exceeded)} of output, more than the limit"
    return outcome


def _plain_dict(value: Any) -> Any:
    return None if value is None else dataclasses.asdict(value)


@dataclass(frozen=True)
class GradRequest:
    """Ask for d(sum(out * cotangent))/d(input) for the named inputs ('x', 'params.W_Q', ...)."""

    wrt: tuple[str, ...]
    cotangent: np.ndarray


def call_request(function: str, inputs: Inputs | list[Any], backend: str, dtype: str, grad: GradRequest | None, forbidden: list[str], stop_after: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
    """The call message; `stop_after` (seconds) asks the child to sample where the time goes and
    to stop the call itself after that long (harness/timing.py)."""
    buffers: list[bytes] = []
    contract = FUNCTIONS[function]
    values = inputs.positional() if isinstance(inputs, Inputs) else list(inputs)
    message = Call(
        function=function,
        backend=backend,
        dtype=dtype,
        arg_names=list(contract.args),
        args=[encode_input(v, buffers, _float32 if dtype == "float32" else None) for v in values],
        forbidden=list(forbidden),
    )
    if stop_after is not None:
        message.sample, message.stop_after = True, stop_after
    if grad is not None:
        message.grad = GradSpec(wrt=list(grad.wrt), cotangent=encode_input(grad.cotangent, buffers))
    return message.to_header(), buffers


def _float32(value: np.ndarray) -> np.ndarray:
    """An input cast to float32 for a call in float32, once per read-only input; beyond float32's
    range is inf, as the worker's own cast made it."""
    return refcache.cast(value, "float32")


class CaseRunner(Protocol):
    """What a property needs: call a function of the submission within one case."""

    def call(self, function: str, inputs: Inputs | list[Any], *, backend: str, dtype: str, grad: GradRequest | None = None, stop_after: float | None = None) -> CallOutcome: ...


# ---------------------------------------------------------------- worker processes


class WorkerPool:
    """The master worker: one interpreter start and one torch import for any number of submissions."""

    def __init__(self, sandbox_level: str = "none", hide: Any = ()) -> None:
        """`sandbox_level`: none | auto | strict (see harness/sandbox.py); `hide`: paths that must
        not be visible inside a sandbox (spec folders, submission folders, outputs)."""
        try:
            started = masterproc.take_early() or masterproc.start_master()
        except OSError as exc:
            raise WorkerError(f"could not start a worker process ({sys.executable}): {exc}") from None
        self._sock, self._log, self._cwd, self._proc = started.sock, started.log, started.cwd, started.proc
        self._pending: list[str] = []
        self._lock = threading.Lock()  # submissions may be graded from several threads
        self._preloading: list[str] = []
        self.preloaded: dict[str, str | None] = {}
        self._hide: list[str] = [str(p) for p in hide]
        self._owner = True  # started the master (a fork() copy shares its log and folder)
        self._level, self._forks = sandbox_level, 0
        self._sandbox: dict[str, Any] | None = sandbox.describe("none", []) if sandbox_level == "none" else None
        if self._sandbox is None:  # probed once per run, while the grader loads the spec
            root = os.path.join(self._cwd.name, "root")
            os.mkdir(root)
            self._root = root
            hidden = sandbox.plan([], root, self._hide)["hide"]  # the first sandbox is built with the probe
            self._request({"op": "probe", "level": sandbox_level, "root": root, "hide": hidden}, "probed")

    def fork(self) -> "WorkerPool":
        """Another pool for another grader process, served by a copy of this master forked once it
        has done what was asked before (torch's import among them): no second interpreter start,
        no second torch import. Returns at once; the copy answers as a fresh master would."""
        other = WorkerPool.__new__(WorkerPool)
        other._sock, theirs = socket.socketpair()
        other._log = os.fdopen(os.dup(self._log.fileno()), "rb")  # the copy writes to the same log
        other._cwd, other._owner = self._cwd, False
        other._proc = None  # type: ignore[assignment]  # the copy's process is not ours to wait for
        other._pending, other._lock, other._preloading, other.preloaded = [], threading.Lock(), [], {}
        with self._lock:
            other._hide = list(self._hide)
            other._sandbox = sandbox.describe("none", []) if self._level == "none" else None
            header: dict[str, Any] = {"op": "fork"}
            if other._sandbox is None:  # its own mount point for the new roots, and the probe's answer
                self._forks += 1
                other._root = os.path.join(self._cwd.name, f"root{self._forks}")
                os.mkdir(other._root)
                header.update(level=self._level, root=other._root, hide=sandbox.plan([], other._root, other._hide)["hide"])
                other._pending.append("probed")
            other._level, other._forks = self._level, 0
            try:
                send(self._sock.fileno(), header)
                socket.send_fds(self._sock, [b"F"], [theirs.fileno()])
            except OSError:
                other._sock.close()
                raise WorkerError(self._death_message()) from None
            finally:
                theirs.close()
        return other

    def _request(self, header: dict[str, Any], reply_op: str) -> None:
        try:
            send(self._sock.fileno(), header)
        except OSError:
            raise WorkerError(self._death_message()) from None
        self._pending.append(reply_op)

    def _reply(self, op: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while self._pending:
            expected = self._pending.pop(0)
            try:
                header, _ = recv(self._sock.fileno(), deadline)
            except (ProtocolError, Timeout):
                raise WorkerError(self._death_message()) from None
            if expected == op:
                return header
            self._absorb(expected, header)
        raise WorkerError(f"internal: no reply '{op}' pending")

    def _absorb(self, op: str, header: dict[str, Any]) -> None:
        if op == "probed":
            self._sandbox = header.get("sandbox") if isinstance(header.get("sandbox"), dict) else sandbox.describe("auto", [], "the probe gave no answer")
        if op == "preloaded":
            for module in self._preloading:
                self.preloaded[module] = header.get("errors", {}).get(module)

    def _death_message(self) -> str:
        self._log.seek(0)
        tail = self._log.read()[-2000:].decode("utf-8", "replace").strip()
        return "the worker process stopped unexpectedly" + (f":\n{tail}" if tail else "")

    def compact(self) -> None:
        """Ask the master to put its memory in huge pages (see worker.huge_pages), so that every
        process forked from it from now on (the other masters of a class run, the zygotes and
        their case children) costs less to fork and to end. Worth it for a class: it copies the
        master's heap once (~0.2 s). Returns at once; later requests wait for it."""
        with self._lock:
            try:
                send(self._sock.fileno(), {"op": "compact"})
            except OSError:
                raise WorkerError(self._death_message()) from None

    def preload(self, modules: list[str]) -> None:
        """Start importing modules (torch) in the master; returns at once, the import overlaps our work."""
        with self._lock:
            todo = [m for m in modules if m not in self.preloaded and m not in self._preloading]
            if todo:
                self._preloading = todo
                self._request({"op": "preload", "modules": todo}, "preloaded")

    def wait_preloaded(self) -> dict[str, str | None]:
        with self._lock:
            if "preloaded" in self._pending:
                self._absorb("preloaded", self._reply("preloaded", timeout=300.0))
                self._preloading = []
            return self.preloaded

    def sandbox_info(self) -> dict[str, Any]:
        """The sandbox level this run uses: {'requested', 'level', 'features', 'missing'[, 'reason']}."""
        with self._lock:
            if self._sandbox is None:
                self._absorb("probed", self._reply("probed", timeout=120.0))
            assert self._sandbox is not None
            return dict(self._sandbox)

    @property
    def hidden(self) -> list[str]:
        """The paths this pool's sandboxes do not show (a replacement pool is built with them)."""
        with self._lock:
            return list(self._hide)

    def hide(self, paths: Any) -> None:
        """Paths that later sandboxes must not show (added before the submissions are spawned)."""
        with self._lock:
            self._hide.extend(str(p) for p in paths if str(p) not in self._hide)

    @property
    def pid_namespaces(self) -> bool:
        return "pid" in self.sandbox_info()["features"]

    def spawn(self) -> tuple[socket.socket, int, int | None]:
        """A new zygote: (its socket, its pid, the pid of its sandbox's init or None)."""
        info = self.sandbox_info()
        if info["requested"] == "strict" and info["missing"]:
            raise WorkerError(f"sandbox strict: refusing to run learner code without {', '.join(info['missing'])} isolation ({info.get('reason', '')})")
        mine, theirs = socket.socketpair()
        with self._lock:
            header: dict[str, Any] = {"op": "spawn"}
            if info["features"]:
                header["sandbox"] = sandbox.plan(info["features"], self._root, self._hide)
            self._request(header, "spawned")
            try:
                socket.send_fds(self._sock, [b"F"], [theirs.fileno()])
            except OSError:
                raise WorkerError(self._death_message()) from None
            finally:
                theirs.close()
            reply = self._reply("spawned", timeout=300.0)
        try:
            spawned = Spawned.parse(reply, strict=False)
        except CorruptMessage as exc:
            raise WorkerError(f"the worker could not start a submission process: {exc}") from None
        if spawned.pid is None:
            raise WorkerError(f"the worker could not start a submission process: {spawned.error}")
        return mine, spawned.pid, spawned.init

    def close(self) -> None:
        try:
            send(self._sock.fileno(), {"op": "shutdown"})
        except OSError:
            pass
        self._sock.close()
        self._log.close()
        if not self._owner:
            return  # a forked master is not our child: it exits on 'shutdown' (or when the socket closes)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._cwd.cleanup()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class LoadReport:
    """What loading the submission in its zygote produced."""

    ok: bool
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunk_errors: list[dict[str, Any]] = field(default_factory=list)
    output: dict[str, Any] = field(default_factory=lambda: {"text": "", "bytes": 0})
    modules: list[str] = field(default_factory=list)
    tripwires: list[dict[str, Any]] = field(default_factory=list)
    fatal: str | None = None
    duration: float = 0.0


def load_report(reply: dict[str, Any], duration: float) -> LoadReport:
    """A LoadReport from the zygote's 'loaded' reply, validated (a corrupt one is a fatal load)."""
    try:
        msg = Loaded.parse(reply)
    except CorruptMessage as exc:
        return LoadReport(ok=False, fatal=corrupted(str(exc)))
    return LoadReport(
        ok=True,
        functions={name: _compact(info) for name, info in msg.functions.items()},
        chunk_errors=[dataclasses.asdict(e) for e in msg.chunk_errors],
        output=dataclasses.asdict(msg.output),
        modules=list(msg.modules),
        tripwires=[dataclasses.asdict(h) for h in msg.tripwires],
        duration=duration,
    )


def captured_output(reply: dict[str, Any]) -> dict[str, Any]:
    """The printed output from a 'case_ended' reply, validated; a corrupt one reads as a note."""
    try:
        return dataclasses.asdict(CaseEnded.parse(reply).output)
    except CorruptMessage as exc:
        return {"text": f"[{corrupted(str(exc))}]", "bytes": 0}


def _compact(value: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(value).items() if v is not None}


class Watchdog:
    """Bounds one submission's wall time whatever its processes do (a stopped zygote, a child that
    ignores everything): at the deadline every process group it watches is SIGKILLed (a sandbox's
    PID-namespace init among them, which takes the whole namespace with it)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._pids: set[int] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def watch(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)
            if not self.expired:
                return
        _killpg(pid)

    def unwatch(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            pids = list(self._pids)
        for pid in pids:
            _killpg(pid)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def kill_all(self) -> None:
        """The submission is over: end every sandbox it used (an earlier one, replaced after a lost
        case, may still hold a daemon)."""
        with self._lock:
            pids, self._pids = list(self._pids), set()
        for pid in pids:
            _killpg(pid)

    @property
    def message(self) -> str:
        return f"the submission's total time limit ({self.seconds - WATCHDOG_MARGIN_S:g} s) was reached: its processes were stopped"


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class WorkerSession:
    """One submission loaded in a zygote; cases run in children forked from it."""

    def __init__(self, pool: WorkerPool, load_request: dict[str, Any], limits: Limits, watchdog: Watchdog | None = None):
        self.pool = pool
        self.limits = limits
        self.owns_watchdog = watchdog is None
        self.watchdog = watchdog or Watchdog(limits.submission_timeout + WATCHDOG_MARGIN_S)
        self.load_request = {**load_request, "op": "load", "limits": {
            "memory_mb": limits.memory_mb,
            "output_bytes": limits.output_bytes,
            "chunk_timeout": limits.chunk_timeout,
            "case_timeout": limits.case_timeout,
        }}
        self.sock: socket.socket | None = None
        self.pid: int | None = None
        self.pidfd: int | None = None  # the zygote's, for resume()
        self.init: int | None = None  # the sandbox's PID 1: killing it ends every process in the sandbox
        self.load: LoadReport = LoadReport(ok=False)
        self.restarts = 0
        self.kept_bytes = 0  # the outputs and gradients the grader has decoded for this submission (KEPT_BYTES_LIMIT)
        # Whether a case's verdict depends on the cases run before it in the same child: "unknown"
        # until a case fails in a shared child and is run again in a fresh one (grade._run_case).
        self.history = "unknown"  # | "irrelevant" | "matters" (then every case gets a fresh child)

    def start(self) -> LoadReport:
        if self.watchdog.expired:
            self.load = LoadReport(ok=False, fatal=self.watchdog.message)
            return self.load
        self.watchdog.start()
        self.sock, self.pid, self.init = self.pool.spawn()
        self._open_pidfd()
        self.watchdog.watch(self.init or self.pid)
        start = time.monotonic()
        try:
            send(self.sock.fileno(), self.load_request)
            reply, _ = recv(self.sock.fileno(), start + self.limits.load_timeout)
        except Timeout:
            self.kill()
            self.load = LoadReport(ok=False, fatal=f"loading the submission took longer than {self.limits.load_timeout:g} s and was stopped")
            return self.load
        except CorruptMessage as exc:
            self.kill()
            self.load = LoadReport(ok=False, fatal=corrupted(str(exc)))
            return self.load
        except (ProtocolError, OSError):
            self.kill()
            self.load = LoadReport(
                ok=False,
                fatal="the submission ended the worker process while it was being loaded "
                "(os._exit(), a crash in native code, or running out of memory at import time)",
            )
            return self.load
        self.load = load_report(reply, time.monotonic() - start)
        if not self.load.ok:
            self.kill()
        return self.load

    def clone(self) -> "WorkerSession":
        """A second zygote forked from this loaded one: the same submission, top-level code run once.

        If cloning fails, the new session loads the submission itself on first use."""
        other = WorkerSession(self.pool, self.load_request, self.limits, self.watchdog)
        other.load = self.load
        if self.sock is None or not self.load.ok:
            return other
        mine, theirs = socket.socketpair()
        try:
            send(self.sock.fileno(), {"op": "clone"})
            socket.send_fds(self.sock, [b"F"], [theirs.fileno()])
            reply, _ = recv(self.sock.fileno(), time.monotonic() + 30)
        except (ProtocolError, Timeout, OSError):
            mine.close()
            return other
        finally:
            theirs.close()
        if not isinstance(reply.get("pid"), int):
            mine.close()
            return other
        pid: int | None = reply["pid"]
        if self.pool.pid_namespaces:  # the zygote says its pid as seen inside its sandbox
            pid = sandbox.global_pid(self.pid, reply["pid"]) if self.pid is not None else None
        other.sock, other.pid, other.init = mine, pid, self.init
        other._open_pidfd()
        if pid is not None:
            self.watchdog.watch(pid)
        return other

    @property
    def alive(self) -> bool:
        return self.sock is not None

    def _open_pidfd(self) -> None:
        """A handle on the zygote that cannot name another process later (pidfd_open, Linux 5.3+)."""
        self._close_pidfd()
        try:
            self.pidfd = os.pidfd_open(self.pid) if self.pid is not None else None
        except (AttributeError, OSError):
            self.pidfd = None

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
        self.pidfd = None

    def resume(self) -> None:
        """SIGCONT the zygote. A submission can stop its own zygote (SIGSTOP from a case child):
        the grader would then wait out WORKER_MARGIN_S at every case before replacing it."""
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGCONT)
            except OSError:
                pass

    def reply(self, deadline: float) -> dict[str, Any]:
        """The zygote's next message, resuming the zygote while it is awaited (see resume)."""
        assert self.sock is not None
        while True:
            self.resume()
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout()
            if select.select([self.sock], [], [], min(left, 0.05))[0]:
                return recv(self.sock.fileno(), deadline)[0]

    def kill(self) -> None:
        """Stop this zygote and its case children (its own process group); a clone in the same
        sandbox runs on."""
        if self.pid is not None:
            _killpg(self.pid)
            self.watchdog.unwatch(self.pid)
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.pid = None
        self._close_pidfd()

    def close(self) -> None:
        """End the submission's sandbox: with it every process it started (daemons included)."""
        if self.sock is not None:
            try:
                send(self.sock.fileno(), {"op": "shutdown"})
            except OSError:
                pass
        self.kill()
        if self.owns_watchdog:
            self.watchdog.kill_all()
            self.watchdog.cancel()
        self.init = None

    def case(self, case_id: str, timeout: float, forbidden: list[str] | None = None, *, last: bool = False, fresh: bool = False) -> "CaseSession":
        """`last`: no other case follows soon on this zygote (it then forks no child ahead).
        `fresh`: run it in a child forked for it, not in the one earlier cases ran in."""
        if self.sock is None:
            self.restarts += 1
            self.start()
        return CaseSession(self, case_id, timeout, forbidden or [], last, fresh)


class CaseSession:
    """One case in a child process of the zygote: the child earlier cases ran in, while they ended
    normally, or a fresh one (`fresh` says which it got). The zygote hands over the child's
    socket, so calls go straight to the child; the case's time limit is watched here, and the
    zygote is asked to end a child that overran it, died or sent garbage. Use as a context
    manager; `captured` holds its prints."""

    def __init__(self, session: WorkerSession, case_id: str, timeout: float, forbidden: list[str], last: bool = False, fresh: bool = False):
        self.session = session
        self.last = last
        self.case_id = case_id
        self.timeout = timeout
        self.forbidden = forbidden
        self.fresh = fresh
        self.captured: dict[str, Any] = {"text": "", "bytes": 0}
        self.lost: str | None = None
        self.ended: CallOutcome | None = None  # how the child ended (timeout, crash): later calls get the same
        self.keep = True  # False: the child is not used again (its case changed something, or it died)
        self.child: socket.socket | None = None
        self.output_fd: int | None = None

    def __enter__(self) -> "CaseSession":
        s = self.session
        self.deadline = time.monotonic() + self.timeout + WORKER_MARGIN_S
        if s.sock is None:
            self.lost = s.load.fatal or "the submission could not be loaded"
            return self
        try:
            send(s.sock.fileno(), CaseStart(case=self.case_id, timeout=self.timeout, fresh=self.fresh))
            reply = s.reply(time.monotonic() + WORKER_MARGIN_S + 10)
            self.fresh = CaseStarted.parse(reply).fresh
            self.child, self.output_fd = _child_channel(s.sock, time.monotonic() + WORKER_MARGIN_S)
        except CorruptMessage as exc:
            self._lose(corrupted(str(exc)))
        except (ProtocolError, Timeout, OSError):
            self._lose("the worker did not start the case")
        self.deadline = time.monotonic() + self.timeout + WORKER_MARGIN_S  # when the grader gives up (harness/timing.py reads it)
        return self

    def _lose(self, why: str) -> None:
        self.lost = self.session.watchdog.message if self.session.watchdog.expired else why
        self._close_child()
        self.session.kill()

    def _close_child(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None
        if self.output_fd is not None:
            os.close(self.output_fd)
            self.output_fd = None

    def call(self, function: str, inputs: Inputs | list[Any], *, backend: str, dtype: str, grad: GradRequest | None = None, stop_after: float | None = None) -> CallOutcome:
        if self.lost:
            return CallOutcome(status="worker_lost", detail=self.lost)
        if self.ended is not None:
            return dataclasses.replace(self.ended)
        if self.child is None:
            return CallOutcome(status="worker_lost", detail="the worker's connection is closed")
        header, buffers = call_request(function, inputs, backend, dtype, grad, self.forbidden, stop_after)
        fd = self.child.fileno()
        try:
            send(fd, header, buffers)
            reply, out = recv(fd, self.deadline - WORKER_MARGIN_S)  # the case's own limit, from its start
        except Timeout:
            return self._end("timeout", lambda detail: CallOutcome(status="timeout", detail=detail, limit=self.timeout))
        except CorruptMessage as exc:
            self._lose(corrupted(str(exc)))
            return CallOutcome(status="corrupted", detail=self.lost or "")
        except (ProtocolError, OSError):
            return self._end("crashed", lambda detail: CallOutcome(status="crashed", detail=detail))
        assert self.output_fd is not None  # handed over with the child's socket
        size = os.fstat(self.output_fd).st_size
        limit = self.session.limits.output_bytes
        if size > limit:
            reply = {**reply, "output_exceeded": size, "output_limit": limit}
        outcome = decode_outcome(reply, out)
        if outcome.status == "corrupted":
            self._lose(outcome.detail)
            return outcome
        kept = (outcome.output.values.nbytes if outcome.output is not None and outcome.output.values is not None else 0) + sum(g.nbytes for g in (outcome.grads or {}).values())
        self.session.kept_bytes += kept
        if self.session.kept_bytes > KEPT_BYTES_LIMIT:
            self._lose(corrupted(f"its outputs came to more than {mib(KEPT_BYTES_LIMIT)} in all, far more than any grading needs"))
            return CallOutcome(status="corrupted", detail=self.lost or "")
        return outcome

    def _end(self, reason: str, outcome: Callable[[str], CallOutcome]) -> CallOutcome:
        """The child overran the case's limit or died: the zygote ends it and says where it was."""
        self._close_child()
        sock = self.session.sock
        try:
            assert sock is not None  # the case started on it
            send(sock.fileno(), CaseStop(reason=reason))
            reply = self.session.reply(time.monotonic() + WORKER_MARGIN_S)
            detail = CaseStopped.parse(reply).detail
        except CorruptMessage as exc:
            self._lose(corrupted(str(exc)))
            return CallOutcome(status="corrupted", detail=self.lost or "")
        except Timeout:
            self._lose(f"no answer {WORKER_MARGIN_S:g} s after the case's deadline")
            return CallOutcome(status="worker_lost", detail=self.lost or "")
        except (AssertionError, ProtocolError, OSError):
            self._lose("the submission's process died")
            return CallOutcome(status="worker_lost", detail=self.lost or "")
        self.ended = outcome(detail)
        return dataclasses.replace(self.ended)

    def __exit__(self, *exc: Any) -> None:
        if self.keep and self.child is not None and self.ended is None:
            self.keep = _unchanged(self.child)
        self._close_child()
        s = self.session
        if self.lost or s.sock is None:
            return
        try:
            send(s.sock.fileno(), CaseEnd(spare=not self.last, keep=self.keep))
            reply = s.reply(time.monotonic() + WORKER_MARGIN_S)
            self.captured = captured_output(reply)
        except (ProtocolError, Timeout, OSError):
            self._lose("the worker did not end the case")


def _unchanged(child: socket.socket) -> bool:
    """Whether the case child says its case left nothing behind (harness/childstate.py); any other
    answer, or none within a second, counts as a change."""
    try:
        send(child.fileno(), StateAsked())
        reply, _ = recv(child.fileno(), time.monotonic() + 1.0)
        return StateTold.parse(reply).changed is False
    except (ProtocolError, Timeout, OSError):  # CorruptMessage is a ProtocolError
        return False


def _child_channel(zygote: socket.socket, deadline: float) -> tuple[socket.socket, int]:
    """The case child's socket and capture file, passed by the zygote after 'case_started'. They
    come from learner-controlled code: anything but a socket and a regular file is refused."""
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([zygote], [], [], left)[0]:
        raise Timeout()
    _, fds, _, _ = socket.recv_fds(zygote, 1, 2)
    kinds = [os.fstat(fd).st_mode for fd in fds]
    if len(fds) != 2 or not stat.S_ISSOCK(kinds[0]) or not stat.S_ISREG(kinds[1]):
        for fd in fds:
            os.close(fd)
        raise CorruptMessage("the zygote did not hand over the case child's socket and output file")
    return socket.socket(fileno=fds[0]), fds[1]


# ---------------------------------------------------------------- trusted code, in process


class InProcessRunner:
    """Runs trusted functions (reference, misconceptions) through the same call path, in process."""

    def __init__(self, functions: dict[str, Callable[..., Any]], forbidden: list[str] | None = None):
        self.functions = functions
        self.forbidden = forbidden or []

    def call(self, function: str, inputs: Inputs | list[Any], *, backend: str, dtype: str, grad: GradRequest | None = None, stop_after: float | None = None) -> CallOutcome:
        fn = self.functions.get(function)
        if fn is None:
            return CallOutcome(status="raised", error={"type": "NameError", "message": f"{function} is not defined", "traceback": "", "line": None})
        if backend == "torch" and not callexec.torch_ready():
            callexec.prepare_torch()
        header, buffers = call_request(function, inputs, backend, dtype, grad, self.forbidden)
        reply, out = callexec.execute_call(fn, header, buffers, set())
        return decode_outcome(reply, out)
