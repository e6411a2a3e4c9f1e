"""Grade a class: many submissions, N grader processes, results as they come.

`grade_submission` grades one submission into a `GradeResult` (what a platform integration or a
cluster worker calls). `run_class` grades a list of `ClassEntry`s in `jobs` grader processes, each
with its own worker pool (threads in one process would contend on the GIL: Hypothesis, the
comparisons and rendering are Python). Results come back as JSON text, never pickled learner
data. Each finished result is handed to `on_result` at once (the CLI writes its report and the
gradebook so far), so Ctrl-C, SIGTERM or SIGHUP loses only the submissions still running; those
are reported as interrupted.
"""

from __future__ import annotations

import json
import re
import multiprocessing
import os
import signal
import stat
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .errors import AttnspecError
from .layouts import ClassEntry
from .results import GradeResult
from .sanitize import terminal_safe


class Interrupted(Exception):
    """The grading process received SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def error_result(display: str, message: str, *, status: str = "error") -> GradeResult:
    """A report for a submission that could not be graded: it says why, and scores nothing."""
    return GradeResult(
        submission={"path": display, "kind": None, "sha256": None},
        spec={"digest": None, "files": [], "cases": 0},
        status=status,
        error=message,
        tool={"name": "attnspec", "version": __version__},
    )


def grade_submission(entry: ClassEntry, spec: Any, options: Any, pool: Any = None, spec_error: str | None = None) -> GradeResult:
    """Grade one class entry; every problem (its files, the spec, attnspec itself) becomes its report."""
    if spec_error is not None:
        result = error_result(entry.display, f"the spec is invalid:\n{spec_error}")
    elif entry.path is None:
        result = error_result(entry.display, entry.error or "no file to grade")
    else:
        # A file the layout refused (a FIFO, a device, a link out of its folder) is refused again by
        # the loader, without being opened: its report says why, like any unreadable submission's.
        result = _grade(entry, spec, options, pool)
    return annotate(entry, result)


def _grade(entry: ClassEntry, spec: Any, options: Any, pool: Any) -> GradeResult:
    from .grade import grade

    try:
        return grade(str(entry.path), spec, options, pool, display=entry.display, companions=[str(c) for c in entry.companions])
    except AttnspecError as exc:
        return error_result(entry.display, str(exc))
    except Exception as exc:  # noqa: BLE001 - the grader itself failed: still a report that says so
        return error_result(entry.display, f"internal error in attnspec: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")


def annotate(entry: ClassEntry, result: GradeResult) -> GradeResult:
    """A class run's report names the student, the layout and the helper files it was found with."""
    if entry.layout != "file":
        result.submission.update(student=entry.student, layout=entry.layout, companions=[_shown(entry, c) for c in entry.companions])
    return result


def _shown(entry: ClassEntry, companion: Path) -> str:
    if entry.path is not None and companion.parent == entry.path.parent:
        return str(Path(entry.display).parent / companion.name)
    return companion.name


# ---------------------------------------------------------------- grader processes

_STATE: dict[str, Any] = {}


def start_pools(count: int, preload_torch: bool, sandbox: str = "none", hide: list[str] | None = None) -> list[Any]:
    """One worker pool per grader process, started first thing, so the interpreter start and torch
    import overlap with our own imports and the spec's loading (each grader process takes one when
    it is forked). One master worker is started; the others are forked from it once it has
    imported torch (and put its heap in huge pages), so a run pays for one start and one import
    whatever the number of jobs."""
    from .runner import WorkerPool

    first = WorkerPool(sandbox, hide or [])
    if preload_torch:
        from .grade import torch_available

        if torch_available():
            first.preload(["torch"])
    first.compact()  # a class forks hundreds of processes from it: huge pages make each cheaper
    return [first] + [first.fork() for _ in range(max(1, count) - 1)]


def _init_grader(spec: Any, options: Any, spec_error: str | None, preload_torch: bool, pools: list[Any] | None = None, counter: Any = None, grading: Any = None, hide: list[str] | None = None) -> None:
    """Start of one grader process: its own worker pool; SIGTERM ends it and everything it started.
    `grading`: a shared array where the process notes which submission it is on, in its slot."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C does
    signal.signal(signal.SIGTERM, _end_grader)
    signal.signal(signal.SIGHUP, _end_grader)
    from multiprocessing.util import Finalize

    index = 0
    if counter is not None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
    if pools:
        pool = pools[index % len(pools)]
    else:
        pool = start_pools(1, preload_torch, getattr(options, "sandbox", "none"), hide)[0]
    Finalize(pool, pool.close, exitpriority=10)
    _STATE.update(spec=spec, options=options, spec_error=spec_error, pool=pool, grading=grading, slot=index % len(grading) if grading is not None else 0)


def _end_grader(signum: int, frame: Any) -> None:
    kill_descendants(os.getpid())
    os._exit(128 + signum)


def kill_descendants(pid: int) -> None:
    """SIGKILL every process below `pid` (and the process groups they lead): worker, zygotes, case children."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    for child in reversed(found):
        for kill in (lambda c: os.killpg(c, signal.SIGKILL), lambda c: os.kill(c, signal.SIGKILL)):
            try:
                kill(child)
            except (ProcessLookupError, PermissionError, OSError):
                pass


def _grade_task(entry: ClassEntry, index: int = -1) -> str:
    grading, slot = _STATE.get("grading"), _STATE.get("slot", 0)
    if grading is not None:
        grading[slot] = index  # read by the class run if this process dies
    result = grade_submission(entry, _STATE["spec"], _STATE["options"], _STATE["pool"], _STATE["spec_error"])
    text = json.dumps(result.to_dict())
    if grading is not None:
        grading[slot] = -1
    return text


# ---------------------------------------------------------------- the class run


@dataclass
class ClassRun:
    """What a class run produced: results by entry index, and whether (how) it was stopped."""

    results: dict[int, GradeResult] = field(default_factory=dict)
    cached: set[int] = field(default_factory=set)
    interrupted: Interrupted | None = None


def run_class(
    entries: list[ClassEntry],
    spec: Any,
    options: Any,
    *,
    jobs: int = 1,
    spec_error: str | None = None,
    preload_torch: bool = False,
    pools: list[Any] | None = None,
    cached: dict[int, GradeResult] | None = None,
    on_result: Callable[[int, GradeResult, bool], None] = lambda i, r, c: None,
    progress: "ProgressLike | None" = None,
) -> ClassRun:
    """Grade `entries` in `jobs` grader processes; `cached` results are not regraded. Returns when
    all are done, or at the first SIGINT/SIGTERM/SIGHUP (then the unfinished ones are reported
    as interrupted)."""
    run = ClassRun()
    for i, result in (cached or {}).items():
        run.results[i] = result
        run.cached.add(i)
        on_result(i, result, True)
        if progress:
            progress.advance(entries[i], result, cached=True)
    todo = [i for i in range(len(entries)) if i not in run.results]
    if not todo:
        return run
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

    def stop(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    for s in previous:
        signal.signal(s, stop)
    if spec is not None:
        warm_up(spec, options, *scanned([entries[i] for i in todo]))
    hide = pools[0].hidden if pools else None
    grader = _Graders(entries, spec, options, spec_error, preload_torch, hide, run, on_result, progress)
    try:
        queue, first = todo, True
        for _ in range(MAX_ROUNDS):
            lost, suspects = grader.round(queue, jobs, pools if first else None)
            first = False
            # The submissions in flight when a grader process died: each is graded again alone, so
            # only one that ends its own grader process (out of memory, say) is blamed for it.
            for i in suspects:
                if grader.round([i], 1, None)[0]:
                    grader.finish(i, error_result(entries[i].display, DIED_ALONE))
            queue = [i for i in lost if i not in suspects and i not in run.results]
            if not queue:
                break
        for i in queue:  # grader processes kept dying (the machine is out of memory?): say so, lose nothing else
            grader.finish(i, error_result(entries[i].display, DIED_REPEATEDLY))
    except KeyboardInterrupt:
        run.interrupted = Interrupted(signal.SIGINT)
    except Interrupted as exc:
        run.interrupted = exc
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if run.interrupted is not None:
        why = f"grading was interrupted ({run.interrupted}) before this submission finished; grade it again"
        for i in todo:
            if i not in run.results:
                result = error_result(entries[i].display, why, status="interrupted")
                if entries[i].layout != "file":
                    result.submission.update(student=entries[i].student, layout=entries[i].layout)
                run.results[i] = result
                on_result(i, result, False)
    return run


MAX_ROUNDS = 4
DIED_ALONE = (
    "internal error in attnspec: the grader process died while grading this submission, and again when it was graded on its own "
    "(it may have made the grader run out of memory); the other submissions were graded normally"
)
DIED_REPEATEDLY = f"internal error in attnspec: grader processes died {MAX_ROUNDS} times before this submission could be graded (is the machine out of memory?); grade it again"


class _Graders:
    """Rounds of grader processes for one class run. A grader process that dies (the kernel's
    out-of-memory killer, a crash) breaks its round; the submissions it did not finish go to the
    next round instead of being reported as failed."""

    def __init__(
        self,
        entries: list[ClassEntry],
        spec: Any,
        options: Any,
        spec_error: str | None,
        preload_torch: bool,
        hide: list[str] | None,
        run: ClassRun,
        on_result: Callable[[int, GradeResult, bool], None],
        progress: "ProgressLike | None",
    ):
        self.entries, self.spec, self.options, self.spec_error = entries, spec, options, spec_error
        self.preload_torch, self.hide, self.run, self.on_result, self.progress = preload_torch, hide, run, on_result, progress
        self.progress_started = False

    def finish(self, i: int, result: GradeResult) -> None:
        result = annotate(self.entries[i], result) if result.status == "error" and not result.submission.get("student") else result
        self.run.results[i] = result
        self.on_result(i, result, False)
        if self.progress:
            self.progress.advance(self.entries[i], result, cached=False)

    def round(self, todo: list[int], jobs: int, pools: list[Any] | None) -> tuple[list[int], list[int]]:
        """Grade `todo` in `jobs` grader processes (with the class's pools, or each starting its own).
        Returns the submissions a dead grader process left unfinished, and those of them that
        were being graded when it died."""
        jobs = max(1, min(jobs, len(todo)))
        context = multiprocessing.get_context("fork")
        grading = context.Array("i", [-1] * jobs)  # slot -> the entry each grader process is on
        executor = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=_init_grader,
            initargs=(self.spec, self.options, self.spec_error, self.preload_torch, pools, context.Value("i", 0), grading, self.hide),
        )
        lost: list[int] = []
        suspects: set[int] = set()
        interrupted = True
        try:
            futures = {executor.submit(_grade_task, self.entries[i], i): i for i in todo}
            if self.progress and not self.progress_started:
                self.progress.start()  # after the grader processes are forked: no display thread in them
                self.progress_started = True
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: futures[f]):
                    i = futures[fut]
                    if isinstance(fut.exception(), BrokenProcessPool):
                        suspects.update(x for x in grading[:] if x >= 0)
                        lost.append(i)
                        continue
                    self.finish(i, _collect(fut, self.entries[i]))
                if self.progress:
                    self.progress.tick()
            interrupted = False
        finally:
            if interrupted or lost:
                _stop_graders(executor)
                kill_descendants(os.getpid())  # the workers started here for the graders, and all below them
            executor.shutdown(wait=not interrupted, cancel_futures=True)
        return lost, sorted(i for i in suspects if i in lost)


def scanned(entries: list[ClassEntry]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """What the entries' files name, read as text (never run): the exercises whose names appear
    (what a class run is likely to grade, so what is worth preparing before it starts) and the
    notebook format versions (4.N) whose validators to prepare."""
    from .exercises import EXERCISES

    found: set[str] = set()
    minors: set[int] = set()
    for entry in entries:
        if entry.error is not None or entry.path is None:
            continue  # refused by the layout (a FIFO, a device...): never opened
        for path in [entry.path, *entry.companions]:
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
                with open(path, "rb") as f:
                    text = f.read(4 << 20)
            except OSError:
                continue
            found.update(e for e in EXERCISES if e.encode() in text)
            minors.update(int(m) for m in _NBFORMAT_MINOR.findall(text[-4096:] + text[:4096]))
    return tuple(e for e in EXERCISES if e in found), tuple(sorted(m for m in minors if m < 100))


_NBFORMAT_MINOR = re.compile(rb'"nbformat_minor"\s*:\s*(\d{1,2})\b')


def warm_up(spec: Any, options: Any, exercises: tuple[str, ...] | None = None, notebook_minors: tuple[int, ...] = ()) -> None:
    """Work every grader process would repeat, done once before they are forked: Hypothesis'
    import, the examples it draws for each drawn case, the reference's time per case (case
    limits) and the inputs it builds (memoized). For `exercises` (default: all), within
    --exercise; whatever is not prepared here, a grader process prepares when it needs it."""
    from .exercises import EXERCISES
    from .casecheck import _drawn_examples, reference_time
    from .grade import _cases_for

    scope = tuple(e for e in (options.exercises or tuple(EXERCISES)) if exercises is None or e in exercises)
    try:  # nbformat compiles a notebook schema's validator on first use (~0.1 s each): once, here
        from nbformat.validator import get_validator

        for minor in notebook_minors:
            get_validator(version=4, version_minor=minor)
    except Exception:  # noqa: BLE001 - as below: a warm-up problem only costs speed
        pass
    try:
        import hypothesis  # noqa: F401

        for exercise in scope:
            for case in _cases_for(spec, exercise, options):
                if case.inputs is not None and case.inputs.is_drawn:
                    _drawn_examples(case, True)
                if options.limits.case_factor > 0:
                    reference_time(case)
    except Exception:  # noqa: BLE001 - a warm-up problem only costs speed; grading reports any real one
        pass


def _collect(fut: "Future[str]", entry: ClassEntry) -> GradeResult:
    try:
        return GradeResult.from_dict(json.loads(fut.result()))
    except Exception as exc:  # noqa: BLE001 - a grader process died: this submission's report says so
        return error_result(entry.display, f"internal error in attnspec: the grader process for this submission failed ({type(exc).__name__}: {exc})")


def _stop_graders(executor: ProcessPoolExecutor) -> None:
    """SIGTERM each grader process (it kills its workers and exits), then wait for them briefly."""
    procs = list(getattr(executor, "_processes", {}).values())
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except (ProcessLookupError, OSError):
            pass
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            kill_descendants(p.pid)
            p.kill()


# ---------------------------------------------------------------- progress


class ProgressLike:
    def start(self) -> None: ...
    def advance(self, entry: ClassEntry, result: GradeResult, *, cached: bool) -> None: ...
    def tick(self) -> None: ...
    def close(self) -> None: ...


class PlainProgress(ProgressLike):
    """Not a terminal: a line per finished submission, at most every `interval` seconds, and a
    heartbeat while a long one runs."""

    def __init__(self, total: int, stream: Any = None, interval: float = 2.0):
        self.total, self.stream, self.interval = total, stream or sys.stderr, interval
        self.done = 0
        self.cached = 0
        self.t0 = time.monotonic()
        self.last = self.t0
        self.latest = ""

    def advance(self, entry: ClassEntry, result: GradeResult, *, cached: bool) -> None:
        self.done += 1
        self.cached += cached
        self.latest = entry.student
        if self.done == self.total or time.monotonic() - self.last >= self.interval:
            self._line()

    def tick(self) -> None:
        if time.monotonic() - self.last >= max(self.interval, 10.0):
            self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        elapsed = self.last - self.t0
        fresh = self.done - self.cached
        rate = fresh / elapsed if elapsed > 0 and fresh else 0.0
        eta = f"ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 and self.done < self.total else "ETA -" if self.done < self.total else "done"
        cached = f", {self.cached} cached" if self.cached else ""
        last = f", last: {terminal_safe(self.latest)}" if self.latest else ""
        print(f"attnspec: graded {self.done}/{self.total}{cached} in {elapsed:.0f} s ({rate:.2f}/s, {eta}){last}", file=self.stream, flush=True)


class RichProgress(ProgressLike):
    """A terminal: a live bar with rate and ETA on stderr."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("grading"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[latest]}", markup=False),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("grading", total=total, rate="", latest="")
        self.started = time.monotonic()
        self.fresh = 0

    def start(self) -> None:
        self.progress.start()

    def advance(self, entry: ClassEntry, result: GradeResult, *, cached: bool) -> None:
        self.fresh += not cached
        elapsed = time.monotonic() - self.started
        rate = f"{self.fresh / elapsed:.2f}/s" if elapsed > 0 else ""
        self.progress.update(self.task, advance=1, rate=rate, latest=terminal_safe(entry.student)[:40])

    def close(self) -> None:
        self.progress.stop()


def make_progress(total: int, mode: str = "auto") -> ProgressLike:
    """rich on a terminal, plain lines otherwise, nothing with mode 'never'."""
    if mode == "never":
        return ProgressLike()
    if mode == "always" or (mode == "auto" and sys.stderr.isatty()):
        return RichProgress(total)
    return PlainProgress(total)
