"""The spec as plain data: cases, tolerances, implementation rules, withheld suites.

Built by `loader.load_spec` from YAML; read by every later stage. Nothing here does I/O.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSIONS = (1,)


@dataclass(frozen=True)
class Tolerance:
    """Elementwise |got - expected| <= atol + rtol * |expected| (numpy.isclose semantics)."""

    atol: float
    rtol: float

    def describe(self) -> str:
        return f"atol={self.atol:g}, rtol={self.rtol:g}"


@dataclass(frozen=True)
class Location:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class InputSpec:
    """How a case's inputs are made: generated from shapes/seed, or literal arrays.

    A shape given as [lo, hi] is drawn by hypothesis (deterministically, from `seed`).
    """

    shapes: dict[str, Any] = field(default_factory=dict)
    mask: str = "none"
    seed: int = 0
    scale: float = 1.0
    offset: float = 0.0
    score_scale: float | None = None
    poison: bool = False
    literal: dict[str, Any] | None = None

    @builtins.property
    def is_literal(self) -> bool:
        return self.literal is not None

    @builtins.property
    def is_drawn(self) -> bool:
        return any(isinstance(v, (list, tuple)) for v in self.shapes.values())


@dataclass(frozen=True)
class Case:
    """One spec case: a property checked on some inputs, worth `points`."""

    id: str
    exercise: str
    title: str
    property: str
    params: dict[str, Any]
    inputs: InputSpec | None
    tolerances: dict[str, Tolerance]
    dtypes: tuple[str, ...]
    backends: tuple[str, ...]
    points: float
    visibility: str
    feedback: str
    timeout: float
    examples: int
    source: Location
    allow_degenerate_shapes: str | None = None
    time_factor: float | None = None  # each call may take at most this many times the reference's time (harness/timing.py)

    @builtins.property
    def hidden(self) -> bool:
        return self.visibility == "hidden"


@dataclass(frozen=True)
class ForbiddenCall:
    """An API a submission must not use for an exercise (or at all, with exercise='*')."""

    api: str
    reason: str


@dataclass(frozen=True)
class Rules:
    """The implementation rules of one exercise, graded as one extra case."""

    exercise: str
    points: float
    forbidden: tuple[ForbiddenCall, ...]
    source: Location | None

    @builtins.property
    def case_id(self) -> str:
        return f"{self.exercise}.implementation_rules"


@dataclass(frozen=True)
class Withheld:
    """Cases a course grades only in its own autograder; a local run says they were not run."""

    suite: str
    exercise: str
    cases: int
    points: float
    note: str
    source: Location


@dataclass(frozen=True)
class SpecFile:
    path: str
    spec_version: int
    suite: str | None
    n_cases: int
    sha256: str


@dataclass(frozen=True)
class Spec:
    files: tuple[SpecFile, ...]
    cases: tuple[Case, ...]
    rules: dict[str, Rules]
    withheld: tuple[Withheld, ...]

    @builtins.property
    def suites(self) -> set[str]:
        return {f.suite for f in self.files if f.suite}

    @builtins.property
    def digest(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.sha256.encode())
        return h.hexdigest()[:16]

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)

    def unsatisfied_withheld(self) -> tuple[Withheld, ...]:
        """Withheld declarations whose suite is not loaded: the local run cannot grade them."""
        return tuple(w for w in self.withheld if w.suite not in self.suites)
