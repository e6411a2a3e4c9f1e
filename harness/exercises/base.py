"""What an exercise is: its contract, inputs, transformations, references and mistakes, in one object.

Every stage (input building, spec validation, properties, grading, diagnosis, the kill matrix,
`spec new`, the starter generator) asks an `Exercise` instead of branching on exercise names, so a
new exercise is one module in this package (see `__init__.py`, which discovers them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..maskkinds import CAUSAL_MASKS, PADDING_MASKS, make_mask  # noqa: F401  (exercise modules read the mask kinds from here)

BACKENDS = ("numpy", "torch")
DTYPES = ("float64", "float32", "float16", "bfloat16")
TORCH_ONLY_DTYPES = ("float16", "bfloat16")


# Where each family of mistakes is explained in the course (shown next to a diagnosed mistake).
COURSE = {
    "formula": "The attention mechanism, section 'The Attention Formula': softmax(Q K^T / sqrt(d_k)) V, softmax over the last axis (dim=-1)",
    "scale_why": "The attention mechanism, exercise: why divide by sqrt(d_k)? (variance of Q.K for unit-variance Q, K)",
    "masking": "The attention mechanism, section 'Causal Masking': the mask is added to the scores before the softmax (0 = keep, -inf = blocked)",
    "masking_002": "Attention, section 'Masking': upper-triangle entries set to -inf before the softmax",
    "mha": "The attention mechanism, section 'Multi-Head Attention': view(batch, seq, n_heads, d_head).transpose(1, 2), then back and W_O",
    "mha_block": "Attention inside the block: heads read slices of the width, concat, then one W_O; the edit is added by the residual",
    "block": "contracts (docs/contracts.md) and 'Multi-headed self-attention blocks': pre-norm block, LayerNorm -> attention -> add, LayerNorm -> MLP -> add",
    "ln": "exercises.md: LayerNorm with the biased variance and eps = 1e-5 inside the square root (as torch.nn.LayerNorm)",
    "gelu": "exercises.md: GELU is the exact erf form (torch.nn.functional.gelu, approximate='none')",
    "contract": "exercises.md: outputs keep the inputs' array type and dtype and never modify the inputs",
    "autograd": "The attention mechanism uses torch operations end to end, so autograd can compute gradients",
}

ShapeProblem = tuple[tuple, str]
# A designed diagnosis probe: (name, purpose, args, dims, mask kind); see harness/probes.py.
ProbeDesign = tuple[str, str, dict[str, Any], dict[str, int], str]
PROBE_MAX_SEQ = 16  # probes reuse a recorded call's sizes; longer sequences are cut or skipped


@dataclass(frozen=True)
class Contract:
    """One function a learner writes: its name, positional arguments, shapes and output."""

    name: str
    args: tuple[str, ...]
    signature: str
    dims: tuple[str, ...]
    arg_shapes: dict[str, tuple[str, ...]]
    output_shape: tuple[str, ...]
    mask_ndims: tuple[int, ...]

    def shape_of(self, arg: str, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] if isinstance(d, str) else d for d in self.arg_shapes[arg])

    def output_shape_for(self, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] for d in self.output_shape)


@dataclass(frozen=True)
class Misconception:
    """A realistic learner mistake with an implementation, so the spec can be shown to catch it."""

    id: str
    exercise: str
    title: str
    feedback: str
    reference: str
    knobs: dict[str, Any] | None = None  # numeric: a variants knob setting
    function: str | None = None  # the contract function it replaces (default: the exercise's)
    wrapper: Callable[..., Any] | None = None  # structural: implementation built from the reference
    # structural: (failed property, failure kind[, the failure's `got`]) read from the structured failure
    signature: tuple[str, str] | tuple[str, str, str] | None = None
    rule: str | None = None  # diagnosed by a named rule on the failing inputs (see diagnosis.RULES)
    backends: tuple[str, ...] = ("numpy", "torch")
    listed: bool = True  # False for entries derived from a lower exercise (diagnosis only)
    grid: tuple[dict[str, Any], ...] = ()  # numeric families with a parameter: the knob settings tried when fitting
    kind: str = "mistake"  # mistake | hint (vocabulary only: advice a property gives, never diagnosed by itself)

    @property
    def family(self) -> str | None:
        """The knob this mistake sets ('scale', 'attention.mask_mode', ...): one value per family in a combination."""
        if self.knobs is None or self.function is not None:
            return None
        path, knobs = [], self.knobs
        while len(knobs) == 1 and isinstance(next(iter(knobs.values())), dict):
            key = next(iter(knobs))
            path.append(key)
            knobs = knobs[key]
        return ".".join(path + [next(iter(knobs))])

    def settings(self) -> tuple[dict[str, Any], ...]:
        """Every knob setting to fit (one, or the parameter grid)."""
        return self.grid or ((self.knobs or {}),)

    @property
    def by_output(self) -> bool:
        """Diagnosed by reproducing the learner's outputs (rather than by a failure signature or rule)."""
        return self.signature is None and self.rule is None and self.kind == "mistake" and self.knobs is not None and self.function is None

    @property
    def target(self) -> str:
        return self.function or self.exercise

    def implementation(self) -> Callable[..., Any]:
        """A callable for `target` with this mistake (works on NumPy arrays and torch tensors)."""
        from ..reference import variants

        if self.function is not None:
            knobs, name = dict(self.knobs or {}), self.function
            return lambda *args: getattr(variants, name)(*args, **knobs)
        if self.wrapper is not None:
            return self.wrapper
        from . import EXERCISES

        return EXERCISES[self.exercise].variant_fn(self.knobs or {})


class Exercise:
    """One graded exercise. Subclasses set the contract attributes and override the hooks that differ.

    Class attributes: `name`, `number` (course order), `prefix` (case and mistake ids), `title`,
    the contract (`args`, `signature`, `dims`, `arg_shapes`, `output_shape`, `mask_ndims`),
    `seq_dims` (the query and key sequence axes), `helpers` (contracts graded with it), the dims
    used by the backend probe (`probe_dims`), `attnspec spec new` (`skeleton_dims`) and its
    literal example (`example_dims`), and `sublayers`: lower exercises it calls, whose numeric
    mistakes are also recognised through it (named `<prefix>.<lifted_name of lower>.<key>`).

    `array_inputs` False: the arguments are plain Python integers (causal_mask(seq_len),
    attention_param_count(...)), so nothing tells the function which backend to answer in. Such an
    exercise is called once per case, on the backend its result is in (a NumPy array: numpy, a
    tensor: torch, anything else: the submission's own), and has none of the array families
    (batch, dtype, in place, autograd). `array_output` False: the result is a plain number too, and
    its cases are reported without a backend or dtype.
    """

    name: str = ""
    number: int = 0
    prefix: str = ""
    title: str = ""
    args: tuple[str, ...] = ()
    signature: str = ""
    dims: tuple[str, ...] = ()
    arg_shapes: dict[str, tuple[str, ...]] = {}
    output_shape: tuple[str, ...] = ()
    mask_ndims: tuple[int, ...] = (2,)
    seq_dims: tuple[str, str] = ("seq", "seq")
    helpers: tuple[Contract, ...] = ()
    probe_dims: dict[str, int] = {}
    skeleton_dims: dict[str, int] = {}
    example_dims: dict[str, int] = {}
    permute_modes: tuple[str, ...] = ("tokens",)
    poison_ok: bool = False  # `poison: true` inputs (values at fully blocked keys set to 1000)
    mask_moves_with_tokens: bool = False  # permuting tokens cannot move the mask: a causal mask breaks equivariance
    lifted_name: str | None = None
    lifted_title: str = ""
    not_lifted: frozenset[str] = frozenset()
    sublayers: tuple[str, ...] = ()
    variant_name: str | None = None  # its function in reference.variants (None: the exercise's name)
    array_inputs: bool = True  # False: integer arguments only (see the class docstring)
    array_output: bool = True  # False: the result is a plain number, not an array

    # ------------------------------------------------------------ contract

    @property
    def contract(self) -> Contract:
        return Contract(self.name, self.args, self.signature, self.dims, self.arg_shapes, self.output_shape, self.mask_ndims)

    def shape_of(self, arg: str, dims: dict[str, int]) -> tuple[int, ...]:
        return self.contract.shape_of(arg, dims)

    def output_shape_for(self, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] for d in self.output_shape)

    def d_head(self, dims: dict[str, int]) -> int:
        """The width of one head: what the scores are scaled by."""
        return dims["d_model"] // dims["n_heads"]

    def seq_lens(self, dims: dict[str, int]) -> tuple[int, int]:
        q, k = self.seq_dims
        return dims[q], dims[k]

    @property
    def separate_key_axis(self) -> bool:
        """Queries and keys have sizes of their own (seq_q, seq_k), rather than one token axis."""
        return self.seq_dims[0] != self.seq_dims[1]

    def __repr__(self) -> str:
        return f"<Exercise {self.name}>"

    # ------------------------------------------------------------ inputs

    def generate(self, spec: Any, dims: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
        """The arguments (float64, contract order) for generated inputs of these sizes."""
        raise NotImplementedError(f"{self.name} has no input generator")

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        """Dimension sizes read off the arrays (literal inputs, sliced inputs)."""
        raise NotImplementedError(f"{self.name} cannot read its dims")

    def literal_dims(self, literal: dict[str, Any]) -> dict[str, int]:
        """Sizes a literal block states directly (not read off an array), e.g. n_heads."""
        return {}

    def dims_problems(self, dims: dict[str, int]) -> list[ShapeProblem]:
        """Problems with fixed sizes that every input must satisfy (e.g. n_heads divides d_model)."""
        return []

    def range_problems(self, spec: Any, shapes: dict[str, Any], lo: dict[str, int], hi: dict[str, int]) -> list[ShapeProblem]:
        """Problems with the (possibly ranged) shapes of a generated case."""
        return []

    def degenerate_reasons(self, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
        """Why these sizes would let a common bug pass (empty list: they do not)."""
        raise NotImplementedError

    def draw_dims(self, spec: Any, fixed: dict[str, int], pick: Callable[..., int], bounds: Callable[..., tuple[int, int]], choose: Callable[[str, list[int]], int]) -> dict[str, int]:
        """Sizes that satisfy the no-hidden-bugs rules by construction (see inputs._draw_dims)."""
        raise NotImplementedError

    def in_ranges(self, spec: Any, fixed: dict[str, int], dims: dict[str, int]) -> bool:
        """Drawn sizes that are built rather than picked still lie within the spec's ranges."""
        return True

    # ------------------------------------------------------------ transformations for properties

    def slice(self, args: dict[str, Any], *, batch: int | None = None, head: int | None = None) -> dict[str, Any]:
        """The arguments for one batch element (or one head, where heads are an input axis)."""
        a = dict(args)
        if batch is not None:
            a["x"] = a["x"][batch : batch + 1]
        return a

    def perturb_from(self, args: dict[str, Any], k: int, rng: np.random.Generator) -> tuple[dict[str, Any], str]:
        """The arguments with every token from position k on replaced (causal-mask properties)."""
        x = args["x"].copy()
        x[:, k:] = 3.0 * rng.standard_normal(x[:, k:].shape)
        seq = x.shape[1]
        return {**args, "x": x}, f"x at positions {k}..{seq - 1}"

    def permute(self, args: dict[str, Any], mode: str, perm_of: Callable[[int], np.ndarray], expect: str, out: np.ndarray) -> tuple[dict[str, Any], np.ndarray, np.ndarray, str]:
        """(permuted arguments, permutation, the output they must give, what the property says)."""
        perm = perm_of(args["x"].shape[1])
        mask = args["mask"] if expect == "breaks" else permute_mask(args["mask"], perm, perm)
        return {**args, "x": args["x"][:, perm], "mask": mask}, perm, out[:, perm], "permuting the tokens must permute the output the same way"

    def change_blocked(self, args: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], tuple, str]:
        """The arguments with what a padding mask blocks for every query changed, the output
        positions that must not move, and a description."""
        mask = args["mask"]
        dead_cols = np.all(np.isneginf(mask), axis=0)  # (T,)
        x = args["x"].copy()
        x[:, dead_cols] = 3.0 * rng.standard_normal(x[:, dead_cols].shape)
        return {**args, "x": x}, (slice(None), ~dead_cols), f"x at the blocked positions {np.flatnonzero(dead_cols).tolist()}"

    # ------------------------------------------------------------ diagnosis probes

    def probe_designs(self, seed: Any) -> list[ProbeDesign]:
        """Designed inputs that make visible what case outputs can leave open (harness/probes.py),
        built from `seed`, the inputs of a call the learner's code already handled. None by default."""
        return []

    # ------------------------------------------------------------ references and mistakes

    def reference(self, backend: str = "numpy") -> Callable[..., Any]:
        """The reference implementation on a backend (NumPy float64 for expected values)."""
        return getattr(_ref_module(backend), self.name)

    def helper_reference(self, helper: str, backend: str = "numpy") -> Callable[..., Any]:
        return getattr(_ref_module(backend), helper)

    def variant(self, *args: Any, **knobs: Any) -> Any:
        """The reference with knobs (reference.variants); every non-default knob is a mistake.
        Remembered on read-only inputs (harness/refcache.py): the diagnosis of every submission
        graded on the same inputs asks for the same mistakes."""
        from .. import refcache
        from ..reference import variants

        function = getattr(variants, self.variant_function)
        plain = refcache.frozen_key(knobs)
        if plain is None:
            return function(*args, **knobs)
        return refcache.cached(("variant", self.name, plain), list(args), lambda: function(*args, **knobs))

    @property
    def variant_function(self) -> str:
        """The name of its knob-driven function in reference.variants."""
        return self.variant_name or self.name

    def variant_fn(self, knobs: dict[str, Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            return self.variant(*args, **knobs)

        return run

    def attention_knobs(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Knobs for the per-head attention, as knobs of this exercise's variant."""
        return knobs

    def lift(self, lower: "Exercise", knobs: dict[str, Any]) -> dict[str, Any]:
        """Knobs of the lower exercise `lower` (one of `sublayers`), as knobs of this one."""
        raise NotImplementedError(f"{self.name} does not call {lower.name}")

    def vjp(self, args: list[Any], cotangent: np.ndarray) -> dict[str, np.ndarray]:
        """Reference gradients of sum(f(args) * cotangent) for every array input (float64)."""
        raise NotImplementedError(f"{self.name} has no reference gradients")

    def mistakes(self) -> list[Misconception]:
        """This exercise's own catalogue entries (structural and lifted ones are added for every exercise)."""
        return []

    def late_mistakes(self) -> list[Misconception]:
        """Entries listed after the structural families (kept apart so catalogue order is stable)."""
        return []

    def numeric(self, key: str, title: str, feedback: str, reference: str, **knobs: Any) -> Misconception:
        """A catalogue entry reproduced by one knob setting of this exercise's variant."""
        return Misconception(f"{self.prefix}.{key}", self.name, title, feedback, COURSE[reference], knobs=knobs)


def _ref_module(backend: str) -> Any:
    if backend == "torch":
        from ..reference import torch_ref

        return torch_ref
    from ..reference import numpy_ref

    return numpy_ref


def permute_mask(mask: np.ndarray | None, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    if rows is not None:
        mask = np.take(mask, rows, axis=-2)
    if cols is not None:
        mask = np.take(mask, cols, axis=-1)
    return mask


def normal(rng: np.random.Generator, shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
    return rng.standard_normal(shape) * std


def score_factor(q: np.ndarray, k: np.ndarray, d_head: int, target: float) -> float:
    """Factor for q that makes the largest scaled score |q.k|/sqrt(d_head) equal `target`."""
    biggest = np.abs(q @ np.swapaxes(k, -1, -2)).max() / math.sqrt(d_head)
    return target / biggest if biggest > 0 else 1.0


def distinct_size_reasons(sizes: dict[str, int]) -> list[str]:
    """Equal sizes hide transposes and scale mix-ups: name each clash."""
    reasons = []
    seen: dict[int, str] = {}
    for name, size in sizes.items():
        if size in seen:
            reasons.append(f"{seen[size]} == {name} == {size} hides transposes and scale mix-ups")
        seen.setdefault(size, name)
    return reasons


def batch_head_reasons(dims: dict[str, int], fixed: dict[str, int]) -> list[str]:
    """batch=1 and n_heads=1 hide whole families of bugs, unless the property fixes them."""
    reasons = []
    if dims["batch"] < 2 and "batch" not in fixed:
        reasons.append("batch=1 hides code that only handles one batch element")
    if dims["n_heads"] < 2 and "n_heads" not in fixed:
        reasons.append("n_heads=1 hides head-split bugs")
    return reasons


def join_and(names: list[str] | tuple[str, ...]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class StreamExercise(Exercise):
    """An exercise on the residual stream: x of shape (batch, seq, d_model), n_heads heads of width
    d_model // n_heads, a (seq, seq) mask. Subclasses say how the weights are passed."""

    dims: tuple[str, ...] = ("batch", "seq", "d_model", "n_heads")
    output_shape = ("batch", "seq", "d_model")
    mask_ndims = (2,)
    seq_dims = ("seq", "seq")
    permute_modes = ("tokens",)
    mask_moves_with_tokens = True

    def generate(self, spec: Any, dims: dict[str, int], rng: np.random.Generator) -> dict[str, Any]:
        from ..reference import numpy_ref

        B, T, Dm, H = (dims[k] for k in ("batch", "seq", "d_model", "n_heads"))
        Dh = Dm // H
        x = normal(rng, (B, T, Dm), spec.scale) + spec.offset
        w = {name: normal(rng, (Dm, Dm), 1 / math.sqrt(Dm)) for name in ("W_Q", "W_K", "W_V", "W_O")}
        params = self.more_params(rng, dims, w)
        if spec.score_scale:
            normed = self.attention_input(x, params)
            q = numpy_ref.split_heads(normed @ params["W_Q"], H)
            k = numpy_ref.split_heads(normed @ params["W_K"], H)
            params["W_Q"] = params["W_Q"] * score_factor(q, k, Dh, spec.score_scale)
        mask = make_mask(spec.mask, rng, B, H, T, T)
        return self.pack(x, params, H, mask)

    def more_params(self, rng: np.random.Generator, dims: dict[str, int], w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All weights, drawn after x and the four projections (in this order, for stable seeds)."""
        return w

    def attention_input(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """What the attention sublayer's projections are applied to (for `score_scale`)."""
        return x

    def pack(self, x: np.ndarray, params: dict[str, np.ndarray], n_heads: int, mask: np.ndarray | None) -> dict[str, Any]:
        return {"x": x, **params, "n_heads": n_heads, "mask": mask}

    def dims_of(self, args: dict[str, Any]) -> dict[str, int]:
        B, T, Dm = args["x"].shape
        return {"batch": B, "seq": T, "d_model": Dm, "n_heads": int(args["n_heads"])}

    def literal_dims(self, literal: dict[str, Any]) -> dict[str, int]:
        return {"n_heads": int(literal["n_heads"])} if "n_heads" in literal else {}

    def dims_problems(self, dims: dict[str, int]) -> list[ShapeProblem]:
        if dims["d_model"] % dims["n_heads"]:
            return [(("n_heads",), f"n_heads={dims['n_heads']} does not divide d_model={dims['d_model']}")]
        return []

    def range_problems(self, spec: Any, shapes: dict[str, Any], lo: dict[str, int], hi: dict[str, int]) -> list[ShapeProblem]:
        if all(not isinstance(shapes.get(k), (list, tuple)) for k in ("d_model", "n_heads")) and shapes["d_model"] % shapes["n_heads"]:
            return [(("shapes", "n_heads"), f"n_heads={shapes['n_heads']} does not divide d_model={shapes['d_model']}")]
        if not any(hi["d_model"] >= n * ((lo["d_model"] + n - 1) // n) for n in range(lo["n_heads"], hi["n_heads"] + 1)):
            return [(("shapes",), "no n_heads in range divides any d_model in range")]
        return []

    def degenerate_reasons(self, dims: dict[str, int], mask: str, fixed: dict[str, int]) -> list[str]:
        reasons = batch_head_reasons(dims, fixed)
        if dims["seq"] < 2:
            reasons.append("a single token hides softmax-axis and mask bugs")
        sizes = {"seq": dims["seq"], "n_heads": dims["n_heads"], "d_head": self.d_head(dims)}
        if "n_heads" in fixed:
            sizes.pop("n_heads")
        if dims["d_model"] == dims["seq"]:
            reasons.append(f"d_model == seq == {dims['seq']} hides a transposed x")
        return reasons + self.more_reasons(dims) + distinct_size_reasons(sizes)

    def more_reasons(self, dims: dict[str, int]) -> list[str]:
        """Reasons about the sizes a subclass adds."""
        return []

    def draw_dims(self, spec: Any, fixed: dict[str, int], pick: Callable[..., int], bounds: Callable[..., tuple[int, int]], choose: Callable[[str, list[int]], int]) -> dict[str, int]:
        dims: dict[str, int] = {}
        dims["batch"] = pick("batch", floor=2)
        dims["seq"] = pick("seq", floor=2)
        dims["n_heads"] = pick("n_heads", {dims["seq"]}, floor=2)
        lo, hi = bounds("d_model")
        n = dims["n_heads"]
        heads = [d for d in range(max(1, -(-lo // n)), max(1, hi // n) + 1) if d not in (dims["seq"], n) and n * d != dims["seq"]]
        dims["d_model"] = n * choose("d_head", heads or [max(1, -(-lo // n))])
        self.draw_more(dims, pick)
        return dims

    def draw_more(self, dims: dict[str, int], pick: Callable[..., int]) -> None:
        """Draw the sizes a subclass adds."""

    def in_ranges(self, spec: Any, fixed: dict[str, int], dims: dict[str, int]) -> bool:
        v = {**spec.shapes, **fixed}["d_model"]
        lo, hi = (v[0], v[1]) if isinstance(v, (list, tuple)) else (v, v)
        return lo <= dims["d_model"] <= hi
