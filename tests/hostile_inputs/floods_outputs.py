"""Attack: returns an array of the largest size a worker may send (7.9 million float64 values,
63 MB) from every call, trying to fill the grader's memory with values it keeps for the
diagnosis. The grader keeps at most runner.KEPT_BYTES_LIMIT of one submission's outputs."""

import numpy as np

BIG = np.zeros(7_900_000)


def manual_attention(Q, K, V, mask=None):
    return BIG
