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
    """Strict JSON (no NaN/Infinity tokens), keys sorted, two-space indent, trailing newline.

    With timings=False the wall-clock fields are emptied (timings {}, every duration 0), so two
    runs of the same submission, here or on a cluster, give the same bytes; the report still
    follows the schema."""
    data = result.to_dict() if timings else _zero_timings(result.to_dict())
    return json.dumps(finite(data), indent=2, sort_keys=True, allow_nan=False) + "\n"


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
