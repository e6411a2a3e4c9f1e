# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 3 (NumPy): A pre-norm transformer block.

A pre-norm transformer block has two sublayers. Each reads a LayerNorm of the residual
stream and adds what it computes back onto the stream (the residual connection): first the
attention sublayer of exercise 2, which mixes information across tokens, then a small MLP
that works on every token separately. Written as two residual lines:

    a   = x + multi_head_attention(LN(x; ln1_g, ln1_b), W_Q, W_K, W_V, W_O, n_heads, mask)
    out = a + GELU(LN(a; ln2_g, ln2_b) @ W_in + b_in) @ W_out + b_out

- `LN(v; g, b)` normalises each token vector over the last axis: subtract its mean, divide
  by `sqrt(variance + eps)`, then multiply by `g` and add `b`. The variance is the biased
  one (divide by d_model, not d_model - 1) and `eps = 1e-5` sits inside the square root, as
  in `torch.nn.LayerNorm`.
- `GELU` is the exact form, `GELU(z) = 0.5 * z * (1 + erf(z / sqrt(2)))`, which is what
  `torch.nn.functional.gelu` computes by default; not the tanh approximation.

Arguments and result:

- `x`: (batch, seq, d_model), the residual stream
- `params`: a dict with `ln1_g`, `ln1_b` (d_model); `W_Q`, `W_K`, `W_V`, `W_O`
  (d_model, d_model); `ln2_g`, `ln2_b` (d_model); `W_in` (d_model, d_ff); `b_in` (d_ff);
  `W_out` (d_ff, d_model); `b_out` (d_model)
- `n_heads`: an int that divides d_model
- `mask`: `None`, or an additive (seq, seq) float array
- result: (batch, seq, d_model)

Rules:

- Take `numpy.ndarray` arguments and return a `numpy.ndarray` (not a list, not a torch tensor).
- Keep the dtype of the inputs: float32 in gives float32 out, float64 in gives float64 out.
- Leave the inputs untouched: build new arrays instead of writing into an argument (no `+=` on an
  argument, no `x[...] = ...`, no `out=` pointing at an input).
- Pre-norm: the LayerNorm goes on the input of each sublayer, and the residual adds use the
  un-normalised `x` and `a`. Normalising after the add (post-norm) gives different numbers.
- Write the block yourself: no library layers (such as `torch.nn.TransformerEncoderLayer` or
  `torch.nn.MultiheadAttention`) inside your answer.

Hints:

- Think of the residual stream as an accumulator: each sublayer reads a normalised copy and writes
  an edit; `x` itself is never normalised.
- `v.var(axis=-1, keepdims=True)` is already the biased variance (ddof=0), and `keepdims=True`
  keeps the axis so the mean and variance broadcast back over the vector.
- NumPy has no element-wise erf. `math.erf` takes one number; `np.vectorize(math.erf,
  otypes=[np.float64])` applies it to every element (cast the result back to the input's dtype).
- LayerNorm and GELU are a few lines each; writing them as small helper functions keeps the two
  residual lines readable.
- The attention sublayer is exercise 2's `multi_head_attention`: paste it (and the
  `manual_attention` it calls) into the place marked for them below.

Check your work on the visible test cases by running this file,

    python transformer_block.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import numpy as np


# ---- Your manual_attention and multi_head_attention from exercises 1 and 2 ----
# Paste your solution here so that transformer_block can call them.
# Only transformer_block is graded in this file.


def transformer_block(x, params, n_heads, mask=None):
    """One pre-norm transformer block: attention sublayer, then MLP, each with a residual add.

    Args:
        x: the residual stream, (batch, seq, d_model).
        params: dict of ln1_g, ln1_b, W_Q, W_K, W_V, W_O, ln2_g, ln2_b, W_in, b_in,
            W_out, b_out (shapes in the statement).
        n_heads: number of attention heads; divides d_model.
        mask: None, or an additive (seq, seq) float mask.

    Returns:
        (batch, seq, d_model), with the array type and dtype of x.
    """
    raise NotImplementedError("transformer_block is not implemented yet")


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
               "--exercise", "transformer_block", "--backend", "numpy", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
