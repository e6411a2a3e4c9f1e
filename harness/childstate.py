"""What a case could leave behind in its process, checked after each case (in the case child).

A case child runs the zygote's next case only if the case changed nothing a later case could see
(harness/grade.py, docs/isolation.md). "Nothing" is checked against a snapshot taken when the child
was forked, i.e. the submission as loaded:

- the submission's own globals, and those of its helper modules: the same objects under the same
  names, containers of the same length, small arrays with the same bytes, tensors not written in
  place (torch's version counter);
- the libraries a case can patch: every attribute of numpy, torch, torch.nn, torch.nn.functional,
  torch.Tensor, math, builtins and of any other module the submission's globals name is still the
  object it was (attributes added to a module later, such as torch's lazily imported submodules,
  are ignored; torch.Tensor gains none: one added there shadows an inherited method);
- global switches: torch's default dtype, grad mode, thread count and deterministic mode, and
  NumPy's floating-point error handling.

A change that escapes all of these (state deep inside a library) can reach later cases of the same
submission; the first failure in a shared child is rerun in a fresh one to catch what it changed.
It never reaches another submission.
"""

from __future__ import annotations

import operator
import os
import sys
import types
from typing import Any, Mapping

LIBRARIES = ("numpy", "numpy.linalg", "torch", "torch.nn", "torch.nn.functional", "math", "builtins")
SMALL_ARRAY_BYTES = 1 << 16
_is = operator.is_


class Snapshot:
    """The state of this process that a case must not change, taken once; `changed()` compares."""

    def __init__(self, namespace: dict[str, Any], learner_files: set[str]):
        self.namespace = namespace
        self.learner_files = learner_files
        self.own = self._own_state()
        # per library namespace: its names then, and the objects they named (kept alive here, so
        # their ids cannot be reused by other objects)
        self.libraries = [(d, tuple(d), tuple(d.values()), root) for d, root in self._library_dicts()]
        torch = sys.modules.get("torch")
        tensor = getattr(torch, "Tensor", None) if torch is not None else None
        self.tensor_names = (vars(tensor), len(vars(tensor))) if isinstance(tensor, type) else None
        self.switches = _switches()

    def changed(self) -> bool:
        try:
            if self._own_state() != self.own or _switches() != self.switches:
                return True
            # each name still bound to the very object it was (held above, so `is` cannot be fooled),
            # or to the library's own wrapper of it
            for d, names, values, root in self.libraries:
                if not all(map(_is, map(d.get, names), values)) and not all(map(_same_or_own_wrapper, map(d.get, names), values, (root,) * len(names))):
                    return True
            # a class's namespace gains no names on its own (a module's does: lazy submodules), so a
            # name added to torch.Tensor shadows an inherited method (torch.Tensor.add = ...)
            return self.tensor_names is not None and len(self.tensor_names[0]) != self.tensor_names[1]
        except Exception:  # noqa: BLE001 - learner objects can raise anywhere: count it as a change
            return True

    def _own_dicts(self) -> list[dict[str, Any]]:
        """The submission's namespace and its helper modules' (sys.modules is searched again only
        when a module was imported since the last search)."""
        count = len(sys.modules)
        if getattr(self, "_own_cache", (None, -1))[1] != count:
            dicts = [self.namespace]
            for module in list(sys.modules.values()):
                if getattr(module, "__file__", None) in self.learner_files and module.__dict__ is not self.namespace:
                    dicts.append(module.__dict__)
            self._own_cache = (dicts, count)
        return list(self._own_cache[0])

    def _own_state(self) -> list[tuple[Any, ...]]:
        return [tuple((k, id(v), _shallow(v)) for k, v in list(d.items())) for d in self._own_dicts()]

    def _library_dicts(self) -> list[tuple[Mapping[str, Any], str | None]]:
        """Each library namespace with the folder of the package it belongs to (None: unknown)."""
        modules = [sys.modules[name] for name in LIBRARIES if name in sys.modules]
        for d in self._own_dicts():
            modules += [v for v in d.values() if isinstance(v, types.ModuleType) and getattr(v, "__file__", None) not in self.learner_files]
        dicts: dict[int, tuple[Mapping[str, Any], str | None]] = {id(m.__dict__): (m.__dict__, _package_root(m)) for m in modules}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(getattr(torch, "Tensor", None), type):
            dicts[0] = (vars(torch.Tensor), _package_root(torch))  # a live view of the class's namespace (methods patched on tensors)
        return list(dicts.values())



def _package_root(module: Any) -> str | None:
    """The folder of the top-level package a module belongs to (torch.nn.functional -> .../torch/)."""
    top = sys.modules.get(str(getattr(module, "__name__", "")).split(".")[0])
    path = getattr(top, "__file__", None)
    return os.path.dirname(path) + os.sep if isinstance(path, str) and path.endswith("__init__.py") else None


def _same_or_own_wrapper(now: Any, then: Any, root: str | None) -> bool:
    """`now` is `then`, or a library's own wrapper of it: a function whose code is in the library's
    package and whose __wrapped__ is the original (PyTorch rebinds torch.manual_seed that way when
    a call first imports torch._dynamo, e.g. torch.utils.checkpoint). A learner's function, code
    in the learner's file, is not one, whatever it claims to wrap."""
    if now is then:
        return True
    code = getattr(now, "__code__", None)
    return (
        root is not None
        and type(now) is types.FunctionType
        and isinstance(code, types.CodeType)
        and code.co_filename.startswith(root)
        and getattr(now, "__wrapped__", None) is then
    )


def _shallow(value: Any) -> Any:
    """What can change inside a global without rebinding it: a container's length, a small array's
    bytes, a tensor's in-place version counter."""
    kind = type(value)
    if kind in (list, dict, set, bytearray):
        return len(value)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return (value.shape, str(value.dtype), value.tobytes() if value.nbytes <= SMALL_ARRAY_BYTES else value.ctypes.data)
    version = getattr(value, "_version", None) if kind.__module__.startswith("torch") else None
    return version if isinstance(version, int) else None


def _switches() -> tuple[Any, ...]:
    out: list[Any] = []
    torch = sys.modules.get("torch")
    if torch is not None:
        out += [torch.get_default_dtype(), torch.is_grad_enabled(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()]
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        out.append(tuple(sorted(numpy.geterr().items())))
    return tuple(out)
