"""Measure how far the reference lands from the float64 reference in each dtype.

The spec's tolerances are set from these figures with a safety margin (see spec/*.yaml):
a correct implementation written differently from ours (einsum, loops, another summation
order) must pass, so tolerances sit well above the reference's own error.

    python bench/measure_tolerances.py [--seeds 200]
    python bench/measure_tolerances.py --realistic [--seeds 5]   # GPT-2-small sizes (the *.realistic.* cases)
"""

from __future__ import annotations

import argparse

import numpy as np

from attnspec.exercises import EXERCISES
from attnspec.inputs import cast_inputs, generate_inputs
from attnspec.specmodel import InputSpec

SHAPES = {
    "manual_attention": {"batch": 2, "n_heads": 3, "seq_q": 6, "seq_k": 7, "d_head": 8, "d_v": 5},
    "multi_head_attention": {"batch": 2, "seq": 6, "d_model": 16, "n_heads": 4},
    "transformer_block": {"batch": 2, "seq": 6, "d_model": 16, "n_heads": 4, "d_ff": 24},
}


# GPT-2 small: d_model 768, 12 heads of 64, 128 tokens, batch 2, d_ff 3072.
REALISTIC = {
    "manual_attention": {"batch": 2, "n_heads": 12, "seq_q": 128, "seq_k": 128, "d_head": 64, "d_v": 64},
    "multi_head_attention": {"batch": 2, "seq": 128, "d_model": 768, "n_heads": 12},
    "transformer_block": {"batch": 2, "seq": 128, "d_model": 768, "n_heads": 12, "d_ff": 3072},
    "post_norm_block": {"batch": 2, "seq": 128, "d_model": 768, "n_heads": 12, "d_ff": 3072},
}
_realistic = False


def shapes_of(exercise: str) -> dict[str, int]:
    """The measured sizes: the table above, else the exercise's `spec new` sizes."""
    if _realistic:
        return REALISTIC.get(exercise, EXERCISES[exercise].skeleton_dims)
    return SHAPES.get(exercise, EXERCISES[exercise].skeleton_dims)


def to_torch(value, dtype):
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(value).to(dtype)
    if isinstance(value, dict):
        return {k: to_torch(v, dtype) for k, v in value.items()}
    return value


def measure(exercise: str, dtype: str, seeds: int, mask: str) -> tuple[float, float]:
    """Worst (abs error, abs error / (1 + |expected|)) over seeds of an independent implementation
    (the PyTorch reference; the NumPy one where torch is missing) in `dtype`, against the NumPy
    reference in float64 on the same dtype-rounded inputs."""
    worst_abs, worst_scaled = 0.0, 0.0
    for seed in range(seeds):
        inputs = cast_inputs(generate_inputs(exercise, InputSpec(shapes=shapes_of(exercise), mask=mask, seed=seed)), dtype)
        expected = EXERCISES[exercise].reference("numpy")(*inputs.positional())
        try:
            import torch
        except ImportError:
            if dtype in ("float16", "bfloat16"):
                return float("nan"), float("nan")
            args = [a.astype(dtype) if isinstance(a, np.ndarray) else ({k: v.astype(dtype) for k, v in a.items()} if isinstance(a, dict) else a) for a in inputs.positional()]
            got = EXERCISES[exercise].reference("numpy")(*args).astype(np.float64)
        else:
            tdtype = getattr(torch, dtype)
            got = EXERCISES[exercise].reference("torch")(*[to_torch(a, tdtype) for a in inputs.positional()]).double().numpy()
        err = np.abs(got - expected)
        worst_abs = max(worst_abs, float(err.max()))
        worst_scaled = max(worst_scaled, float((err / (1 + np.abs(expected))).max()))
    return worst_abs, worst_scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (200; 5 with --realistic)")
    parser.add_argument("--realistic", action="store_true", help="GPT-2-small sizes instead of the small ones")
    args = parser.parse_args()
    global _realistic
    _realistic = args.realistic
    args.seeds = args.seeds or (5 if args.realistic else 200)
    print(f"{'exercise':22} {'dtype':9} {'mask':7} {'max abs err':>12} {'max err/(1+|e|)':>16}")
    for exercise in EXERCISES:
        for dtype in ("float64", "float32", "float16", "bfloat16"):
            for mask in ("none", "causal"):
                a, s = measure(exercise, dtype, args.seeds, mask)
                print(f"{exercise:22} {dtype:9} {mask:7} {a:12.3e} {s:16.3e}")


if __name__ == "__main__":
    main()
