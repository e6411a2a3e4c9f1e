"""The one capture point: call a learner function on decoded inputs and turn *whatever happens*
(a value, an exception, sys.exit, a broken autograd graph, a forbidden API call) into data.

Runs inside a worker's per-case child process (and, for trusted code such as the reference and
the misconception library, in-process through `runner.InProcessRunner`). It never compares
anything with an expected value: verdicts are the grader's job.
"""

from __future__ import annotations

import builtins
import itertools
import operator
import reprlib
import types
import signal
import sys
import time
import traceback
from typing import Any, Callable, cast

import numpy as np

from .protocol import MAX_OUTPUT_ELEMENTS, Call, CallReply, ErrorInfo, Hit, OutputDesc, ProtocolError, Sample, decode_array, decode_float64


# Captured before any learner code runs, so a submission that monkeypatches numpy (or builtins)
# at import time cannot change how inputs are built or outputs are read back. A returned value is
# read only through base-class descriptors and methods (np.ndarray.dtype.__get__, ndarray.tobytes,
# torch's TensorBase under DisableTorchFunction): attributes, properties, __class__, __array__ and
# __torch_function__ that the object defines are never consulted.
_np_frombuffer = np.frombuffer
_np_asarray = np.asarray
_np_ascontiguousarray = np.ascontiguousarray
_np_float64 = np.float64
_ndarray = np.ndarray
_nd_dtype = np.ndarray.dtype.__get__
_nd_shape = np.ndarray.shape.__get__
_nd_view = np.ndarray.view
_nd_tobytes = np.ndarray.tobytes
_nd_astype = np.ndarray.astype
_type = builtins.type
_issubclass = builtins.issubclass
_len = builtins.len
_str = builtins.str
_repr = builtins.repr
_tuple = builtins.tuple
_list = builtins.list
_enumerate = builtins.enumerate
_getprofile = sys.getprofile
_perf_counter = time.perf_counter
_TYPE_NAME = type.__dict__["__name__"].__get__
_setprofile = sys.setprofile
_SAFE_REPR = (str, bytes, int, float, complex, bool)
_NUMBERS = (int, float, bool)
_NP_SCALARS = frozenset(t for t in np.sctypeDict.values() if isinstance(t, type))
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
    base = getattr(torch._C, "TensorBase", None) or torch._C._TensorBase
    _torch_refs.update(
        torch=torch,
        Tensor=torch.Tensor,
        base=base,
        no_tf=torch._C.DisableTorchFunction,
        from_numpy=torch.from_numpy,
        grad=torch.autograd.grad,
        t_dtype=getattr(base.dtype, "__get__"),  # the descriptors themselves, read off the base class
        t_shape=getattr(base.shape, "__get__"),
        t_device=base.device.__get__,
        t_requires_grad=getattr(base.requires_grad, "__get__"),
        t_detach=base.detach,
        t_to=base.to,
        t_float=base.float,
        t_contiguous=base.contiguous,
        t_view=base.view,
        t_numpy=base.numpy,
        t_clone=base.clone,
        t_requires_grad_=base.requires_grad_,
        t_resolve_conj=base.resolve_conj,
        t_resolve_neg=base.resolve_neg,
        t_mul=base.mul,
        t_sum=base.sum,
        uint8=torch.uint8,
        int16=torch.int16,
        half_types=(torch.float16, torch.bfloat16),
        dtypes={
            "float64": torch.float64,
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
        },
    )


def torch_ready() -> bool:
    return bool(_torch_refs)


def _is_tensor(value: Any) -> bool:
    return bool(_torch_refs) and _issubclass(_type(value), _torch_refs["base"])


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
        return _nd_astype(arr, dtype)
    if not _torch_refs:
        prepare_torch()
    t = _torch_refs
    with t["no_tf"]():
        return t["t_to"](t["from_numpy"](arr), t["dtypes"][dtype])


def decode_args(nodes: list[Any], buffers: list[bytes], backend: str, dtype: str) -> list[Any]:
    def build(node: Any, depth: int) -> Any:
        if _type(node) is not dict or depth > 4:
            raise ProtocolError("an input node is not an object")
        kind = node.get("t")
        if kind == "none":
            return None
        if kind in ("int", "bool"):
            return node["v"]
        if kind == "float":
            return float(node["v"])
        if kind == "array":
            return _to_backend(decode_array(node, buffers), backend, dtype)
        if kind == "dict":
            return {k: build(v, depth + 1) for k, v in node["items"].items()}
        if kind == "list" and _type(node.get("items")) is list:
            return [build(v, depth + 1) for v in node["items"]]
        raise ProtocolError(f"unknown input node {kind!r}")

    return [build(n, 0) for n in nodes]


def _array_bytes(value: Any) -> bytes | None:
    """The raw bytes of an array or tensor, read with base-class methods only."""
    kind = _type(value)
    if _issubclass(kind, _ndarray):
        return _nd_tobytes(value)
    if _is_tensor(value):
        t = _torch_refs
        with t["no_tf"]():
            host = t["t_contiguous"](t["t_to"](t["t_detach"](value), "cpu"))
            return _nd_tobytes(t["t_numpy"](t["t_view"](host, t["uint8"])))
    return None


def _snapshot(args: list[Any], names: list[str]) -> dict[str, bytes]:
    snap: dict[str, bytes] = {}

    def add(name: str, value: Any, depth: int) -> None:
        if _type(value) is dict and depth < 3:
            items = _list(dict.items(value))
            # the container itself: a key added or removed is a change too (its names, not str() of learner objects)
            snap[name] = "\x00".join(k if _type(k) is str else "<key>" for k, _ in items).encode("utf-8", "surrogatepass")
            for key, sub in items:
                add(f"{name}.{key}", sub, depth + 1)
        elif _type(value) is list and depth < 3:
            items = _list(value)
            snap[name] = b"%d items" % _len(items)
            for i, sub in _enumerate(items):
                add(f"{name}.{i}", sub, depth + 1)
        else:
            b = _array_bytes(value)
            if b is not None:
                snap[name] = b

    for name, value in zip(names, args):
        add(name, value, 0)
    return snap


# ---------------------------------------------------------------- outputs


def _qualname(kind: type) -> str:
    module = type.__dict__["__module__"].__get__(kind)
    name = type.__dict__["__qualname__"].__get__(kind)
    return f"{module}.{name}" if _type(module) is str and _type(name) is str else "object"


def describe_output(value: Any, buffers: list[bytes]) -> dict[str, Any]:
    """What the function returned: kind, type, dtype, shape, and its values as float64 bytes.

    Reads only through base-class descriptors (never the object's own attributes) and runs no
    code the learner wrote: a lying `dtype` property, a faked `__class__`, `__array__` or
    `__torch_function__` change nothing."""
    kind = _type(value)
    if value is None:
        return {"kind": "none", "type": "NoneType"}
    if _issubclass(kind, _ndarray):
        dtype = _nd_dtype(value)
        base = _nd_view(value, _ndarray)
        desc: dict[str, Any] = {"kind": "ndarray", "type": "numpy.ndarray", "dtype": _str(dtype), "shape": _list(_nd_shape(value))}
        return _with_values(desc, base, buffers)
    if _is_tensor(value):
        return _describe_tensor(value, buffers)
    if kind is list or kind is tuple:
        desc = {"kind": kind.__name__, "type": kind.__name__, "length": _len(value)}
        if not _plain_numbers(value, 0):
            desc["unreadable"] = "not a rectangular list of numbers (it holds other objects)"
            return desc
        try:
            arr = _np_asarray(value, dtype=_np_float64)
        except Exception as exc:  # noqa: BLE001 - any failure just means "not an array of numbers"
            desc["unreadable"] = f"not a rectangular list of numbers ({_type(exc).__name__})"
            return desc
        desc["shape"] = _list(_nd_shape(arr))
        return _with_values(desc, arr, buffers)
    if kind in _SAFE_REPR or kind in _NP_SCALARS:
        return {"kind": "scalar", "type": kind.__name__, "repr": reprlib.repr(value)}
    return {"kind": "other", "type": _qualname(kind), "repr": f"<{_qualname(kind)} object>"}


def _fit(desc: dict[str, Any]) -> dict[str, Any]:
    """A description within the protocol's limits: a 40-dimensional array or a 10 kB type name is
    described as unreadable, not sent as a message the grader must refuse."""
    for key, size in (("type", 300), ("dtype", 64), ("device", 64), ("repr", 4000)):
        if _type(desc.get(key)) is str and _len(desc[key]) > size:
            desc[key] = desc[key][: size - 3] + "..."
    if _type(desc.get("shape")) is list and _len(desc["shape"]) > 32:
        desc["unreadable"] = f"the output has {_len(desc['shape'])} dimensions"
        desc["shape"] = None
        desc.pop("values", None)
    return desc


def _plain_numbers(value: Any, depth: int) -> bool:
    """True if a list/tuple holds only plain numbers, numpy scalars, base ndarrays or such lists:
    converting it then runs no code of the learner's."""
    if depth > 32:
        return False
    for item in value:
        kind = _type(item)
        if kind in _NUMBERS or kind is _ndarray or kind in _NP_SCALARS:
            continue
        if (kind is list or kind is tuple) and _plain_numbers(item, depth + 1):
            continue
        return False
    return True


def _describe_tensor(value: Any, buffers: list[bytes]) -> dict[str, Any]:
    t = _torch_refs
    with t["no_tf"]():
        dtype = t["t_dtype"](value)
        desc: dict[str, Any] = {
            "kind": "tensor",
            "type": "torch.Tensor",
            "dtype": _str(dtype).replace("torch.", ""),
            "shape": [int(s) for s in t["t_shape"](value)],
            "device": _str(t["t_device"](value)),
            "requires_grad": bool(t["t_requires_grad"](value)),
        }
        encoding = None
        try:
            host = t["t_resolve_neg"](t["t_resolve_conj"](t["t_to"](t["t_detach"](value), "cpu")))
            if dtype == t["dtypes"]["bfloat16"]:  # numpy has no bfloat16: send its raw 2-byte words
                host, encoding = t["t_view"](t["t_contiguous"](host), t["int16"]), "bfloat16"
            plain = t["t_numpy"](host)
        except (TypeError, RuntimeError) as exc:
            desc["unreadable"] = f"cannot read the tensor's values: {_safe_str(exc)}"
            return desc
    return _with_values(desc, plain, buffers, encoding)


# Dtypes whose values are sent as their own bytes: the grader converts them, so a reported dtype
# is backed by a buffer of exactly that element size (a claim it cannot be made to believe alone).
RAW_ENCODINGS = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool")


def _with_values(desc: dict[str, Any], arr: np.ndarray, buffers: list[bytes], encoding: str | None = None) -> dict[str, Any]:
    dtype = _nd_dtype(arr)
    if dtype.kind not in "fiub":
        desc["unreadable"] = f"values of dtype {dtype} cannot be compared with real numbers"
        return desc
    if arr.size > MAX_OUTPUT_ELEMENTS:
        desc["unreadable"] = f"output has {arr.size} elements, too many to compare"
        return desc
    name = encoding or _str(dtype)
    if name in RAW_ENCODINGS or encoding is not None:
        buffers.append(_nd_tobytes(_np_ascontiguousarray(arr)))
    else:
        name = "float64"
        buffers.append(_nd_tobytes(_np_ascontiguousarray(arr, dtype=_np_float64)))
    desc["values"] = _len(buffers) - 1
    desc["encoding"] = name
    return desc


# ---------------------------------------------------------------- tripwires (forbidden APIs)


class Tripwires:
    """Records calls to forbidden APIs made while learner code runs.

    Two nets: the forbidden objects are swapped for recording wrappers (on their module and in
    the learner's globals), which also catches names built at run time; and sys.setprofile sees
    calls through references the learner captured elsewhere. Both are undone on exit.

    Learner code can reach this object through stack frames or the garbage collector. So the
    wrappers and the profiler record through closures (not attributes), and `intact()` checks,
    after the call, that the profiler and every wrapper are still in place and that no recorded
    hit was removed: a submission that switches the nets off is caught, not believed.
    """

    def __init__(self, apis: list[str], learner_files: set[str], namespace: dict[str, Any] | None = None):
        self.learner_files = learner_files
        self.namespace = namespace
        self.builtins: dict[int, str] = {}
        self.codes: dict[Any, str] = {}
        self.instances: dict[Any, list[tuple[Any, str]]] = {}
        self.hits: list[dict[str, Any]] = []
        self.targets: list[tuple[str, Any, str, Any]] = []
        self.undo: list[tuple[Any, str, Any]] = []
        self.installed: list[tuple[Any, str, Any]] = []
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
            elif _type(getattr(_type(target), "__call__", None)) is types.FunctionType:
                # an object called through its class's Python __call__ (torch.ops.aten's op
                # packets): that code runs for every such object, so the hit is the call whose
                # `self` is this one
                self.instances.setdefault(_type(target).__call__.__code__, []).append((target, api))
            else:
                self.builtins[id(target)] = api
        self.record, self.profile, self.count = self._closures()

    def _closures(self) -> tuple[Callable[[str, Any], None], Callable[..., None], Callable[[], tuple[int, list[Any]]]]:
        """record/profile/count functions that hold their state in closure cells."""
        hits, learner_files = self.hits, frozenset(self.learner_files)
        builtins_map, codes, instances = dict(self.builtins), dict(self.codes), {k: tuple(v) for k, v in self.instances.items()}
        seen: list[Any] = []
        getframe_line = _learner_line

        def record(api: str, frame: Any) -> None:
            if _len(seen) < 20:
                where = getframe_line(frame, learner_files)
                hit = {"api": api, "file": where[0] if where else None, "line": where[1] if where else None}
                if hit not in seen:
                    seen.append(hit)
                    hits.append(dict(hit))

        def profile(frame: Any, event: str, arg: Any) -> None:
            api = None
            if event == "c_call":
                api = builtins_map.get(id(arg))
            elif event == "call":
                api = codes.get(frame.f_code)
                if api is None and frame.f_code in instances:
                    me = frame.f_locals.get("self")
                    api = next((name for target, name in instances[frame.f_code] if target is me), None)
            if api is not None:
                record(api, frame if event == "c_call" else frame.f_back)

        def count() -> tuple[int, list[Any]]:
            return _len(seen), [dict(h) for h in seen]

        return record, profile, count

    def _wrapper(self, api: str, target: Any) -> Any:
        record = self.record
        getframe = sys._getframe
        if isinstance(target, type):

            class Tripped(target):
                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    record(api, getframe(1))
                    super().__init__(*args, **kwargs)

            Tripped.__name__, Tripped.__qualname__ = target.__name__, target.__qualname__
            return Tripped

        def tripped(*args: Any, **kwargs: Any) -> Any:
            record(api, getframe(1))
            return target(*args, **kwargs)

        tripped.__wrapped__ = target  # type: ignore[attr-defined]
        return tripped

    def __enter__(self) -> "Tripwires":
        for api, owner, attr, target in self.targets:
            wrapper = self._wrapper(api, target)
            try:
                setattr(owner, attr, wrapper)
                self.undo.append((owner, attr, target))
                self.installed.append((owner, attr, wrapper))
            except (AttributeError, TypeError):
                pass
            if self.namespace is not None:
                for name, value in list(self.namespace.items()):
                    if value is target:
                        self.namespace[name] = wrapper
                        self.undo.append((self.namespace, name, target))
        self.profiling = bool(self.builtins or self.codes or self.instances)
        if self.profiling:
            _setprofile(self.profile)
        return self

    def intact(self) -> str | None:
        """None if the nets are as they were installed; else what the learner's code changed."""
        if self.profiling and _getprofile() is not self.profile:
            return "it switched off the grader's call tracing"
        for owner, attr, wrapper in self.installed:
            if getattr(owner, attr, None) is not wrapper:
                return f"it removed the grader's check on {getattr(owner, '__name__', '?')}.{attr}"
        return None

    def intact_after(self) -> str | None:
        """After the nets are down: the nets must still be down (learner code ran since)."""
        if _getprofile() is not None:
            return "it installed its own call tracer in the grader's place"
        return None

    def final_hits(self) -> list[dict[str, Any]]:
        """The hits as recorded in the closure (the `hits` attribute may have been edited)."""
        return self.count()[1]

    def __exit__(self, *exc: Any) -> None:
        _setprofile(None)
        for owner, attr, target in reversed(self.undo):
            if isinstance(owner, dict):
                owner[attr] = target
            else:
                setattr(owner, attr, target)
        self.undo.clear()


def _learner_line(frame: Any, learner_files: frozenset[str]) -> tuple[str, int] | None:
    while frame is not None:
        if frame.f_code.co_filename in learner_files:
            return frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None


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


# ---------------------------------------------------------------- where the time goes

SAMPLE_INTERVAL_S = 0.01
MAX_SAMPLED_LINES = 200


class TimeLimit(BaseException):
    """Raised into learner code by the sampler when a call runs past its `stop_after`, so the
    case child reports (with its samples) before the zygote's hard kill at the case's deadline."""


class _Sampler:
    """Counts, every SAMPLE_INTERVAL_S of wall time (ITIMER_REAL), which line of the learner's
    code is running (the innermost frame in a learner file). Diagnostic only: the verdict is the
    grader's own timing. With `stop_after`, the first tick past it that lands in learner code
    raises TimeLimit there (once; a submission that swallows it runs on to the hard kill)."""

    def __init__(self, learner_files: set[str], stop_after: float | None):
        self.files = frozenset(learner_files)
        self.stop_after = stop_after
        self.counts: dict[tuple[str, int], int] = {}
        self.start = 0.0
        self.armed = False
        self.stopped: float | None = None
        self.previous: Any = None

    def begin(self) -> None:
        try:
            self.previous = signal.signal(signal.SIGALRM, self._tick)
        except (ValueError, OSError):  # not the main thread (in-process runs): no sampling
            return
        self.start = _perf_counter()
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, SAMPLE_INTERVAL_S, SAMPLE_INTERVAL_S)

    def end(self) -> None:
        if not self.armed:
            return
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            signal.signal(signal.SIGALRM, self.previous if self.previous is not None else signal.SIG_DFL)
        except (ValueError, OSError, TypeError):
            pass

    def _tick(self, signum: int, frame: Any) -> None:
        if not self.armed:
            return
        here = frame
        while here is not None and here.f_code.co_filename not in self.files:
            here = here.f_back
        if here is None:
            return
        key = (here.f_code.co_filename, here.f_lineno)
        if key in self.counts or _len(self.counts) < MAX_SAMPLED_LINES:
            self.counts[key] = self.counts.get(key, 0) + 1
        # Raise only where learner code itself runs (never inside our own tracing or library code).
        if self.stop_after is not None and self.stopped is None and frame.f_code.co_filename in self.files:
            elapsed = _perf_counter() - self.start
            if elapsed > self.stop_after:
                self.stopped = elapsed
                raise TimeLimit(f"stopped by the grader after {elapsed:.1f} s")

    def samples(self) -> list[dict[str, Any]]:
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])
        return [{"file": f[:4096], "line": int(line), "count": int(n)} for (f, line), n in ranked]


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
    """Run one call request; always returns a response (header, buffers), whatever the function did.

    The response says what happened (value, exception, mutation, forbidden calls); it decides
    nothing: values are compared with the expected ones in the grader process only."""
    call = Call.parse(header, strict=False)
    args = decode_args(call.args, buffers, call.backend, call.dtype)
    leaves: dict[str, Any] = {}
    if call.grad:
        args = _attach_grad(args, call.arg_names, call.grad.wrt, leaves)
    # a tuple: learner code that reaches this frame (its f_back) cannot empty it
    before = tuple(_snapshot(args, call.arg_names).items()) if call.check_mutation else ()
    out_buffers: list[bytes] = []
    tripwires = Tripwires(call.forbidden, learner_files, getattr(fn, "__globals__", None))
    raised: BaseException | None = None
    value: Any = None
    sampler = _Sampler(learner_files, call.stop_after) if call.sample else None
    start = _perf_counter()
    tripwires.__enter__()
    if sampler is not None:
        sampler.begin()
    try:
        value = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the capture point: SystemExit and KeyboardInterrupt included
        raised = exc
    finally:
        if sampler is not None:
            sampler.end()
        duration = _perf_counter() - start
        tampered = tripwires.intact() or _own_code_changed()
        tripwires.__exit__()
    error = None
    if raised is not None and tampered is None:
        # The exception's __str__ is learner code: run it before the reply exists.
        text, line, file = format_learner_traceback(raised, learner_files)
        message = f"the function called sys.exit({_repr(raised.code) if _type(raised.code) in _SAFE_REPR or raised.code is None else _safe_str(raised.code)})" if _type(raised) is SystemExit else _safe_str(raised)
        error = ErrorInfo(type=_TYPE_NAME(_type(raised))[:300], message=message, traceback=text[:8000], line=line, file=file)
        tampered = tripwires.intact_after()
    reply = CallReply(status="ok", duration=duration, tripwires=cast("list[Hit]", tripwires.final_hits()))  # the same JSON objects as Hit's fields
    if sampler is not None:
        reply.samples = [Sample(**x) for x in sampler.samples()]
        reply.sample_interval, reply.stopped = SAMPLE_INTERVAL_S, sampler.stopped
    if tampered is not None:
        reply.status, reply.tampered = "corrupted", tampered
        return reply.to_header(), []
    if error is not None:
        reply.status, reply.error = "raised", error
        return reply.to_header(), out_buffers
    try:
        reply.output = OutputDesc(**_fit(describe_output(value, out_buffers)))
    except Exception as exc:  # noqa: BLE001 - a returned object that breaks when inspected
        del out_buffers[:]
        reply.output = OutputDesc(kind="other", type=_qualname(_type(value))[:300], unreadable=f"reading the output failed: {_safe_str(exc)}")
    after = _snapshot(args, call.arg_names) if before else {}
    reply.mutated = sorted(k for k, v in before if after.get(k) != v)
    if call.grad:
        grads = _gradients(value, leaves, call.grad.cotangent, buffers, out_buffers)
        reply.grads, reply.grad_error, reply.grad_missing = grads.get("grads"), grads.get("grad_error"), grads.get("grad_missing", [])
    return reply.to_header(), out_buffers


def _safe_str(exc: Any) -> str:
    try:
        text = _str(exc) if _type(exc) is not str else exc
        return text[:2000] if _type(text) is str else "<exception message could not be printed>"
    except Exception:  # noqa: BLE001
        return "<exception message could not be printed>"


def _attach_grad(args: list[Any], names: list[str], wrt: list[str], leaves: dict[str, Any]) -> list[Any]:
    """Make the requested inputs autograd leaves; the function gets a clone, so an in-place edit
    of its input is a mutation (judged elsewhere), not an autograd error."""
    t = _torch_refs
    out = list(args)

    def leaf_for(key: str, value: Any) -> Any:
        with t["no_tf"]():
            leaf = t["t_requires_grad_"](t["t_clone"](t["t_detach"](value)), True)
            leaves[key] = leaf
            return t["t_clone"](leaf)

    def attach(name: str, value: Any, depth: int) -> Any:
        if _type(value) is dict and depth < 3:
            return {key: attach(f"{name}.{key}", sub, depth + 1) for key, sub in _list(dict.items(value))}
        if _type(value) is list and depth < 3:
            return [attach(f"{name}.{i}", sub, depth + 1) for i, sub in _enumerate(_list(value))]
        return leaf_for(name, value) if name in wrt else value

    for i, name in enumerate(names):
        out[i] = attach(name, out[i], 0)
    return out


def _gradients(value: Any, leaves: dict[str, Any], cot_node: Any, buffers: list[bytes], out_buffers: list[bytes]) -> dict[str, Any]:
    t = _torch_refs
    if not t or not _is_tensor(value):
        return {"grad_error": "the output is not a torch.Tensor, so no gradient can flow back to the inputs"}
    cot = decode_float64(cot_node, buffers)
    with t["no_tf"]():
        shape = _tuple(int(s) for s in t["t_shape"](value))
        requires_grad = bool(t["t_requires_grad"](value))
        dtype = t["t_dtype"](value)
    if shape != cot.shape:
        return {"grad_error": f"the output shape {shape} is not {cot.shape}, so gradients were not compared"}
    if not requires_grad:
        return {
            "grad_error": "the output does not require grad although the inputs do: the computation left autograd "
            "(e.g. a .numpy() round trip, .detach(), .item(), torch.tensor(...) rebuilt from values, or writes through .data)"
        }
    names = list(leaves)
    try:
        with t["no_tf"]():
            loss = t["t_sum"](t["t_mul"](value, t["t_to"](t["from_numpy"](cot), dtype)))  # its gradient is the VJP with `cot`
        grads = t["grad"](loss, [leaves[n] for n in names], allow_unused=True)
    except BaseException as exc:  # noqa: BLE001 - a learner's custom backward may raise anything
        return {"grad_error": f"backward() raised {_type(exc).__name__}: {_safe_str(exc)}"}
    result: dict[str, Any] = {}
    missing = []
    for name, g in zip(names, grads):
        if g is None:
            missing.append(name)
            continue
        if not _is_tensor(g):
            return {"grad_error": "autograd returned something that is not a tensor as a gradient"}
        with t["no_tf"]():
            host = t["t_to"](t["t_detach"](g), "cpu")
            if t["t_dtype"](host) in t["half_types"]:
                host = t["t_float"](host)
            arr = t["t_numpy"](host)
        out_buffers.append(_nd_tobytes(_np_ascontiguousarray(arr, dtype=_np_float64)))
        result[name] = {"shape": _list(_nd_shape(arr)), "buf": _len(out_buffers) - 1}
    out: dict[str, Any] = {"grads": result}
    if missing:
        out["grad_missing"] = missing
    return out


def _state_holder() -> tuple[Callable[[], str | None], Callable[[list[Any]], None]]:
    """(changed, hold): `hold(modules)` records the modules' globals, their classes' attributes and
    their functions' code; `changed()` says whether any of it is no longer what was recorded. A
    submission that reaches them (through frames or the garbage collector) to swap a function,
    such as the one that checks its inputs for changes, is caught, not believed."""
    namespaces: list[Any] = []  # module and class namespaces, then what they held, all in one row
    sizes: list[int] = []
    values: list[Any] = []
    functions: list[Any] = []
    codes: list[Any] = []
    is_, all_, map_, list_, len_ = operator.is_, builtins.all, builtins.map, builtins.list, builtins.len  # learner code can replace the builtins
    chain, values_of, code_of = itertools.chain.from_iterable, operator.methodcaller("values"), operator.attrgetter("__code__")
    message = "it changed the grader's own code in its process"

    def changed() -> str | None:
        try:  # C-level iteration throughout: as many names, each bound to the same object
            if list_(map_(len_, namespaces)) != sizes:
                return message
            if not all_(map_(is_, chain(map_(values_of, namespaces)), values)):  # a rebound name holds another object
                return message
            if not all_(map_(is_, map_(code_of, functions), codes)):
                return message
        except Exception:  # noqa: BLE001 - a replaced object that raises when looked at
            return message
        return None

    def hold(more: list[Any]) -> None:
        """Add modules (their globals, classes and functions) to what `changed` checks."""
        start = len(namespaces)
        for module in more:
            vars(module).setdefault("__warningregistry__", {})  # a warning issued from its code adds it later
            namespaces.append(vars(module))
            for value in list(vars(module).values()):
                if getattr(value, "__module__", None) != module.__name__:
                    continue
                if isinstance(value, type):
                    namespaces.append(vars(value))
                    functions.extend(f for f in vars(value).values() if _type(getattr(f, "__code__", None)) is types.CodeType)
                elif _type(getattr(value, "__code__", None)) is types.CodeType:
                    functions.append(value)
        added = namespaces[start:]
        sizes.extend(len(n) for n in added)
        values.extend(v for n in added for v in n.values())
        codes.extend(f.__code__ for f in functions[len(codes) :])

    return changed, hold


# Held at import, before any learner code runs in the process (the names are bound first, so they
# are part of what is held); the worker adds its own module and childstate's the same way.
_own_code_changed, hold_modules = _state_holder()
hold_modules([sys.modules[__name__], sys.modules[Call.__module__]])

