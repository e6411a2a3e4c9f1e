"""Build a case's inputs: generated from shapes and a seed, drawn by hypothesis, or literal.

Inputs live in the grader as float64 arrays whose values are already rounded to the case dtype,
so the reference (computed in float64) sees exactly the numbers the learner's code sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from .exercises import BLOCK_PARAM_SHAPES, EXERCISES, d_head_of
from .reference import numpy_ref
from .specmodel import InputSpec

MASK_NDIM = {
    "none": 0,
    "causal": 2,
    "bias": 2,
    "block": 2,
    "padding": 2,
    "mixed": 2,
    "causal_4d": 4,
    "bias_4d": 4,
    "block_4d": 4,
    "padding_4d": 4,
    "mixed_4d": 4,
}
CAUSAL_MASKS = ("causal", "causal_4d")
PADDING_MASKS = ("padding", "padding_4d")
BLOCKING_MASKS = ("causal", "block", "padding", "mixed", "causal_4d", "block_4d", "padding_4d", "mixed_4d")
BIAS_MASKS = ("bias", "mixed", "causal_4d", "bias_4d", "mixed_4d")
POISON = 1000.0


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
        return value

    return replace(inputs, args={k: cast(v) for k, v in inputs.args.items()})


# ---------------------------------------------------------------- masks


def make_mask(kind: str, rng: np.random.Generator, batch: int, heads: int, seq_q: int, seq_k: int) -> np.ndarray | None:
    """An additive float mask of the given kind (0 = keep, -inf = blocked, finite = bias).

    Every row keeps at least one key: a fully blocked row is outside the contract.
    """
    if kind == "none":
        return None
    four_d = kind.endswith("_4d")
    base = kind[:-3] if four_d else kind
    shape = (batch, heads, seq_q, seq_k) if four_d else (seq_q, seq_k)
    mask = np.zeros(shape)
    if base == "causal":
        mask = mask + np.triu(np.full((seq_q, seq_k), -np.inf), k=1)
    elif base == "padding":
        if four_d:
            for b in range(batch):
                for h in range(heads):
                    n_pad = 1 + (b * heads + h) % max(1, seq_k - 1)
                    mask[b, h, :, seq_k - n_pad :] = -np.inf
        else:
            mask[:, seq_k - max(1, seq_k // 3) :] = -np.inf
    elif base in ("block", "mixed"):
        blocked = rng.random(shape) < 0.4
        keep = rng.integers(0, seq_k, size=shape[:-1])
        np.put_along_axis(blocked, keep[..., None], False, axis=-1)
        mask[blocked] = -np.inf
    if base in ("bias", "mixed") or kind == "causal_4d":
        bias = rng.normal(0.0, 2.0, size=shape)
        mask = np.where(np.isneginf(mask), mask, bias)
    return mask


# ---------------------------------------------------------------- generation


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
    return rng.standard_normal(shape) * std


def _score_factor(q: np.ndarray, k: np.ndarray, d_head: int, target: float) -> float:
    """Factor for q that makes the largest scaled score |q.k|/sqrt(d_head) equal `target`."""
    biggest = np.abs(q @ np.swapaxes(k, -1, -2)).max() / math.sqrt(d_head)
    return target / biggest if biggest > 0 else 1.0


def generate_inputs(exercise: str, spec: InputSpec, dims: dict[str, int] | None = None, seed: int | None = None) -> Inputs:
    """Deterministic inputs from shapes and a seed; `dims`/`seed` override the spec's (for drawn cases)."""
    dims = dict(dims if dims is not None else spec.shapes)
    seed = spec.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    if exercise == "manual_attention":
        B, H, Tq, Tk, D, Dv = (dims[k] for k in ("batch", "n_heads", "seq_q", "seq_k", "d_head", "d_v"))
        Q = _normal(rng, (B, H, Tq, D), spec.scale) + spec.offset
        K = _normal(rng, (B, H, Tk, D), spec.scale) + spec.offset
        V = _normal(rng, (B, H, Tk, Dv))
        if spec.score_scale:
            Q = Q * _score_factor(Q, K, D, spec.score_scale)
        mask = make_mask(spec.mask, rng, B, H, Tq, Tk)
        if spec.poison and mask is not None:
            full = np.broadcast_to(mask, (B, H, Tq, Tk))
            dead = np.all(np.isneginf(full), axis=-2)  # (B, H, Tk): keys no query may see
            V = np.where(dead[..., None], POISON, V)
        args = {"Q": Q, "K": K, "V": V, "mask": mask}
    else:
        B, T, Dm, H = (dims[k] for k in ("batch", "seq", "d_model", "n_heads"))
        Dh = Dm // H
        x = _normal(rng, (B, T, Dm), spec.scale) + spec.offset
        w = {name: _normal(rng, (Dm, Dm), 1 / math.sqrt(Dm)) for name in ("W_Q", "W_K", "W_V", "W_O")}
        if exercise == "transformer_block":
            F = dims["d_ff"]
            params = {
                "ln1_g": 1.0 + _normal(rng, (Dm,), 0.2),
                "ln1_b": _normal(rng, (Dm,), 0.1),
                **w,
                "ln2_g": 1.0 + _normal(rng, (Dm,), 0.2),
                "ln2_b": _normal(rng, (Dm,), 0.1),
                "W_in": _normal(rng, (Dm, F), 1 / math.sqrt(Dm)),
                "b_in": _normal(rng, (F,), 0.1),
                "W_out": _normal(rng, (F, Dm), 1 / math.sqrt(F)),
                "b_out": _normal(rng, (Dm,), 0.1),
            }
            normed = numpy_ref.layer_norm(x, params["ln1_g"], params["ln1_b"])
        else:
            params = w
            normed = x
        if spec.score_scale:
            q = numpy_ref.split_heads(normed @ params["W_Q"], H)
            k = numpy_ref.split_heads(normed @ params["W_K"], H)
            params["W_Q"] = params["W_Q"] * _score_factor(q, k, Dh, spec.score_scale)
        mask = make_mask(spec.mask, rng, B, H, T, T)
        if exercise == "transformer_block":
            args = {"x": x, "params": params, "n_heads": H, "mask": mask}
        else:
            args = {"x": x, **params, "n_heads": H, "mask": mask}
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
        value = literal.get(name)
        if name == "n_heads":
            args[name] = int(value)
        elif name == "params":
            args[name] = {k: literal_array(v) for k, v in value.items()}
        elif value is None:
            args[name] = None
        else:
            args[name] = literal_array(value)
    inputs = Inputs(exercise, args, {}, "literal", None)
    inputs.dims = dims_of(inputs)
    return inputs


def dims_of(inputs: Inputs) -> dict[str, int]:
    """Dimension sizes read off the arrays (for literal inputs and relational variants)."""
    a = inputs.args
    if inputs.exercise == "manual_attention":
        B, H, Tq, D = a["Q"].shape
        return {"batch": B, "n_heads": H, "seq_q": Tq, "seq_k": a["K"].shape[2], "d_head": D, "d_v": a["V"].shape[3]}
    B, T, Dm = a["x"].shape
    dims = {"batch": B, "seq": T, "d_model": Dm, "n_heads": int(a["n_heads"])}
    if inputs.exercise == "transformer_block":
        dims["d_ff"] = a["params"]["W_in"].shape[1]
    return dims


def literal_problems(exercise: str, literal: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Shape and type errors in a literal block, as (path inside `literal`, message)."""
    problems: list[tuple[tuple, str]] = []
    contract = EXERCISES[exercise]
    known = set(contract.args)
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
            for key in BLOCK_PARAM_SHAPES:
                if key not in value:
                    problems.append(((name,), f"params is missing '{key}'"))
            for key, sub in value.items():
                if key not in BLOCK_PARAM_SHAPES:
                    problems.append(((name, key), f"unknown block parameter '{key}'"))
                    continue
                try:
                    arrays[f"params.{key}"] = literal_array(sub)
                except ValueError as exc:
                    problems.append(((name, key), f"params.{key} {exc}"))
            continue
        try:
            arrays[name] = literal_array(value)
        except ValueError as exc:
            problems.append(((name,), f"{name} {exc}"))
    if problems:
        return problems
    # Derive every dimension from the first array that names it; report each disagreement.
    dims: dict[str, int] = {}
    if "n_heads" in literal and exercise != "manual_attention":
        dims["n_heads"] = int(literal["n_heads"])
    for name, shape in contract.arg_shapes.items():
        arr = arrays.get(name)
        if arr is None:
            continue
        path = tuple(name.split("."))
        if arr.ndim != len(shape):
            problems.append((path, f"{name} has shape {arr.shape}, but should have {len(shape)} axes {shape}"))
            continue
        for axis, (dim, size) in enumerate(zip(shape, arr.shape)):
            if dim in dims and dims[dim] != size:
                problems.append((path, f"{name}.shape={arr.shape}: axis {axis} ({dim}) is {size}, but {dim}={dims[dim]} elsewhere"))
            dims.setdefault(dim, size)
    if problems:
        return problems
    if exercise != "manual_attention" and dims["d_model"] % dims["n_heads"]:
        problems.append((("n_heads",), f"n_heads={dims['n_heads']} does not divide d_model={dims['d_model']}"))
    mask = literal.get("mask")
    if mask is not None:
        try:
            m = literal_array(mask)
        except ValueError as exc:
            return problems + [(("mask",), f"mask {exc}")]
        seq_q, seq_k = (dims["seq_q"], dims["seq_k"]) if exercise == "manual_attention" else (dims["seq"], dims["seq"])
        allowed = [(seq_q, seq_k)]
        if exercise == "manual_attention":
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
        if exercise != "manual_attention" or spec.mask not in PADDING_MASKS:
            problems.append((("poison",), "poison needs exercise manual_attention and a padding mask (keys blocked for every query)"))
    if spec.score_scale and spec.scale != 1.0:
        problems.append((("score_scale",), "give either scale or score_scale, not both"))
    lo = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in shapes.items()}
    hi = {k: (v[1] if isinstance(v, (list, tuple)) else v) for k, v in shapes.items()}
    if exercise == "manual_attention":
        if spec.mask in CAUSAL_MASKS and _fixed(shapes, "seq_q") and _fixed(shapes, "seq_k") and shapes["seq_q"] != shapes["seq_k"]:
            problems.append((("shapes",), f"a causal mask needs seq_q == seq_k, got seq_q={shapes['seq_q']}, seq_k={shapes['seq_k']}"))
    else:
        if all(_fixed(shapes, k) for k in ("d_model", "n_heads")) and shapes["d_model"] % shapes["n_heads"]:
            problems.append((("shapes", "n_heads"), f"n_heads={shapes['n_heads']} does not divide d_model={shapes['d_model']}"))
        elif not any(hi["d_model"] >= n * ((lo["d_model"] + n - 1) // n) for n in range(lo["n_heads"], hi["n_heads"] + 1)):
            problems.append((("shapes",), "no n_heads in range divides any d_model in range"))
    if spec.mask in PADDING_MASKS and lo.get("seq_k", lo.get("seq", 2)) < 2:
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
    reasons = []
    if dims["batch"] < 2 and "batch" not in fixed:
        reasons.append("batch=1 hides code that only handles one batch element")
    if dims["n_heads"] < 2 and "n_heads" not in fixed:
        reasons.append("n_heads=1 hides head-split bugs")
    if exercise == "manual_attention":
        if min(dims["seq_q"], dims["seq_k"]) < 2:
            reasons.append("a single token hides softmax-axis bugs")
        sizes = {"seq_q": dims["seq_q"], "seq_k": dims["seq_k"], "d_head": dims["d_head"], "d_v": dims["d_v"]}
        if mask in CAUSAL_MASKS:
            sizes.pop("seq_k")
    else:
        if dims["seq"] < 2:
            reasons.append("a single token hides softmax-axis and mask bugs")
        sizes = {"seq": dims["seq"], "n_heads": dims["n_heads"], "d_head": d_head_of(exercise, dims)}
        if "n_heads" in fixed:
            sizes.pop("n_heads")
        if dims["d_model"] == dims["seq"]:
            reasons.append(f"d_model == seq == {dims['seq']} hides a transposed x")
        if exercise == "transformer_block" and dims["d_ff"] in (dims["d_model"], dims["seq"]):
            reasons.append(f"d_ff={dims['d_ff']} equals another size and hides a transposed W_in/W_out")
    seen: dict[int, str] = {}
    for name, size in sizes.items():
        if size in seen:
            reasons.append(f"{seen[size]} == {name} == {size} hides transposes and scale mix-ups")
        seen.setdefault(size, name)
    return reasons


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

    dims: dict[str, int] = {}
    if exercise == "manual_attention":
        dims["batch"] = pick("batch", floor=2)
        dims["n_heads"] = pick("n_heads", floor=2)
        dims["seq_q"] = pick("seq_q", floor=2)
        dims["seq_k"] = dims["seq_q"] if spec.mask in CAUSAL_MASKS else pick("seq_k", {dims["seq_q"]}, floor=2)
        dims["d_head"] = pick("d_head", {dims["seq_q"], dims["seq_k"]})
        dims["d_v"] = pick("d_v", {dims["seq_q"], dims["seq_k"], dims["d_head"]})
        return dims
    dims["batch"] = pick("batch", floor=2)
    dims["seq"] = pick("seq", floor=2)
    dims["n_heads"] = pick("n_heads", {dims["seq"]}, floor=2)
    lo, hi = bounds("d_model")
    n = dims["n_heads"]
    heads = [d for d in range(max(1, -(-lo // n)), max(1, hi // n) + 1) if d not in (dims["seq"], n) and n * d != dims["seq"]]
    dims["d_model"] = n * choose("d_head", heads or [max(1, -(-lo // n))])
    if exercise == "transformer_block":
        dims["d_ff"] = pick("d_ff", {dims["d_model"], dims["seq"]})
    return dims


def _acceptable(exercise: str, spec: InputSpec, fixed: dict[str, int], dims: dict[str, int]) -> bool:
    if exercise != "manual_attention":
        v = {**spec.shapes, **fixed}["d_model"]
        lo, hi = (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, v)
        if not lo <= dims["d_model"] <= hi:
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
