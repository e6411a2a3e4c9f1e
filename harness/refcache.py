"""Reference values remembered across submissions: the same inputs give the same float64 output.

A class run grades every submission on the same inputs (built once per grader process and handed
out read-only, see casecheck._memo_inputs), so the reference's output for a case, a mistake's
output for the diagnosis, or an input cast to float32, is computed once per grader process rather
than once per submission. Only arguments that cannot change are keyed: arrays made read-only here
(`freeze`: they own their memory, so no other view can write to it; keyed by identity, and an
entry keeps its arguments alive, so an id is never reused while it is cached),
plain numbers and strings, and dicts, lists and tuples of those. Anything else is computed every
time. Values are returned read-only.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

MAX_BYTES = 256 << 20  # cached outputs, all together

_PLAIN = (str, int, float, bool, type(None))

_ENTRIES: OrderedDict[tuple[Any, ...], tuple[list[Any], Any, int]] = OrderedDict()
_LOCK = threading.Lock()
_SIZE = [0]
_FROZEN: dict[int, "weakref.ref[np.ndarray]"] = {}


def frozen_key(value: Any) -> Hashable | None:
    """A key that identifies `value` while it cannot change, or None when it could."""
    kind = type(value)
    if kind is np.ndarray:
        ref = _FROZEN.get(id(value))
        return ("a", id(value)) if ref is not None and ref() is value else None
    if kind in _PLAIN:
        return ("v", kind.__name__, value)
    if kind is dict:
        items = []
        for k in value:
            if type(k) is not str:
                return None
            sub = frozen_key(value[k])
            if sub is None:
                return None
            items.append((k, sub))
        return ("d", tuple(sorted(items)))
    if kind in (list, tuple):
        subs = []
        for v in value:
            sub = frozen_key(v)
            if sub is None:
                return None
            subs.append(sub)
        return (kind.__name__, tuple(subs))
    return None


def cached(what: Hashable, args: list[Any], compute: Callable[[], Any]) -> Any:
    """compute() for these arguments, remembered under `what` (which must say everything else the
    value depends on) when every argument is frozen; returned read-only when it is an array."""
    key = frozen_key(list(args))
    if key is None:
        return compute()
    full = (what, key)
    with _LOCK:
        hit = _ENTRIES.get(full)
        if hit is not None:
            _ENTRIES.move_to_end(full)
            return hit[1]
    value = compute()
    if type(value) is not np.ndarray:
        return value
    value = freeze(value)
    size = int(value.nbytes)
    with _LOCK:
        if full not in _ENTRIES and size <= MAX_BYTES // 4:
            _ENTRIES[full] = (list(args), value, size)  # the arguments stay alive with the entry
            _SIZE[0] += size
            while _SIZE[0] > MAX_BYTES:
                _, (_, _, dropped) = _ENTRIES.popitem(last=False)
                _SIZE[0] -= dropped
    return value


def cast(value: np.ndarray, dtype: str) -> np.ndarray:
    """`value` in `dtype` (values beyond its range become inf, without a warning), remembered for a
    read-only input: the float32 inputs of a float32 call and the diagnosis' casts are one entry."""

    def compute() -> np.ndarray:
        with np.errstate(over="ignore"):
            return value.astype(dtype)

    return cached(("cast", dtype), [value], compute)


def freeze(value: Any) -> Any:
    """`value` with every array read-only and owning its memory (copied when it was a view), and
    known here as unchangeable; dicts, lists and tuples are rebuilt around their frozen items."""
    kind = type(value)
    if kind is np.ndarray:
        ref = _FROZEN.get(id(value))
        if ref is not None and ref() is value:
            return value
        if not value.flags.owndata:
            value = value.copy()
        value.setflags(write=False)
        _FROZEN[id(value)] = weakref.ref(value, _forget(id(value)))
        return value
    if kind is dict:
        return {k: freeze(v) for k, v in value.items()}
    if kind in (list, tuple):
        return kind(freeze(v) for v in value)
    return value


def _forget(key: int) -> Callable[[Any], None]:
    """The weakref callback that drops a frozen array's entry when the array is freed."""

    def drop(_: Any) -> None:
        _FROZEN.pop(key, None)

    return drop


def clear() -> None:
    with _LOCK:
        _ENTRIES.clear()
        _SIZE[0] = 0
