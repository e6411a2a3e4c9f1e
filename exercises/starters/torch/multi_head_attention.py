# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 2 (PyTorch): Multi-head attention inside the block.

Inside a transformer block, attention is a sublayer: it reads the residual stream (already
passed through a LayerNorm) and writes an edit that the block then adds back to the stream.
Several heads work side by side, each on its own slice of the model width, and an output
projection mixes their results back to the full width. Write that sublayer:

1. Project: `Q = x @ W_Q`, `K = x @ W_K`, `V = x @ W_V`, each (batch, seq, d_model). There
   are no biases.
2. Split into heads: with `d_head = d_model // n_heads`, head h owns the columns
   `h*d_head` up to `(h+1)*d_head` of Q, K and V. Arrange them as
   (batch, n_heads, seq, d_head).
3. Attend: every head runs scaled dot-product attention (exercise 1) on its slice, scaling
   the scores by `1/sqrt(d_head)`, with the optional mask.
4. Merge: put the head outputs back side by side in head order, giving
   (batch, seq, d_model), and multiply by `W_O`.

Return that product: the attention edit, not `x` plus the edit.

Arguments and result:

- `x`: (batch, seq, d_model), the normalised residual stream
- `W_Q`, `W_K`, `W_V`, `W_O`: (d_model, d_model), each applied as `x @ W`
- `n_heads`: an int that divides d_model
- `mask`: `None`, or an additive (seq, seq) float array shared by every batch element and
  head
- result: (batch, seq, d_model)

Worked example:

A small case you can check by hand (the course's worked example): one sequence of three
tokens with d_model = 4,

    x = [[[1, 0, 2, 1],
          [0, 1, 1, 2],
          [1, 1, 0, 1]]]

`W_Q = W_K = W_V = I` (the 4x4 identity), `W_O = 0.5 * I`, `n_heads = 2`, no mask. So
d_head = 2: head 1 sees dimensions 0-1 and head 2 dimensions 2-3. Follow token 3,
x = [1, 1, 0, 1]:

- Head 1: the query [1, 1] meets the keys [1, 0], [0, 1], [1, 1] with scores 1, 1, 2, divided
  by sqrt(2). The softmax weights are about [0.248, 0.248, 0.503] and the output is about
  [0.751, 0.751].
- Head 2: the query [0, 1] meets the keys [2, 1], [1, 2], [0, 1] with scores 1, 2, 1, divided
  by sqrt(2). The weights are about [0.248, 0.503, 0.248] and the output about
  [0.999, 1.503].
- Concatenated, [0.751, 0.751, 0.999, 1.503], then multiplied by `0.5 * I`: the edit for
  token 3 is about [0.376, 0.376, 0.500, 0.752].

The block would then add the edit to the residual stream, taking token 3 to
[1.376, 1.376, 0.500, 1.752]; your function returns only the edit.

Rules:

- Take `torch.Tensor` arguments and return a `torch.Tensor` (not a NumPy array).
- Keep the dtype of the inputs: float32 in gives float32 out, float64 in gives float64 out.
- Leave the inputs untouched: build new tensors instead of writing into an argument (no `+=` on an
  argument, no `x[...] = ...`, no in-place methods such as `.add_()` or `.masked_fill_()`).
- Keep the computation differentiable: no `.detach()`, no detour through NumPy, so gradients flow
  back to every input (the grader may compare them with the reference's).
- Scale by sqrt(d_head), the width of one head, not by sqrt(d_model).
- The mask follows exercise 1: 0 keeps, -inf blocks, any other finite entry is a bias.
- Write the sublayer yourself: no library multi-head attention (such as
  `torch.nn.MultiheadAttention`) inside your answer.

Hints:

- Split with `.reshape(batch, seq, n_heads, d_head)` first, then `.transpose(1, 2)`. Reshaping
  straight to (batch, n_heads, seq, d_head) has the right size but mixes tokens across heads. Merge
  by undoing the two steps in reverse order, with `.reshape` rather than `.view` (a transposed
  tensor is not contiguous).
- Exercise 1's `manual_attention` already does the work of every head at once on (batch, n_heads,
  seq, d_head) arrays: paste it into the place marked for it below.
- With n_heads = 1 the sublayer is single-head attention over the full width followed by W_O: a
  quick sanity check. Several narrower heads cost about the same as one wide one, and each can
  learn a different relation between tokens (the previous token, a verb's subject, a matching
  bracket).

Check your work on the visible test cases by running this file,

    python multi_head_attention.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import torch


# ---- Your manual_attention from exercise 1 ----
# Paste your solution here so that multi_head_attention can call it.
# Only multi_head_attention is graded in this file.


def multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask=None):
    """The multi-head attention edit for the residual stream (not added to x).

    Args:
        x: the normalised residual stream, (batch, seq, d_model).
        W_Q, W_K, W_V, W_O: (d_model, d_model) projections, applied as x @ W.
        n_heads: number of heads; divides d_model, and d_head = d_model // n_heads.
        mask: None, or an additive (seq, seq) float mask shared by all heads.

    Returns:
        (batch, seq, d_model), with the array type and dtype of x.
    """
    raise NotImplementedError("multi_head_attention is not implemented yet")


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
               "--exercise", "multi_head_attention", "--backend", "torch", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
