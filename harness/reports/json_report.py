"""JSON report: the whole result model, as documented by `schemas/report.schema.json`.

`GradeResult.from_dict(json.loads(render_json(r)))` rebuilds the result, so any other format can be
rendered later from a saved JSON report.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..results import GradeResult


def render_json(result: GradeResult, *, timings: bool = True) -> str:
    """Strict JSON (no NaN/Infinity tokens), two-space indent, trailing newline; the headline (each
    exercise's verdict and named mistakes) first, then every other key sorted.

    With timings=False the wall-clock fields are emptied (timings {}, every duration 0), so two
    runs of the same submission, here or on a cluster, give the same bytes; the report still
    follows the schema."""
    full = result.to_dict() if timings else _zero_timings(result.to_dict())
    data = {"headline": headline(result), **_sorted(finite(full))}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def headline(result: GradeResult) -> list[dict[str, Any]]:
    return [
        {
            "exercise": ex.exercise,
            "status": ex.status,
            "score": ex.score,
            "max_score": ex.max_score,
            "failed_cases": len(ex.failed_cases),
            "mistakes": [d.id for d in ex.diagnoses],
            "note": ex.diagnosis_note if not ex.diagnoses and ex.failed_cases else None,
        }
        for ex in result.exercises
    ]


def _sorted(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _sorted(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [_sorted(v) for v in data]
    return data


def finite(data: Any) -> Any:
    """`data` with every NaN or infinite float replaced by the string 'nan', 'inf' or '-inf'."""
    if isinstance(data, float) and not math.isfinite(data):
        return "nan" if math.isnan(data) else ("inf" if data > 0 else "-inf")
    if isinstance(data, dict):
        return {str(k): finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(v) for v in data]
    return data


def _zero_timings(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ({} if k == "timings" else 0.0 if k == "duration" else _zero_timings(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_zero_timings(v) for v in data]
    return data
