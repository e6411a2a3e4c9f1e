"""The source check of the implementation rules resolves names as Python does: a name a function
binds itself hides the module's import or helper of that name, and a later top-level definition
replaces an import. A real use is still found, however it is spelled."""

from __future__ import annotations

import textwrap

import pytest

from attnspec.static import analyze
from attnspec.submission import load_submission

SDPA = "torch.nn.functional.scaled_dot_product_attention"


def uses(tmp_path, text: str, function: str = "manual_attention") -> list[int]:
    path = tmp_path / "sub.py"
    path.write_text(textwrap.dedent(text))
    return [u.line for u in analyze(load_submission(str(path))).forbidden_uses(function, [SDPA])]


HAND_WRITTEN = """
    s = Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])
    if mask is not None:
        s = s + mask
"""


@pytest.mark.parametrize("text", [
    # a local variable named like the module's alias of the forbidden function
    """
    import math, torch
    from torch.nn.functional import scaled_dot_product_attention as attention
    def manual_attention(Q, K, V, mask=None):{body}    attention = torch.softmax(s, dim=-1)
        return attention @ V
    """,
    # the forbidden function imported inside another function (a self-check), under a name the graded one uses locally
    """
    import math, torch
    def check():
        from torch.nn.functional import scaled_dot_product_attention as ref
        return ref
    def manual_attention(Q, K, V, mask=None):{body}    ref = torch.softmax(s, dim=-1)
        return ref @ V
    """,
    # a local variable named like a top-level helper that uses the forbidden function
    """
    import math, torch
    import torch.nn.functional as F
    def weights(Q, K, V, mask=None):
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    def manual_attention(Q, K, V, mask=None):{body}    weights = torch.softmax(s, dim=-1)
        return weights @ V
    """,
    # the learner's own function defined after an import of the same name replaces it
    """
    import math, torch
    from torch.nn.functional import scaled_dot_product_attention
    def scaled_dot_product_attention(Q, K, V, mask=None):{body}    return torch.softmax(s, -1) @ V
    def manual_attention(Q, K, V, mask=None):
        return scaled_dot_product_attention(Q, K, V, mask)
    """,
    # an argument named like the alias
    """
    import math, torch
    import torch.nn.functional as F
    def manual_attention(Q, K, V, mask=None, F=None):{body}    return torch.softmax(s, -1) @ V
    """,
])
def test_names_the_function_binds_itself_hide_the_forbidden_import(tmp_path, text):
    assert uses(tmp_path, text.format(body=HAND_WRITTEN)) == []


@pytest.mark.parametrize("text,line", [
    ("""
    import torch.nn.functional as F
    def manual_attention(Q, K, V, mask=None):
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    """, 4),
    # through a top-level helper the graded function calls
    ("""
    import torch.nn.functional as F
    def helper(Q, K, V, mask):
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    def manual_attention(Q, K, V, mask=None):
        return helper(Q, K, V, mask)
    """, 4),
    # an import inside the graded function
    ("""
    def manual_attention(Q, K, V, mask=None):
        from torch.nn.functional import scaled_dot_product_attention as sdpa
        return sdpa(Q, K, V, attn_mask=mask)
    """, 4),
    # a top-level name assigned from the forbidden function
    ("""
    import torch
    sdpa = torch.nn.functional.scaled_dot_product_attention
    def manual_attention(Q, K, V, mask=None):
        return sdpa(Q, K, V, attn_mask=mask)
    """, 5),
    # an import that comes after a definition of the same name wins, as at run time
    ("""
    def scaled_dot_product_attention(Q, K, V, mask=None):
        return None
    from torch.nn.functional import scaled_dot_product_attention
    def manual_attention(Q, K, V, mask=None):
        return scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    """, 6),
    # a nested function that uses the module's alias; a global declaration reaches the module's name
    ("""
    import torch.nn.functional as F
    def manual_attention(Q, K, V, mask=None):
        def inner():
            return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
        return inner()
    """, 5),
    ("""
    import torch.nn.functional as F
    def manual_attention(Q, K, V, mask=None):
        global F
        return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
    """, 5),
])
def test_a_real_use_is_still_found(tmp_path, text, line):
    assert uses(tmp_path, text) == [line]


def test_one_use_is_reported_once_under_the_api_it_names(tmp_path):
    path = tmp_path / "sub.py"
    path.write_text("import torch.nn.functional as F\n\ndef manual_attention(Q, K, V, mask=None):\n    return F.scaled_dot_product_attention(Q, K, V)\n")
    apis = ["torch.ops.aten.scaled_dot_product_attention", SDPA]  # the first resembles the call (same name under torch)
    found = analyze(load_submission(str(path))).forbidden_uses("manual_attention", apis)
    assert [(u.api, u.line) for u in found] == [(SDPA, 4)]
