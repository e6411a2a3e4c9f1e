"""Honest: starts with `from __future__ import annotations` and uses @dataclass, which needs the
submission's module in sys.modules (dataclasses looks its annotations up there)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Scale:
    d_head: int

    def factor(self) -> float:
        return 1.0 / math.sqrt(self.d_head)


def manual_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) * Scale(Q.shape[-1]).factor()
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return weights @ V
