"""Compare what a learner's function returned with what it should have returned.

Each concern is judged on its own (array type, dtype, shape, values), and every failure
message follows one grammar: what was got, what was expected, where, in which call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .specmodel import Tolerance


@dataclass
class Mismatch:
    """Why two arrays differ, with the numbers a learner needs to see it."""

    message: str
    details: dict[str, Any] = field(default_factory=dict)


def fmt_index(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


def fmt_num(x: float) -> str:
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def compare_values(got: np.ndarray, expected: np.ndarray, tol: Tolerance, what: str = "out", against: str = "the expected values") -> Mismatch | None:
    """None if `got` matches `expected` elementwise within `tol`; otherwise the worst differences.

    `against` names what `expected` is in the message ("the outputs before the change" for relational checks)."""
    if got.shape != expected.shape:
        return Mismatch(f"{what}.shape={tuple(got.shape)}, but should be {tuple(expected.shape)}", {"got_shape": list(got.shape), "expected_shape": list(expected.shape), "what": what})
    if got.size == 0:
        return None
    if _all_close(got, expected, tol):
        return None
    both_inf = np.isinf(got) & np.isinf(expected) & (np.sign(got) == np.sign(expected))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(both_inf, 0.0, np.abs(got - expected))
        allowed = tol.atol + tol.rtol * np.abs(np.where(np.isinf(expected), 0.0, expected))
        bad = ~(diff <= allowed)  # NaN differences are bad
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    finite_diff = np.where(np.isnan(diff), np.inf, diff)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(finite_diff)), got.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(bad, finite_diff / np.maximum(np.abs(expected), 1e-300), 0.0)
    details: dict[str, Any] = {
        "max_abs_error": float(finite_diff.max()),
        "max_rel_error": float(np.nan_to_num(rel, nan=np.inf).max()),
        "worst_index": [int(i) for i in worst],
        "mismatched": n_bad,
        "total": int(got.size),
        "tolerance": {"atol": tol.atol, "rtol": tol.rtol},
        "samples": _samples(got, expected, bad, finite_diff),
        "what": what,
        "against": against,
        "worst_got": _jsonable(got[worst]),
        "worst_expected": _jsonable(expected[worst]),
    }
    nonfinite = ~np.isfinite(got) & np.isfinite(expected)
    if nonfinite.any():
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(nonfinite)), got.shape))
        kind = "NaN" if np.isnan(got[idx]) else "inf"
        details["nonfinite"] = int(nonfinite.sum())
        details.update(nonfinite_kind=kind, nonfinite_index=[int(i) for i in idx], nonfinite_got=_jsonable(got[idx]), nonfinite_expected=_jsonable(expected[idx]))
        message = (
            f"{what} contains {kind} ({int(nonfinite.sum())} of {got.size} elements are not finite), "
            f"e.g. {fmt_index(what, idx)}={fmt_num(got[idx])}, but should be {fmt_num(expected[idx])}"
        )
        return Mismatch(message, details)
    message = (
        f"{what} differs from {against} in {n_bad} of {got.size} elements "
        f"(allowed |got - expected| <= {tol.atol:g} + {tol.rtol:g}*|expected|): worst {fmt_index(what, worst)}={fmt_num(got[worst])}, "
        f"but should be {fmt_num(expected[worst])} (abs error {fmt_num(float(finite_diff[worst]))})"
    )
    return Mismatch(message, details)


def _all_close(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    """The common verdict, in a few passes without temporaries: every |got - expected| within
    atol + rtol*|expected|, all finite. False sends the caller to the full comparison (which also
    accepts infinities of the same sign where the reference has them)."""
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.subtract(got, expected, dtype=np.float64)
        np.abs(diff, out=diff)
        allowed = np.abs(expected, dtype=np.float64)
        allowed *= tol.rtol
        allowed += tol.atol
        if not np.isfinite(allowed).all():
            return False
        return bool(np.less_equal(diff, allowed, out=np.empty(diff.shape, dtype=bool)).all())


def _samples(got: np.ndarray, expected: np.ndarray, bad: np.ndarray, diff: np.ndarray, limit: int = 4) -> list[dict[str, Any]]:
    flat = np.flatnonzero(bad.ravel())
    values = diff.ravel()[flat]
    if flat.size > 4 * limit:  # only the `limit` largest are shown: sort those (ties kept in index order), not every bad element
        cut = np.partition(values, values.size - limit)[values.size - limit]
        keep = values >= cut
        flat, values = flat[keep], values[keep]
    order = flat[np.argsort(-values, kind="stable")][:limit]
    out = []
    for f in sorted(order):
        idx = np.unravel_index(int(f), got.shape)
        out.append({"index": [int(i) for i in idx], "expected": _jsonable(expected[idx]), "got": _jsonable(got[idx])})
    return out


def _jsonable(x: float) -> float | str:
    x = float(x)
    return x if np.isfinite(x) else fmt_num(x)


def name_axes(shape: tuple[int, ...], dims: dict[str, int], expected_names: tuple[str, ...]) -> str | None:
    """Name the axes of a wrong shape by size, e.g. '(batch, seq_q, n_heads, d_v)', when sizes are unambiguous."""
    by_size: dict[int, list[str]] = {}
    for name in expected_names:
        by_size.setdefault(dims[name], []).append(name)
    names = []
    for size in shape:
        candidates = by_size.get(size, [])
        if len(candidates) != 1:
            return None
        names.append(candidates[0])
    return f"({', '.join(names)})"
