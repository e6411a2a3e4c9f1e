"""The one result model every reporter renders (text, JSON, JUnit, Gradescope).

A `GradeResult` holds `ExerciseResult`s, which hold `CaseResult`s, which hold one
`InstanceResult` per (backend, dtype) the case ran on. It round-trips through JSON
(`to_dict` / `from_dict`), so a JSON report can be re-rendered in any other format.
"""

from __future__ import annotations

import builtins
import dataclasses
from dataclasses import dataclass, field
from typing import Any

REPORT_SCHEMA_VERSION = 1

OUTCOMES = ("passed", "failed", "error", "not_run")
EXERCISE_STATUSES = ("graded", "missing", "not_implemented", "load_error", "signature_error", "not_graded")


@dataclass
class InstanceResult:
    """A case on one backend and dtype."""

    backend: str
    dtype: str
    outcome: str  # passed | failed | error
    message: str = ""
    likely: str | None = None
    example: str | None = None  # the (smallest) failing example: shapes, mask, seed
    details: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    duration: float = 0.0
    # The failure as data (kind, got, expected, where, call, evidence, hints as catalogue ids);
    # `message` and `likely` are its text rendering, kept for older consumers.
    failure: dict[str, Any] | None = None


@dataclass
class CaseResult:
    case_id: str
    exercise: str
    title: str
    property: str
    visibility: str
    max_points: float
    points: float
    outcome: str  # passed | failed | error | not_run
    instances: list[InstanceResult] = field(default_factory=list)
    feedback: str = ""
    inputs: str | None = None  # input shapes/seed; None for hidden cases unless --show-hidden
    repro: str | None = None
    output: str = ""  # what the learner's code printed during this case (truncated)
    duration: float = 0.0
    # Expected vs the learner's attention weights (or residual stream) on the failing inputs, as
    # plain lists of floats (harness/patterns.py); None for passed and hidden cases.
    patterns: dict[str, Any] | None = None

    @builtins.property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @builtins.property
    def first_failure(self) -> InstanceResult | None:
        return next((i for i in self.instances if i.outcome != "passed"), None)

    @builtins.property
    def message(self) -> str:
        bad = self.first_failure
        return bad.message if bad else ""


@dataclass
class Diagnosis:
    """A known mistake whose outputs match the submission's on every failing input."""

    id: str
    title: str
    feedback: str
    reference: str
    backend: str
    evidence: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # fitted parameters (an eps, a scale factor)
    confidence: str = "high"  # high | medium


@dataclass
class ExerciseResult:
    exercise: str
    status: str
    message: str = ""
    backends: list[str] = field(default_factory=list)
    backend_notes: list[str] = field(default_factory=list)
    score: float = 0.0
    max_score: float = 0.0
    cases: list[CaseResult] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    diagnosis_note: str | None = None
    diagnosis_facts: list[dict[str, Any]] = field(default_factory=list)  # what is known when nothing is named
    location: str | None = None  # where the function is defined
    signature: str | None = None

    @builtins.property
    def failed_cases(self) -> list[CaseResult]:
        return [c for c in self.cases if c.outcome in ("failed", "error")]


@dataclass
class NotRun:
    """Cases that count for the grade but were not run here (hidden cases skipped, withheld suites)."""

    exercise: str
    kind: str  # hidden | withheld
    cases: int
    points: float
    note: str = ""


@dataclass
class LoadInfo:
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output: str = ""
    output_bytes: int = 0


@dataclass
class GradeResult:
    submission: dict[str, Any]
    spec: dict[str, Any]
    status: str  # graded | error | interrupted (a class run was stopped before this one finished)
    score: float = 0.0
    max_score: float = 0.0
    exercises: list[ExerciseResult] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    load: LoadInfo = field(default_factory=LoadInfo)
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    tool: dict[str, str] = field(default_factory=dict)
    sandbox: dict[str, Any] | None = None  # the isolation level used: {requested, level, features, missing}
    schema_version: int = REPORT_SCHEMA_VERSION

    @builtins.property
    def cases(self) -> list[CaseResult]:
        return [c for e in self.exercises for c in e.cases]

    @builtins.property
    def all_passed(self) -> bool:
        """Every graded case passed and every exercise in scope was graded."""
        return self.status == "graded" and all(e.status == "graded" for e in self.exercises) and all(c.passed for c in self.cases)

    @builtins.property
    def exit_code(self) -> int:
        if self.status != "graded":
            return 2
        return 0 if self.all_passed else 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GradeResult":
        d = dict(data)
        d.pop("headline", None)  # derived, rendered first by the JSON reporter
        d["exercises"] = [_exercise_from_dict(e) for e in d.get("exercises", [])]
        d["not_run"] = [NotRun(**n) for n in d.get("not_run", [])]
        d["load"] = LoadInfo(**d.get("load", {}))
        return cls(**d)


def _exercise_from_dict(data: dict[str, Any]) -> ExerciseResult:
    d = dict(data)
    d["cases"] = [_case_from_dict(c) for c in d.get("cases", [])]
    d["diagnoses"] = [Diagnosis(**x) for x in d.get("diagnoses", [])]
    return ExerciseResult(**d)


def _case_from_dict(data: dict[str, Any]) -> CaseResult:
    d = dict(data)
    d["instances"] = [InstanceResult(**i) for i in d.get("instances", [])]
    return CaseResult(**d)


def strip_timings(data: Any) -> Any:
    """The report without wall-clock fields: what must be identical between two runs."""
    if isinstance(data, dict):
        return {k: strip_timings(v) for k, v in data.items() if k not in ("duration", "timings")}
    if isinstance(data, list):
        return [strip_timings(v) for v in data]
    return data
