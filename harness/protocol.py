"""Messages between the grader and its workers: a JSON header plus raw array bytes.

Nothing is pickled: an array crosses the boundary as dtype + shape + bytes, so output produced
by learner code can at worst be wrong data, never code that runs in the grader. Every read
has a deadline, and a truncated message is an error, not a hang.

Every message kind is a dataclass (`Load`, `Loaded`, `Call`, `CallReply`, ...). A header read
from a worker is believed only after `parse` has checked it against its class: the type of
every field, string and list lengths, nesting depth, finite numbers, known enum values. A
message that fails is `CorruptMessage`, which the grader turns into the verdict "the submission
corrupted the worker (...)" for that submission or case, never into an internal error.

The JSON codec, struct packer and os/select functions used here are captured when this module
is imported (in the worker, before any learner code runs): a submission that reassigns
`json.dumps`, `json.encoder.*`, `struct` or `os.write` cannot change what is sent or read.
"""

from __future__ import annotations

import dataclasses
import json.decoder
import json.encoder
import math
import os
import select
import struct
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Union

import numpy as np

# ---------------------------------------------------------------- captured before learner code

_np_frombuffer = np.frombuffer
_np_float64 = np.float64
_os_readv = os.readv
_os_write = os.write
_select = select.select
_monotonic = time.monotonic
_isfinite = math.isfinite
_prod = math.prod
_LEN = struct.Struct(">Q")
_LEN_pack = _LEN.pack
_LEN_unpack = _LEN.unpack


def _no_default(obj: Any) -> Any:
    raise TypeError(f"cannot encode {type(obj).__name__} in a message header")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a message header")


# The C encoder and scanner, built once: later patches of the json modules do not reach them.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode = _c_make_encoder(
    None, _no_default, getattr(json.encoder, "c_encode_basestring_ascii"), None, ":", ",", False, False, False
) if _c_make_encoder is not None else None
_decoder_context = json.decoder.JSONDecoder(parse_constant=_no_constant)
_scan = json.scanner.c_make_scanner(_decoder_context) if json.scanner.c_make_scanner is not None else None  # type: ignore[attr-defined]
_py_dumps = json.dumps
_py_loads = json.loads

MAX_HEADER = 4 * 1024 * 1024  # a worker's reply header
MAX_LOAD_HEADER = 64 * 1024 * 1024  # the load message: the source (at most 5 MB) once, JSON-escaped
MAX_BUFFER = 512 * 1024 * 1024
MAX_BUFFERS = 64
MAX_TOTAL = 768 * 1024 * 1024  # all buffers of one message together
# The most elements an output (or a gradient) may have: the case child reports a larger one as
# unreadable, so only a tampered child sends more, and the grader will not expand it to float64.
MAX_OUTPUT_ELEMENTS = 8_000_000
MAX_DEPTH = 12  # nesting of free-form JSON in a header (decoded inputs are at most 3 deep)
MAX_ITEMS = 10_000
MAX_TEXT = 64 * 1024  # a message, traceback or name in a reply
MAX_SOURCE = 24 * 1024 * 1024


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message, or went away mid-message."""


class CorruptMessage(ProtocolError):
    """A complete message arrived, but it is malformed or too large: the sender is not to be believed."""


class Timeout(Exception):
    """No complete message arrived before the deadline."""


def _dumps(header: dict[str, Any]) -> bytes:
    if _encode is None:  # pragma: no cover - CPython always has the C accelerator
        return _py_dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return "".join(_encode(header, 0)).encode("ascii")


def _loads(raw: bytes | bytearray) -> Any:
    try:
        text = raw.decode("utf-8")
        if _scan is None:  # pragma: no cover
            return _py_loads(text, parse_constant=_no_constant)
        value, end = _scan(text, 0)
    except RecursionError:
        raise CorruptMessage("the message header is nested too deeply") from None
    except (ValueError, StopIteration, UnicodeDecodeError):
        raise CorruptMessage("the message header is not valid JSON") from None
    if end != len(text):
        raise CorruptMessage("the message header has data after its JSON")
    return value


def send(fd: int, header: "dict[str, Any] | Message", buffers: list[bytes] | None = None) -> None:
    """Write one message: 8-byte header length, header JSON, then each buffer (lengths in the header)."""
    buffers = buffers or []
    if isinstance(header, Message):
        header = header.to_header()
    header = {**header, "_buffers": [len(b) for b in buffers]}
    raw = _dumps(header)
    _write_all(fd, _LEN_pack(len(raw)) + raw)
    for buf in buffers:
        _write_all(fd, buf)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = _os_write(fd, view)
        view = view[written:]


def recv(fd: int, deadline: float | None = None, max_header: int = MAX_HEADER) -> tuple[dict[str, Any], list[Any]]:
    """Read one message; raise Timeout past `deadline` (time.monotonic), ProtocolError on EOF,
    CorruptMessage on a malformed or oversized one."""
    (length,) = _LEN_unpack(_read_exact(fd, _LEN.size, deadline, first=True))
    if length > max_header:
        raise CorruptMessage(f"a message header of {length} bytes, more than the {mib(max_header)} limit")
    header = _loads(_read_exact(fd, length, deadline))
    if type(header) is not dict:
        raise CorruptMessage("the message header is not a JSON object")
    sizes = header.pop("_buffers", None)
    if type(sizes) is not list or len(sizes) > MAX_BUFFERS or not all(type(s) is int and 0 <= s <= MAX_BUFFER for s in sizes):
        raise CorruptMessage("the message's buffer sizes are missing or invalid")
    if sum(sizes) > MAX_TOTAL:
        raise CorruptMessage(f"the message's buffers hold {mib(sum(sizes))}, more than the {mib(MAX_TOTAL)} limit")
    return header, [_read_exact(fd, size, deadline) for size in sizes]


def _read_exact(fd: int, size: int, deadline: float | None, first: bool = False) -> bytearray:
    """`size` bytes, read straight into a bytearray that grows (doubling) as they arrive, so what is
    held stays proportional to what was sent, whatever size was announced; an array can be built
    on the result without another copy (decode_array)."""
    buf = bytearray(min(size, 1 << 20))
    got = 0
    while got < size:
        if got == len(buf):
            buf.extend(bytes(min(len(buf), size - got)))
        if deadline is not None:
            left = deadline - _monotonic()
            if left <= 0 or not _select([fd], [], [], left)[0]:
                raise Timeout()
        with memoryview(buf) as view, view[got:] as free:
            n = _os_readv(fd, [free])
        if not n:
            if first and got == 0:
                raise ProtocolError("the other side closed the connection")
            raise ProtocolError("the other side closed the connection in the middle of a message")
        got += n
    return buf


# ---------------------------------------------------------------- typed messages


def bounded(n: int, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A field whose strings/lists/dicts may hold at most `n` characters/items."""
    if default is dataclasses.MISSING and "default_factory" not in kw:
        return field(metadata={"max": n}, **kw)
    return field(default=default, metadata={"max": n}, **kw)


def one_of(*allowed: str, default: Any = dataclasses.MISSING) -> Any:
    """A string field restricted to `allowed`."""
    if default is dataclasses.MISSING:
        return field(metadata={"enum": allowed})
    return field(default=default, metadata={"enum": allowed})


@dataclass
class Message:
    """Base of every message kind; `op` names the kind in the header (None for replies to a call)."""

    OP: ClassVar[str | None] = None

    def to_header(self) -> dict[str, Any]:
        header = _to_plain(type(self))(self)
        if self.OP is not None:
            header["op"] = self.OP
        return header

    @classmethod
    def parse(cls, header: Any, *, strict: bool = True) -> Any:
        """Validate a received header into this class; CorruptMessage says what was wrong.

        strict=False ignores fields this class does not know: for the grader's own messages to
        a worker (trusted, and free to grow); replies from a worker are always strict."""
        if not strict and type(header) is dict:
            known = _fields(cls)
            header = {k: v for k, v in header.items() if k in known or k == "op"}
        try:
            return _fast_parser(cls)(header, 0)
        except _Invalid:  # the checks again, slowly, to say exactly what was wrong
            return _parse_dataclass(cls, header, cls.__name__, 0)


_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if hasattr(kind, "__dataclass_fields__"):  # a dataclass instance (a class itself is of type `type`)
        return {name: _plain(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}
_FIELDS: dict[type, dict[str, Any]] = {}
_TYPES: dict[Any, tuple[Any, tuple[Any, ...]]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, globalns=globals())
    return _HINTS[cls]


def _fields(cls: type) -> dict[str, Any]:
    """{name: Field} of a message class, looked up once per class (messages are parsed per call)."""
    known = _FIELDS.get(cls)
    if known is None:
        known = _FIELDS[cls] = {f.name: f for f in dataclasses.fields(cls)}
    return known


def _field_names(cls: type) -> Any:
    return _fields(cls).keys()


def _origin_args(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """typing.get_origin and get_args of a field's type, computed once per type."""
    try:
        return _TYPES[tp]
    except KeyError:
        found = _TYPES[tp] = (typing.get_origin(tp), typing.get_args(tp))
        return found


def _parse_dataclass(cls: type, value: Any, where: str, depth: int) -> Any:
    if type(value) is not dict:
        raise CorruptMessage(f"{where} is {_what(value)}, not an object")
    if depth > MAX_DEPTH:
        raise CorruptMessage(f"{where} is nested too deeply")
    hints = _hints(cls)
    known = _fields(cls)
    extra = [k for k in value if k not in known and k != "op"]
    if extra:
        raise CorruptMessage(f"{where} has an unexpected field '{str(extra[0])[:40]}'")
    if getattr(cls, "OP", None) is not None and value.get("op", cls.OP) != cls.OP:  # type: ignore[attr-defined]
        raise CorruptMessage(f"expected a '{cls.OP}' message, got '{str(value.get('op'))[:40]}'")  # type: ignore[attr-defined]
    kwargs = {}
    for name, f in known.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CorruptMessage(f"{where} lacks its field '{name}'")
            continue
        kwargs[name] = _check(value[name], hints[name], f"{where}.{name}", depth + 1, f.metadata)
    return cls(**kwargs)


# ---- the same checks compiled once per type: a header is parsed per call on both sides, so the
# common case (a valid header) runs these closures, with no field paths formatted. They accept
# exactly what `_parse_dataclass`/`_check` accept (tests/test_hostile_inputs.py compares the two);
# any doubt raises _Invalid, and `parse` runs the slow checks for the precise message.


class _Invalid(Exception):
    pass


_PARSERS: dict[Any, Any] = {}
_PLAIN: dict[type, Any] = {}


def _fast_parser(cls: type) -> Any:
    parser = _PARSERS.get(cls)
    if parser is None:
        parser = _PARSERS[cls] = _compile_dataclass(cls)
    return parser


def _compile_dataclass(cls: type) -> Any:
    hints = _hints(cls)
    allowed = frozenset(_fields(cls)) | {"op"}
    op = getattr(cls, "OP", None)
    checks: list[tuple[str, Any, bool]] = []

    def parse(value: Any, depth: int) -> Any:
        if type(value) is not dict or depth > MAX_DEPTH or not allowed.issuperset(value):
            raise _Invalid
        if op is not None and value.get("op", op) != op:
            raise _Invalid
        kwargs = {}
        inner = depth + 1
        for name, check, required in checks:
            if name in value:
                kwargs[name] = check(value[name], inner)
            elif required:
                raise _Invalid
        return cls(**kwargs)

    _PARSERS[cls] = parse  # before the fields: a message class may (indirectly) contain itself
    for name, f in _fields(cls).items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        checks.append((name, _compile_check(hints[name], f.metadata or {}), required))
    return parse


def _compile_check(tp: Any, meta: Any) -> Any:
    """A function (value, depth) -> value that does what `_check(value, tp, ..., meta)` does."""
    if tp is Any:
        def any_json(value: Any, depth: int) -> Any:
            try:
                _check_json(value, "", depth)
            except CorruptMessage:
                raise _Invalid from None
            return value
        return any_json
    origin, args = _origin_args(tp)
    if origin in (Union, types.UnionType):
        nullable = type(None) in args
        options = [_compile_check(a, meta) for a in args if a is not type(None)]

        def union(value: Any, depth: int) -> Any:
            if value is None and nullable:
                return None
            for option in options:
                try:
                    return option(value, depth)
                except _Invalid:
                    pass
            raise _Invalid
        return union
    if tp is str:
        limit, enum = meta.get("max", MAX_TEXT), meta.get("enum")

        def text(value: Any, depth: int) -> Any:
            if type(value) is not str or len(value) > limit or (enum is not None and value not in enum):
                raise _Invalid
            return value
        return text
    if tp is bool:
        def boolean(value: Any, depth: int) -> Any:
            if type(value) is not bool:
                raise _Invalid
            return value
        return boolean
    if tp is int:
        def integer(value: Any, depth: int) -> Any:
            if type(value) is not int or not -(1 << 62) <= value <= 1 << 62:
                raise _Invalid
            return value
        return integer
    if tp is float:
        def number(value: Any, depth: int) -> Any:
            if type(value) not in (int, float) or not _isfinite(value):
                raise _Invalid
            return float(value)
        return number
    if origin is list:
        limit = meta.get("max", MAX_ITEMS)
        item = _compile_check(args[0], {})

        def items(value: Any, depth: int) -> Any:
            if type(value) is not list or len(value) > limit:
                raise _Invalid
            inner = depth + 1
            return [item(v, inner) for v in value]
        return items
    if origin is dict:
        limit = meta.get("max", MAX_ITEMS)
        key, entry = _compile_check(str, {}), _compile_check(args[1], {})

        def entries(value: Any, depth: int) -> Any:
            if type(value) is not dict or len(value) > limit:
                raise _Invalid
            inner = depth + 1
            return {key(k, inner): entry(v, inner) for k, v in value.items()}
        return entries
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        def nested(value: Any, depth: int) -> Any:
            return _fast_parser(tp)(value, depth)
        return nested
    raise TypeError(f"internal: no check for {tp!r}")  # pragma: no cover - a programming error in a message class


def _to_plain(cls: type) -> Any:
    """A function message -> header dict for this class, compiled once: fields whose type holds
    no dataclass (scalars, strings, `Any` JSON nodes) are taken as they are."""
    convert = _PLAIN.get(cls)
    if convert is None:
        hints = _hints(cls)
        names = tuple(_fields(cls))
        converters = [(name, _plain_for(hints[name])) for name in names]
        if all(c is None for _, c in converters):
            def convert(message: Any) -> dict[str, Any]:
                return {name: getattr(message, name) for name in names}
        else:
            def convert(message: Any) -> dict[str, Any]:
                out = {}
                for name, c in converters:
                    value = getattr(message, name)
                    out[name] = value if c is None else c(value)
                return out
        _PLAIN[cls] = convert
    return convert


def _plain_for(tp: Any) -> Any:
    """None when values of type `tp` are already plain JSON; else a converter (which, like
    `_plain`, also accepts values of another type than declared)."""
    origin, args = _origin_args(tp)
    if tp is Any or tp in _SCALARS:
        return None
    if origin in (Union, types.UnionType) or origin in (list, dict):
        if all(_plain_for(a) is None for a in args):
            return None
        return _plain
    return _plain


def _what(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number", bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check(value: Any, tp: Any, where: str, depth: int, meta: Any = None) -> Any:
    """`value` as type `tp`, or CorruptMessage naming the field and what was expected."""
    meta = meta or {}
    if tp is Any:
        _check_json(value, where, depth)
        return value
    origin, args = _origin_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        errors = []
        for each in rest:
            try:
                return _check(value, each, where, depth, meta)
            except CorruptMessage as exc:
                errors.append(str(exc))
        raise CorruptMessage(errors[0] if len(errors) == 1 else f"{where} is {_what(value)}, which is none of the types allowed there")
    if tp is str:
        if type(value) is not str:
            raise CorruptMessage(f"{where} is {_what(value)}, not a string")
        if len(value) > meta.get("max", MAX_TEXT):
            raise CorruptMessage(f"{where} holds {len(value)} characters, more than the limit of {meta.get('max', MAX_TEXT)}")
        if "enum" in meta and value not in meta["enum"]:
            raise CorruptMessage(f"{where} is '{value[:40]}', not one of {', '.join(meta['enum'])}")
        return value
    if tp is bool:
        if type(value) is not bool:
            raise CorruptMessage(f"{where} is {_what(value)}, not a boolean")
        return value
    if tp is int:
        if type(value) is not int or not -(1 << 62) <= value <= 1 << 62:
            raise CorruptMessage(f"{where} is {_what(value)}, not an integer in range")
        return value
    if tp is float:
        if type(value) not in (int, float) or not _isfinite(value):
            raise CorruptMessage(f"{where} is {_what(value)}, not a finite number")
        return float(value)
    if origin is list:
        if type(value) is not list:
            raise CorruptMessage(f"{where} is {_what(value)}, not a list")
        if len(value) > meta.get("max", MAX_ITEMS):
            raise CorruptMessage(f"{where} has {len(value)} entries, more than the limit of {meta.get('max', MAX_ITEMS)}")
        (item,) = args
        return [_check(v, item, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if origin is dict:
        if type(value) is not dict:
            raise CorruptMessage(f"{where} is {_what(value)}, not an object")
        if len(value) > meta.get("max", MAX_ITEMS):
            raise CorruptMessage(f"{where} has {len(value)} entries, more than the limit of {meta.get('max', MAX_ITEMS)}")
        _, item = args
        return {_check(k, str, f"{where} key", depth + 1): _check(v, item, f"{where}[{str(k)[:40]!r}]", depth + 1) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where, depth)
    raise TypeError(f"internal: no check for {tp!r}")  # pragma: no cover - a programming error in a message class


def _check_json(value: Any, where: str, depth: int) -> None:
    """Free-form JSON (input nodes): bounded nesting and size, finite numbers."""
    todo = [(value, depth)]
    count = 0
    while todo:
        item, level = todo.pop()
        count += 1
        if level > MAX_DEPTH or count > MAX_ITEMS * 10:
            raise CorruptMessage(f"{where} is nested too deeply or too large")
        kind = type(item)
        if kind is dict:
            todo.extend((v, level + 1) for v in item.values())
        elif kind is list:
            todo.extend((v, level + 1) for v in item)
        elif kind is float and not _isfinite(item):
            raise CorruptMessage(f"{where} holds a number that is not finite")
        elif kind is str and len(item) > MAX_TEXT:
            raise CorruptMessage(f"{where} holds a string longer than {MAX_TEXT} characters")


# ---- pieces shared by several messages


@dataclass
class Captured:
    """Printed output of a load or a case (head and tail, with the full byte count)."""

    text: str = bounded(16 * 1024, "")
    bytes: int = 0


@dataclass
class Hit:
    """A forbidden call (or `import attnspec`) seen while learner code ran."""

    api: str = bounded(300)
    file: str | None = bounded(4096, None)
    line: int | None = None


@dataclass
class Sample:
    """How many of the time samples of a call landed on one line of the learner's code."""

    file: str = bounded(4096)
    line: int = 0
    count: int = 0


@dataclass
class ErrorInfo:
    type: str = bounded(300)
    message: str = ""
    traceback: str = ""
    line: int | None = None
    file: str | None = bounded(4096, None)


@dataclass
class ChunkError(ErrorInfo):
    chunk: int = 0


@dataclass
class FunctionFound:
    callable: bool
    type: str = bounded(300)
    file: str | None = bounded(4096, None)
    line: int | None = None
    signature: str | None = bounded(4096, None)
    bindable: bool | None = None
    bind_error: str | None = None


@dataclass
class ArrayRef:
    shape: list[int] = bounded(32)
    buf: int = 0


@dataclass
class OutputDesc:
    """What a learner function returned, as read by the worker's base-class descriptors."""

    kind: str = one_of("none", "ndarray", "tensor", "list", "tuple", "scalar", "other")
    type: str = bounded(300)
    dtype: str | None = bounded(64, None)
    shape: list[int] | None = bounded(32, None)
    device: str | None = bounded(64, None)
    requires_grad: bool | None = None
    length: int | None = None
    values: int | None = None
    encoding: str | None = one_of("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool", default=None)
    unreadable: str | None = None
    repr: str | None = bounded(4096, None)


# ---- grader -> master, master -> grader


@dataclass
class Preload(Message):
    OP: ClassVar[str] = "preload"
    modules: list[str] = bounded(8, default_factory=list)


@dataclass
class Preloaded(Message):
    OP: ClassVar[str] = "preloaded"
    errors: dict[str, str] = bounded(8, default_factory=dict)


@dataclass
class Spawn(Message):
    OP: ClassVar[str] = "spawn"


@dataclass
class Spawned(Message):
    OP: ClassVar[str] = "spawned"
    pid: int | None = None
    init: int | None = None  # the sandbox's PID 1, when there is one
    error: str | None = None


@dataclass
class Shutdown(Message):
    OP: ClassVar[str] = "shutdown"


# ---- grader -> zygote, zygote -> grader


@dataclass
class SourceFile:
    """One file (or notebook cell) of the submission, sent once whatever its number of chunks."""

    filename: str = bounded(4096)
    source: str = bounded(MAX_SOURCE)
    cell: int | None = None


@dataclass
class ChunkRange:
    """A top-level statement (or a whole cell) to run: lines first..last (1-based) of file `file`."""

    file: int
    first: int
    last: int


@dataclass
class LoadLimits:
    memory_mb: int
    output_bytes: int
    chunk_timeout: float
    case_timeout: float


@dataclass
class Load(Message):
    OP: ClassVar[str] = "load"
    path: str = bounded(4096)
    directory: str = bounded(4096)
    module_name: str = bounded(200)
    files: list[SourceFile] = bounded(100_000)
    chunks: list[ChunkRange] = bounded(1_000_000)
    companions: dict[str, str] = bounded(1_000, default_factory=dict)  # {relative name: text}, for a sandbox's private folder
    limits: LoadLimits | None = None


@dataclass
class Loaded(Message):
    OP: ClassVar[str] = "loaded"
    duration: float = 0.0
    chunk_errors: list[ChunkError] = bounded(200, default_factory=list)
    functions: dict[str, FunctionFound] = bounded(50, default_factory=dict)
    output: Captured = field(default_factory=Captured)
    modules: list[str] = bounded(8, default_factory=list)
    tripwires: list[Hit] = bounded(100, default_factory=list)


@dataclass
class CaseStart(Message):
    OP: ClassVar[str] = "case_start"
    case: str = bounded(300)
    timeout: float = 10.0
    fresh: bool = False  # True: run it in a child that has run no case before (forked for it)


@dataclass
class CaseStarted(Message):
    OP: ClassVar[str] = "case_started"
    pid: int | None = None
    fresh: bool = False  # the child had run no case before this one


@dataclass
class CaseStop(Message):
    """The grader, to the zygote: the case child stopped answering in time (kill it, saying where
    it was) or closed its connection (say how it ended). (One that sends something unreadable
    ends its whole zygote.)"""

    OP: ClassVar[str] = "case_stop"
    reason: str = one_of("timeout", "crashed")


@dataclass
class CaseStopped(Message):
    OP: ClassVar[str] = "case_stopped"
    detail: str = bounded(2000, default="")


@dataclass
class StateAsked(Message):
    """The grader, to a case child after a case: has it changed anything a later case could see?"""

    OP: ClassVar[str] = "state"


@dataclass
class StateTold(Message):
    OP: ClassVar[str] = "state"
    changed: bool = True


@dataclass
class GradSpec:
    wrt: list[str] = bounded(32)
    cotangent: Any = None


@dataclass
class Call(Message):
    OP: ClassVar[str] = "call"
    function: str = bounded(200)
    backend: str = one_of("numpy", "torch")
    dtype: str = one_of("float64", "float32", "float16", "bfloat16")
    arg_names: list[str] = bounded(32)
    args: list[Any] = bounded(32)
    forbidden: list[str] = bounded(200, default_factory=list)
    grad: GradSpec | None = None
    check_mutation: bool = True
    sample: bool = False  # sample where the learner's code spends its time (harness/timing.py)
    stop_after: float | None = None  # with `sample`: stop the call itself after this many seconds


CALL_STATUSES = ("ok", "raised", "timeout", "crashed", "worker_lost", "output_limit", "corrupted")


@dataclass
class CallReply(Message):
    """A case child's answer to one call (relayed by the zygote, which may add status/limits)."""

    status: str = one_of(*CALL_STATUSES)
    duration: float = 0.0
    detail: str = ""
    limit: float | None = None
    error: ErrorInfo | None = None
    output: OutputDesc | None = None
    mutated: list[str] = bounded(64, default_factory=list)
    tripwires: list[Hit] = bounded(100, default_factory=list)
    grads: dict[str, ArrayRef] | None = bounded(32, None)
    grad_error: str | None = None
    grad_missing: list[str] = bounded(32, default_factory=list)
    output_exceeded: int | None = None
    output_limit: int | None = None
    tampered: str | None = None
    samples: list[Sample] = bounded(200, default_factory=list)
    sample_interval: float | None = None
    stopped: float | None = None  # the call stopped itself after this many seconds (Call.stop_after)


@dataclass
class CaseEnd(Message):
    OP: ClassVar[str] = "case_end"
    spare: bool = True  # False: no case follows soon, so no replacement child is forked ahead
    keep: bool = True  # False: the case changed something a later case could see (or its child died): it is ended


@dataclass
class CaseEnded(Message):
    OP: ClassVar[str] = "case_ended"
    output: Captured = field(default_factory=Captured)


@dataclass
class Clone(Message):
    OP: ClassVar[str] = "clone"


@dataclass
class Cloned(Message):
    OP: ClassVar[str] = "cloned"
    pid: int | None = None
    error: str | None = None


def _prepare(tp: Any) -> None:
    """Look up a message class's fields and types now, at import: a case child is forked from a
    worker that imported this module, so its first message does not pay for typing's reflection."""
    origin, args = _origin_args(tp)
    for each in args:
        _prepare(each)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in _HINTS:
        _fields(tp)
        for hint in _hints(tp).values():
            _prepare(hint)


for _message in [c for c in list(globals().values()) if isinstance(c, type) and dataclasses.is_dataclass(c)]:
    _prepare(_message)


def corrupted(why: str) -> str:
    """The plain verdict for a worker whose messages cannot be believed."""
    return f"the submission corrupted the worker ({why})"


# ------------------------------------------------------------ values <-> JSON nodes + buffers


def mib(nbytes: float) -> str:
    """A byte count as '1 MiB', '0.5 MiB' (for output-limit messages on both sides)."""
    return f"{float(nbytes) / (1 << 20):.3g} MiB"


def float_to_json(value: float) -> Any:
    """JSON has no inf/NaN: encode them as strings."""
    return value if _isfinite(value) else repr(value)


def float_from_json(value: Any) -> float:
    if type(value) is str and value not in ("inf", "-inf", "nan"):
        raise CorruptMessage(f"'{value[:20]}' is not a number")
    return float(value)


def encode_input(value: Any, buffers: list[Any], to_float32: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Encode a grader-side input (float64 arrays, ints, None, dicts of arrays, lists of those) for
    the worker. An array's bytes are sent from its own memory (a view, not a copy); with
    `to_float32` (a call in float32) arrays are sent as what it makes of them, at half the bytes:
    the worker would cast them to float32 anyway, and the cast gives the same values on either side."""
    if value is None:
        return {"t": "none"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, (int, np.integer)):
        return {"t": "int", "v": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"t": "float", "v": float_to_json(float(value))}
    if isinstance(value, np.ndarray):
        if to_float32 is not None:
            arr = np.ascontiguousarray(to_float32(value), dtype=np.float32)
            buffers.append(memoryview(arr).cast("B"))  # type: ignore[arg-type]  # numpy arrays export the buffer protocol
            return {"t": "array", "shape": list(arr.shape), "buf": len(buffers) - 1, "dtype": "float32"}
        arr = np.ascontiguousarray(value, dtype=np.float64)
        buffers.append(memoryview(arr).cast("B"))  # type: ignore[arg-type]
        return {"t": "array", "shape": list(arr.shape), "buf": len(buffers) - 1}
    if isinstance(value, dict):
        return {"t": "dict", "items": {str(k): encode_input(v, buffers, to_float32) for k, v in value.items()}}
    if isinstance(value, list):
        return {"t": "list", "items": [encode_input(v, buffers, to_float32) for v in value]}
    raise TypeError(f"cannot send {type(value).__name__} to a worker")


def decode_values(encoding: str, shape: list[int], buf: bytes) -> np.ndarray:
    """Values sent in their own dtype (`encoding`), as float64: the byte count must match exactly."""
    if encoding == "bfloat16":
        words = _np_frombuffer(buf, dtype=np.uint16) if len(buf) % 2 == 0 else None
        raw = None if words is None else (words.astype(np.uint32) << 16).view(np.float32)
        itemsize = 2
    else:
        itemsize = np.dtype(encoding).itemsize
        raw = _np_frombuffer(buf, dtype=np.dtype(encoding)) if len(buf) % itemsize == 0 else None
    if _prod(shape) > MAX_OUTPUT_ELEMENTS:
        raise CorruptMessage(f"an output said to hold {_prod(shape)} values, more than the {MAX_OUTPUT_ELEMENTS} a worker sends")
    need = itemsize * _prod(shape)
    if raw is None or len(buf) != need:
        raise CorruptMessage(f"an output said to hold {encoding} values of shape {tuple(shape)} ({need} bytes) came with {len(buf)} bytes")
    return raw.astype(np.float64).reshape(shape)


def decode_float64(node: Any, buffers: list[Any]) -> np.ndarray:
    """A float64 numpy array from an array node (types, shape and byte length checked), a copy;
    at most MAX_OUTPUT_ELEMENTS values (gradients from a worker, cotangents to it)."""
    return decode_array(node, buffers, ("float64",), own=False, max_elements=MAX_OUTPUT_ELEMENTS)


_ARRAY_DTYPES: dict[str, np.dtype[Any]] = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32)}


def decode_array(
    node: Any, buffers: list[Any], encodings: tuple[str, ...] = ("float64", "float32"), *, own: bool = True, max_elements: int | None = None
) -> np.ndarray:
    """A numpy array from an array node, in the encoding it names (float64 unless it says
    float32), of at most `max_elements` values. With `own` an array is built on a buffer `recv`
    read (a bytearray that nothing else holds) without copying it; otherwise, and for any other
    buffer, it is a copy."""
    if type(node) is not dict:
        raise CorruptMessage("an array reference is not an object")
    shape, index, encoding = node.get("shape"), node.get("buf"), node.get("dtype", "float64")
    if type(shape) is not list or len(shape) > 32 or not all(type(s) is int and 0 <= s for s in shape):
        raise CorruptMessage("an array's shape is not a list of sizes")
    if max_elements is not None and _prod(shape) > max_elements:
        raise CorruptMessage(f"an array said to hold {_prod(shape)} values, more than the {max_elements} a worker sends")
    if type(index) is not int or not 0 <= index < len(buffers):
        raise CorruptMessage("an array refers to a buffer that was not sent")
    if encoding not in encodings:
        raise CorruptMessage(f"an array is said to hold {str(encoding)[:20]} values, not one of {', '.join(encodings)}")
    dtype = _ARRAY_DTYPES[encoding]
    buf = buffers[index]
    need = dtype.itemsize * _prod(shape)
    if len(buf) != need:
        raise CorruptMessage(f"an array buffer holds {len(buf)} bytes, but shape {tuple(shape)} needs {need}")
    arr = _np_frombuffer(buf, dtype=dtype).reshape(shape)
    return arr if own and type(buf) is bytearray else arr.copy()
