"""The machinery every property shares: registration, the case context, and failure reporting.

A property is a named check, registered with the exercises it applies to and a JSON Schema for
its YAML `params`. Its `check(ctx, inputs)` calls the learner's function through `ctx.call`
(which records every call for diagnosis), and raises `Failed` with a message in the usual
grammar (got, expected, call, likely cause) when the submission breaks the property.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..compare import compare_values, name_axes
from ..exercises import BACKENDS, EXERCISES, FUNCTIONS
from ..inputs import Inputs
from ..reference import numpy_ref
from ..runner import CallOutcome, CaseRunner, GradRequest, Limits
from ..specmodel import Case, Tolerance

ALL_EXERCISES = tuple(EXERCISES)


class Failed(Exception):
    """The submission does not have the property (kind 'failed') or its code broke (kind 'error')."""

    def __init__(self, message: str, *, kind: str = "failed", likely: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.likely = likely
        self.details = details or {}


class CaseAborted(Exception):
    """The case's process is gone (timeout, crash): no further call of this case can run."""

    def __init__(self, outcome: CallOutcome):
        super().__init__(outcome.status)
        self.outcome = outcome


@dataclass
class Observation:
    """One call made while checking a case: inputs (float64, dtype-rounded) and what came back."""

    function: str
    inputs: Inputs | list[Any]
    backend: str
    dtype: str
    values: np.ndarray | None
    status: str
    error_type: str | None = None


@dataclass
class PropertyInfo:
    name: str
    summary: str
    check: Callable[["CaseContext", Inputs], None]
    exercises: tuple[str, ...] = ALL_EXERCISES
    backends: tuple[str, ...] = BACKENDS
    params_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "additionalProperties": False, "properties": {}})
    needs_inputs: bool = True
    fixed_dims: dict[str, int] = field(default_factory=dict)
    masks: tuple[str, ...] | None = None  # allowed mask kinds for generated inputs (None: any)
    validate: Callable[[Case, Any], list[tuple[tuple, str]]] | None = None
    function: str | None = None  # the contract function it calls (default: the case's exercise)
    relational: bool = False  # compares the submission with itself rather than with the reference


PROPERTIES: dict[str, PropertyInfo] = {}


def register(info: PropertyInfo) -> PropertyInfo:
    if info.name in PROPERTIES:
        raise ValueError(f"property {info.name!r} registered twice")
    PROPERTIES[info.name] = info
    return info


@dataclass
class CaseContext:
    """Everything a property's check needs for one (case, backend, dtype)."""

    case: Case
    backend: str
    dtype: str
    tol: Tolerance
    runner: CaseRunner
    limits: Limits
    observations: list[Observation] = field(default_factory=list)
    tripwires: list[dict[str, Any]] = field(default_factory=list)
    recording: bool = True
    calls: int = 0
    aborted: bool = False  # the case's process died (timeout, crash): later calls cannot run

    @property
    def exercise(self) -> str:
        return self.case.exercise

    @property
    def params(self) -> dict[str, Any]:
        return self.case.params

    def call(self, inputs: Inputs | list[Any], *, function: str | None = None, grad: GradRequest | None = None) -> CallOutcome:
        function = function or self.case.exercise
        outcome = self.runner.call(function, inputs, backend=self.backend, dtype=self.dtype, grad=grad)
        self.calls += 1
        for hit in outcome.tripwires:
            if hit not in self.tripwires:
                self.tripwires.append(hit)
        if self.recording:
            out = outcome.output
            self.observations.append(
                Observation(function, inputs, self.backend, self.dtype, out.values if out is not None else None, outcome.status, (outcome.error or {}).get("type"))
            )
        if outcome.fatal:
            self.aborted = True
            raise CaseAborted(outcome)
        return outcome

    def call_ok(self, inputs: Inputs) -> tuple[CallOutcome, str]:
        """Call the exercise function; a call that did not return (raised, crashed) fails as an error."""
        outcome = self.call(inputs)
        call = self.describe_call(inputs)
        if not outcome.ok:
            raise Failed(f"{self.exercise} {outcome.problem(self.limits)} [{call}]", kind="error")
        return outcome, call

    def describe_call(self, inputs: Inputs | list[Any], function: str | None = None) -> str:
        function = function or self.case.exercise
        if isinstance(inputs, Inputs):
            return f"{function}({', '.join(FUNCTIONS[function].args)}) with {inputs.shapes()}, {self.dtype}, {self.backend}"
        return f"{function}({', '.join(repr(a) for a in inputs)}), {self.backend}"

    def expected(self, inputs: Inputs) -> np.ndarray:
        """The reference output in float64 for these (dtype-rounded) inputs."""
        return getattr(numpy_ref, inputs.exercise)(*inputs.positional())

    def values(self, outcome: CallOutcome, inputs: Inputs | list[Any], expected_shape: tuple[int, ...] | None = None, *, function: str | None = None, what: str = "out") -> np.ndarray:
        """The call's output as float64 values of the expected shape, or Failed saying why not."""
        call = self.describe_call(inputs, function)
        if not outcome.ok:
            raise Failed(f"{function or self.case.exercise} {outcome.problem(self.limits)} [{call}]", kind="error")
        out = outcome.output
        if out is None or out.kind == "none":
            raise Failed(f"{what} is None: the function returned nothing [{call}]", likely="a missing `return` statement")
        if out.values is None:
            raise Failed(f"{what} is {out.describe()}, which is not an array of numbers ({out.note or 'unreadable'}) [{call}]")
        if expected_shape is not None and tuple(out.values.shape) != tuple(expected_shape):
            raise Failed(f"{what}.shape={tuple(out.values.shape)}, but should be {tuple(expected_shape)} [{call}]", likely=self.shape_hint(tuple(out.values.shape), inputs))
        return out.values

    def shape_hint(self, shape: tuple[int, ...], inputs: Inputs | list[Any]) -> str | None:
        if not isinstance(inputs, Inputs):
            return None
        contract = EXERCISES[inputs.exercise]
        names = name_axes(shape, inputs.dims, contract.dims)
        if names is None:
            return None
        return f"the output's axes look like {names}; the contract returns ({', '.join(contract.output_shape)})"

    def compare(self, got: np.ndarray, expected: np.ndarray, inputs: Inputs | list[Any], *, what: str = "out", tol: Tolerance | None = None, likely: str | None = None) -> None:
        mismatch = compare_values(got, expected, tol or self.tol, what)
        if mismatch is not None:
            raise Failed(f"{mismatch.message} [{self.describe_call(inputs)}]", likely=likely, details=mismatch.details)

    def output_of(self, inputs: Inputs) -> np.ndarray:
        """Call the exercise function and return its values, requiring the contract's output shape."""
        contract = EXERCISES[inputs.exercise]
        outcome = self.call(inputs)
        return self.values(outcome, inputs, contract.output_shape_for(inputs.dims))

    def rng(self, salt: int = 0) -> np.random.Generator:
        seed = self.case.inputs.seed if self.case.inputs is not None else 0
        return np.random.default_rng([seed, salt, 7919])


def require_nondegenerate(ctx: CaseContext, out: np.ndarray, inputs: Inputs, axis: int) -> None:
    """Relational properties only mean something if the output is finite and varies along `axis`."""
    if not np.all(np.isfinite(out)):
        raise Failed(f"out contains NaN or inf, so the property cannot be checked [{ctx.describe_call(inputs)}]")
    if out.shape[axis] > 1 and np.allclose(out, np.take(out, [0], axis=axis), atol=0, rtol=0):
        raise Failed(f"out is the same at every position, so it cannot depend on the tokens as attention does [{ctx.describe_call(inputs)}]")


def schema(**properties: Any) -> dict[str, Any]:
    """A params JSON Schema: an object with exactly these optional properties."""
    return {"type": "object", "additionalProperties": False, "properties": properties}
