"""Speed at realistic sizes: a case's `time_factor` bounds each call by the reference's own time.

A case with `time_factor: F` fails a call that takes longer than `max(floor, F x the reference's
time)` on the same inputs, the floor being TIME_FLOOR_S plus TRANSFER_S_PER_MB per MB of inputs. The learner's time is the grader's own wall-clock time of
the call (from sending the inputs to reading the result back): learner code cannot change it.
The reference's time is that of the reference for the call's backend and dtype (NumPy or
PyTorch, float32 or float64), called in the grader process on the same inputs right after the
learner's call (so both see the same load); it is measured once per grader process, and twice more
before a call is failed for it (the fastest run counts: one run slowed by noise must not decide).
The floor keeps honest vectorised code, whose time is a few times the reference's at most, clear
of the grader's own overhead (the inputs travel to the case child) and of a busy machine.

Where the time went is diagnostic text only: the case child samples which line of the learner's
code runs (harness/callexec.py, `_Sampler`) and stops the call itself shortly before the case's
hard limit, so the samples reach the grader. Learner code could tamper with them; they never
change a verdict or a score.
"""

from __future__ import annotations

import ast
import os
import threading
from typing import Any

from .exercises import EXERCISES, reference_functions
from .inputs import Inputs
from .static import outermost_loop

TIME_FLOOR_S = 1.0  # no call fails for speed under this: IPC and a busy machine's noise stay below it
TRANSFER_S_PER_MB = 0.02  # ... plus this per MB of inputs: the grader's time to pass them to the child (~1 s for a block)
STOP_MARGIN_S = 0.5  # the child stops a call this long before the case's hard limit, to report
STOP_MIN_S = 3.0  # ... or once it has run STOP_FACTOR x its allowance, and at least this long
STOP_FACTOR = 3.0
REMEASURE = 2  # extra reference runs before a call is failed for speed
SKIP_ENV = "ATTNSPEC_SKIP_TIMED_CASES"  # "1": drop cases with a time_factor (attnspec's own test suite)

_REFERENCE: dict[tuple[Any, ...], list[float]] = {}
_LOCK = threading.Lock()


def skip_timed_cases() -> bool:
    """True when cases with a `time_factor` are left out of the loaded spec (see SKIP_ENV)."""
    return os.environ.get(SKIP_ENV, "") == "1"


def floor_seconds(inputs: Inputs) -> float:
    """TIME_FLOOR_S plus the grader's own time to pass these inputs to the case child and back,
    which its timing of the call includes (about 1 s for a block at GPT-2-small sizes)."""
    return TIME_FLOOR_S + TRANSFER_S_PER_MB * input_megabytes(inputs)


def input_megabytes(inputs: Inputs | list[Any]) -> float:
    """Megabytes the inputs take as float64 (as sent to the case child; a call in float32 sends
    half): arrays, the arrays of a params dict, and those of every dict in a list (a stack's layers)."""

    def size(value: Any) -> int:
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        return int(getattr(value, "size", 0)) * 8

    return sum(size(value) for value in (inputs.positional() if isinstance(inputs, Inputs) else inputs)) / 1e6


def allowed_seconds(factor: float, reference: float, floor: float = TIME_FLOOR_S) -> float:
    return max(floor, factor * reference)


def stop_after(runner: Any, case: Any, inputs: Inputs, dtype: str) -> float | None:
    """Seconds after which the case child stops a call itself, or None when the runner has no
    deadline (in-process runs). A call that has run STOP_FACTOR x its allowance (at least
    STOP_MIN_S) is known to fail, so it stops there and the rest of the case's and the submission's
    time is not spent on it; in any case it stops just before the case's hard limit, so that its
    samples reach the grader. The allowance here is from the NumPy reference in the call's dtype
    (measured before the call, once per process; for a NumPy submission it is the verdict's own
    measurement), which is no faster than the PyTorch one."""
    deadline = getattr(runner, "deadline", None)
    if not isinstance(deadline, (int, float)):
        return None
    import time

    from .runner import WORKER_MARGIN_S

    hard = deadline - WORKER_MARGIN_S - time.monotonic() - STOP_MARGIN_S
    reference = reference_seconds(case.exercise, inputs, "numpy", dtype) if dtype in ("float32", "float64") else None
    soft = max(STOP_MIN_S, STOP_FACTOR * allowed_seconds(case.time_factor, reference, floor_seconds(inputs))) if reference is not None else hard
    return round(max(0.1, min(hard, soft)), 3)


def reference_seconds(function: str, inputs: Inputs, backend: str, dtype: str, *, runs: int = 1) -> float | None:
    """The reference's time for one call on these inputs, backend and dtype: the fastest of `runs`
    measurements (earlier ones are kept per grader process); None if the reference cannot run it."""
    from .runner import InProcessRunner

    key = (function, inputs.exercise, inputs.label(), backend, dtype)
    with _LOCK:
        times = list(_REFERENCE.get(key, []))
    while len(times) < runs:
        outcome = InProcessRunner(reference_functions(backend)).call(function, inputs, backend=backend, dtype=dtype)
        if not outcome.ok:
            return None
        times.append(outcome.duration)
    with _LOCK:
        _REFERENCE[key] = times
    return min(times[:runs]) if times else None


def check_speed(ctx: Any, inputs: Inputs, outcome: Any, elapsed: float) -> dict[str, Any] | None:
    """The fields of a 'slow' failure when the call took longer than the case allows (see module
    doc), else None; the case context raises it (properties.base.fail)."""
    factor = ctx.case.time_factor
    function = ctx.case.exercise
    stopped = outcome.stopped is not None and (outcome.error or {}).get("type") == "TimeLimit"
    floor = floor_seconds(inputs)
    if elapsed <= floor and not stopped:
        return None  # under the floor nothing fails: no reference run needed
    reference = reference_seconds(function, inputs, ctx.backend, ctx.dtype)
    if reference is None:
        return None
    if elapsed > allowed_seconds(factor, reference, floor):
        reference = reference_seconds(function, inputs, ctx.backend, ctx.dtype, runs=1 + REMEASURE) or reference
    allowed = allowed_seconds(factor, reference, floor)
    if elapsed <= allowed and not stopped:
        return None
    # rounded once, so the message and its evidence state the same figure
    ratio = round(elapsed / reference, 1) if reference > 0 else float("inf")
    sizes = describe_sizes(inputs)
    submission = ctx.submission
    sources = {f.filename: f.text for f in submission.files} if submission is not None else {}
    hot = hotspots(outcome.samples, sources, where=submission.where if submission is not None else None)
    took = f"was stopped after {elapsed:.1f} s without finishing" if stopped else f"took {elapsed:.1f} s"
    slower = f"{'more than ' if stopped else ''}{ratio:,.0f}x slower" if ratio >= 10 else f"{'more than ' if stopped else ''}{ratio:.1f}x slower"
    limit = f"allowed {factor:g}x = {_secs(factor * reference)}, at least {floor:.2g} s"
    claim = f"{function} {took} on {sizes}, {ctx.dtype}, {ctx.backend} (the reference takes {_secs(reference)}; {limit}): {slower}"
    evidence = {
        "seconds": round(elapsed, 4),
        "reference_seconds": round(reference, 6),
        "factor": factor,
        "floor": round(floor, 3),
        "allowed": round(allowed, 4),
        "ratio": ratio,
        "stopped": stopped,
        "sizes": sizes,
        "hotspots": hot,
    }
    note = hotspot_text(hot) if hot else None
    return dict(
        claim=claim,
        call=ctx.describe_call(inputs),
        evidence=evidence,
        note=note,
        function=function,
        claim_hidden=f"{function} {'did not finish in time' if stopped else 'was too slow'} at realistic sizes ({slower} than the reference; {factor:g}x is allowed)",
    )


def _secs(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"


def describe_sizes(inputs: Inputs) -> str:
    exercise = EXERCISES[inputs.exercise]
    dims = inputs.dims
    return ", ".join(f"{name} {dims[name]}" for name in exercise.dims if name in dims)


# ---------------------------------------------------------------- where the time went


def hotspots(samples: list[dict[str, Any]], sources: dict[str, str], top: int = 3, where: Any = None) -> list[dict[str, Any]]:
    """The learner's lines (and the loops around them) that most samples landed on.

    Each sampled line counts for the outermost loop of its function that contains it (a loop's
    time is the time of its body); the hottest line inside is named too. Shares are of all
    samples taken in the learner's code."""
    total = sum(int(s.get("count", 0)) for s in samples if isinstance(s, dict))
    if total <= 0:
        return []
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for s in samples:
        file, line, count = s.get("file"), s.get("line"), int(s.get("count", 0))
        if not isinstance(file, str) or not isinstance(line, int) or count <= 0:
            continue
        text = sources.get(file)
        loop = _outer_loop(text, line) if text is not None else None
        key = (file, loop or line)
        g = groups.setdefault(key, {"file": file, "line": loop or line, "loop": loop is not None, "count": 0, "lines": {}})
        g["count"] += count
        g["lines"][line] = g["lines"].get(line, 0) + count
    out = []
    for g in sorted(groups.values(), key=lambda g: -g["count"])[:top]:
        hottest = max(g["lines"].items(), key=lambda kv: kv[1])
        place = (where(g["file"], g["line"]) if where is not None else "") or f"line {g['line']}"
        entry = {
            "file": g["file"],
            "line": g["line"],
            "where": place,
            "source": _source_line(sources.get(g["file"]), g["line"]),
            "share": round(g["count"] / total, 3),
            "loop": g["loop"],
        }
        if g["loop"] and hottest[0] != g["line"]:
            entry.update(hottest_line=hottest[0], hottest_where=(where(g["file"], hottest[0]) if where is not None else "") or f"line {hottest[0]}", hottest_source=_source_line(sources.get(g["file"]), hottest[0]), hottest_share=round(hottest[1] / total, 3))
        out.append(entry)
    return out


def hotspot_text(hot: list[dict[str, Any]]) -> str:
    """'87 % of the time in the loop at line 14: `for i in range(seq_q):` (most in line 17: `...`, 60 %)'."""
    first = hot[0]
    where = "in the loop at " if first["loop"] else "in "
    text = f"{first['share'] * 100:.0f} % of the time {where}{first['where']}: `{first['source']}`"
    if first.get("hottest_line"):
        text += f", most of it in {first['hottest_where']}: `{first['hottest_source']}` ({first['hottest_share'] * 100:.0f} %)"
    return text


def _source_line(text: str | None, line: int) -> str:
    if text is None:
        return "?"
    lines = text.splitlines()
    return lines[line - 1].strip()[:120] if 0 < line <= len(lines) else "?"


_TREES: dict[int, ast.Module | None] = {}


def _outer_loop(text: str, line: int) -> int | None:
    """The first line of the outermost loop around `line` within its innermost function."""
    key = hash(text)
    if key not in _TREES:
        try:
            _TREES[key] = ast.parse(text)
        except (SyntaxError, ValueError):
            _TREES[key] = None  # unparsable: no loop to name
    tree = _TREES[key]
    loop: Any = outermost_loop(tree, line) if tree is not None else None
    return loop.lineno if loop is not None else None
