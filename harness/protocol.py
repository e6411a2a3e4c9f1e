"""Messages between the grader and its workers: a JSON header plus raw array bytes.

Nothing is pickled: an array crosses the boundary as dtype + shape + bytes, so output produced
by learner code can at worst be wrong data, never code that runs in the grader. Every read
has a deadline, and a truncated message is an error, not a hang.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

import numpy as np

# Captured when the worker starts, before any learner code runs: a submission that reassigns
# np.frombuffer or np.float64 at load time must not change how its case's inputs are decoded.
_np_frombuffer = np.frombuffer
_np_float64 = np.float64

_LEN = struct.Struct(">Q")
MAX_HEADER = 16 * 1024 * 1024
MAX_BUFFER = 512 * 1024 * 1024


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message, or went away mid-message."""


class Timeout(Exception):
    """No complete message arrived before the deadline."""


def send(fd: int, header: dict[str, Any], buffers: list[bytes] | None = None) -> None:
    """Write one message: 8-byte header length, header JSON, then each buffer (lengths in the header)."""
    buffers = buffers or []
    header = {**header, "_buffers": [len(b) for b in buffers]}
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    _write_all(fd, _LEN.pack(len(raw)) + raw)
    for buf in buffers:
        _write_all(fd, buf)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def recv(fd: int, deadline: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
    """Read one message; raise Timeout past `deadline` (time.monotonic), ProtocolError on EOF/garbage."""
    (length,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline, first=True))
    if length > MAX_HEADER:
        raise ProtocolError(f"message header of {length} bytes is too large")
    try:
        header = json.loads(_read_exact(fd, length, deadline))
        sizes = header.pop("_buffers")
    except (ValueError, KeyError, AttributeError):
        raise ProtocolError("message header is not valid JSON") from None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and 0 <= s <= MAX_BUFFER for s in sizes):
        raise ProtocolError("message buffer sizes are invalid")
    return header, [_read_exact(fd, size, deadline) for size in sizes]


def _read_exact(fd: int, size: int, deadline: float | None, first: bool = False) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Timeout()
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            if first and remaining == size:
                raise ProtocolError("the other side closed the connection")
            raise ProtocolError("the other side closed the connection in the middle of a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------ values <-> JSON nodes + buffers


def mib(nbytes: float) -> str:
    """A byte count as '1 MiB', '0.5 MiB' (for output-limit messages on both sides)."""
    return f"{float(nbytes) / (1 << 20):.3g} MiB"


def float_to_json(value: float) -> Any:
    """JSON has no inf/NaN: encode them as strings."""
    return value if math.isfinite(value) else repr(value)


def float_from_json(value: Any) -> float:
    return float(value)


def encode_input(value: Any, buffers: list[bytes]) -> dict[str, Any]:
    """Encode a grader-side input (float64 arrays, ints, None, dicts of arrays) for the worker."""
    if value is None:
        return {"t": "none"}
    if isinstance(value, bool):
        return {"t": "bool", "v": value}
    if isinstance(value, (int, np.integer)):
        return {"t": "int", "v": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"t": "float", "v": float_to_json(float(value))}
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value, dtype=np.float64)
        buffers.append(arr.tobytes())
        return {"t": "array", "shape": list(arr.shape), "buf": len(buffers) - 1}
    if isinstance(value, dict):
        return {"t": "dict", "items": {str(k): encode_input(v, buffers) for k, v in value.items()}}
    raise TypeError(f"cannot send {type(value).__name__} to a worker")


def decode_float64(node: dict[str, Any], buffers: list[bytes]):
    """A float64 numpy array from an array node (shape and byte length checked)."""
    shape = tuple(int(s) for s in node["shape"])
    buf = buffers[int(node["buf"])]
    if len(buf) != 8 * math.prod(shape):
        raise ProtocolError(f"array buffer holds {len(buf)} bytes, but shape {shape} needs {8 * math.prod(shape)}")
    return _np_frombuffer(buf, dtype=_np_float64).reshape(shape).copy()
