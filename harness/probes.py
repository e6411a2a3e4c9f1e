"""Designed probes for the diagnosis: extra calls of the learner's function on inputs chosen so
that what the case outputs leave open becomes visible.

The diagnosis (harness/diagnosis.py) asks for probes only when the recorded outputs leave more
than one candidate mistake (or parameter value), or too few observations to fit. Each probe is
built from the inputs of a call the learner's code already handled (so sizes and mask layout are
ones it copes with) and changes what hides the mistake:

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

from .inputs import Inputs
from .properties import Observation

MAX_SEQ = 16  # probes reuse a recorded call's sizes; long sequences are cut to this many
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
    builder = _DESIGNS.get(exercise)
    if builder is None:
        return []
    probes: list[Probe] = []
    for name, purpose, inputs in builder(seeds):
        probes.append(Probe(name, purpose, inputs, exercise, backend))
    return probes


def _masked_seed(seeds: list[Inputs]) -> Inputs | None:
    for s in seeds:
        m = s.args.get("mask")
        if m is not None and np.isneginf(np.asarray(m, dtype=np.float64)).any():
            return s
    return None


def _cut(s: Inputs, names: tuple[str, ...], axis: int) -> Inputs:
    """Keep at most MAX_SEQ positions along `axis` of the named arrays (a 2-D/4-D mask too)."""
    changes = {}
    for n in names:
        a = s.args.get(n)
        if isinstance(a, np.ndarray) and a.shape[axis] > MAX_SEQ:
            changes[n] = np.take(a, range(MAX_SEQ), axis=axis)
    return s.with_args(**changes) if changes else s


def _ma(seeds: list[Inputs]) -> list[tuple[str, str, Inputs]]:
    out = []
    base = _masked_seed(seeds) or seeds[0]
    base = _cut(_cut(base, ("Q",), 2), ("K", "V"), 2)
    Q, K = base.args["Q"], base.args["K"]
    B, H, Tq, D = Q.shape
    Tk = K.shape[2]
    mask = base.args.get("mask")
    if mask is not None:
        mask = mask[..., :Tq, :Tk]
    eye = np.broadcast_to(np.eye(Tk), (B, H, Tk, Tk)).copy()
    dims = {**base.dims, "seq_q": Tq, "seq_k": Tk, "d_v": Tk}
    out.append(("identity_values", "V = identity, so the output is the attention weights themselves", Inputs("manual_attention", {**base.args, "V": eye, "mask": mask}, dims, base.mask_kind)))
    if mask is not None:
        out.append(("identity_values_no_mask", "V = identity and no mask: the weights without any mask", Inputs("manual_attention", {**base.args, "V": eye, "mask": None}, dims, "none")))
    # one-hot queries: row 0 is zero (uniform weights whatever the scale), row i = 2 e_{(i-1) mod D}
    onehot = np.zeros((B, H, Tq, D))
    for i in range(1, Tq):
        onehot[:, :, i, (i - 1) % D] = 2.0
    out.append(("one_hot_queries", "one-hot query rows (and a zero row) with V = identity and no mask: each row of scores is a known multiple of one column of K, so the scale is solved exactly",
                Inputs("manual_attention", {"Q": onehot, "K": K, "V": eye, "mask": None}, dims, "none")))
    # the same scores with a wider d_head: Q and K padded with zero columns (Q K^T is unchanged),
    # on one head: a scale that depends on d_head, d_v or n_heads changes, the correct one by 1/sqrt(2)
    pad = np.zeros((B, 1, Tq, D))
    wide = {"Q": np.concatenate([Q[:, :1], pad], axis=-1), "K": np.concatenate([K[:, :1], np.zeros((B, 1, Tk, D))], axis=-1), "V": eye[:, :1],
            "mask": None if mask is None or mask.ndim == 2 else mask[:, :1]}
    if mask is not None and mask.ndim == 2:
        wide["mask"] = mask
    out.append(("one_head_padded_width", "one head, Q and K padded with zero columns (the scores Q K^T are unchanged but d_head doubles) and V = identity: which width the scale uses",
                Inputs("manual_attention", wide, {**dims, "n_heads": 1, "d_head": 2 * D}, base.mask_kind)))
    rng = np.random.default_rng(7)
    bias = np.round(rng.normal(0.0, 1.5, (Tq, Tk)), 3)
    out.append(("identity_values_bias", "V = identity with a finite bias mask: whether biases are added, scaled, subtracted or dropped",
                Inputs("manual_attention", {**base.args, "V": eye, "mask": bias}, dims, "bias")))
    return out


def _mha(seeds: list[Inputs]) -> list[tuple[str, str, Inputs]]:
    out = []
    base = _masked_seed(seeds) or seeds[0]
    a = base.args
    x = a["x"]
    B, T, D = x.shape
    if T > MAX_SEQ:
        return out
    ident = np.eye(D)
    one = {**base.dims, "n_heads": 1}
    out.append(("single_head", "n_heads = 1: how heads are split and merged cannot matter, so a head-layout mistake disappears and any other stays",
                Inputs("multi_head_attention", {**a, "n_heads": 1}, one, base.mask_kind)))
    out.append(("identity_projections", "W_V = W_O = identity: the values are x itself and no output projection hides how the heads were combined",
                Inputs("multi_head_attention", {**a, "W_V": ident, "W_O": ident}, base.dims, base.mask_kind)))
    out.append(("single_head_identity", "n_heads = 1 with W_V = W_O = identity: the attention weights applied to x, nothing else",
                Inputs("multi_head_attention", {**a, "W_V": ident, "W_O": ident, "n_heads": 1}, one, base.mask_kind)))
    return out


def _block(seeds: list[Inputs]) -> list[tuple[str, str, Inputs]]:
    out = []
    base = _masked_seed(seeds) or seeds[0]
    a = base.args
    x, p = a["x"], a["params"]
    B, T, D = x.shape
    if T > MAX_SEQ:
        return out
    no_mlp = {**p, **{k: np.zeros_like(p[k]) for k in ("W_in", "b_in", "W_out", "b_out")}}
    out.append(("no_mlp", "MLP weights and biases zero: the output is the residual stream after the attention half alone",
                Inputs("transformer_block", {**a, "params": no_mlp}, base.dims, base.mask_kind)))
    no_attn = {**p, "W_V": np.zeros_like(p["W_V"])}
    out.append(("no_attention", "W_V = 0: the attention adds nothing, so the output shows the LayerNorms and the MLP alone",
                Inputs("transformer_block", {**a, "params": no_attn}, base.dims, base.mask_kind)))
    rng = np.random.default_rng(11)
    tiny = np.round(rng.normal(0.0, 1.0, (B, T, 1)), 3) + 3e-3 * np.round(rng.normal(0.0, 1.0, (B, T, D)), 3)
    out.append(("tiny_variance", "rows of x with a variance near 1e-5: LayerNorm's eps (and where it is added) shows in the output",
                Inputs("transformer_block", {**a, "x": tiny}, base.dims, base.mask_kind)))
    quiet = {**no_mlp, "W_V": np.zeros_like(p["W_V"])}
    tinier = np.round(rng.normal(0.0, 1.0, (B, T, 1)), 3) + 1e-6 * np.round(rng.normal(0.0, 1.0, (B, T, D)), 3)
    out.append(("tiny_variance_sublayers_off", "rows of x with a variance near 1e-12 and both sublayers switched off: a pre-norm block returns x, a post-norm block shows its LayerNorm's eps",
                Inputs("transformer_block", {**a, "x": tinier, "params": quiet}, base.dims, base.mask_kind)))
    out.append(("single_head", "n_heads = 1: head split and merge layouts cannot matter",
                Inputs("transformer_block", {**a, "n_heads": 1}, {**base.dims, "n_heads": 1}, base.mask_kind)))
    return out


_DESIGNS = {"manual_attention": _ma, "multi_head_attention": _mha, "transformer_block": _block}


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
