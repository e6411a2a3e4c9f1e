# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 7 (PyTorch): Counting attention parameters.

How many weights do the attention blocks of a model hold? Each head has four maps, each
d_model x d_head: the query map W_Q, the key map W_K, and the value map, factored into
Value_down (d_model -> d_head) and Value_up (d_head -> d_model). A block has n_heads heads
and the model n_layers blocks. Write the count:

- `d_model`, `d_head`, `n_heads`, `n_layers`: Python ints
- result: the number of attention weights, as an exact Python int (no biases, no MLP)

For GPT-3 (d_model 12,288, d_head 128, 96 heads, 96 layers) it is just under 58 billion.

Rules:

- Return an int (a NumPy integer or a 0-d integer array/tensor is accepted too). A float is refused
  even when its value is a whole number: the count must be exact, so multiply integers and do not
  divide.
- Count the weight matrices of attention only: no biases, no MLP, no embeddings.

Hints:

- Check yourself on the course's figures: one 12,288 x 128 map is 1,572,864 weights (~1.6 M), one
  head 6,291,456 (~6.3 M), one block of 96 heads 603,979,776 (~604 M).
- A full 12,288 x 12,288 value matrix would be ~151 M per head: that is why the value map is
  factored into two d_model x d_head maps.

Check your work on the visible test cases by running this file,

    python attention_param_count.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import torch


def attention_param_count(d_model, d_head, n_heads, n_layers):
    """The number of attention weights of a model, as an exact int.

    Args:
        d_model: width of the residual stream (the embedding size).
        d_head: width of one head's query/key space.
        n_heads: heads per attention block.
        n_layers: attention blocks (layers).

    Returns:
        4 * d_model * d_head per head, times n_heads, times n_layers.
    """
    raise NotImplementedError("attention_param_count is not implemented yet")


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
               "--exercise", "attention_param_count", "--backend", "torch", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
