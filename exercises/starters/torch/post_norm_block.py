# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 4 (PyTorch): The original post-norm block.

The transformer of the original paper puts each LayerNorm after the residual add ("Add &
Normalize"): a sublayer reads the stream itself, its output is added to the stream, and the
sum is normalised. With the same parameters as exercise 3:

    a   = LN(x + multi_head_attention(x, W_Q, W_K, W_V, W_O, n_heads, mask); ln1_g, ln1_b)
    out = LN(a + GELU(a @ W_in + b_in) @ W_out + b_out; ln2_g, ln2_b)

- `LN` and `GELU` are exactly those of exercise 3: biased variance, `eps = 1e-5` inside the
  square root, then `* g + b`; the exact erf form of GELU.
- The attention sublayer reads `x` itself, not `LN(x)`, and the block's output is the
  output of the second LayerNorm.

Arguments and result (as in exercise 3):

- `x`: (batch, seq, d_model), the residual stream
- `params`: a dict with `ln1_g`, `ln1_b` (d_model); `W_Q`, `W_K`, `W_V`, `W_O`
  (d_model, d_model); `ln2_g`, `ln2_b` (d_model); `W_in` (d_model, d_ff); `b_in` (d_ff);
  `W_out` (d_ff, d_model); `b_out` (d_model)
- `n_heads`: an int that divides d_model
- `mask`: `None`, or an additive (seq, seq) float array
- result: (batch, seq, d_model)

Rules:

- Take `torch.Tensor` arguments and return a `torch.Tensor` (not a NumPy array).
- Keep the dtype of the inputs: float32 in gives float32 out, float64 in gives float64 out.
- Leave the inputs untouched: build new tensors instead of writing into an argument (no `+=` on an
  argument, no `x[...] = ...`, no in-place methods such as `.add_()` or `.masked_fill_()`).
- Keep the computation differentiable: no `.detach()`, no detour through NumPy, so gradients flow
  back to every input (the grader may compare them with the reference's).
- Post-norm: each LayerNorm goes on the residual sum, after the add. Normalising the sublayer's
  input instead (pre-norm, exercise 3) gives different numbers.
- Write the block yourself: no library layers (such as `torch.nn.TransformerEncoderLayer` or
  `torch.nn.MultiheadAttention`) inside your answer.

Hints:

- Exercise 3 and this block differ only in where the two LayerNorms sit: write the two lines out
  and check each one against the formulas above.
- Both LayerNorms are there: the output is normalised too, so every output token has mean `ln2_b`
  on average and a spread set by `ln2_g`.
- LayerNorm, GELU and the attention sublayer are the ones of exercise 3: paste `manual_attention`
  and `multi_head_attention` into the place marked for them below, and reuse your LayerNorm and
  GELU helpers.

Check your work on the visible test cases by running this file,

    python post_norm_block.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import torch


# ---- Your manual_attention and multi_head_attention from exercises 1 and 2 ----
# Paste your solution here so that post_norm_block can call them.
# Only post_norm_block is graded in this file.


def post_norm_block(x, params, n_heads, mask=None):
    """One post-norm transformer block: attention, add, LayerNorm; then MLP, add, LayerNorm.

    Args:
        x: the residual stream, (batch, seq, d_model).
        params: dict of ln1_g, ln1_b, W_Q, W_K, W_V, W_O, ln2_g, ln2_b, W_in, b_in,
            W_out, b_out (shapes in the statement).
        n_heads: number of attention heads; divides d_model.
        mask: None, or an additive (seq, seq) float mask.

    Returns:
        (batch, seq, d_model), with the array type and dtype of x.
    """
    raise NotImplementedError("post_norm_block is not implemented yet")


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
               "--exercise", "post_norm_block", "--backend", "torch", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
