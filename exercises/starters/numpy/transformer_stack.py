# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 5 (NumPy): A stack of pre-norm blocks.

A transformer repeats its block many times (2 to 96 layers in the course's models). Each
layer has parameters of its own and reads the residual stream the layer before it wrote:

    h = x
    for params in layers:
        h = transformer_block(h, params, n_heads, mask)
    return h

- Every `params` in `layers` is a dict exactly like exercise 3's; the layers are applied in
  list order, `layers[0]` first.
- The same `mask` goes to every layer.
- There is no LayerNorm after the last layer, and an empty list returns `x` unchanged.

Arguments and result:

- `x`: (batch, seq, d_model), the residual stream
- `layers`: a list of params dicts, each with exercise 3's keys and shapes
- `n_heads`: an int that divides d_model
- `mask`: `None`, or an additive (seq, seq) float array
- result: (batch, seq, d_model)

Rules:

- Take `numpy.ndarray` arguments and return a `numpy.ndarray` (not a list, not a torch tensor).
- Keep the dtype of the inputs: float32 in gives float32 out, float64 in gives float64 out.
- Leave the inputs untouched: build new arrays instead of writing into an argument (no `+=` on an
  argument, no `x[...] = ...`, no `out=` pointing at an input).
- Apply every layer, in order, each with its own params, each to the output of the one before it;
  pass the mask to all of them.
- Write the loop yourself: no library stacks or layers (such as `torch.nn.TransformerEncoder` or
  `torch.nn.TransformerEncoderLayer`) inside your answer.

Hints:

- With a one-element list your stack must give exactly `transformer_block(x, layers[0], n_heads,
  mask)`: check that first.
- Reversing `layers` must change the output: if it does not, every pass of the loop uses the same
  params or only one layer is applied.
- Paste `manual_attention`, `multi_head_attention` and `transformer_block` into the place marked
  for them below and call your block in the loop.

Check your work on the visible test cases by running this file,

    python transformer_stack.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import numpy as np


# ---- Your manual_attention and multi_head_attention and transformer_block from exercises 1, 2 and 3 ----
# Paste your solution here so that transformer_stack can call them.
# Only transformer_stack is graded in this file.


def transformer_stack(x, layers, n_heads, mask=None):
    """Pre-norm transformer blocks applied in order, each to the previous one's output.

    Args:
        x: the residual stream, (batch, seq, d_model).
        layers: list of params dicts, each as transformer_block's params.
        n_heads: number of attention heads; divides d_model.
        mask: None, or an additive (seq, seq) float mask, given to every layer.

    Returns:
        (batch, seq, d_model), with the array type and dtype of x; x itself for [].
    """
    raise NotImplementedError("transformer_stack is not implemented yet")


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
               "--exercise", "transformer_stack", "--backend", "numpy", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
