"""Render a structured failure (harness/properties: kind, got, expected, where, call, evidence,
hints) as the one-line message learners read. Hidden cases render from fewer fields: no call,
no values, no positions, so nothing about the inputs or expected values leaks."""

from __future__ import annotations

import builtins

from typing import Any

HIDDEN_SUFFIX = " [hidden case: inputs not shown]"

#: What a hidden case says for each kind of failure when the property gave no hidden wording.
HIDDEN_TEXT = {
    "shape": "out has the wrong shape",
    "none": "out is None: the function returned nothing",
    "not_array": "out is not an array of numbers",
    "dtype": "out has the wrong dtype",
    "array_type": "out is not the inputs' array type",
    "mutated": "the function modified its inputs in place",
    "nonfinite": "out contains NaN or inf",
    "no_graph": "the output has no autograd graph",
    "grad_missing": "no gradient reached some inputs",
    "grad_error": "gradients could not be computed",
    "gradient": "a gradient is wrong",
    "causal_mask": "causal_mask returns a wrong mask",
    "slow": "the function was too slow at realistic sizes",
}


def _num(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _index(what: str, index: list[int] | None) -> str:
    return f"{what}[{', '.join(str(int(i)) for i in index or [])}]"


def comparison_text(d: dict[str, Any]) -> str:
    """'out differs from the expected values in 5 of 64 elements (...): worst out[0, 1]=..., but should be ...'."""
    what = d.get("what", "out")
    if "got_shape" in d:
        return f"{what}.shape={tuple(d['got_shape'])}, but should be {tuple(d['expected_shape'])}"
    if d.get("nonfinite_kind"):
        return (
            f"{what} contains {d['nonfinite_kind']} ({d['nonfinite']} of {d['total']} elements are not finite), "
            f"e.g. {_index(what, d.get('nonfinite_index'))}={_num(d.get('nonfinite_got'))}, but should be {_num(d.get('nonfinite_expected'))}"
        )
    tol = d.get("tolerance") or {}
    return (
        f"{what} differs from {d.get('against', 'the expected values')} in {d.get('mismatched')} of {d.get('total')} elements "
        f"(allowed |got - expected| <= {tol.get('atol', 0):g} + {tol.get('rtol', 0):g}*|expected|): worst {_index(what, d.get('worst_index'))}={_num(d.get('worst_got'))}, "
        f"but should be {_num(d.get('worst_expected'))} (abs error {_num(d.get('max_abs_error'))})"
    )


def render_failure(f: dict[str, Any], *, hidden: bool = False) -> str:
    """The message for a failure; `hidden` renders only the kind of failure."""
    if hidden:
        return _hidden_text(f) + HIDDEN_SUFFIX
    text = f.get("claim") or ""
    comparison = f.get("comparison")
    if comparison and comparison.get("what") is not None:
        cmp = comparison_text(comparison)
        text = f"{text}: {cmp}" if text else cmp
    if f.get("note"):
        text += f" ({f['note']})"
    if f.get("call"):
        text += f" [{f['call']}]"
    return text


def _hidden_text(f: dict[str, Any]) -> str:
    if f.get("claim_hidden"):
        return str(f["claim_hidden"])
    kind = f.get("kind", "")
    if kind == "raised" and f.get("error"):
        return f"{f.get('function', 'the function')} raised {f['error'].get('type', 'an exception')}"
    comparison = f.get("comparison") or {}
    if kind in ("values", "relation") and comparison.get("what"):
        return f"{comparison['what']} differs from {comparison.get('against', 'the expected values')}"
    return HIDDEN_TEXT.get(kind, "the case failed")


def builtin_exception_name(name: Any) -> str | None:
    """`name` if it is one of Python's own exception classes, else None: the name of a class the
    submission made could spell out a hidden case's inputs (type(f"Q_{shape}", (Exception,), {}))."""
    found = getattr(builtins, str(name), None) if isinstance(name, str) and name.isidentifier() else None
    return name if isinstance(found, type) and issubclass(found, BaseException) else None


def redact(f: dict[str, Any]) -> dict[str, Any]:
    """The failure of a hidden case: the kind, hints and error sizes stay; the call, values,
    positions, shapes and evidence go."""
    kept: dict[str, Any] = {k: f[k] for k in ("kind", "outcome", "hints", "claim_hidden", "function") if k in f}
    if f.get("error"):
        kept["error"] = {"type": builtin_exception_name(f["error"].get("type")) or "an exception of a class the submission defines"}
    comparison = f.get("comparison") or {}
    if comparison:
        kept["comparison"] = {k: comparison[k] for k in ("max_abs_error", "max_rel_error", "what", "against") if k in comparison}
    kept["hidden"] = True
    return kept
