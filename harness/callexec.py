"""The one capture point: call a learner function on decoded inputs and turn *whatever happens*
(a value, an exception, sys.exit, a broken autograd graph, a forbidden API call) into data.

Runs inside a worker's per-case child process (and, for trusted code such as the reference and
the misconception library, in-process through `runner.InProcessRunner`). It never compares
anything with an expected value: verdicts are the grader's job.
"""

from __future__ import annotations

import reprlib
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

from .protocol import ProtocolError, decode_float64

MAX_OUTPUT_ELEMENTS = 8_000_000

# Captured before any learner code runs, so a submission that monkeypatches numpy at import time
# cannot change how inputs are built or outputs are read back.
_np_frombuffer = np.frombuffer
_np_asarray = np.asarray
_np_ascontiguousarray = np.ascontiguousarray
_np_float64 = np.float64
_ndarray = np.ndarray
_torch_refs: dict[str, Any] = {}


def prepare_torch() -> None:
    """Import torch and capture the few functions we use, before learner code can patch them."""
    import torch

    torch.set_num_threads(1)
    # Run autograd once before the fork, so each case child starts with it initialised. (Gradients
    # are taken of a scalar, sum(out * cotangent): passing grad_outputs would make torch import
    # ~500 modules, sympy among them, about 0.3 s.)
    probe = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    torch.autograd.grad((probe @ probe).softmax(-1).sum(), [probe], allow_unused=True)
    _torch_refs.update(
        torch=torch,
        Tensor=torch.Tensor,
        from_numpy=torch.from_numpy,
        grad=torch.autograd.grad,
        dtypes={
            "float64": torch.float64,
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
        },
    )


def torch_ready() -> bool:
    return bool(_torch_refs)


def warm_up() -> None:
    """Run the library code a call will use, on tiny inputs, in a freshly forked child.

    A fork shares memory copy-on-write; the first call in a new child pays for copying the pages
    numpy/torch write to (about 3 ms with torch loaded). Spare children do it before their case."""
    a = _np_ascontiguousarray(np.ones((2, 2)))
    (a @ a).sum()
    torch = _torch_refs.get("torch")
    if torch is not None:
        t = torch.ones(2, 3, 3, dtype=torch.float64, requires_grad=True)
        out = torch.softmax(t @ t.transpose(-2, -1), dim=-1) @ t
        _torch_refs["grad"](out.sum(), [t])


# ---------------------------------------------------------------- inputs


def _to_backend(arr: np.ndarray, backend: str, dtype: str) -> Any:
    if backend == "numpy":
        return arr.astype(dtype)
    if not _torch_refs:
        prepare_torch()
    return _torch_refs["from_numpy"](arr).to(_torch_refs["dtypes"][dtype])


def decode_args(nodes: list[dict[str, Any]], buffers: list[bytes], backend: str, dtype: str) -> list[Any]:
    def build(node: dict[str, Any]) -> Any:
        kind = node.get("t")
        if kind == "none":
            return None
        if kind in ("int", "bool"):
            return node["v"]
        if kind == "float":
            return float(node["v"])
        if kind == "array":
            return _to_backend(decode_float64(node, buffers), backend, dtype)
        if kind == "dict":
            return {k: build(v) for k, v in node["items"].items()}
        raise ProtocolError(f"unknown input node {kind!r}")

    return [build(n) for n in nodes]


def _array_bytes(value: Any) -> bytes | None:
    if isinstance(value, _ndarray):
        return value.tobytes()
    torch = _torch_refs.get("torch")
    if torch is not None and isinstance(value, _torch_refs["Tensor"]):
        return value.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes()
    return None


def _snapshot(args: list[Any], names: list[str]) -> dict[str, bytes]:
    snap: dict[str, bytes] = {}
    for name, value in zip(names, args):
        if isinstance(value, dict):
            for key, sub in value.items():
                b = _array_bytes(sub)
                if b is not None:
                    snap[f"{name}.{key}"] = b
        else:
            b = _array_bytes(value)
            if b is not None:
                snap[name] = b
    return snap


# ---------------------------------------------------------------- outputs


def _dtype_name(value: Any) -> str:
    return str(value.dtype).replace("torch.", "")


def describe_output(value: Any, buffers: list[bytes]) -> dict[str, Any]:
    """What the function returned: kind, type, dtype, shape, and its values as float64 bytes."""
    torch = _torch_refs.get("torch")
    if value is None:
        return {"kind": "none", "type": "NoneType"}
    if isinstance(value, _ndarray):
        desc: dict[str, Any] = {"kind": "ndarray", "type": "numpy.ndarray", "dtype": _dtype_name(value), "shape": list(value.shape)}
        return _with_values(desc, value, buffers)
    if torch is not None and isinstance(value, _torch_refs["Tensor"]):
        desc = {
            "kind": "tensor",
            "type": "torch.Tensor",
            "dtype": _dtype_name(value),
            "shape": list(value.shape),
            "device": str(value.device),
            "requires_grad": bool(value.requires_grad),
        }
        host = value.detach().to("cpu")
        if host.dtype in (torch.bfloat16, torch.float16):
            host = host.float()
        try:
            plain = host.resolve_conj().resolve_neg().numpy()
        except (TypeError, RuntimeError) as exc:
            desc["unreadable"] = f"cannot read the tensor's values: {exc}"
            return desc
        return _with_values(desc, plain, buffers)
    if isinstance(value, (list, tuple)):
        desc = {"kind": type(value).__name__, "type": type(value).__name__, "length": len(value)}
        try:
            arr = _np_asarray(value, dtype=_np_float64)
        except Exception as exc:  # noqa: BLE001 - any failure just means "not an array of numbers"
            desc["unreadable"] = f"not a rectangular list of numbers ({type(exc).__name__})"
            return desc
        desc["shape"] = list(arr.shape)
        return _with_values(desc, arr, buffers)
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return {"kind": "scalar", "type": type(value).__name__, "repr": reprlib.repr(value)}
    return {"kind": "other", "type": f"{type(value).__module__}.{type(value).__qualname__}", "repr": _safe_repr(value)}


def _safe_repr(value: Any) -> str:
    try:
        return reprlib.repr(value)
    except Exception:  # noqa: BLE001 - a learner object whose __repr__ raises
        return "<unprintable>"


def _with_values(desc: dict[str, Any], arr: np.ndarray, buffers: list[bytes]) -> dict[str, Any]:
    if arr.dtype.kind not in "fiub":
        desc["unreadable"] = f"values of dtype {arr.dtype} cannot be compared with real numbers"
        return desc
    if arr.size > MAX_OUTPUT_ELEMENTS:
        desc["unreadable"] = f"output has {arr.size} elements, too many to compare"
        return desc
    buffers.append(_np_ascontiguousarray(arr, dtype=_np_float64).tobytes())
    desc["values"] = len(buffers) - 1
    return desc


# ---------------------------------------------------------------- tripwires (forbidden APIs)


class Tripwires:
    """Records calls to forbidden APIs made while learner code runs.

    Two nets: the forbidden objects are swapped for recording wrappers (on their module and in
    the learner's globals), which also catches names built at run time; and sys.setprofile sees
    calls through references the learner captured elsewhere. Both are undone on exit.
    """

    def __init__(self, apis: list[str], learner_files: set[str], namespace: dict[str, Any] | None = None):
        self.learner_files = learner_files
        self.namespace = namespace
        self.builtins: dict[int, str] = {}
        self.codes: dict[Any, str] = {}
        self.hits: list[dict[str, Any]] = []
        self.targets: list[tuple[str, Any, str, Any]] = []
        self.undo: list[tuple[Any, str, Any]] = []
        for api in apis:
            found = _resolve(api)
            if found is None:
                continue
            owner, attr, target = found
            self.targets.append((api, owner, attr, target))
            if isinstance(target, type):
                for name in ("__init__", "forward"):
                    code = getattr(getattr(target, name, None), "__code__", None)
                    if code is not None:
                        self.codes[code] = api
            elif hasattr(target, "__code__"):
                self.codes[target.__code__] = api
            else:
                self.builtins[id(target)] = api

    def _learner_line(self, frame: Any) -> tuple[str, int] | None:
        while frame is not None:
            if frame.f_code.co_filename in self.learner_files:
                return frame.f_code.co_filename, frame.f_lineno
            frame = frame.f_back
        return None

    def record(self, api: str, frame: Any) -> None:
        if len(self.hits) < 20:
            where = self._learner_line(frame)
            hit = {"api": api, "file": where[0] if where else None, "line": where[1] if where else None}
            if hit not in self.hits:
                self.hits.append(hit)

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        api = None
        if event == "c_call":
            api = self.builtins.get(id(arg))
        elif event == "call":
            api = self.codes.get(frame.f_code)
        if api is not None:
            self.record(api, frame if event == "c_call" else frame.f_back)

    def _wrapper(self, api: str, target: Any) -> Any:
        tripwires = self
        if isinstance(target, type):

            class Tripped(target):  # type: ignore[valid-type, misc]
                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    tripwires.record(api, sys._getframe(1))
                    super().__init__(*args, **kwargs)

            Tripped.__name__, Tripped.__qualname__ = target.__name__, target.__qualname__
            return Tripped

        def tripped(*args: Any, **kwargs: Any) -> Any:
            tripwires.record(api, sys._getframe(1))
            return target(*args, **kwargs)

        tripped.__wrapped__ = target  # type: ignore[attr-defined]
        return tripped

    def __enter__(self) -> "Tripwires":
        for api, owner, attr, target in self.targets:
            wrapper = self._wrapper(api, target)
            try:
                setattr(owner, attr, wrapper)
                self.undo.append((owner, attr, target))
            except (AttributeError, TypeError):
                pass
            if self.namespace is not None:
                for name, value in list(self.namespace.items()):
                    if value is target:
                        self.namespace[name] = wrapper
                        self.undo.append((self.namespace, name, target))
        if self.builtins or self.codes:
            sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(None)
        for owner, attr, target in reversed(self.undo):
            if isinstance(owner, dict):
                owner[attr] = target
            else:
                setattr(owner, attr, target)
        self.undo.clear()


def _resolve(api: str) -> tuple[Any, str, Any] | None:
    """(owner, attribute, object) for a dotted API whose module is already imported, else None."""
    parts = api.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        owner: Any = module
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr, None)
            if owner is None:
                return None
        target = getattr(owner, parts[-1], None)
        return (owner, parts[-1], target) if target is not None else None
    return None


# ---------------------------------------------------------------- the call


def format_learner_traceback(exc: BaseException, learner_files: set[str]) -> tuple[str, int | None, str | None]:
    """The exception as the learner should see it: only frames from their own code. Returns (text, line, file)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in learner_files]
    lines = []
    for f in frames[-6:]:
        lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    lines.append("".join(traceback.format_exception_only(type(exc), exc)).strip())
    last = frames[-1] if frames else None
    return "\n".join(lines), (last.lineno if last else None), (last.filename if last else None)


def execute_call(
    fn: Callable[..., Any],
    header: dict[str, Any],
    buffers: list[bytes],
    learner_files: set[str],
) -> tuple[dict[str, Any], list[bytes]]:
    """Run one call request; always returns a response (header, buffers), whatever the function did."""
    backend, dtype = header["backend"], header["dtype"]
    names: list[str] = header["arg_names"]
    args = decode_args(header["args"], buffers, backend, dtype)
    grad_req = header.get("grad")
    leaves: dict[str, Any] = {}
    if grad_req:
        args = _attach_grad(args, names, grad_req["wrt"], leaves)
    before = _snapshot(args, names) if header.get("check_mutation", True) else {}
    out_buffers: list[bytes] = []
    response: dict[str, Any] = {"status": "ok"}
    tripwires = Tripwires(header.get("forbidden", []), learner_files, getattr(fn, "__globals__", None))
    start = time.perf_counter()
    try:
        with tripwires:
            value = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the capture point: SystemExit and KeyboardInterrupt included
        response["duration"] = time.perf_counter() - start
        text, line, file = format_learner_traceback(exc, learner_files)
        response.update(status="raised", error={"type": type(exc).__name__, "message": _safe_str(exc), "traceback": text, "line": line, "file": file})
        if isinstance(exc, SystemExit):
            response["error"]["message"] = f"the function called sys.exit({exc.code!r})"
        response["tripwires"] = tripwires.hits
        return response, out_buffers
    response["duration"] = time.perf_counter() - start
    response["tripwires"] = tripwires.hits
    try:
        response["output"] = describe_output(value, out_buffers)
    except Exception as exc:  # noqa: BLE001 - a returned object that breaks when inspected
        response["output"] = {"kind": "other", "type": type(value).__name__, "unreadable": f"reading the output failed: {_safe_str(exc)}"}
    after = _snapshot(args, names) if before else {}
    response["mutated"] = sorted(k for k, v in before.items() if after.get(k) != v)
    if grad_req:
        response.update(_gradients(value, leaves, grad_req, buffers, out_buffers))
    return response, out_buffers


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:2000]
    except Exception:  # noqa: BLE001
        return "<exception message could not be printed>"


def _attach_grad(args: list[Any], names: list[str], wrt: list[str], leaves: dict[str, Any]) -> list[Any]:
    """Make the requested inputs autograd leaves; the function gets a clone, so an in-place edit
    of its input is a mutation (judged elsewhere), not an autograd error."""
    out = list(args)
    for i, name in enumerate(names):
        value = out[i]
        if isinstance(value, dict):
            value = dict(value)
            for key in value:
                if f"{name}.{key}" in wrt:
                    leaf = value[key].detach().clone().requires_grad_(True)
                    leaves[f"{name}.{key}"] = leaf
                    value[key] = leaf.clone()
            out[i] = value
        elif name in wrt:
            leaf = value.detach().clone().requires_grad_(True)
            leaves[name] = leaf
            out[i] = leaf.clone()
    return out


def _gradients(value: Any, leaves: dict[str, Any], grad_req: dict[str, Any], buffers: list[bytes], out_buffers: list[bytes]) -> dict[str, Any]:
    torch = _torch_refs.get("torch")
    if torch is None or not isinstance(value, _torch_refs["Tensor"]):
        return {"grad_error": "the output is not a torch.Tensor, so no gradient can flow back to the inputs"}
    cot = decode_float64(grad_req["cotangent"], buffers)
    if tuple(value.shape) != cot.shape:
        return {"grad_error": f"the output shape {tuple(value.shape)} is not {cot.shape}, so gradients were not compared"}
    if not value.requires_grad:
        return {
            "grad_error": "the output does not require grad although the inputs do: the computation left autograd "
            "(e.g. a .numpy() round trip, .detach(), .item(), torch.tensor(...) rebuilt from values, or writes through .data)"
        }
    names = list(leaves)
    try:
        loss = (value * _torch_refs["from_numpy"](cot).to(value.dtype)).sum()  # its gradient is the VJP with `cot`
        grads = _torch_refs["grad"](loss, [leaves[n] for n in names], allow_unused=True)
    except BaseException as exc:  # noqa: BLE001 - a learner's custom backward may raise anything
        return {"grad_error": f"backward() raised {type(exc).__name__}: {_safe_str(exc)}"}
    result: dict[str, Any] = {}
    missing = []
    for name, g in zip(names, grads):
        if g is None:
            missing.append(name)
            continue
        arr = g.detach().to("cpu").float().numpy() if g.dtype in (torch.float16, torch.bfloat16) else g.detach().to("cpu").numpy()
        out_buffers.append(_np_ascontiguousarray(arr, dtype=_np_float64).tobytes())
        result[name] = {"shape": list(arr.shape), "buf": len(out_buffers) - 1}
    out: dict[str, Any] = {"grads": result}
    if missing:
        out["grad_missing"] = missing
    return out
