# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 1 (NumPy): Scaled dot-product attention by hand.

Attention lets every position of a sequence collect information from the other positions.
Each query vector is compared with every key vector through a dot product; the scores are
divided by `sqrt(d_head)` and turned by a softmax into weights that sum to 1; the output for
that query is the weighted sum of the value vectors. Write this computation yourself, for a
whole batch of heads at once:

    manual_attention(Q, K, V, mask) = softmax(Q @ K^T / sqrt(d_head) + mask) @ V

Here `K^T` swaps the last two axes of `K`, and the softmax runs along the last axis: one
probability distribution over the keys for every query.

Arguments and result:

- `Q`: (batch, n_heads, seq_q, d_head)
- `K`: (batch, n_heads, seq_k, d_head)
- `V`: (batch, n_heads, seq_k, d_v), where d_v need not equal d_head
- `mask`: `None`, or an additive float array of shape (seq_q, seq_k), shared by every batch
  element and head, or of shape (batch, n_heads, seq_q, seq_k)
- result: (batch, n_heads, seq_q, d_v)

Rules:

- Take `numpy.ndarray` arguments and return a `numpy.ndarray` (not a list, not a torch tensor).
- Keep the dtype of the inputs: float32 in gives float32 out, float64 in gives float64 out.
- Leave the inputs untouched: build new arrays instead of writing into an argument (no `+=` on an
  argument, no `x[...] = ...`, no `out=` pointing at an input).
- The mask is added to the scaled scores just before the softmax. An entry of 0 keeps that key,
  -inf blocks it completely (its weight comes out exactly 0), and any other finite entry is a bias
  added to that score. Keep the mask as numbers: don't turn it into True/False.
- No graded case has a query whose keys are all blocked, so you need not handle that row.
- Write the attention yourself: no library attention function (such as
  `torch.nn.functional.scaled_dot_product_attention`) inside your answer.

Hints:

- Why divide by sqrt(d_head)? If the entries of a query and a key are independent, with mean 0 and
  variance 1, their dot product is a sum of d_head such products and has variance d_head. Unscaled
  scores therefore grow with the head width, the softmax saturates into an almost one-hot pattern
  and its gradients vanish; dividing by sqrt(d_head) brings the variance back to 1.
- Swap only the last two axes of K: `np.swapaxes(K, -1, -2)`. On a 4-D array `K.T` reverses all
  four axes, which is not what you want.
- `np.exp` overflows for large scores. Subtract each row's maximum before exponentiating: the
  softmax does not change, and exp(-inf) = 0 makes blocked keys vanish by themselves.
- A (seq_q, seq_k) mask broadcasts against the (batch, n_heads, seq_q, seq_k) scores as it is: no
  reshaping needed.
- Watch the dtype: `np.sqrt(d_head)` is a float64 scalar, and NumPy promotes a float32 array
  combined with it to float64. Divide by the Python float `math.sqrt(d_head)` instead, and cast a
  mask to the scores' dtype (`mask.astype(scores.dtype)`) before adding it.
- If you have PyTorch, check values against `torch.nn.functional.scaled_dot_product_attention`,
  which uses the same float-mask convention (convert with `torch.from_numpy`). Use it to check, not
  inside your function.

Check your work on the visible test cases by running this file,

    python manual_attention.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import numpy as np


def manual_attention(Q, K, V, mask=None):
    """Scaled dot-product attention: softmax(Q @ K^T / sqrt(d_head) + mask) @ V.

    Args:
        Q: queries, (batch, n_heads, seq_q, d_head).
        K: keys, (batch, n_heads, seq_k, d_head).
        V: values, (batch, n_heads, seq_k, d_v).
        mask: None, or an additive float mask of shape (seq_q, seq_k) or
            (batch, n_heads, seq_q, seq_k): 0 keeps a key, -inf blocks it, any other
            value is a bias added to the scaled score.

    Returns:
        (batch, n_heads, seq_q, d_v), with the array type and dtype of Q.
    """
    raise NotImplementedError("manual_attention is not implemented yet")


if __name__ == "__main__":
    # Running this file grades it on the visible test cases (the hidden ones run only in
    # the course's autograder). attnspec never runs this block when grading the file.
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    if importlib.util.find_spec("attnspec") is None:
        sys.exit("attnspec is not installed in this Python (pip install attnspec)")
    here = Path(__file__).resolve()
    command = [sys.executable, "-m", "attnspec", "grade", here.name,
               "--exercise", "manual_attention", "--backend", "numpy", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
