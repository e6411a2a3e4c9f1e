"""Schema errors in the words a spec author reads: what is wrong, in which case, what was expected.

Shared by the spec loader and the overrides reader, so both files speak alike.
"""

from __future__ import annotations

import difflib
from typing import Any

import jsonschema


def schema_problems(error: jsonschema.ValidationError, data: dict[str, Any]) -> list[tuple[list[Any], str, bool]]:
    """(path in the document, message, whether it points at the key) for one validation error."""
    path: list[Any] = list(error.absolute_path)
    found: list[tuple[list[Any], str, bool]] = []
    prefix = case_prefix(path, data)
    name = str(path[-1]) if path else "file"
    # jsonschema types these as possibly Unset; on a reported error they are set.
    v: Any = error.validator
    value: Any = error.validator_value
    inst: Any = error.instance
    schema: Any = error.schema
    if v == "required":
        missing = [k for k in value if isinstance(inst, dict) and k not in inst]
        for key in missing:
            found.append((path, f"{prefix}missing required field '{key}'", False))
        return found
    if v == "additionalProperties" and isinstance(inst, dict):
        known = list(schema.get("properties", {}))
        for extra in sorted(set(inst) - set(known)):
            hint = difflib.get_close_matches(str(extra), known, n=1)
            more = f"; did you mean '{hint[0]}'?" if hint else f"; expected one of: {', '.join(known)}"
            found.append((path + [extra], f"{prefix}unknown field '{extra}'{more}", True))
        return found
    if v == "propertyNames":
        found.append((path + [inst], f"{prefix}'{inst}' is not a dtype; expected one of float64, float32, float16, bfloat16", True))
        return found
    ops = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if v in ops:
        found.append((path, f"{prefix}{name}={inst!r} must be {ops[v]} {value}", False))
    elif v == "type":
        found.append((path, f"{prefix}{name} must be {type_words(value)}, got {short(inst)}", False))
    elif v in ("enum", "const"):
        options = value if v == "enum" else [value]
        hint = difflib.get_close_matches(str(inst), [str(o) for o in options], n=1)
        more = f" (did you mean '{hint[0]}'?)" if hint else ""
        found.append((path, f"{prefix}{name}={short(inst)} is not one of: {', '.join(map(str, options))}{more}", False))
    elif v == "pattern":
        what = "ids are dotted lower_snake_case, e.g. mha.causal_mask.small" if name == "id" else f"it must match {value}"
        found.append((path, f"{prefix}{name}={short(inst)} is not allowed: {what}", False))
    elif v == "oneOf" and len(path) >= 2 and path[-2] == "shapes":
        found.append((path, f"{prefix}{name}={short(inst)}: a dimension is a positive integer or a [low, high] range", False))
    elif v == "oneOf":
        found.append((path, f"{prefix}{name}={short(inst)}: expected a nested list of numbers, {{eye: n, scale: s}} or {{fill: v, shape: [...]}}", False))
    elif v == "uniqueItems":
        found.append((path, f"{prefix}{name} lists an entry twice: {short(inst)}", False))
    elif v in ("minItems", "minLength", "minProperties"):
        found.append((path, f"{prefix}{name} must not be empty", False))
    else:
        found.append((path, f"{prefix}{error.message}", False))
    return found


def case_prefix(path: list[Any], data: dict[str, Any]) -> str:
    """"case 'ma.values.small': " for a path inside a case, "" elsewhere."""
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        cases = data.get("cases", [])
        raw = cases[path[1]] if path[1] < len(cases) else None
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            return f"case '{raw['id']}': "
        return f"case #{path[1] + 1}: "
    return ""


def type_words(value: Any) -> str:
    names = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list", "object": "a mapping", "boolean": "true or false", "null": "null"}
    if isinstance(value, list):
        return " or ".join(names.get(str(v), str(v)) for v in value)
    return names.get(value, str(value))


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
