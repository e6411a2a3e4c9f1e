"""Drawn (Hypothesis) cases check each submission on examples drawn once per process, and follow a
failure's search remembered from an earlier submission that answered alike: the verdict, the
smallest failing example and every call of the learner's function are the same as when
Hypothesis runs for the submission from the start (the path taken when the examples cannot be
drawn ahead), for passing, failing, raising and call-counting functions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from attnspec import casecheck as G
from attnspec.loader import load_spec
from attnspec.properties import CaseContext
from attnspec.reference import numpy_ref
from attnspec.runner import InProcessRunner, Limits


def wrong_axis(Q, K, V, mask=None):
    with np.errstate(all="ignore"):
        scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
        if mask is not None:
            scores = scores + mask
        weights = np.exp(scores - scores.max(axis=-2, keepdims=True))
        return weights / weights.sum(axis=-2, keepdims=True) @ V


def wrong_from_the_fourth_call():
    calls = []

    def manual_attention(Q, K, V, mask=None):
        calls.append(Q.shape)
        out = numpy_ref.manual_attention(Q, K, V, mask)
        return out + 1.0 if len(calls) >= 4 else out

    return manual_attention


def raises_on_big_batches(Q, K, V, mask=None):
    if Q.shape[0] > 2:
        raise ValueError(f"batch {Q.shape[0]}")
    return numpy_ref.manual_attention(Q, K, V, mask)


FUNCTIONS = {
    "reference": lambda: numpy_ref.manual_attention,
    "wrong_axis": lambda: wrong_axis,
    "stateful": wrong_from_the_fourth_call,
    "raises": lambda: raises_on_big_batches,
}


def run(case, make_fn, dtype, shrink=True):
    calls = []
    fn = make_fn()

    def counted(*args):
        calls.append(tuple(np.shape(a) for a in args))
        return fn(*args)

    runner = InProcessRunner({"manual_attention": counted, "causal_mask": numpy_ref.causal_mask})
    ctx = CaseContext(case, "numpy", dtype, case.tolerances[dtype], runner, Limits())
    result = G.check_instance(ctx, case, shrink=shrink)
    return dataclasses.asdict(result), calls, ctx.calls


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_drawn_cases_give_what_a_full_hypothesis_search_gives(name, monkeypatch):
    spec = load_spec()
    drawn = [c for c in spec.cases if c.exercise == "manual_attention" and c.inputs is not None and c.inputs.is_drawn]
    assert drawn
    outcomes = []
    for case in drawn:
        for dtype in case.dtypes:
            fast = run(case, FUNCTIONS[name], dtype)
            again = run(case, FUNCTIONS[name], dtype)  # a failure's search is now known: followed without Hypothesis
            with monkeypatch.context() as m:
                m.setattr(G, "_drawn_examples", lambda *a: (_ for _ in ()).throw(RuntimeError("not drawn ahead")))
                full = run(case, FUNCTIONS[name], dtype)
            assert fast == full, (case.id, dtype)
            assert again == full, (case.id, dtype)
            outcomes.append(fast[0]["outcome"])
    if name == "reference":
        assert set(outcomes) == {"passed"}
    else:  # a failure found after passing examples, then shrunk: the replayed prefix and the search agree
        assert set(outcomes) - {"passed"}, outcomes


def test_examples_are_drawn_once_per_process_and_case():
    spec = load_spec()
    case = next(c for c in spec.cases if c.inputs is not None and c.inputs.is_drawn)
    first = G._drawn_examples(case, True)
    assert G._drawn_examples(case, True) is first
    assert len(first) == case.examples


def test_a_remembered_search_is_followed_only_while_the_answers_agree():
    """Two functions that fail differently: the second one's search leaves the first one's tree
    where its answers differ, and Hypothesis takes over from there, with the same result as alone."""
    spec = load_spec()
    case = next(c for c in spec.cases if c.id == "ma.reference.drawn")
    dtype = case.dtypes[0]
    G._SEARCHES.clear()
    run(case, FUNCTIONS["stateful"], dtype)
    assert G._SEARCHES[(repr(case), True)], "the failing search was remembered"
    mixed = run(case, lambda: wrong_axis, dtype)
    G._SEARCHES.clear()
    alone = run(case, lambda: wrong_axis, dtype)
    assert mixed == alone
