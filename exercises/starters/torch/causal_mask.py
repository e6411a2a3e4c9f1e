# Starter file generated from exercises/source.yaml by exercises/generate.py.
"""Exercise 6 (PyTorch): The causal mask.

A decoder predicts each token from the tokens before it, so position i must not read any
later position. Before the softmax, the scores of those later positions get -inf added,
which the softmax turns into weights of exactly 0. Write the mask that does it:

- `seq_len`: a Python int, the number of positions (1 or more)
- result: a (seq_len, seq_len) float array; entry [i, j] is 0 where query position i may
  see key position j (j <= i, itself included) and -inf where j comes later (j > i)

It is the additive mask `manual_attention` (exercise 1) takes: `scores + causal_mask(n)`.

Rules:

- Return a float `torch.Tensor` (float32, as `torch.full` gives, or float64), not booleans.
- Blocked entries are -inf. A large negative number such as -1e9 blocks as well and is accepted;
  0/1 or True/False (a keep-mask) is not: this mask is added, not multiplied.

Hints:

- Look at `torch.triu` and `torch.tril` and their `diagonal` argument, or build a lower-triangular
  matrix of ones and use `masked_fill` to put -inf where it is 0 (and 0 where it is 1).
- Check the corners: row 0 has one 0 (position 0 sees only itself), the last row is all 0, and
  causal_mask(1) is [[0.]].

Check your work on the visible test cases by running this file,

    python causal_mask.py

which grades it with `attnspec grade` (the command is at the end of the file).
"""

import math

import torch


def causal_mask(seq_len):
    """The additive causal mask, shape (seq_len, seq_len), as a float torch.Tensor.

    Entry [i, j] is 0 where query position i may see key position j (j <= i) and
    -inf where j comes later (j > i).
    """
    raise NotImplementedError("causal_mask is not implemented yet")


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
               "--exercise", "causal_mask", "--backend", "torch", "--visible-only"]
    sys.exit(subprocess.call(command, cwd=here.parent))
