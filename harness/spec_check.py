"""The spec's mutation score: run the reference and every catalogued misconception against the
spec. The reference must pass every case; each misconception must fail at least one (be
"killed"). Instructors read the kill matrix to see what a new case catches.

Everything here is trusted code (ours), so it runs in process through `InProcessRunner`, on the
same property code the grader uses for learners.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import exercises, misconceptions
from .backendprobe import torch_available
from .casecheck import check_instance
from .properties import CaseContext
from .runner import InProcessRunner, Limits
from .specmodel import Case, Spec


@dataclass
class MatrixRow:
    id: str
    exercise: str
    title: str
    killed_by: dict[str, list[str]] = field(default_factory=dict)  # case id -> backends where it failed
    checked_on: list[str] = field(default_factory=list)  # backends it was run on (none: not checked)

    @property
    def killed(self) -> bool:
        return bool(self.killed_by)


@dataclass
class KillMatrix:
    backends: list[str]
    cases: dict[str, list[str]]  # exercise -> case ids, spec order
    reference_failures: list[dict[str, str]]
    rows: list[MatrixRow]

    @property
    def survivors(self) -> list[MatrixRow]:
        return [r for r in self.rows if r.checked_on and not r.killed]

    @property
    def unchecked(self) -> list[MatrixRow]:
        """Mistakes that exist only on a backend this check did not run (e.g. torch-only ones)."""
        return [r for r in self.rows if not r.checked_on]

    @property
    def ok(self) -> bool:
        return not self.reference_failures and not self.survivors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backends": self.backends,
            "cases": self.cases,
            "reference_failures": self.reference_failures,
            "misconceptions": [
                {"id": r.id, "exercise": r.exercise, "title": r.title, "killed": r.killed, "killed_by": r.killed_by, "checked_on": r.checked_on} for r in self.rows
            ],
            "survivors": [r.id for r in self.survivors],
            "unchecked": [r.id for r in self.unchecked],
        }


def reference_functions(backend: str) -> dict[str, Callable[..., Any]]:
    """Every function of a correct submission on `backend` (the registry's references)."""
    return exercises.reference_functions(backend)


def _run(case: Case, functions: dict[str, Callable[..., Any]], backend: str, limits: Limits, *, shrink: bool) -> list[tuple[str, str]]:
    """(dtype, message) of every instance of `case` that fails with these functions."""
    failures = []
    runner = InProcessRunner(functions)
    for dtype in case.dtypes:
        ctx = CaseContext(case, backend, dtype, case.tolerances[dtype], runner, limits)
        ctx.recording = False
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            inst = check_instance(ctx, case, shrink=shrink)
        if inst.outcome != "passed":
            failures.append((dtype, inst.message))
    return failures


def build_kill_matrix(spec: Spec, backends: list[str] | None = None, exercises: tuple[str, ...] = ()) -> KillMatrix:
    backends = backends or (["numpy", "torch"] if torch_available() else ["numpy"])
    limits = Limits()
    scope = exercises or tuple(dict.fromkeys(c.exercise for c in spec.cases))
    cases = [c for c in spec.cases if c.exercise in scope]
    matrix = KillMatrix(backends, {e: [c.id for c in cases if c.exercise == e] for e in scope}, [], [])
    broken: set[tuple[str, str]] = set()  # (case, backend) the reference fails: kills there mean nothing
    for backend in backends:
        ref = reference_functions(backend)
        for case in cases:
            if backend in case.backends:
                for dtype, message in _run(case, ref, backend, limits, shrink=True):
                    matrix.reference_failures.append({"case": case.id, "backend": backend, "dtype": dtype, "message": message})
                    broken.add((case.id, backend))
    for m in misconceptions.CATALOGUE:
        if not m.listed or m.exercise not in scope:
            continue
        row = MatrixRow(m.id, m.exercise, m.title)
        functions = misconceptions.namespace(m)
        for backend in [b for b in backends if b in m.backends]:
            row.checked_on.append(backend)
            for case in cases:
                if case.exercise != m.exercise or backend not in case.backends or (case.id, backend) in broken:
                    continue
                if _run(case, functions, backend, limits, shrink=False):
                    row.killed_by.setdefault(case.id, []).append(backend)
        matrix.rows.append(row)
    return matrix
