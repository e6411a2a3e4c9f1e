"""The machinery every property shares: registration, the case context, and failure reporting.

A property is a named check, registered with the exercises it applies to and a JSON Schema for
its YAML `params`. Its `check(ctx, inputs)` calls the learner's function through `ctx.call`
(which records every call for diagnosis), and raises `Failed` with a message in the usual
grammar (got, expected, call, likely cause) when the submission breaks the property.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, cast

import numpy as np

from .. import refcache
from ..compare import compare_values, name_axes
from ..exercises import BACKENDS, EXERCISES, FUNCTIONS, Exercise
from ..inputs import Inputs
from ..runner import CallOutcome, CaseRunner, GradRequest, Limits
from ..reports.failure import render_failure
from ..specmodel import Case, Tolerance



def every_exercise(exercise: "Exercise") -> bool:
    """For properties that hold for any exercise's function (its shape, dtype, values, batch...)."""
    return True


def on_arrays(exercise: "Exercise") -> bool:
    """For properties of functions on arrays (shape, dtype, values, batch...): every exercise but
    those whose arguments are plain integers (causal_mask, attention_param_count)."""
    return exercise.array_inputs



class Failed(Exception):
    """The submission does not have the property (kind 'failed') or its code broke (kind 'error').

    The failure is data (`failure`: kind, claim, got, expected, where, call, comparison, evidence,
    hints as catalogue ids); `message` is its rendering, made by the reporters' renderer."""

    def __init__(self, message: str | None = None, *, kind: str = "failed", likely: str | None = None, details: dict[str, Any] | None = None, failure: dict[str, Any] | None = None):
        self.failure: dict[str, Any] = dict(failure) if failure is not None else {"kind": "other", "claim": message}
        self.failure.setdefault("outcome", kind)
        self.failure.setdefault("hints", [])
        self.details = details if details is not None else dict(self.failure.get("comparison") or {})
        self.message = message if message is not None else render_failure(self.failure)
        super().__init__(self.message)
        self.kind = kind
        self.likely = likely


def fail(kind: str, *, claim: str | None = None, call: str | None = None, comparison: dict[str, Any] | None = None, hints: list[str] | tuple[str, ...] = (),
         evidence: dict[str, Any] | None = None, outcome: str = "failed", **fields: Any) -> Failed:
    """A Failed carrying a structured failure; the message is rendered from the fields."""
    failure: dict[str, Any] = {"kind": kind, "outcome": outcome, "claim": claim, "call": call, "hints": list(hints)}
    if comparison is not None:
        failure["comparison"] = comparison
    if evidence:
        failure["evidence"] = evidence
    failure.update({k: v for k, v in fields.items() if v is not None})
    return Failed(kind=outcome, failure=failure)


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
    kind: str | None = None  # what came back: ndarray, tensor, tuple, list, none, ...
    error_message: str | None = None


@dataclass
class PropertyInfo:
    """A registered property. `exercises` says explicitly where it applies: a tuple of exercise
    names, or a predicate on the `Exercise` (e.g. `every_exercise`), read against the registry."""

    name: str
    summary: str
    check: Callable[["CaseContext", Inputs], None]
    applies_to: tuple[str, ...] | Callable[[Exercise], bool]
    backends: tuple[str, ...] = BACKENDS
    params_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "additionalProperties": False, "properties": {}})
    needs_inputs: bool = True
    fixed_dims: dict[str, int] = field(default_factory=dict)
    masks: tuple[str, ...] | None = None  # allowed mask kinds for generated inputs (None: any)
    validate: Callable[[Case, Any], list[tuple[tuple, str]]] | None = None
    function: str | None = None  # the contract function it calls (default: the case's exercise)
    relational: bool = False  # compares the submission with itself rather than with the reference

    def __post_init__(self) -> None:
        if isinstance(self.applies_to, tuple):
            unknown = [e for e in self.applies_to if e not in EXERCISES]
            if unknown:
                raise ValueError(f"property {self.name!r} names unknown exercises {unknown}; known: {', '.join(EXERCISES)}")

    @property
    def exercises(self) -> tuple[str, ...]:
        """The registered exercises this property applies to, in course order."""
        if isinstance(self.applies_to, tuple):
            return tuple(e for e in EXERCISES if e in self.applies_to)
        return tuple(name for name, e in EXERCISES.items() if self.applies_to(e))


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
    timed: bool = False  # a learner's run: calls of a case with a time_factor are timed (harness/timing.py)
    submission: Any = None  # the Submission (its sources, for where the time went)

    @property
    def exercise(self) -> str:
        return self.case.exercise

    @property
    def params(self) -> dict[str, Any]:
        return self.case.params

    def call(self, inputs: Inputs | list[Any], *, function: str | None = None, grad: GradRequest | None = None) -> CallOutcome:
        function = function or self.case.exercise
        timed = inputs if self.timed and self.case.time_factor is not None and grad is None and function == self.case.exercise and isinstance(inputs, Inputs) else None
        if timed is not None:
            from .. import timing

            start = time.monotonic()
            outcome = self.runner.call(function, inputs, backend=self.backend, dtype=self.dtype, stop_after=timing.stop_after(self.runner, self.case, timed, self.dtype))
            elapsed = time.monotonic() - start
        else:
            outcome = self.runner.call(function, inputs, backend=self.backend, dtype=self.dtype, grad=grad)
        self.calls += 1
        for hit in outcome.tripwires:
            if hit not in self.tripwires:
                self.tripwires.append(hit)
        if self.recording:
            out = outcome.output
            error = outcome.error or {}
            self.observations.append(
                Observation(function, inputs, self.backend, self.dtype, out.values if out is not None else None, outcome.status, error.get("type"),
                            out.kind if out is not None else None, str(error.get("message", ""))[:300] or None)
            )
        if outcome.fatal:
            self.aborted = True
            raise CaseAborted(outcome)
        if timed is not None:
            slow = timing.check_speed(self, timed, outcome, elapsed)
            if slow is not None:
                raise fail("slow", **slow)
        return outcome

    def call_ok(self, inputs: Inputs) -> tuple[CallOutcome, str]:
        """Call the exercise function; a call that did not return (raised, crashed) fails as an error."""
        outcome = self.call(inputs)
        call = self.describe_call(inputs)
        if not outcome.ok:
            raise self.call_failed(outcome, call)
        return outcome, call

    def call_failed(self, outcome: CallOutcome, call: str, function: str | None = None) -> Failed:
        """The call did not return (raised, timed out, crashed)."""
        function = function or self.case.exercise
        error = {"type": (outcome.error or {}).get("type"), "message": (outcome.error or {}).get("message")} if outcome.error else None
        return fail("raised" if outcome.status == "raised" else outcome.status, claim=f"{function} {outcome.problem(self.limits)}", call=call, outcome="error", function=function, error=error)

    def describe_call(self, inputs: Inputs | list[Any], function: str | None = None) -> str:
        function = function or self.case.exercise
        if isinstance(inputs, Inputs):
            return f"{function}({', '.join(FUNCTIONS[function].args)}) with {inputs.shapes()}, {self.dtype}, {self.backend}"
        return f"{function}({', '.join(repr(a) for a in inputs)}), {self.backend}"

    def expected(self, inputs: Inputs) -> np.ndarray:
        """The reference output in float64 for these (dtype-rounded) inputs (read-only: remembered
        for the next submission graded on the same inputs)."""
        args = inputs.positional()
        return cast(np.ndarray, refcache.cached(("reference", inputs.exercise), args, lambda: EXERCISES[inputs.exercise].reference("numpy")(*args)))

    def values(self, outcome: CallOutcome, inputs: Inputs | list[Any], expected_shape: tuple[int, ...] | None = None, *, function: str | None = None, what: str = "out") -> np.ndarray:
        """The call's output as float64 values of the expected shape, or Failed saying why not."""
        call = self.describe_call(inputs, function)
        if not outcome.ok:
            raise self.call_failed(outcome, call, function)
        out = outcome.output
        if out is None or out.kind == "none":
            raise fail("none", claim=f"{what} is None: the function returned nothing", call=call, hints=["hint.missing_return"])
        if out.values is None:
            raise fail("not_array", claim=f"{what} is {out.describe()}, which is not an array of numbers ({out.note or 'unreadable'})", call=call, got=out.kind,
                       claim_hidden=f"{what} is a {out.kind}, not an array of numbers" if out.kind in ("tuple", "list") else None)
        if expected_shape is not None and tuple(out.values.shape) != tuple(expected_shape):
            got, want = tuple(out.values.shape), tuple(expected_shape)
            axes = self.shape_hint(got, inputs)
            raise fail("shape", claim=f"{what}.shape={got}, but should be {want}", call=call, got=list(got), expected=list(want),
                       evidence={"axes": axes} if axes else None, note=axes, returned=out.kind)
        return out.values

    def shape_hint(self, shape: tuple[int, ...], inputs: Inputs | list[Any]) -> str | None:
        if not isinstance(inputs, Inputs):
            return None
        contract = EXERCISES[inputs.exercise]
        names = name_axes(shape, inputs.dims, contract.dims)
        if names is None:
            return None
        return f"the output's axes look like {names}; the contract returns ({', '.join(contract.output_shape)})"

    def compare(self, got: np.ndarray, expected: np.ndarray, inputs: Inputs | list[Any], *, what: str = "out", tol: Tolerance | None = None, hints: list[str] | None = None) -> None:
        mismatch = compare_values(got, expected, tol or self.tol, what)
        if mismatch is not None:
            raise fail(value_kind(mismatch.details), call=self.describe_call(inputs), comparison=mismatch.details, hints=hints or [])

    def output_of(self, inputs: Inputs) -> np.ndarray:
        """Call the exercise function and return its values, requiring the contract's output shape."""
        contract = EXERCISES[inputs.exercise]
        outcome = self.call(inputs)
        return self.values(outcome, inputs, contract.output_shape_for(inputs.dims))

    def rng(self, salt: int = 0) -> np.random.Generator:
        seed = self.case.inputs.seed if self.case.inputs is not None else 0
        return np.random.default_rng([seed, salt, 7919])


def value_kind(details: dict[str, Any]) -> str:
    """'shape', 'nonfinite' or 'values', from a comparison's details."""
    if "got_shape" in details:
        return "shape"
    return "nonfinite" if details.get("nonfinite_kind") else "values"


def require_nondegenerate(ctx: CaseContext, out: np.ndarray, inputs: Inputs, axis: int) -> None:
    """Relational properties only mean something if the output is finite and varies along `axis`."""
    if not np.all(np.isfinite(out)):
        raise fail("nonfinite", claim="out contains NaN or inf, so the property cannot be checked", call=ctx.describe_call(inputs))
    if out.shape[axis] > 1 and np.allclose(out, np.take(out, [0], axis=axis), atol=0, rtol=0):
        raise fail("degenerate", claim="out is the same at every position, so it cannot depend on the tokens as attention does", call=ctx.describe_call(inputs),
                   claim_hidden="out is the same at every position")


def schema(**properties: Any) -> dict[str, Any]:
    """A params JSON Schema: an object with exactly these optional properties."""
    return {"type": "object", "additionalProperties": False, "properties": properties}
