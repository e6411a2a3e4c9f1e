"""The mask kinds a case can ask for (`mask:` in the spec) and how each is built.

A leaf module: input generation, the exercises and the mask properties all read it.
"""

from __future__ import annotations

import numpy as np

CAUSAL_MASKS = ("causal", "causal_4d")
PADDING_MASKS = ("padding", "padding_4d")
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
BLOCKING_MASKS = ("causal", "block", "padding", "mixed", "causal_4d", "block_4d", "padding_4d", "mixed_4d")
BIAS_MASKS = ("bias", "mixed", "causal_4d", "bias_4d", "mixed_4d")


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
