"""Write a learner-style submission file that makes one catalogued mistake.

The file must not import attnspec (submissions may not), so it carries its own copy of the
knob-driven computation (`reference/variants.py`, made standalone) and then defines the
contract functions the way a learner with that misconception would.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from attnspec.exercises import EXERCISES
from attnspec.misconceptions import Misconception
from attnspec.reference import variants

_STANDALONE = (
    Path(variants.__file__)
    .read_text()
    .replace("from . import numpy_ref\n", "")
    .replace("numpy_ref.LAYER_NORM_EPS", "1e-5")
    .replace("numpy_ref.erf(x)", "np.vectorize(math.erf, otypes=[np.float64])(x)")
)
assert "numpy_ref" not in _STANDALONE, "the learner files must not depend on attnspec"



def _params(exercise: str) -> str:
    """The parameter list of an exercise's signature, defaults included ("Q, K, V, mask=None")."""
    signature = EXERCISES[exercise].signature
    return signature[signature.index("(") + 1 : -1]


# Each function, correct, through the standalone variants (`_variant_<name>`: the learner file
# redefines the public names, so the knob-driven versions are kept under their own).
_CORRECT = {e: f"def {e}({_params(e)}):\n    return _variant_{e}({', '.join(EXERCISES[e].args)})\n" for e in EXERCISES}
_SIGNATURES = {e: (_params(e), ", ".join(EXERCISES[e].args)) for e in EXERCISES}
_IMPL = {e: f"_variant_{e}" for e in EXERCISES}
_ALIASES = "".join(f"_variant_{e} = {EXERCISES[e].variant_function}\n" for e in EXERCISES)

# Structural mistakes, as a learner would write them (one template per kind; {sig}, {args},
# {impl}, {first} are filled in per exercise).
_STRUCTURAL = {
    "modifies_inputs": """
        def {name}({sig}):
            out = {impl}({args})
            if type({first}).__module__.startswith("torch"):
                {first}.mul_(2.0)
            else:
                {first} *= 2.0
            return out
        """,
    "wrong_dtype": """
        def {name}({sig}):
            out = {impl}({args})
            return out.double() if type(out).__module__.startswith("torch") else out.astype(np.float64)
        """,
    "wrong_array_type": """
        def {name}({sig}):
            out = {impl}({args})
            return out.detach().numpy() if type(out).__module__.startswith("torch") else out.tolist()
        """,
    "numpy_roundtrip": """
        def {name}({sig}):
            def plain(a):
                if isinstance(a, dict):
                    return {{k: plain(v) for k, v in a.items()}}
                if isinstance(a, list):
                    return [plain(v) for v in a]
                return a.detach().numpy() if type(a).__module__.startswith("torch") else a
            out = {impl}(*[plain(a) for a in [{args}]])
            return torch.tensor(out, dtype={first}.dtype)
        """,
    "returns_tuple": """
        def {name}({sig}):
            out = {impl}({args})
            return out, out
        """,
    "fails_without_mask": """
        def {name}({sig}):
            if mask is None:
                raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'NoneType'")
            return {impl}({args})
        """,
    "no_grad": """
        def {name}({sig}):
            with torch.no_grad():
                return {impl}({args})
        """,
    "half_fill_overflow": """
        def {name}({sig}):
            if mask is not None:
                torch.zeros(1, dtype={first}.dtype).masked_fill(torch.tensor([True]), -1e9)
            return {impl}({args})
        """,
    "data_write": """
        def manual_attention(Q, K, V, mask=None):
            scores = Q @ K.transpose(-2, -1)
            scores.data = scores.data / math.sqrt(Q.shape[-1])
            if mask is not None:
                scores = scores + mask
            return torch.softmax(scores, dim=-1) @ V
        """,
}


def learner_source(m: Misconception, backend: str) -> str:
    """A complete submission with mistake `m`; the other functions are correct."""
    head = "import math\nimport numpy as np\n" + ("import torch\n" if backend == "torch" else "")
    parts = [
        head,
        _STANDALONE,
        _ALIASES,
    ]
    functions = dict(_CORRECT)
    kind = m.id.split(".", 1)[1]
    if kind in _STRUCTURAL:
        sig, args = _SIGNATURES[m.exercise]
        functions[m.exercise] = textwrap.dedent(_STRUCTURAL[kind]).format(
            name=m.exercise, sig=sig, args=args, impl=_IMPL[m.exercise], first=args.split(",")[0], is_ma=m.exercise == "manual_attention"
        )
    else:
        sig, args = _SIGNATURES[m.exercise]
        functions[m.exercise] = f"def {m.exercise}({sig}):\n    return {_IMPL[m.exercise]}({args}, **{m.knobs!r})\n"
    parts.extend(functions.values())
    return "\n\n".join(parts)
