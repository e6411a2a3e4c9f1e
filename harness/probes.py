"""Designed probes for the diagnosis: extra calls of the learner's function on inputs chosen so
that what the case outputs leave open becomes visible.

The diagnosis (harness/diagnosis.py) asks for probes only when the recorded outputs leave more
than one candidate mistake (or parameter value), or too few observations to fit. Each probe is
built by the exercise (`Exercise.probe_designs`) from the inputs of a call the learner's code
already handled (so sizes and mask layout are ones it copes with) and changes what hides the
mistake:

- manual_attention: V = I (seq_k x seq_k), so the output *is* the attention weights (softmax
  axis, scale, mask semantics, a self-built causal mask's diagonal, a mask applied after the
  softmax); one-hot queries (with a zero row), so each row of scores is a known multiple of one
  column of K and the scale can be solved exactly; a finite bias mask with V = I (biases added,
  scaled, dropped or subtracted).
- multi_head_attention: a single head (n_heads = 1: head split and merge layouts cannot matter,
  so a layout mistake disappears and any other stays); W_V = W_O = I (the values are x itself and
  no output projection hides the heads).
- transformer_block: the MLP switched off (zero weights and biases: the attention half alone),
  the attention switched off (W_V = 0: the LayerNorm and MLP half alone), rows of x with a tiny
  variance (LayerNorm's eps becomes visible; with both sublayers off too, for a post-norm block),
  a single head.

Probe calls run where case calls run: in the submission's sandboxed case child, through the same
`CaseSession.call` path (`SessionProber`); trusted code (tests, benchmarks) may use
`InProcessProber`. A probe that raises, crashes or times out contributes nothing. Probes never
touch scores: they run after the exercise is scored, for the diagnosis only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exercises import EXERCISES
from .inputs import Inputs
from .properties import Observation

PROBE_TIMEOUT_S = 10.0


@dataclass
class Probe:
    name: str
    purpose: str
    inputs: Inputs
    function: str
    backend: str
    dtype: str = "float64"
    observation: Observation | None = None
    status: str = "not_run"  # ok | raised | timeout | crashed | ... | not_run | skipped
    detail: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = {"probe": self.name, "purpose": self.purpose, "status": self.status, "inputs": self.inputs.shapes()}
        out.update(self.detail)
        return out


# ---------------------------------------------------------------- designs


def design(exercise: str, seeds: list[Inputs], backend: str) -> list[Probe]:
    """The probes for `exercise`, built from recorded inputs (the first seed with a mask that
    blocks something, and the first seed without a mask, when there are such)."""
    seeds = [s for s in seeds if isinstance(s, Inputs) and s.exercise == exercise]
    if not seeds:
        return []
    seed = _masked_seed(seeds) or seeds[0]
    return [Probe(name, purpose, Inputs(exercise, args, dims, mask_kind), exercise, backend)
            for name, purpose, args, dims, mask_kind in EXERCISES[exercise].probe_designs(seed)]


def _masked_seed(seeds: list[Inputs]) -> Inputs | None:
    for s in seeds:
        m = s.args.get("mask")
        if m is not None and np.isneginf(np.asarray(m, dtype=np.float64)).any():
            return s
    return None


# ---------------------------------------------------------------- running them


def _observe(probe: Probe, outcome: Any) -> None:
    probe.status = outcome.status
    if outcome.status != "ok":
        return
    out = outcome.output
    if out is None or out.values is None:
        probe.status = "no_array"
        return
    probe.observation = Observation(probe.function, probe.inputs, probe.backend, probe.dtype, out.values, "ok", None, out.kind, None)


class InProcessProber:
    """Probe calls through a trusted in-process runner (spec check, benchmarks, tests)."""

    def __init__(self, runner: Any):
        self.runner = runner

    def run(self, probes: list[Probe]) -> None:
        for p in probes:
            try:
                outcome = self.runner.call(p.function, p.inputs, backend=p.backend, dtype=p.dtype)
            except Exception:  # noqa: BLE001 - a probe that fails contributes nothing
                p.status = "crashed"
                continue
            _observe(p, outcome)


class SessionProber:
    """Probe calls in the submission's sandbox: one case child, the same call path as the cases.
    A call that does not return ends the probes (the child is gone); the rest are not run."""

    def __init__(self, session: Any, forbidden: list[str], deadline: float, label: str):
        self.session, self.forbidden, self.deadline, self.label = session, forbidden, deadline, label

    def run(self, probes: list[Probe]) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 1.0 or not probes:
            for p in probes:
                p.status = "not_run"
            return
        try:
            with self.session.case(f"{self.label}.diagnosis_probes", min(PROBE_TIMEOUT_S, remaining), forbidden=self.forbidden) as cs:
                for i, p in enumerate(probes):
                    outcome = cs.call(p.function, p.inputs, backend=p.backend, dtype=p.dtype)
                    _observe(p, outcome)
                    if outcome.fatal:
                        break
        except Exception:  # noqa: BLE001 - probes are diagnosis only: nothing they do may fail the grading
            for p in probes:
                if p.status == "not_run":
                    p.status = "crashed"
