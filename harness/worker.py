"""Worker processes. Learner code runs here and only here.

Three levels, so that the expensive part (starting Python, importing torch) is paid once per
grading run, yet no case sees what an earlier one changed:

- the **master** (`python -m attnspec.worker FD`) imports numpy (and torch when asked) and never
  runs learner code; it forks one zygote per submission.
- a **zygote** executes the submission's code once (chunk by chunk, so one broken cell does not
  hide the others), then forks case children and hands each one's socket to the grader.
- a **child** runs cases' calls, answering the grader directly. After a case it says whether the
  case changed anything a later case could see (harness/childstate.py): if so, or if it died
  (exit, crash, a hang killed at the case's deadline), it is ended and the next case gets a fresh
  one; otherwise it runs the zygote's next case.

The grader talks to a zygote over a socket the master hands over at fork time.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import dataclasses
import errno
import faulthandler
import inspect
import io
import linecache
import os
import resource
import signal
import socket
import stat
import sys
import tempfile
import time
import types
from typing import Any

from . import callexec, childstate, sandbox
from .exercises import FUNCTIONS
from .static import outermost_loop
from .malloc import keep_freed_memory
from .protocol import MAX_LOAD_HEADER, Call, CaseEnd, CaseStart, CaseStop, Load, ProtocolError, mib, recv, send

OUTPUT_HEAD = 6000
OUTPUT_TAIL = 2000
MAX_CHUNK_ERRORS = 200


# ---------------------------------------------------------------- master


def master_main(fd: int, probed: dict[str, Any] | None = None, prebuild: dict[str, Any] | None = None) -> None:
    sock = socket.socket(fileno=fd)
    keep_freed_memory()  # zygotes and case children inherit it
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # zygotes are reaped automatically
    spawner = sandbox.Spawner()
    if prebuild is not None:
        spawner.prebuild(prebuild, _serve_zygote)
    while True:
        try:
            header, _ = recv(fd)
        except ProtocolError:
            os._exit(0)  # the grader went away
        op = header.get("op")
        if op == "preload":
            errors = {}
            before = set(sys.modules)
            for module in header.get("modules", []):
                try:
                    if module == "torch":
                        callexec.prepare_torch()
                    else:
                        __import__(module)
                except Exception as exc:  # noqa: BLE001 - reported to the grader as "backend unavailable"
                    errors[module] = f"{type(exc).__name__}: {exc}"
            send(fd, {"op": "preloaded", "errors": errors})
            if set(sys.modules) - before:
                spawner.rebuild(_serve_zygote)  # a sandbox built before the import would import torch again
        elif op == "probe":
            probed = spawner.probe(str(header.get("level")), str(header.get("root")))
            send(fd, {"op": "probed", "sandbox": probed})
            spawner.prebuild({"features": probed["features"], "root": header.get("root"), "hide": header.get("hide", [])}, _serve_zygote)
        elif op == "compact":
            huge_pages()
            spawner.rebuild(_serve_zygote)  # the sandbox built ahead was forked before
        elif op == "fork":
            _fork_master(sock, header, probed, spawner)
        elif op == "spawn":
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            if not fds:
                send(fd, {"op": "spawned", "error": "no socket received"})
                continue
            send(fd, {"op": "spawned", **_spawn(sock, fds[0], header.get("sandbox"), spawner)})
            if header.get("sandbox"):
                spawner.prebuild(header["sandbox"], _serve_zygote)  # the next submission's, while this one loads
        elif op == "shutdown":
            os._exit(0)


MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20


def huge_pages() -> int:
    """Collapse this process's private anonymous memory (the heap that numpy and torch built at
    import, ~150 MB) into transparent huge pages; returns the bytes collapsed.

    Every case runs in a child forked from a zygote forked from here: fork copies one page-table
    entry per 4 KiB page, and ending the child drops them again, so with torch loaded a case child
    cost ~25 ms of kernel time; with 2 MiB pages, both cost about a third (bench/bench_fork.py).
    Only memory that exists now is collapsed: what is allocated later (learner arrays) follows the
    machine's own THP policy, as before. Needs Linux 6.1+ (MADV_COLLAPSE); anywhere else, and for
    any range the kernel refuses, nothing changes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as f:
            maps = f.read().splitlines()
    except (OSError, AttributeError):
        return 0
    done = 0
    for line in maps:
        parts = line.split()
        if len(parts) < 5 or parts[1] != "rw-p" or (len(parts) > 5 and parts[5] != "[heap]"):
            continue  # only the heap and anonymous mappings: not files, stacks, or the vdso
        start, end = (int(x, 16) for x in parts[0].split("-"))
        first, last = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), end & ~(HUGE_PAGE - 1)
        if last > first and madvise(first, last - first, MADV_COLLAPSE) == 0:
            done += last - first
    return done


def _fork_master(sock: socket.socket, header: dict[str, Any], probed: dict[str, Any] | None, spawner: sandbox.Spawner) -> None:
    """Another master for another grader process (a class run with -j N), forked from this one
    with what it imported (torch): one interpreter start and one torch import for the whole run.
    It serves the socket the grader just passed us and answers as a fresh master would (the probe's
    result, then its first sandbox built ahead); the sandbox built ahead here stays ours."""
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        return  # the grader sees the new socket closed: that pool reports a lost worker
    try:
        pid = os.fork()
    except OSError:
        pid = -1  # no second master: the same as above
    if pid == 0:
        try:
            spawner.forget()
            sock.close()
            if header.get("root") is not None:  # a sandbox level was asked for: answer as the probe would
                info = probed or sandbox.describe(str(header.get("level")), [], "the probe gave no answer")
                send(fds[0], {"op": "probed", "sandbox": info})
                master_main(fds[0], info, prebuild={"features": info["features"], "root": header["root"], "hide": header.get("hide", [])})
            else:
                master_main(fds[0])
        finally:
            os._exit(0)
    os.close(fds[0])


def _serve_zygote(fd: int) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    Zygote(fd).serve()


def _spawn(sock: socket.socket, zfd: int, box: dict[str, Any] | None, spawner: sandbox.Spawner) -> dict[str, Any]:
    """Fork a zygote for one submission: plainly (level none), or inside a fresh sandbox (the one
    built ahead for this plan, if any)."""
    if box and box.get("features"):
        try:
            return spawner.take(box, zfd) or spawner.spawn(box, lambda: _serve_zygote(zfd), [zfd])
        finally:
            os.close(zfd)
    pid = os.fork()
    if pid == 0:
        try:
            sock.close()
            os.setpgid(0, 0)
            _serve_zygote(zfd)
        finally:
            os._exit(0)
    os.close(zfd)
    return {"pid": pid}


# ---------------------------------------------------------------- import guard


class _ImportGuard:
    """Refuses `import attnspec` from learner code and remembers where it was tried."""

    def __init__(self, learner_files: set[str]):
        self.learner_files = learner_files
        self.attempts: list[dict[str, Any]] = []

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "attnspec" or name.startswith("attnspec."):
            frame: types.FrameType | None = sys._getframe(1)
            where = None
            while frame is not None:
                if frame.f_code.co_filename in self.learner_files:
                    where = (frame.f_code.co_filename, frame.f_lineno)
                    break
                frame = frame.f_back
            hit = {"api": f"import {name}"[:300], "file": where[0] if where else None, "line": where[1] if where else None}
            if hit not in self.attempts:
                self.attempts.append(hit)
            raise ImportError(f"submissions may not import {name} (the grader's own package)")
        return None


# ---------------------------------------------------------------- zygote


def _limit_memory(megabytes: int) -> None:
    """Cap the address space at what is mapped now plus `megabytes`, so a memory bomb raises MemoryError."""
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        return
    limit = vm + megabytes * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass


def _limit_output(nbytes: int) -> None:
    """Cap the size of files this process writes (the capture of stdout/stderr among them) a little
    above the output limit: a print loop then fails with EFBIG instead of filling the disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = nbytes + 65536
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _read_capture(f: io.BufferedRandom) -> dict[str, Any]:
    f.flush()
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if size <= OUTPUT_HEAD + OUTPUT_TAIL:
        text = f.read().decode("utf-8", "replace")
    else:
        head = f.read(OUTPUT_HEAD).decode("utf-8", "replace")
        f.seek(size - OUTPUT_TAIL)
        tail = f.read().decode("utf-8", "replace")
        text = f"{head}\n... [{size - OUTPUT_HEAD - OUTPUT_TAIL} bytes not shown] ...\n{tail}"
    return {"text": text, "bytes": size}



def _enter_workdir(request: Load) -> None:
    """The submission's working folder (cwd and a sys.path entry): inside a sandbox, its private
    folder holding only the companion files sent with the load request; else the file's folder."""
    if sandbox.workdir is not None:
        for name, text in request.companions.items():
            target = os.path.normpath(os.path.join(sandbox.workdir, str(name)))
            if not target.startswith(sandbox.workdir + "/"):
                continue  # a name that climbs out of the folder: not written
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(str(text))
            except OSError:
                pass
        return
    if request.directory:
        sys.path.append(request.directory)
        try:
            os.chdir(request.directory)
        except OSError:
            pass


def _file_seen_inside(request: Load) -> str:
    """The submission's __file__: where it lies as its code sees the file system, so that
    os.path.dirname(__file__) finds the helper files next to it (in a sandbox, its private folder,
    where they were written; else the file's own folder)."""
    name = os.path.basename(request.path)
    folder = sandbox.workdir if sandbox.workdir is not None else request.directory
    return os.path.join(folder, name) if folder else request.path


class _ChunkTimeout(BaseException):
    """Raised by SIGALRM while a chunk of the submission runs at load time."""


class Zygote:
    def __init__(self, fd: int):
        self.fd = fd
        self.namespace: dict[str, Any] = {}
        self.learner_files: set[str] = set()
        self.guard: _ImportGuard | None = None
        self.child: int | None = None
        self.child_sock: socket.socket | None = None
        self.child_out: io.BufferedRandom | None = None
        self.child_trace: io.BufferedRandom | None = None
        self.spare: tuple[int, socket.socket, io.BufferedRandom, io.BufferedRandom] | None = None
        self.spare_used = False  # the spare is the child of earlier cases, kept (not a fresh fork)
        self.killed: list[int] = []
        self.finished: tuple[Any, Any, Any, Any] = (None, None, None, None)
        self.limits: dict[str, Any] = {}

    def serve(self) -> None:
        while True:
            try:
                header, buffers = recv(self.fd, max_header=MAX_LOAD_HEADER)
            except ProtocolError:
                return
            op = header.get("op")
            if op == "load":
                send(self.fd, self.load(header))
                self._prepare_spare()
            elif op == "case_start":
                send(self.fd, self.case_start(header))
                self._hand_over()
            elif op == "case_stop":
                send(self.fd, {"op": "case_stopped", "detail": self.case_stop(CaseStop.parse(header, strict=False).reason)[:2000]})
            elif op == "case_end":
                send(self.fd, self.case_end())
                end = CaseEnd.parse(header, strict=False)
                self._after_case(spare=end.spare, keep=end.keep)
            elif op == "clone":
                self.clone()
            elif op == "shutdown":
                self._shutdown()
                return

    def clone(self) -> None:
        """Fork a second zygote that shares this one's loaded submission (its top-level code is
        not run again) and serves the socket the grader just passed us."""
        with socket.socket(fileno=os.dup(self.fd)) as sock:
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
        if not fds:
            send(self.fd, {"op": "cloned", "error": "no socket received"})
            return
        pid = os.fork()
        if pid == 0:  # the clone: forget this zygote's connection and children, serve the new one
            os.setpgid(0, 0)
            os.close(self.fd)
            if self.spare is not None:
                for f in self.spare[1:]:
                    f.close()
            self.fd, self.spare, self.spare_used, self.killed = fds[0], None, False, []
            self._prepare_spare()
            return
        os.close(fds[0])
        send(self.fd, {"op": "cloned", "pid": pid})

    # ---- load

    def load(self, header: dict[str, Any]) -> dict[str, Any]:
        request = Load.parse(header, strict=False)
        assert request.limits is not None
        self.limits = dataclasses.asdict(request.limits)
        self.learner_files = {f.filename for f in request.files}
        capture = tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        _limit_output(int(self.limits["output_bytes"]))
        _limit_memory(int(self.limits["memory_mb"]))
        for module in [m for m in sys.modules if m == "attnspec" or m.startswith("attnspec.")]:
            del sys.modules[module]
        self.guard = _ImportGuard(self.learner_files)
        sys.meta_path.insert(0, self.guard)
        _enter_workdir(request)
        # A real module in sys.modules: dataclasses, typing.get_type_hints and pickle look the
        # submission up there by its __name__ (`from __future__ import annotations` + @dataclass).
        submission = types.ModuleType(request.module_name)
        submission.__dict__.update(__builtins__=builtins, __file__=_file_seen_inside(request))
        sys.modules[request.module_name] = submission
        self.namespace = submission.__dict__
        lines = _source_lines(request.files)
        for filename, file_lines in lines.items():
            linecache.cache[filename] = (sum(map(len, file_lines)), None, file_lines, filename)
        chunks = [(request.files[c.file].filename, lines[request.files[c.file].filename], c.first, c.last) for c in request.chunks]
        errors: dict[int, dict[str, Any]] = {}
        flags = 0
        signal.signal(signal.SIGALRM, _raise_chunk_timeout)
        start = time.perf_counter()
        for index, chunk in enumerate(chunks):
            flags, error = self._run_chunk(chunk, flags)
            if error:
                errors[index] = error
        # Notebooks run out of order: a cell may use a name a later cell defines. Retry those once.
        for index in sorted(errors):
            if errors[index]["type"] == "NameError":
                flags, error = self._run_chunk(chunks[index], flags)
                if error is None:
                    del errors[index]
                else:
                    errors[index] = error
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        sys.stdout.flush()
        sys.stderr.flush()
        return {
            "op": "loaded",
            "duration": time.perf_counter() - start,
            "chunk_errors": [{"chunk": i, **_fit_error(e)} for i, e in sorted(errors.items())][:MAX_CHUNK_ERRORS],
            "functions": self._functions(),
            "output": _read_capture(capture),
            "modules": sorted(m for m in ("numpy", "torch") if m in sys.modules),
            "tripwires": list(self.guard.attempts)[:100],
        }

    def _run_chunk(self, chunk: tuple[str, list[str], int, int], flags: int) -> tuple[int, dict[str, Any] | None]:
        """Compile lines first..last of a file with their own line numbers (the AST is shifted,
        not padded with blank lines, so loading is linear in the file's size) and run them."""
        filename, lines, first, last = chunk
        try:
            try:
                tree = ast.parse("".join(lines[first - 1 : last]), filename, "exec")
            except SyntaxError as exc:
                exc.lineno = (exc.lineno or 1) + first - 1
                raise
            ast.increment_lineno(tree, first - 1)
            code = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        except SyntaxError as exc:
            return flags, {"type": "SyntaxError", "message": str(exc.msg), "line": exc.lineno, "file": filename, "traceback": ""}
        except (RecursionError, MemoryError, ValueError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else "too large" if isinstance(exc, MemoryError) else str(exc)
            return flags, {"type": "SyntaxError", "message": f"Python cannot compile this code: it is {what}", "line": first, "file": filename, "traceback": ""}
        flags |= code.co_flags & _FUTURE_FLAGS
        signal.setitimer(signal.ITIMER_REAL, float(self.limits["chunk_timeout"]))
        try:
            exec(code, self.namespace)
        except _ChunkTimeout:
            return flags, {
                "type": "Timeout",
                "message": f"this part of the submission ran for more than {self.limits['chunk_timeout']} s at load time and was stopped",
                "line": None,
                "file": filename,
                "traceback": "",
            }
        except BaseException as exc:  # noqa: BLE001 - load-time capture point: the next chunk still runs
            text, line, file = callexec.format_learner_traceback(exc, self.learner_files)
            message = f"called sys.exit({exc.code!r}) at load time" if isinstance(exc, SystemExit) else callexec._safe_str(exc)
            if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
                message = f"printed more than the {mib(self.limits['output_bytes'])} output limit at load time (the output was cut off); print less"
            return flags, {"type": type(exc).__name__, "message": message, "line": line, "file": file or filename, "traceback": text}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return flags, None

    def _functions(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, contract in FUNCTIONS.items():
            if name not in self.namespace:
                continue
            obj = self.namespace[name]
            info: dict[str, Any] = {"callable": callable(obj), "type": str(type(obj).__name__)[:300]}
            code = getattr(obj, "__code__", None)
            if code is not None:
                info.update(file=code.co_filename, line=code.co_firstlineno)
            if callable(obj):
                try:
                    sig = inspect.signature(obj)
                    info["signature"] = f"{name}{sig}"[:4000]
                    sig.bind(*range(len(contract.args)))
                    info["bindable"] = True
                except TypeError as exc:
                    info["bindable"] = False
                    info["bind_error"] = str(exc)[:2000]
                except ValueError:
                    info["bindable"] = True  # no introspectable signature (builtin/C callable): try calling it
            found[name] = info
        return found

    # ---- cases

    def case_start(self, header: dict[str, Any]) -> dict[str, Any]:
        if self.child is not None:
            self.case_end()
            self._after_case()
        self._reap()
        request = CaseStart.parse(header, strict=False)
        spare, used = self.spare, self.spare_used
        self.spare, self.spare_used = None, False
        if spare is not None and used and (request.fresh or not _running(spare[0])):
            self._discard(*spare)  # asked for a fresh child, or the kept one has ended on its own
            spare = None
        self.child, self.child_sock, self.child_out, self.child_trace = spare or self._fork_child()
        return {"op": "case_started", "pid": self.child, "fresh": not (spare is not None and used)}

    def _fork_child(self) -> tuple[int, socket.socket, io.BufferedRandom, io.BufferedRandom]:
        """A fresh case child, forked from the loaded submission, waiting for its first call."""
        out, trace = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        parent_sock, child_sock = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the case child
            try:
                parent_sock.close()
                os.close(self.fd)
                _close_other_sockets(keep=child_sock.fileno())
                self._child_main(child_sock, out, trace)
            finally:
                os._exit(70)
        child_sock.close()
        return pid, parent_sock, out, trace

    def _prepare_spare(self) -> None:
        if self.spare is None and self.guard is not None:
            self.spare, self.spare_used = self._fork_child(), False

    def _discard(self, pid: int | None, *files: Any) -> None:
        """Kill a case child (reaped later) and close our ends of its socket and files."""
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.killed.append(pid)
        for f in files:
            if f is not None:
                f.close()

    def _reap(self) -> None:
        """Collect the exit status of children killed earlier (they were not waited for)."""
        for pid in list(self.killed):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.killed.remove(pid)

    def _shutdown(self) -> None:
        for pid in [p for p in (self.child, self.spare[0] if self.spare else None) if p]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.killed.append(pid)
        for pid in self.killed:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    def _child_main(self, sock: socket.socket, out: io.BufferedRandom, trace: io.BufferedRandom) -> None:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        faulthandler.register(signal.SIGUSR1, file=trace, all_threads=False)
        _limit_output(int(self.limits["output_bytes"]))
        _limit_memory(int(self.limits["memory_mb"]))
        callexec.warm_up()  # touch the pages a call writes to now, while the grader is busy elsewhere
        snapshot = childstate.Snapshot(self.namespace, self.learner_files)  # the submission as loaded
        fd = sock.fileno()
        while True:
            try:
                header, buffers = recv(fd)
            except ProtocolError:
                os._exit(0)
            if header.get("op") == "state":  # the grader, after a case: may this child run the next one?
                send(fd, {"op": "state", "changed": snapshot.changed()})
                continue
            if header.get("op") != "call":
                os._exit(0)
            name = Call.parse(header, strict=False).function
            fn = self.namespace.get(name)
            if not callable(fn):
                send(fd, {"status": "raised", "error": {"type": "NameError", "message": f"{name} is not defined", "traceback": "", "line": None, "file": None}})
                continue
            reply, payload = callexec.execute_call(fn, header, buffers, self.learner_files)
            if self.guard is not None and self.guard.attempts:
                reply["tripwires"] = reply.get("tripwires", []) + [a for a in self.guard.attempts if a not in reply.get("tripwires", [])]
            sys.stdout.flush()
            sys.stderr.flush()
            send(fd, reply, payload)

    def _hand_over(self) -> None:
        """Pass the grader our end of the case child's socket and its capture file: the case's
        calls go straight between the grader and the child (no copy through this process); the
        grader watches the time and the output's size, and asks us (case_stop) to end the child."""
        assert self.child_sock is not None and self.child_out is not None  # case_start just made them
        with socket.socket(fileno=os.dup(self.fd)) as sock:
            socket.send_fds(sock, [b"F"], [self.child_sock.fileno(), self.child_out.fileno()])

    def case_stop(self, reason: str) -> str:
        """End the case child for the grader; returns what it can say about how it ended (for a
        timeout, the learner's line it was on)."""
        if self.child is None:
            return ""
        return self._kill_with_trace() if reason == "timeout" else self._reap_description()

    def _kill_with_trace(self) -> str:
        """Ask the child where it is (faulthandler), then kill it; return the learner's line if found."""
        assert self.child is not None and self.child_trace is not None  # only asked while a case child runs
        trace = self.child_trace
        try:
            os.kill(self.child, signal.SIGUSR1)
            time.sleep(0.2)
        except ProcessLookupError:
            pass
        self._kill_child()
        trace.seek(0)
        text = trace.read().decode("utf-8", "replace")
        for line in text.splitlines():
            line = line.strip()
            for name in self.learner_files:
                prefix = f'File "{name}", line '
                if line.startswith(prefix):
                    number, _, function = line[len(prefix) :].partition(" in ")
                    if not number.isdigit():
                        return line
                    return _stable_location(name, int(number), function)
        return ""

    def _kill_child(self) -> int | None:
        if self.child is None:
            return None
        try:
            os.kill(self.child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            _, status = os.waitpid(self.child, 0)
        except ChildProcessError:
            status = None
        self.child = None
        return status

    def _reap_description(self) -> str:
        try:
            pid, status = os.waitpid(self.child if self.child is not None else -1, 0)
        except ChildProcessError:
            self.child = None
            return "the case's process disappeared"
        self.child = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            if sig == signal.SIGKILL:
                return f"killed by {name} (often: out of memory)"
            return f"killed by signal {name}"
        code = os.WEXITSTATUS(status)
        return f"the process exited with status {code} before returning (os._exit() or a crash in native code)"

    def case_end(self) -> dict[str, Any]:
        """Reply with the case's printed output; the child is killed after the reply (`_after_case`)."""
        output = _read_capture(self.child_out) if self.child_out else {"text": "", "bytes": 0}
        self.finished = (self.child, self.child_sock, self.child_out, self.child_trace)
        self.child = self.child_sock = self.child_out = self.child_trace = None
        return {"op": "case_ended", "output": output}

    def _after_case(self, spare: bool = True, keep: bool = True) -> None:
        """Keep the finished child for the next case when it is still running and its case left
        nothing behind (`keep`, from the grader, which asked the child: harness/childstate.py). Its
        output is complete (it flushes before each reply); the capture files start empty again. A
        child that died (crash, timeout) or changed something is ended and reaped later, and a
        fresh one is forked while the grader checks the results (unless the grader said no case
        follows: a case asked for later forks its child then)."""
        pid, sock, out, trace = self.finished
        self.finished = (None, None, None, None)
        if keep and pid is not None and sock is not None and out is not None and trace is not None and self.spare is None:
            for f in (out, trace):  # shared offsets: the child's next write lands at the start
                f.seek(0)
                f.truncate()
            self.spare, self.spare_used = (pid, sock, out, trace), True
            return
        self._discard(pid, sock, out, trace)
        if spare:
            self._prepare_spare()


def _running(pid: int) -> bool:
    """Whether our child `pid` has not exited (an exited one is reaped here)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def _close_other_sockets(keep: int) -> None:
    """A case child keeps one socket, its own: the zygote's sockets to other case children (the
    running one, the spare) would let one case write into another's channel and change its
    verdict from run to run."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd == keep:
            continue
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            pass


def _source_lines(files: list[Any]) -> dict[str, list[str]]:
    """Each learner file's lines (for compiling chunks and for tracebacks), split once."""
    return {f.filename: f.source.splitlines(keepends=True) for f in files}


def _fit_error(error: dict[str, Any]) -> dict[str, Any]:
    """A load error within the protocol's limits (a learner's message or traceback may be huge)."""
    out = dict(error)
    for key, size in (("type", 300), ("message", 2000), ("traceback", 8000), ("file", 4096)):
        if isinstance(out.get(key), str) and len(out[key]) > size:
            out[key] = out[key][: size - 3] + "..."
    return out


def _stable_location(filename: str, line: int, function: str) -> str:
    """Where a timed-out case was running, the same in every run: a sample of a looping frame lands
    on any line of the loop, so it is reported as the first line of the outermost loop around it
    (within its function)."""
    where = f'File "{filename}", line {line} in {function}'
    try:
        tree = ast.parse("".join(linecache.getlines(filename)))
    except (SyntaxError, ValueError):
        return where
    loop: Any = outermost_loop(tree, line)
    if loop is None or loop.lineno == line and (loop.end_lineno or loop.lineno) == line:
        return where
    return f'File "{filename}", line {loop.lineno} in {function} (the loop that starts there)'


def _raise_chunk_timeout(signum: int, frame: Any) -> None:
    raise _ChunkTimeout()


_FUTURE_FLAGS = 0
for _feature in __import__("__future__").all_feature_names:
    _FUTURE_FLAGS |= getattr(__import__("__future__"), _feature).compiler_flag


# The case child checks after every call that this module and childstate (the state check) are as
# they are now, before any learner code ran in the process (callexec._own_code_changed).
callexec.hold_modules([sys.modules[__name__], childstate])

if __name__ == "__main__":
    master_main(int(sys.argv[1]))
