"""Reference values remembered across submissions (harness/refcache.py), the read-only inputs
that make that safe (casecheck._memo_inputs), and the comparison's fast path (compare.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attnspec import refcache
from attnspec.casecheck import _memo_inputs
from attnspec.compare import compare_values
from attnspec.inputs import Inputs
from attnspec.specmodel import Tolerance


def test_only_frozen_arrays_and_plain_values_are_keyed():
    a = np.arange(6.0)
    assert refcache.frozen_key(a) is None  # writable: its values can change under the key
    a.setflags(write=False)
    assert refcache.frozen_key(a) is None  # read-only, but not frozen here: a view of it could still be written
    frozen = refcache.freeze(np.arange(6.0))
    assert refcache.frozen_key(frozen) is not None
    assert refcache.frozen_key({"x": frozen, "n": 3, "name": "q"}) is not None
    assert refcache.frozen_key([frozen, None, 2.5]) is not None
    assert refcache.frozen_key({"x": frozen, "bad": np.zeros(2)}) is None
    assert refcache.frozen_key(object()) is None


def test_freeze_copies_views_so_no_other_array_can_write_to_it():
    base = np.arange(10.0)
    view = base[2:5]
    frozen = refcache.freeze(view)
    assert frozen.flags.owndata and not frozen.flags.writeable
    base[3] = 99.0
    assert frozen.tolist() == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError):
        frozen[0] = 1.0


def test_cached_computes_once_per_frozen_arguments_and_returns_read_only():
    calls = []
    x = refcache.freeze(np.linspace(0, 1, 5))

    def compute():
        calls.append(1)
        return x * 2

    first = refcache.cached(("test", "double"), [x], compute)
    again = refcache.cached(("test", "double"), [x], compute)
    assert again is first and len(calls) == 1
    assert not first.flags.writeable
    other = refcache.cached(("test", "double"), [refcache.freeze(np.linspace(0, 1, 5))], compute)
    assert other is not first and len(calls) == 2  # equal values, another array: keyed by identity
    writable = np.linspace(0, 1, 5)
    refcache.cached(("test", "double"), [writable], lambda: writable * 2)
    refcache.cached(("test", "double"), [writable], compute)
    assert len(calls) == 3  # never remembered for an array that can change


def test_memoized_inputs_share_read_only_arrays_in_fresh_containers():
    def build():
        return Inputs("manual_attention", {"Q": np.ones((1, 1, 2, 3)), "mask": None}, {"batch": 1}, notes={"n": [1]})

    key = ("test-memo", id(build))
    a, b = _memo_inputs(key, build), _memo_inputs(key, build)
    assert a is not b and a.args is not b.args and a.notes is not b.notes
    assert a.args["Q"] is b.args["Q"] and not a.args["Q"].flags.writeable
    a.args["mask"] = np.zeros((2, 3))  # replacing an argument in one copy leaves the other alone
    assert b.args["mask"] is None
    with pytest.raises(ValueError):
        a.args["Q"][0, 0, 0, 0] = 5.0


def _naive_match(got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> bool:
    for g, e in zip(got.ravel().tolist(), expected.ravel().tolist()):
        if np.isinf(g) and np.isinf(e) and np.sign(g) == np.sign(e):
            continue
        allowed = tol.atol + tol.rtol * (0.0 if np.isinf(e) else abs(e))
        if not abs(g - e) <= allowed:
            return False
    return True


values = st.one_of(st.floats(-1e3, 1e3), st.sampled_from([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-9]))


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, (2, 3), elements=values), st.lists(st.floats(-1e-4, 1e-4), min_size=6, max_size=6), st.sampled_from([(1e-5, 1e-4), (0.0, 0.0), (1e-3, 0.0)]))
def test_comparison_verdict_is_the_elementwise_rule(expected, noise, tol_pair):
    tol = Tolerance(*tol_pair)
    with np.errstate(invalid="ignore"):
        got = expected + np.array(noise).reshape(2, 3)
    assert (compare_values(got, expected, tol) is None) == _naive_match(got, expected, tol)
    assert (compare_values(expected.copy(), expected, tol) is None) == _naive_match(expected, expected, tol)
