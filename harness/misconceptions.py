"""The catalogue of realistic learner mistakes, each runnable on NumPy and PyTorch.

A misconception is either *numeric* (an implementation whose outputs we can compare with the
learner's on the same inputs: a knob setting of `reference.variants`) or *structural* (wrong
dtype, in-place edits, autograd broken: recognised by which property failed). Every one has an
implementation, so `attnspec spec check` can prove the spec catches it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .exercises import COURSE, EXERCISES, Exercise, Misconception
from .reference.variants import is_torch

__all__ = ["COURSE", "CATALOGUE", "BY_ID", "STRUCTURAL_PROPERTIES", "Misconception", "for_exercise", "lifted_id", "namespace"]

STRUCTURAL_PROPERTIES = ("output_dtype", "output_array_type", "inputs_unchanged", "gradients_match")


def _variant(exercise: str, knobs: dict[str, Any]) -> Callable[..., Any]:
    return EXERCISES[exercise].variant_fn(knobs)


# ---------------------------------------------------------------- structural implementations


def _reference(exercise: str) -> Callable[..., Any]:
    return _variant(exercise, {})


def _wrong_dtype(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        return out.double() if is_torch(out) else out.astype(np.float64)

    return run


def _wrong_array_type(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        return out.detach().cpu().numpy() if is_torch(out) else out.tolist()

    return run


def _modifies_inputs(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        first = args[0]
        if is_torch(first):
            first.mul_(2.0)
        else:
            first *= 2.0
        return out

    return run


def _numpy_roundtrip(exercise: str) -> Callable[..., Any]:
    """PyTorch code that converts to NumPy and back: right values, no gradient."""
    def to_np(a: Any) -> Any:
        if isinstance(a, dict):
            return {k: to_np(v) for k, v in a.items()}
        if isinstance(a, list):
            return [to_np(v) for v in a]
        return a.detach().cpu().numpy() if is_torch(a) else a

    def run(*args: Any) -> Any:
        import torch

        out = EXERCISES[exercise].reference("numpy")(*[to_np(a) for a in args])
        return torch.tensor(out, dtype=args[0].dtype)

    return run


# ---------------------------------------------------------------- the catalogue


def _structural(exercise: str) -> list[Misconception]:
    """The families every exercise on arrays has: batch, precision, contract (dtype, type, in place), autograd."""
    if not EXERCISES[exercise].array_inputs:
        return []  # integer arguments: no batch, no input dtype, nothing to modify, no graph
    p = EXERCISES[exercise].prefix
    return [
        Misconception(f"{p}.batch_one_only", exercise, "only batch element 0 is computed (copied to every batch position)",
                      "Batch element 0 is used for everything (e.g. Q[0] or x[0]) and repeated; every batch element must be computed from its own inputs.",
                      COURSE["contract"], knobs={"batch": "first_broadcast"}),
        Misconception(f"{p}.batch_first_only", exercise, "only batch element 0 is computed (returned as a batch of 1)",
                      "The result has batch size 1: only element 0 is computed (e.g. Q[0:1], x[:1], or a loop that stops after the first element). Compute every batch element.",
                      COURSE["contract"], knobs={"batch": "first_only"}),
        Misconception(f"{p}.float32_internal", exercise, "computed in float32 for float64 inputs",
                      "Part of the computation (often the softmax or the LayerNorm) runs in float32 (.float(), np.float32, torch.float32) and is cast back, so float64 inputs lose precision. Compute in the inputs' dtype.",
                      COURSE["contract"], knobs={"precision": "float32"}, rule="float32_internal"),
        Misconception(f"{p}.modifies_inputs", exercise, "modifies its inputs",
                      "An argument is changed in place (Q /= ..., x += ..., add_()/masked_fill_()). Work on new arrays: the caller's inputs must stay as they were.",
                      COURSE["contract"], wrapper=_modifies_inputs(exercise), signature=("inputs_unchanged", "mutated")),
        Misconception(f"{p}.wrong_dtype", exercise, "returns the wrong dtype",
                      "The result's dtype differs from the inputs' (NumPy 2 turns float32 / np.sqrt(d) into float64). Scale with math.sqrt(d) or cast back to the input dtype.",
                      COURSE["contract"], wrapper=_wrong_dtype(exercise), signature=("output_dtype", "dtype")),
        Misconception(f"{p}.wrong_array_type", exercise, "returns the wrong array type",
                      "The result is not the inputs' array type (a list from .tolist(), or a NumPy array from torch code). Return a numpy.ndarray for NumPy inputs, a torch.Tensor for tensors.",
                      COURSE["contract"], wrapper=_wrong_array_type(exercise), signature=("output_array_type", "array_type")),
        Misconception(f"{p}.returns_tuple", exercise, "returns a tuple (e.g. output and weights)",
                      "The function returns a tuple, such as (output, weights); return only the output array.",
                      COURSE["contract"], wrapper=_returns_tuple(exercise), rule="returns_tuple"),
        Misconception(f"{p}.fails_without_mask", exercise, "fails when mask is None",
                      "The function raises when it is called without a mask (mask=None is the default): guard the mask step with `if mask is not None:`.",
                      COURSE["masking"], wrapper=_fails_without_mask(exercise), rule="fails_without_mask"),
        Misconception(f"{p}.numpy_roundtrip", exercise, "PyTorch code that leaves autograd (NumPy round trip)",
                      "The computation goes through .numpy() (or torch.tensor(values)), so the result has no gradient. Keep every step in torch operations.",
                      COURSE["autograd"], wrapper=_numpy_roundtrip(exercise), rule="no_graph_numpy", backends=("torch",)),
        Misconception(f"{p}.no_grad", exercise, "computed under torch.no_grad()",
                      "The computation runs inside torch.no_grad() (or inference_mode / a @torch.no_grad() decorator), so the result has no autograd graph and no gradient. Remove it: the grader and the training loop need the gradients.",
                      COURSE["autograd"], wrapper=_under_no_grad(exercise), rule="no_graph_no_grad", backends=("torch",)),
        Misconception(f"{p}.half_fill_overflow", exercise, "a -1e9 fill that float16 cannot represent",
                      "A blocked score is filled with -1e9 (masked_fill(..., -1e9)), which overflows float16 and raises. Fill with float('-inf') or torch.finfo(scores.dtype).min.",
                      COURSE["masking"], wrapper=_fill_minus_1e9(exercise), rule="half_fill_overflow", backends=("torch",)),
    ]


def _returns_tuple(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        out = _reference(exercise)(*args)
        return out, out

    return run


def _fails_without_mask(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        if args[-1] is None:
            raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'NoneType'")
        return _reference(exercise)(*args)

    return run


def _under_no_grad(exercise: str) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        import torch

        with torch.no_grad():
            return _reference(exercise)(*args)

    return run


def _fill_minus_1e9(exercise: str) -> Callable[..., Any]:
    """Blocked scores set with masked_fill(-1e9) in the inputs' dtype: raises for float16."""

    def run(*args: Any) -> Any:
        mask = args[-1]
        if is_torch(args[0]) and mask is not None:
            import torch

            torch.zeros(1, dtype=args[0].dtype).masked_fill(torch.tensor([True]), -1e9)
        return _reference(exercise)(*args)

    return run


MA = next(iter(EXERCISES))  # hints are advice, not tied to an exercise: filed under the first one

_HINTS = [
    Misconception("hint.missing_return", MA, "a missing return statement", "The function returned None: return the result.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.mask_not_applied", MA, "the mask does not reach the scores",
                  "Outputs at earlier positions changed when later tokens changed: the causal mask is not added to the scores before the softmax (or is applied after it).", COURSE["masking"], kind="hint", listed=False),
    Misconception("hint.mixes_tokens", MA, "something depends on position or mixes tokens",
                  "Reordering the inputs did not reorder the output: e.g. a softmax over the query axis, or a reshape that mixes the sequence axis with heads.", COURSE["formula"], kind="hint", listed=False),
    Misconception("hint.mixes_batch", MA, "batch elements are mixed",
                  "A batch element gives a different result alone: code indexes batch element 0 (Q[0]) or mixes the batch axis into a reshape or sum.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.mixes_heads", MA, "heads are mixed",
                  "A head gives a different result alone: a softmax or sum over the head axis, a 4-D mask applied to the wrong heads, or heads split/merged without the transpose.", COURSE["mha"], kind="hint", listed=False),
    Misconception("hint.autograd_gap", MA, "a step autograd cannot see",
                  "The forward values are right but a gradient is not: a step autograd cannot see (writing through .data, a .numpy() round trip, detach() in the middle).", COURSE["autograd"], kind="hint", listed=False),
    Misconception("hint.numpy_promotion", MA, "float32 promoted by a float64 NumPy scalar",
                  "NumPy 2 promotes a float32 array combined with a float64 NumPy scalar (such as np.sqrt(d)) to float64: divide by math.sqrt(d) or cast back.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.half_not_cast_back", MA, "half precision not cast back",
                  "Part of the computation was done in float32/float64 and not cast back: return the inputs' dtype.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.tolist", MA, "a Python list returned",
                  "A .tolist() or a Python list built in a loop was returned: return an array (np.stack / torch.stack the pieces).", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.torch_to_numpy", MA, "NumPy array returned from torch code",
                  "The tensors were converted to NumPy (.numpy()) and the NumPy result returned: stay in torch.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.numpy_to_torch", MA, "torch tensor returned for NumPy inputs",
                  "The NumPy inputs were converted to torch: a NumPy submission should return a numpy.ndarray.", COURSE["contract"], kind="hint", listed=False),
    Misconception("hint.in_place", MA, "an in-place operation on an argument",
                  "An in-place operation on an argument, such as Q /= ..., scores += mask on a view of an input, x[...] = ..., or torch's add_()/masked_fill_().", COURSE["contract"], kind="hint", listed=False),
]


def _lifted() -> list[Misconception]:
    """A lower exercise's numeric mistake seen through a higher one that calls it (their MHA calls
    their own attention): `ma.x` is `mha.attention.x` and `block.attention.x`, `mha.x` is `block.mha.x`."""
    out = []
    for lower in EXERCISES.values():
        higher = [e for e in EXERCISES.values() if lower.name in e.sublayers]
        for m in lower.mistakes():
            if m.function is not None or m.knobs is None or m.id in lower.not_lifted:
                continue
            for h in higher:
                out.append(_lift(m, lower, h))
    return out


def _lift(m: Misconception, lower: Exercise, higher: Exercise) -> Misconception:
    key = m.id.split(".", 1)[1]
    return Misconception(f"{higher.prefix}.{lower.lifted_name}.{key}", higher.name, f"{m.title} ({lower.lifted_title})", m.feedback, m.reference,
                         knobs=higher.lift(lower, m.knobs or {}), listed=False, grid=tuple(higher.lift(lower, g) for g in m.grid))


def _catalogue() -> tuple[Misconception, ...]:
    own = [m for e in EXERCISES.values() for m in e.mistakes()]
    structural = [s for e in EXERCISES for s in _structural(e)]
    late = [m for e in EXERCISES.values() for m in e.late_mistakes()]
    return tuple(own + structural + late + _lifted() + _HINTS)


CATALOGUE: tuple[Misconception, ...] = _catalogue()
BY_ID = {m.id: m for m in CATALOGUE}
if len(BY_ID) != len(CATALOGUE):
    raise ImportError(f"duplicate misconception ids: {sorted({m.id for m in CATALOGUE if sum(n.id == m.id for n in CATALOGUE) > 1})}")


def for_exercise(exercise: str, *, listed_only: bool = False) -> list[Misconception]:
    return [m for m in CATALOGUE if m.exercise == exercise and m.kind == "mistake" and (m.listed or not listed_only)]


def lifted_id(exercise: str, lower_id: str) -> str:
    """The id a lower exercise's mistake has when seen through `exercise` (ma.x -> mha.attention.x)."""
    higher = EXERCISES[exercise]
    prefix, _, key = lower_id.partition(".")
    for name in higher.sublayers:
        lower = EXERCISES[name]
        if lower.prefix == prefix:
            return f"{higher.prefix}.{lower.lifted_name}.{key}"
    return lower_id


def namespace(m: Misconception) -> dict[str, Callable[..., Any]]:
    """The functions of a 'submission' that makes mistake `m` (the rest are correct)."""
    ns: dict[str, Callable[..., Any]] = {name: _reference(name) for name in EXERCISES}
    ns.update({h.name: EXERCISES[e].helper_reference(h.name) for e in EXERCISES for h in EXERCISES[e].helpers})
    ns[m.target] = m.implementation()
    return ns
