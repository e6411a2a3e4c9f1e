"""Which backends a submission's function works on: one call per candidate backend on small
inputs (the exercise's probe dims), before any case runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any


from .errors import BackendUnavailable
from .exercises import EXERCISES
from .inputs import generate_inputs
from .runner import Limits, WorkerSession
from .specmodel import InputSpec
from .static import StaticReport


PROBE_DIMS = {name: e.probe_dims for name, e in EXERCISES.items()}


def _backend_candidates(requested: str, static: StaticReport) -> list[str]:
    if requested in ("numpy", "torch"):
        wanted = [requested]
    elif requested == "both":
        wanted = ["numpy", "torch"]
    else:
        wanted = static.backend_hints
    if "torch" in wanted and not torch_available():
        if requested in ("torch", "both") or wanted == ["torch"]:
            raise BackendUnavailable("this submission uses PyTorch, but torch is not installed here: pip install 'attnspec[torch]' (see README for the pinned version)")
        wanted = [b for b in wanted if b != "torch"]
    return wanted


@dataclass
class Probe:
    """What one small call per candidate backend told us."""

    backends: list[str]
    notes: list[str]
    not_implemented: str | None  # None, or where NotImplementedError came from ('' = the function itself)
    tripwires: list[dict[str, Any]]


def _probe_backends(exercise: str, candidates: list[str], session: WorkerSession, fn_static: Any, forbidden: list[str], limits: Limits) -> Probe:
    """Try the function once per candidate backend on small inputs; keep the ones it handles."""
    inputs = generate_inputs(exercise, _probe_spec(exercise), PROBE_DIMS[exercise], seed=0)
    ok: list[str] = []
    notes: list[str] = []
    tripwires: list[Any] = []
    plain = not EXERCISES[exercise].array_inputs
    if plain:  # integer arguments: one call says which backend the answer is in (see Exercise.array_inputs)
        candidates = candidates[:1]
    for backend in candidates:
        with session.case(f"{exercise}.probe.{backend}", min(10.0, limits.case_timeout), forbidden=forbidden) as cs:
            outcome = cs.call(exercise, inputs, backend=backend, dtype="float64")
        tripwires.extend(t for t in outcome.tripwires if t not in tripwires)
        if outcome.status == "raised" and outcome.error and outcome.error.get("type") == "NotImplementedError":
            return Probe([], [], _not_implemented_where(outcome.error, fn_static), tripwires)
        kind = outcome.output.kind if outcome.output else None
        if plain:
            return Probe([{"ndarray": "numpy", "tensor": "torch"}.get(kind or "", backend)], [], None, tripwires)
        if outcome.ok and kind == ("ndarray" if backend == "numpy" else "tensor"):
            ok.append(backend)
        elif len(candidates) > 1:
            why = outcome.problem() if not outcome.ok else f"returned {outcome.output.describe() if outcome.output else 'None'}"
            notes.append(f"not graded on {backend}: with {backend} inputs it {why.splitlines()[0]}")
    if not ok:
        ok = candidates[:1] if len(candidates) == 1 else [c for c in candidates if c == "torch"][:1] or candidates[:1]
        notes = []
    return Probe(ok, notes, None, tripwires)


def _probe_spec(exercise: str) -> InputSpec:
    return InputSpec(shapes=PROBE_DIMS[exercise])


def _not_implemented_where(error: dict[str, Any], fn_static: Any) -> str:
    """'' if the function itself raises NotImplementedError, else where it was raised (a stub it calls)."""
    line = error.get("line")
    if fn_static is None or line is None:
        return ""
    node = fn_static.node
    if error.get("file") == fn_static.filename and node.lineno <= line <= (node.end_lineno or node.lineno):
        return ""
    last = (error.get("traceback") or "").strip().splitlines()
    frame = next((t.strip() for t in reversed(last) if t.strip().startswith("File ")), "")
    return f" (raised by code it calls: {frame})" if frame else " (raised by code it calls)"

def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None
