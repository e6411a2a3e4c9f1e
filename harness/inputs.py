"""Build a case's inputs: generated from shapes and a seed, drawn by hypothesis, or literal.

Inputs live in the grader as float64 arrays whose values are already rounded to the case dtype,
so the reference (computed in float64) sees exactly the numbers the learner's code sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from .exercises import EXERCISES
from .exercises.base import join_and
from .maskkinds import BIAS_MASKS, BLOCKING_MASKS, CAUSAL_MASKS, MASK_NDIM, PADDING_MASKS, make_mask  # noqa: F401  (importers read the mask kinds from here)
from .specmodel import InputSpec

@dataclass
class Inputs:
    """The arguments of one call, in contract order, plus how they were made."""

    exercise: str
    args: dict[str, Any]
    dims: dict[str, int]
    mask_kind: str = "none"
    seed: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def positional(self) -> list[Any]:
        return [self.args.get(name) for name in EXERCISES[self.exercise].args]

    def with_args(self, **changes: Any) -> "Inputs":
        return replace(self, args={**self.args, **changes})

    @property
    def mask(self) -> np.ndarray | None:
        return self.args.get("mask")

    def label(self) -> str:
        """Compact description for messages and repro: shapes, mask kind, seed."""
        parts = [f"{k}={v}" for k, v in self.dims.items()]
        parts.append(f"mask={self.mask_kind}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ", ".join(parts)

    def shapes(self) -> str:
        out = []
        for name, value in self.args.items():
            if isinstance(value, np.ndarray):
                out.append(f"{name}{tuple(value.shape)}")
            elif isinstance(value, dict):
                out.append(f"{name}{{{', '.join(sorted(value))}}}")
            elif isinstance(value, list):
                out.append(f"{name}[{len(value)} x {{{', '.join(sorted(value[0]))}}}]" if value and isinstance(value[0], dict) else f"{name}[{len(value)}]")
            elif value is None:
                out.append(f"{name}=None")
            else:
                out.append(f"{name}={value}")
        return " ".join(out)


# ---------------------------------------------------------------- dtypes


def round_to_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    """Values of `a` rounded to `dtype`, stored as float64 (bfloat16 by round-to-nearest-even)."""
    a = np.asarray(a, dtype=np.float64)
    if dtype == "float64":
        return a.copy()
    if dtype in ("float32", "float16"):
        return a.astype(dtype).astype(np.float64)
    if dtype == "bfloat16":
        bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
        finite = np.isfinite(a)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        out = rounded.view(np.float32).astype(np.float64)
        return np.where(finite, out, a)
    raise ValueError(f"unknown dtype {dtype!r}")


def cast_inputs(inputs: Inputs, dtype: str) -> Inputs:
    """The same inputs with every float array rounded to `dtype`."""

    def cast(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return round_to_dtype(value, dtype)
        if isinstance(value, dict):
            return {k: cast(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cast(v) for v in value]
        return value

    return replace(inputs, args={k: cast(v) for k, v in inputs.args.items()})


# ---------------------------------------------------------------- masks


# ---------------------------------------------------------------- generation


def generate_inputs(exercise: str, spec: InputSpec, dims: dict[str, int] | None = None, seed: int | None = None) -> Inputs:
    """Deterministic inputs from shapes and a seed; `dims`/`seed` override the spec's (for drawn cases)."""
    dims = dict(dims if dims is not None else spec.shapes)
    seed = spec.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    args = EXERCISES[exercise].generate(spec, dims, rng)
    return Inputs(exercise, args, dims, spec.mask, seed)


# ---------------------------------------------------------------- literal inputs


def literal_array(value: Any) -> np.ndarray:
    """Nested lists (whose items may be {eye: n, scale: s} or {fill: v, shape: [...]}) as a float64 array.

    Raises ValueError if the result is not a rectangular array of numbers."""

    def expand(v: Any) -> Any:
        if isinstance(v, dict) and "eye" in v:
            return (np.eye(int(v["eye"])) * float(v.get("scale", 1.0))).tolist()
        if isinstance(v, dict) and "fill" in v:
            return np.full(tuple(v["shape"]), float(v["fill"])).tolist()
        if isinstance(v, (list, tuple)):
            return [expand(x) for x in v]
        return v

    try:
        return np.array(expand(value), dtype=np.float64)
    except (ValueError, TypeError, KeyError):
        raise ValueError("is not a rectangular array of numbers") from None


def literal_inputs(exercise: str, literal: dict[str, Any]) -> Inputs:
    """Inputs from a case's `literal:` block; shapes are checked by `literal_problems` first."""
    args: dict[str, Any] = {}
    for name in EXERCISES[exercise].args:
        value: Any = literal.get(name)
        if name == "n_heads":
            args[name] = int(value)
        elif name == "params":
            args[name] = {k: literal_array(v) for k, v in value.items()}
        elif name == "layers":
            args[name] = [{k: literal_array(v) for k, v in layer.items()} for layer in value]
        elif value is None:
            args[name] = None
        else:
            args[name] = literal_array(value)
    inputs = Inputs(exercise, args, {}, "literal", None)
    inputs.dims = dims_of(inputs)
    return inputs


def dims_of(inputs: Inputs) -> dict[str, int]:
    """Dimension sizes read off the arrays (for literal inputs and relational variants)."""
    return EXERCISES[inputs.exercise].dims_of(inputs.args)


def literal_problems(exercise: str, literal: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Shape and type errors in a literal block, as (path inside `literal`, message)."""
    problems: list[tuple[tuple, str]] = []
    contract = EXERCISES[exercise]
    known = set(contract.args)
    param_shapes = {k.split(".", 1)[1]: v for k, v in contract.arg_shapes.items() if k.startswith(("params.", "layers."))}
    for name in literal:
        if name not in known:
            problems.append(((name,), f"unknown argument '{name}' for {contract.signature}"))
    arrays: dict[str, np.ndarray] = {}
    for name in contract.args:
        if name == "mask":
            continue
        if name not in literal:
            problems.append(((), f"missing argument '{name}' for {contract.signature}"))
            continue
        value = literal[name]
        if name == "n_heads":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(((name,), f"n_heads must be a positive integer, got {value!r}"))
            continue
        if name == "params":
            if not isinstance(value, dict):
                problems.append(((name,), "params must be a mapping of the block's parameter arrays"))
                continue
            for key in param_shapes:
                if key not in value:
                    problems.append(((name,), f"params is missing '{key}'"))
            for key, sub in value.items():
                if key not in param_shapes:
                    problems.append(((name, key), f"unknown block parameter '{key}'"))
                    continue
                try:
                    arrays[f"params.{key}"] = literal_array(sub)
                except ValueError as exc:
                    problems.append(((name, key), f"params.{key} {exc}"))
            continue
        if name == "layers":  # a list of params dicts (transformer_stack)
            if not isinstance(value, list) or not all(isinstance(layer, dict) for layer in value):
                problems.append(((name,), "layers must be a list of mappings, each with the block's parameter arrays"))
                continue
            for i, layer in enumerate(value):
                problems.extend(((name, i), f"layers[{i}] is missing '{key}'") for key in param_shapes if key not in layer)
                for key, sub in layer.items():
                    if key not in param_shapes:
                        problems.append(((name, i, key), f"unknown block parameter '{key}'"))
                        continue
                    try:
                        arrays[f"layers.{i}.{key}"] = literal_array(sub)
                    except ValueError as exc:
                        problems.append(((name, i, key), f"layers[{i}].{key} {exc}"))
            continue
        try:
            arrays[name] = literal_array(value)
        except ValueError as exc:
            problems.append(((name,), f"{name} {exc}"))
    if problems:
        return problems
    # Derive every dimension from the first array that names it; report each disagreement.
    dims: dict[str, int] = {}
    dims.update(contract.literal_dims(literal))
    for shape_name, shape in contract.arg_shapes.items():
        # a list argument's entries are 'layers.<i>.<key>', checked against 'layers.<key>'
        head, _, key = shape_name.partition(".")
        named = [shape_name] if shape_name in arrays else sorted((n for n in arrays if n.startswith(head + ".") and n.split(".")[-1] == key and n.count(".") == 2),
                                                                  key=lambda n: int(n.split(".")[1]))
        for name in named:
            arr = arrays[name]
            path = tuple(int(p) if p.isdigit() else p for p in name.split("."))
            if arr.ndim != len(shape):
                problems.append((path, f"{name} has shape {arr.shape}, but should have {len(shape)} axes {shape}"))
                continue
            for axis, (dim, size) in enumerate(zip(shape, arr.shape)):
                if dim in dims and dims[dim] != size:
                    problems.append((path, f"{name}.shape={arr.shape}: axis {axis} ({dim}) is {size}, but {dim}={dims[dim]} elsewhere"))
                dims.setdefault(dim, size)
    if problems:
        return problems
    problems.extend(contract.dims_problems(dims))
    mask = literal.get("mask")
    if mask is not None:
        try:
            m = literal_array(mask)
        except ValueError as exc:
            return problems + [(("mask",), f"mask {exc}")]
        seq_q, seq_k = contract.seq_lens(dims)
        allowed: list[tuple[int, ...]] = [(seq_q, seq_k)]
        if 4 in contract.mask_ndims:
            allowed.append((dims["batch"], dims["n_heads"], seq_q, seq_k))
        if tuple(m.shape) not in allowed:
            want = " or ".join(str(s) for s in allowed)
            problems.append((("mask",), f"mask.shape={m.shape}, but should be {want}"))
        elif np.any(np.all(np.isneginf(m), axis=-1)):
            problems.append((("mask",), "a mask row blocks every key; such rows are outside the contract"))
    return problems


# ---------------------------------------------------------------- generated shapes: validation


def required_dims(exercise: str) -> tuple[str, ...]:
    return EXERCISES[exercise].dims


def shape_problems(exercise: str, spec: InputSpec, *, fixed: dict[str, int], degenerate_ok: bool) -> list[tuple[tuple, str]]:
    """Missing/unknown dims, bad ranges, masks that do not fit, and shapes that hide bugs."""
    problems: list[tuple[tuple, str]] = []
    need = required_dims(exercise)
    shapes = {**spec.shapes, **fixed}
    for name in spec.shapes:
        if name not in need:
            problems.append((("shapes", name), f"unknown dimension '{name}' for {exercise}; expected {', '.join(need)}"))
    for name in need:
        if name not in shapes:
            problems.append((("shapes",), f"missing dimension '{name}' (needs {', '.join(need)})"))
    for name, value in spec.shapes.items():
        if isinstance(value, (list, tuple)) and value[0] > value[1]:
            problems.append((("shapes", name), f"range {list(value)} is empty: low must be <= high"))
    if problems:
        return problems
    mask_ndim = MASK_NDIM[spec.mask]
    if mask_ndim and mask_ndim not in EXERCISES[exercise].mask_ndims:
        problems.append((("mask",), f"mask '{spec.mask}' is {mask_ndim}-D, but {exercise} takes only a (seq, seq) mask"))
    if spec.poison:
        if not EXERCISES[exercise].poison_ok or spec.mask not in PADDING_MASKS:
            poisonable = join_and([e.name for e in EXERCISES.values() if e.poison_ok])
            problems.append((("poison",), f"poison needs exercise {poisonable} and a padding mask (keys blocked for every query)"))
    if spec.score_scale and spec.scale != 1.0:
        problems.append((("score_scale",), "give either scale or score_scale, not both"))
    lo = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in shapes.items()}
    hi = {k: (v[1] if isinstance(v, (list, tuple)) else v) for k, v in shapes.items()}
    problems.extend(EXERCISES[exercise].range_problems(spec, shapes, lo, hi))
    if spec.mask in PADDING_MASKS and lo.get(EXERCISES[exercise].seq_dims[1], 2) < 2:
        problems.append((("shapes",), "a padding mask needs at least 2 keys"))
    if spec.is_drawn:
        if not problems and not drawable(exercise, spec, fixed):
            problems.append((("shapes",), "no shapes in these ranges avoid hiding bugs (batch and n_heads >= 2, at least 2 tokens, distinct sizes); widen the ranges"))
        return problems
    if problems or degenerate_ok:
        return problems
    hidden = degenerate_reasons(exercise, {k: int(v) for k, v in shapes.items()}, spec.mask, fixed)
    if hidden:
        problems.append(
            (("shapes",), "shapes hide bugs: " + "; ".join(hidden) + ". Use distinct sizes, or set allow_degenerate_shapes: '<why>' on the case")
        )
    return problems


def _fixed(shapes: dict[str, Any], name: str) -> bool:
    return not isinstance(shapes.get(name), (list, tuple))


def degenerate_reasons(exercise: str, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
    """Why these sizes would let a common bug pass (empty list: they do not)."""
    return EXERCISES[exercise].degenerate_reasons(dims, mask, fixed)


# ---------------------------------------------------------------- drawn shapes (hypothesis)


def _draw_dims(exercise: str, spec: InputSpec, fixed: dict[str, int], choose: Callable[[str, list[int]], int]) -> dict[str, int]:
    """Sizes that satisfy the no-hidden-bugs rules by construction (batch and n_heads >= 2, several
    tokens, distinct sizes); `choose(name, choices)` picks one of the allowed values."""
    shapes = {**spec.shapes, **fixed}

    def bounds(name: str, floor: int = 1) -> tuple[int, int]:
        v = shapes[name]
        lo, hi = (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))
        return (max(lo, floor), hi) if hi >= floor and name not in fixed else (lo, hi)

    def pick(name: str, avoid: set[int] = frozenset(), floor: int = 1) -> int:  # type: ignore[assignment]
        lo, hi = bounds(name, floor)
        return choose(name, [v for v in range(lo, hi + 1) if v not in avoid] or list(range(lo, hi + 1)))

    return EXERCISES[exercise].draw_dims(spec, fixed, pick, bounds, choose)


def _acceptable(exercise: str, spec: InputSpec, fixed: dict[str, int], dims: dict[str, int]) -> bool:
    if not EXERCISES[exercise].in_ranges(spec, fixed, dims):
        return False
    return not degenerate_reasons(exercise, dims, spec.mask, fixed)


def shapes_strategy(exercise: str, spec: InputSpec, fixed: dict[str, int]):
    """Hypothesis strategy of (dims, seed): ranges drawn, fixed sizes kept, built (not filtered) to
    hide no bugs, so no example is wasted; sizes shrink towards the low end of their ranges."""
    from hypothesis import strategies as st

    @st.composite
    def draw(data_draw):
        dims = _draw_dims(exercise, spec, fixed, lambda name, choices: data_draw(st.sampled_from(choices), label=name))
        return dims, data_draw(st.integers(0, 2**31 - 1), label="seed")

    return draw().filter(lambda drawn: _acceptable(exercise, spec, fixed, drawn[0]))


def drawable(exercise: str, spec: InputSpec, fixed: dict[str, int]) -> bool:
    """True if the ranges allow a draw that hides no bugs (the smallest one, as hypothesis would shrink to)."""
    return _acceptable(exercise, spec, fixed, _draw_dims(exercise, spec, fixed, lambda name, choices: choices[0]))
