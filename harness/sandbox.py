"""Per-submission sandbox: kernel namespaces, a read-only file system view, an unprivileged id.

The master worker (trusted, never runs learner code) calls `spawn` for every submission: it forks
a helper that enters fresh namespaces (`unshare(2)`: PID, network, mount, IPC, UTS, and a user
namespace when not root), and the helper forks the zygote, which is PID 1 of the new PID
namespace: when the grader SIGKILLs it, the kernel kills every process of that namespace, daemons
included. Before any learner code runs, the zygote builds its own root (a tmpfs holding read-only
binds of the system and Python directories only, a fresh /proc, a private /tmp and working
folder), hides the grader's own paths that lie inside those binds, drops to an unprivileged uid
(root) or all capabilities (user namespace), and sets no_new_privs. Nothing here is a home-made
check: the kernel enforces every boundary.

Levels: `none` (today's forked workers), `auto` (the strongest set of features the machine
allows; the others are reported missing), `strict` (all features or refuse).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import select
import signal
import socket
import sys
import time
from typing import Any, Callable

LEVELS = ("auto", "strict", "none")
FEATURES = ("pid", "net", "mount", "ipc", "uts", "uid")
FULL = "namespaces"
WORKDIR = "/submission"
TMPFS_SIZE = "64m"
NPROC_LIMIT = 256
UID_BASE = 1_900_000_000
SETUP_TIMEOUT_S = 30.0
ZYGOTE_LOCAL_PID = 2  # the first child of a fresh PID namespace's init
DISABLE_ENV = "ATTNSPEC_SANDBOX_DISABLE"  # features to treat as unavailable (a machine where one misbehaves; tests)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_FLAG = {"pid": CLONE_NEWPID, "net": CLONE_NEWNET, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 217, "arm64": 217}

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICES = ("null", "zero", "random", "urandom")
KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE")

_libc = ctypes.CDLL(None, use_errno=True)
workdir: str | None = None  # set inside a sandbox with its own file system view: the private working folder


class SetupError(Exception):
    """One step of building the sandbox failed; `feature` says which level feature it belongs to."""

    def __init__(self, feature: str, message: str):
        super().__init__(f"{feature}: {message}")
        self.feature = feature


def _check(result: int, feature: str, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SetupError(feature, f"{what} failed: {errno.errorcode.get(code, code)} ({os.strerror(code)})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None, feature: str = "mount") -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), feature, f"mount {source or fstype} on {target}")


def describe(requested: str, features: list[str], reason: str = "") -> dict[str, Any]:
    """What a report records: the level asked for, the level used and the features it covers."""
    got = [f for f in FEATURES if f in features]
    level = FULL if len(got) == len(FEATURES) else ("partial" if got else "none")
    info: dict[str, Any] = {"requested": requested, "level": level, "features": got, "missing": [f for f in FEATURES if f not in got]}
    if reason:
        info["reason"] = reason
    return info


# ---------------------------------------------------------------- grader side: what to hide


def grader_paths() -> list[str]:
    """The grader's own package folders (harness, reference, spec): wherever they are installed."""
    import importlib.util

    paths = []
    for name in ("attnspec", "attnspec.reference", "attnspec.spec"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths.append(os.path.abspath(location))
    return paths


def plan(features: list[str], root: str, hide: list[str]) -> dict[str, Any]:
    """The spawn request's `sandbox` part (JSON): features to enter, the empty mount point for the
    new root, and every path that must not be visible inside."""
    hidden = sorted({os.path.abspath(p) for p in [*hide, *grader_paths(), os.getcwd(), os.path.expanduser("~")] if p})
    return {"features": list(features), "root": root, "hide": hidden}


# ---------------------------------------------------------------- master side


class Spawner:
    """Runs in the master: enters a sandbox per submission, probes the machine once."""

    def __init__(self) -> None:
        self.count = 0
        self.spare: tuple[dict[str, Any], socket.socket, dict[str, Any]] | None = None  # (plan, control socket, spawn reply): built ahead
        try:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphaned zygotes come back to us (SIGCHLD ignored: reaped)
        except AttributeError:
            pass

    def spawn(self, sandbox: dict[str, Any], serve: Callable[[], None], keep_fds: list[int]) -> dict[str, Any]:
        """Fork a zygote inside a fresh sandbox; {'pid': global pid} or {'error': why}."""
        self.count += 1
        ident = UID_BASE + (os.getpid() % 50_000) * 1000 + self.count % 1000
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _helper(sandbox, ident, w, serve, keep_fds)
            finally:
                os._exit(0)
        os.close(w)
        return _read_setup(r, "pid" in sandbox.get("features", ()))

    def prebuild(self, sandbox: dict[str, Any], serve: Callable[[int], None]) -> None:
        """Build the next submission's sandbox now, while the master is idle: its zygote waits for
        the socket it will serve. Used by `take` when the next request has the same plan."""
        if self.spare is not None or not sandbox.get("features"):
            return
        control, theirs = socket.socketpair()
        cfd = theirs.fileno()

        def wait_then_serve() -> None:
            with socket.socket(fileno=cfd) as s:
                _, fds, _, _ = socket.recv_fds(s, 1, 1)
            if fds:
                serve(fds[0])

        reply = self.spawn(sandbox, wait_then_serve, [cfd])
        theirs.close()
        if "pid" in reply:
            self.spare = (sandbox, control, reply)
        else:
            control.close()

    def rebuild(self, serve: Callable[[int], None]) -> None:
        """Replace the sandbox built ahead (after the master imported more modules: a zygote forked
        before would have to import them itself)."""
        if self.spare is not None:
            plan_, control, reply = self.spare
            self.spare = None
            control.close()
            _kill(reply.get("init") or reply["pid"])
            self.prebuild(plan_, serve)

    def forget(self) -> None:
        """In a copy of the master forked for another grader: the sandbox built ahead stays the
        original's (its control socket is closed here, not the sandbox)."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None

    def take(self, sandbox: dict[str, Any], zfd: int) -> dict[str, Any] | None:
        """Hand `zfd` to the prebuilt sandbox if it was built for this plan; else None (discarded)."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        plan_, control, reply = spare
        try:
            if plan_ == sandbox:
                socket.send_fds(control, [b"F"], [zfd])
                return reply
        except OSError:
            pass
        finally:
            control.close()
        _kill(reply.get("init") or reply["pid"])
        return None

    def probe(self, requested: str, root: str) -> dict[str, Any]:
        """The strongest feature set that works here: all of them, else each alone, then together."""
        if requested == "none":
            return describe("none", [])
        full = list(FEATURES)
        first = self._try(full, root)
        if first is None:
            return describe(requested, full)
        works = [f for f in FEATURES if f != "uid" and self._try([f, "uid"] if os.geteuid() else [f], root) is None]
        if os.geteuid() == 0 and self._try(["uid"], root) is None:
            works.append("uid")
        while works:
            if self._try(works, root) is None:
                return describe(requested, works, first)
            works.pop()
        return describe(requested, [], first)

    def _try(self, features: list[str], root: str) -> str | None:
        disabled = [f for f in features if f in os.environ.get(DISABLE_ENV, "").replace(",", " ").split()]
        if disabled:
            return f"{', '.join(disabled)} disabled by {DISABLE_ENV}"
        reply = self.spawn({"features": features, "root": root, "hide": []}, lambda: None, [])
        if "pid" in reply or reply.get("ready"):
            return None  # set up, then its zygote served nothing and exited
        return str(reply.get("error"))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_setup(r: int, with_init: bool) -> dict[str, Any]:
    """The helper writes 'pid N', the zygote 'ok' or 'error ...' once it is ready; EOF ends it."""
    data = b""
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    lines = data.decode("utf-8", "replace").splitlines()
    pid = next((int(x.split()[1]) for x in lines if x.startswith("pid ")), None)
    error = next((x[6:] for x in lines if x.startswith("error ")), None)
    if error is None and "ok" not in lines:
        error = "the sandbox did not start in time" if pid else "the sandbox helper failed before forking"
    if error is not None:
        if pid:
            _kill(pid)
        return {"error": error}
    if not with_init:
        return {"pid": pid, "init": None}
    zygote = global_pid(pid, ZYGOTE_LOCAL_PID) if pid else None
    if zygote is None:
        if pid:
            _kill(pid)
        return {"error": "the sandbox's zygote ended before it was ready", "ready": True}
    return {"pid": zygote, "init": pid}


def _helper(sandbox: dict[str, Any], ident: int, w: int, serve: Callable[[], None], keep_fds: list[int]) -> None:
    """In the forked helper: enter the namespaces, fork the zygote (PID 1 inside), report its pid."""
    features = set(sandbox["features"])
    userns = "uid" in features and os.geteuid() != 0
    flags = sum(_FLAG[f] for f in features if f in _FLAG) | (CLONE_NEWUSER if userns else 0)
    outer_uid, outer_gid = os.geteuid(), os.getegid()
    try:
        if flags:
            _check(_libc.unshare(ctypes.c_int(flags)), _blame(features), "unshare")
        if userns:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{outer_uid} {outer_uid} 1"), ("gid_map", f"{outer_gid} {outer_gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    except (SetupError, OSError) as exc:
        os.write(w, f"error {exc}\n".encode())
        return
    pid = os.fork()
    if pid:
        os.write(w, f"pid {pid}\n".encode())
        return
    if "pid" in features and os.fork():
        _init()  # PID 1: the zygote (PID 2) and its clones are its children
    try:
        os.setpgid(0, 0)
        uid = ident if os.geteuid() == 0 else outer_uid
        gid = ident if os.geteuid() == 0 else outer_gid
        _enter(sandbox, features, uid, gid, keep_fds + [w])
        os.write(w, b"ok\n")
        os.close(w)
    except (SetupError, OSError) as exc:
        os.write(w, f"error {exc}\n".encode())
        os._exit(0)
    try:
        serve()
    finally:
        os._exit(0)


def _init() -> None:
    """PID 1 of a sandbox: trusted code that runs nothing of the learner's and only reaps. The
    zygotes are its children, so a zygote the grader kills (a lost case) takes only its own
    process group, and the clone keeps running; killing this process ends the whole namespace.
    It holds no copy of the zygote's sockets, so the grader sees EOF the moment a zygote dies."""
    os.setpgid(0, 0)
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:  # every inherited socket and pipe
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue


def _blame(features: set[str]) -> str:
    return next(iter(sorted(features))) if len(features) == 1 else "namespaces"


# ---------------------------------------------------------------- zygote side: build the view


def _enter(sandbox: dict[str, Any], features: set[str], uid: int, gid: int, keep_fds: list[int]) -> None:
    """Everything between fork and the first line of learner code."""
    if "mount" in features:
        _build_root(sandbox["root"], sandbox.get("hide", []), uid, gid)
    if "uts" in features:
        name = b"sandbox"
        _check(_libc.sethostname(name, len(name)), "uts", "sethostname")
    _scrub(keep_fds)
    if "uid" in features:
        _drop_privileges(uid, gid)
    if "mount" in features:
        global workdir
        workdir = WORKDIR
        os.chdir(WORKDIR)
        sys.path[:] = [WORKDIR] + [p for p in sys.path[1:] if p and os.path.isdir(p)]  # [0] was the master's folder
        sys.path_importer_cache.clear()
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "uid", "prctl(PR_SET_NO_NEW_PRIVS)")


def python_dirs() -> list[str]:
    """Where this interpreter and its packages live: the only non-system folders made visible."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and (any(entry.startswith(p.rstrip("/") + "/") for p in dirs) or os.path.basename(entry) in ("site-packages", "dist-packages")):
            dirs.add(entry)
    return sorted(os.path.abspath(d) for d in dirs if d and os.path.isdir(d))


def _inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def _build_root(root: str, hide: list[str], uid: int, gid: int) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)  # nothing we mount propagates back to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    _make_dev(root)
    os.makedirs(root + "/proc")  # a fresh proc: with the PID namespace, it shows only the sandbox's processes
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    for path, mode, owner in (("/tmp", "1777", ""), (WORKDIR, "700", f",uid={uid},gid={gid}")):
        os.makedirs(root + path)
        _mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={TMPFS_SIZE},mode={mode}{owner}")
    binds: list[str] = []  # after /tmp: a Python installed under /tmp is bound on top of the private one
    for path in [*SYSTEM_DIRS, *python_dirs()]:
        if os.path.lexists(path) and not any(_inside(path, b) or path == b for b in binds):
            binds = [b for b in binds if not _inside(b, path)] + [path]
    for path in sorted(binds):
        target = root + path
        if os.path.islink(path) and os.path.dirname(path) == "/":  # /bin -> usr/bin
            os.symlink(os.readlink(path), target)
            continue
        os.makedirs(target, exist_ok=True)
        _mount(path, target, None, MS_BIND | MS_REC, None)
        _remount_readonly(target)
    for path in sorted(set(hide)):
        if any(_inside(path, b) for b in binds) and os.path.lexists(root + path):  # (a bind itself stays: Python lives there)
            if os.path.isdir(root + path):
                _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=555")
            else:
                _mount("/dev/null", root + path, None, MS_BIND, None)
    os.chdir(root)
    pivot = _SYS_PIVOT_ROOT.get(platform.machine())
    if pivot is None:
        raise SetupError("mount", f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc.syscall(ctypes.c_long(pivot), b".", b"."), "mount", "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "mount", "detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _remount_readonly(target: str) -> None:
    """Read-only, keeping the flags the kernel locks in a user namespace (nosuid, nodev, ...)."""
    st = os.statvfs(target)
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    for st_flag, ms_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if st.f_flag & st_flag:
            flags |= ms_flag
    _mount(None, target, None, flags, None)


def _make_dev(root: str) -> None:
    os.makedirs(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for name in DEVICES:
        target = f"{root}/dev/{name}"
        open(target, "w").close()
        _mount(f"/dev/{name}", target, None, MS_BIND, None)
    os.makedirs(root + "/dev/shm")
    _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={TMPFS_SIZE},mode=1777")
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(link, f"{root}/dev/{name}")


def _scrub(keep_fds: list[int]) -> None:
    """No inherited descriptors (the master's log, its socket) and no grader environment."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = set(keep_fds) | {0, 1, 2}
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    os.environ.clear()
    os.environ.update(env, HOME=WORKDIR, TMPDIR="/tmp")
    import tempfile

    tempfile.tempdir = None


def _drop_privileges(uid: int, gid: int) -> None:
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break
    if os.geteuid() == 0 and uid != 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC_LIMIT, NPROC_LIMIT))
    else:  # a user namespace: keep the mapped id, give up every capability in it
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        _check(_libc.capset(header, data), "uid", "capset (drop capabilities)")
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC_LIMIT * 4, NPROC_LIMIT * 4))
    if os.geteuid() == 0 or os.getuid() == 0:
        raise SetupError("uid", "still root after dropping privileges")


# ---------------------------------------------------------------- grader side: pids


def global_pid(init_pid: int, local_pid: int) -> int | None:
    """The pid, as the grader sees it, of process `local_pid` of the PID namespace whose init is
    `init_pid` (a clone zygote reports its pid as seen inside). Only that namespace is searched,
    so whatever a zygote claims, the grader can only signal its own sandbox."""
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") != ns:
                continue
            with open(f"/proc/{name}/status") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        except OSError:
            continue
        if nspid and nspid[-1] == str(local_pid):
            return int(name)
    return None
