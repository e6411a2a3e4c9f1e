"""The exercise registry: every module of this package that defines `EXERCISE` is an exercise.

Adding an exercise is adding a module here (its contract, inputs, references and mistakes; see
`base.Exercise`), plus its spec file, reference functions and docs page; no stage names exercises.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

from .base import BACKENDS, COURSE, DTYPES, TORCH_ONLY_DTYPES, Contract, Exercise, Misconception

__all__ = [
    "BACKENDS", "COURSE", "DTYPES", "TORCH_ONLY_DTYPES", "Contract", "Exercise", "Misconception",
    "EXERCISES", "EXERCISE_NAMES", "HELPERS", "HELPER_EXERCISE", "FUNCTIONS", "get", "d_head_of", "seq_lens",
]


def _discover() -> dict[str, Exercise]:
    found: list[Exercise] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        exercise = getattr(module, "EXERCISE", None)
        if exercise is None:
            continue
        if exercise.name != info.name:
            raise ImportError(f"{module.__name__} defines the exercise {exercise.name!r}; an exercise module is named after its exercise")
        found.append(exercise)
    found.sort(key=lambda e: (e.number, e.name))
    numbers = [e.number for e in found]
    if len(set(numbers)) != len(numbers):
        raise ImportError(f"two exercises share a course number: {[(e.name, e.number) for e in found]}")
    return {e.name: e for e in found}


#: Every exercise, in course order (by `number`).
EXERCISES: dict[str, Exercise] = _discover()
EXERCISE_NAMES = tuple(EXERCISES)

#: Helper functions that belong to an exercise and are graded with it (e.g. causal_mask).
HELPERS: dict[str, Contract] = {h.name: h for e in EXERCISES.values() for h in e.helpers}
HELPER_EXERCISE = {h.name: e.name for e in EXERCISES.values() for h in e.helpers}

#: Every function a learner writes: the exercises and their helpers (each has args, signature, dims).
FUNCTIONS: dict[str, Exercise | Contract] = {**EXERCISES, **HELPERS}


def get(name: str) -> Exercise:
    """The exercise called `name`; KeyError names the known ones."""
    try:
        return EXERCISES[name]
    except KeyError:
        raise KeyError(f"unknown exercise {name!r}; known: {', '.join(EXERCISE_NAMES)}") from None


def d_head_of(exercise: str, dims: dict[str, int]) -> int:
    return EXERCISES[exercise].d_head(dims)


def seq_lens(exercise: str, dims: dict[str, int]) -> tuple[int, int]:
    return EXERCISES[exercise].seq_lens(dims)


def reference_functions(backend: str) -> dict[str, Callable[..., Any]]:
    """Every function of a correct submission, from the reference on `backend`."""
    out: dict[str, Callable[..., Any]] = {}
    for e in EXERCISES.values():
        out[e.name] = e.reference(backend)
        for h in e.helpers:
            out[h.name] = e.helper_reference(h.name, backend)
    return out
