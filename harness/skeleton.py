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
from .reference import numpy_ref
from .specmodel import InputSpec

TOLERANCES = {"float64": {"atol": 1.0e-9, "rtol": 1.0e-7}, "float32": {"atol": 1.0e-5, "rtol": 1.0e-4}}  # as the shipped spec
SHAPES = {
    "manual_attention": {"batch": 2, "n_heads": 3, "seq_q": 5, "seq_k": 7, "d_head": 4, "d_v": 6},
    "multi_head_attention": {"batch": 2, "seq": 5, "d_model": 12, "n_heads": 3},
    "transformer_block": {"batch": 2, "seq": 5, "d_model": 12, "n_heads": 3, "d_ff": 7},
}
PARAMS = {
    "permutation_equivariance": {"manual_attention": {"permute": "queries", "expect": "holds"}, "*": {"permute": "tokens", "expect": "holds"}},
    "causal_mask_function": {"*": {"sizes": [1, 2, 5]}},
}


def case_skeleton(exercise: str, prop_name: str, case_id: str | None = None) -> str:
    prop = PROPERTIES.get(prop_name)
    if prop is None:
        raise UsageError(f"unknown property '{prop_name}'; see `attnspec spec properties`")
    if exercise not in prop.exercises:
        raise UsageError(f"property '{prop_name}' applies to {', '.join(prop.exercises)}, not {exercise}")
    prefix = {"manual_attention": "ma", "multi_head_attention": "mha", "transformer_block": "block"}[exercise]
    case: dict[str, Any] = {
        "id": case_id or f"{prefix}.{prop_name}.new",
        "title": prop.summary,
        "property": prop_name,
    }
    params = PARAMS.get(prop_name, {})
    chosen = params.get(exercise, params.get("*"))
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
        mask = next(m for m in prop.masks if exercise == "manual_attention" or not m.endswith("_4d"))
    poison = prop.name == "mask_blocks_exactly" and exercise == "manual_attention"
    if poison:
        mask = "padding"  # keys blocked for every query, holding poison values: a leak is obvious
    if mask in CAUSAL_MASKS and exercise == "manual_attention":
        shapes["seq_k"] = shapes["seq_q"]
    inputs: dict[str, Any] = {"shapes": shapes, "mask": mask, "seed": 0}
    if poison:
        inputs["poison"] = True
    if prop.name == "numerical_stability":
        inputs["score_scale"] = 1000.0
    return inputs


def _literal_example(exercise: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Small literal inputs and their reference output, rounded, as a worked example to edit."""
    dims = {
        "manual_attention": {"batch": 1, "n_heads": 1, "seq_q": 2, "seq_k": 3, "d_head": 2, "d_v": 1},
        "multi_head_attention": {"batch": 1, "seq": 3, "d_model": 4, "n_heads": 2},
        "transformer_block": {"batch": 1, "seq": 2, "d_model": 4, "n_heads": 2, "d_ff": 3},
    }[exercise]
    made = generate_inputs(exercise, InputSpec(shapes=dims, seed=0), dims)
    rounded = {k: _round(v) for k, v in made.args.items()}
    out = getattr(numpy_ref, exercise)(*[_as_array(rounded[a]) for a in EXERCISES[exercise].args])
    literal = {k: v for k, v in rounded.items()}
    index = [0, 0, 0] if exercise == "manual_attention" else [0, 0]
    checks = [{"select": index, "expected": out[tuple(index)].tolist()}]
    return {"literal": literal}, {"checks": checks}


def _round(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return np.round(value, 3).tolist()
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _as_array(value: Any) -> Any:
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, dict):
        return {k: _as_array(v) for k, v in value.items()}
    return value
