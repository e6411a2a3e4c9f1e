"""`attnspec spec new`: a complete, valid spec file with one case of the chosen property.

The skeleton passes `attnspec spec validate` as written (shapes that hide no bugs, a mask the
property needs, tolerances for every dtype), so an instructor starts from something that works
and edits it, rather than from a template full of blanks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml

from .errors import UsageError
from .exercises import EXERCISES
from .inputs import CAUSAL_MASKS, generate_inputs
from .properties import PROPERTIES
from .specmodel import InputSpec

TOLERANCES = {"float64": {"atol": 1.0e-9, "rtol": 1.0e-7}, "float32": {"atol": 1.0e-5, "rtol": 1.0e-4}}  # as the shipped spec
SHAPES = {name: e.skeleton_dims for name, e in EXERCISES.items()}


def _params(exercise: str, prop_name: str) -> dict[str, Any] | None:
    """The params a new case of this property starts from (None: the property takes none)."""
    if prop_name == "permutation_equivariance":
        return {"permute": EXERCISES[exercise].permute_modes[0], "expect": "holds"}
    if prop_name == "causal_mask_function":
        return {"sizes": [1, 2, 5]}
    return None


def case_skeleton(exercise: str, prop_name: str, case_id: str | None = None) -> str:
    prop = PROPERTIES.get(prop_name)
    if prop is None:
        raise UsageError(f"unknown property '{prop_name}'; see `attnspec spec properties`")
    if exercise not in prop.exercises:
        raise UsageError(f"property '{prop_name}' applies to {', '.join(prop.exercises)}, not {exercise}")
    prefix = EXERCISES[exercise].prefix
    case: dict[str, Any] = {
        "id": case_id or f"{prefix}.{prop_name}.new",
        "title": prop.summary,
        "property": prop_name,
    }
    chosen = _params(exercise, prop_name)
    inputs = _inputs(exercise, prop) if prop.needs_inputs else None
    if prop_name == "literal_values":
        inputs, chosen = _literal_example(exercise)
    if chosen:
        case["params"] = chosen
    if inputs is not None:
        case["inputs"] = inputs
    case["dtypes"] = ["float64", "float32"]
    if tuple(prop.backends) != ("numpy", "torch"):
        case["backends"] = list(prop.backends)
    case["points"] = 1
    case["visibility"] = "visible"
    case["feedback"] = f"Shown to the learner when this case fails: explain what '{prop.summary}' means for {exercise} and where the course covers it."
    document = {
        "spec_version": 1,
        "exercise": exercise,
        "defaults": {"tolerances": TOLERANCES},
        "cases": [case],
    }
    header = (
        f"# A new attnspec case for {exercise}: property '{prop_name}' ({prop.summary}).\n"
        "# Edit the id, title, inputs and feedback, then check it with:\n"
        "#   attnspec spec validate THIS_FILE\n"
        "#   attnspec spec check --spec THIS_FILE      (what the case catches: the kill matrix)\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)


def _inputs(exercise: str, prop: Any) -> dict[str, Any]:
    shapes = dict(SHAPES[exercise])
    for name in prop.fixed_dims:
        shapes.pop(name, None)
    mask = "none"
    if prop.masks:
        mask = next(m for m in prop.masks if 4 in EXERCISES[exercise].mask_ndims or not m.endswith("_4d"))
    poison = prop.name == "mask_blocks_exactly" and EXERCISES[exercise].poison_ok
    if poison:
        mask = "padding"  # keys blocked for every query, holding poison values: a leak is obvious
    seq_q, seq_k = EXERCISES[exercise].seq_dims
    if mask in CAUSAL_MASKS:
        shapes[seq_k] = shapes[seq_q]
    inputs: dict[str, Any] = {"shapes": shapes, "mask": mask, "seed": 0}
    if poison:
        inputs["poison"] = True
    if prop.name == "numerical_stability":
        inputs["score_scale"] = 1000.0
    return inputs


def _literal_example(exercise: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Small literal inputs and their reference output, rounded, as a worked example to edit."""
    dims = EXERCISES[exercise].example_dims
    made = generate_inputs(exercise, InputSpec(shapes=dims, seed=0), dims)
    rounded = {k: _round(v) for k, v in made.args.items()}
    out = EXERCISES[exercise].reference("numpy")(*[_as_array(rounded[a]) for a in EXERCISES[exercise].args])
    literal = {k: v for k, v in rounded.items()}
    index = [0] * (len(EXERCISES[exercise].output_shape) - 1)  # one row of the output
    checks = [{"select": index, "expected": out[tuple(index)].tolist()}]
    return {"literal": literal}, {"checks": checks}


def _round(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return np.round(value, 3).tolist()
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _as_array(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # a list of params dicts (layers)
        return [_as_array(v) for v in value]
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, dict):
        return {k: _as_array(v) for k, v in value.items()}
    return value
