"""Name the learner's mistake by inference: fit mistake families (with their parameters) to every
output the learner's code produced while it was graded, alone and in pairs or triples, and name
a model only when it reproduces every failing call and stays consistent with every passing one.

A model is *accepted* when it reproduces every recorded call within 10x the case tolerance,
and there is at least one call the reference misses by more than that (so the model explains
something the reference cannot; near misses at the tolerance's scale are rounding). The smallest accepted models win; when two different
ones fit equally, only what they share is named. Failures that values cannot show (a tuple
returned, an exception only without a mask, no autograd graph) are read from the structured
failures and the recorded calls. When nothing fits, the report says what is known instead.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from . import misconceptions, probes, refcache
from .exercises import EXERCISES
from .inputs import Inputs
from .misconceptions import STRUCTURAL_PROPERTIES, Misconception
from .reports.failure import builtin_exception_name
from .results import Diagnosis
from .specmodel import Tolerance
from .timing import input_megabytes

EXPLAIN_FACTOR = 10.0
LARGE_CALL_MB = 0.5  # as float64: the realistic-size cases' inputs take ~10 MB, the others ~0.01 MB
TRIPLE_BUDGET_S = 4.0
NO_MATCH = (
    "No known mistake from the catalogue reproduces all of the failing results; "
    "the failing cases below show what differs and where."
)
NUMPY_DTYPES = ("float32", "float16")
FEW_CALLS = 2  # a model fitted on fewer reproduced calls than this is checked against probes first
PROBE_TOLERANCE = Tolerance(atol=1e-9, rtol=1e-7)  # float64, as the shipped spec's float64 cases


@dataclass
class _Call:
    """One recorded call of the exercise function, with how far the reference is from it."""

    obs: Any
    case_id: str
    tol: Any
    ref_ratio: float  # max |got - ref| / allowed; inf when shapes differ or only one raised
    dims: dict[str, int] = field(default_factory=dict)

    @property
    def must_explain(self) -> bool:
        return self.ref_ratio > 1.0

    @cached_property
    def large(self) -> bool:
        """Inputs of realistic size: a model costs ~100x more to run on them than on a small case's."""
        return input_megabytes(self.obs.inputs) > LARGE_CALL_MB


@dataclass
class _Fit:
    members: tuple[tuple[Misconception, dict[str, Any]], ...]
    knobs: dict[str, Any]
    reproduced: int
    cases: set[str]
    worst: float


def diagnose(run: Any, options: Any = None, source: str = "", prober: Any = None, sound: tuple[str, ...] = ()) -> None:
    """Fill run.result.diagnoses (or diagnosis_note and diagnosis_facts) from the evidence gathered while grading.

    `prober` (probes.SessionProber / probes.InProcessProber, or None) runs designed probe calls
    when the recorded outputs leave more than one candidate, or too few observations to fit.
    `sound`: lower exercises whose learner function this one calls and that passed all their cases."""
    result = run.result
    for backend in result.backends:
        failing = [e for e in run.evidence if e.backend == backend]
        if not failing:
            continue
        passing = [e for e in run.passed_evidence if e.backend == backend]
        _Diagnoser(result, backend, failing, passing, source, prober, sound).run()
    if result.failed_cases and not result.diagnoses and not result.diagnosis_note:
        result.diagnosis_note = NO_MATCH
    filter_hints(result)


class _Diagnoser:
    def __init__(self, result: Any, backend: str, failing: list, passing: list, source: str, prober: Any = None, sound: tuple[str, ...] = ()):
        self.result, self.backend, self.failing, self.passing, self.source = result, backend, failing, passing, source
        self.prober = prober
        # the learner's own lower-exercise functions this one calls and that passed every case of
        # their own: a mistake inside them (block.mha.*) is not a candidate
        self.sound = tuple(f"{EXERCISES[result.exercise].prefix}.{EXERCISES[lower].lifted_name}." for lower in sound if EXERCISES[lower].lifted_name)
        self.probes: list[probes.Probe] = []  # the probes that ran (with an observation or not)
        self.exercise = result.exercise
        self.explained_calls: set[int] = set()  # id() of observations a signature already explains
        self.cache: dict[tuple[int, str], float] = {}

    # -- entry ------------------------------------------------------------------------------

    def _catalogue(self) -> list[Misconception]:
        return [m for m in misconceptions.for_exercise(self.exercise) if not m.id.startswith(self.sound)] if self.sound else list(misconceptions.for_exercise(self.exercise))

    def run(self) -> None:
        named: list[Diagnosis] = []
        for m in self._catalogue():
            if self.backend not in m.backends or (m.signature is None and m.rule is None and m.function is None):
                continue
            evidence = self._structural(m)
            if evidence is not None:
                named.append(self._diagnosis(m, evidence))
        if any(d.id.endswith(".returns_tuple") for d in named):  # the tuple is why the array type is wrong
            named = [d for d in named if not d.id.endswith(".wrong_array_type")]
        case_calls = calls = self._calls()
        fittable = any(c.ref_ratio > EXPLAIN_FACTOR and c.obs.status == "ok" for c in calls)
        fits = self._candidates(calls) if fittable else []
        why = None
        if self.prober is not None:
            if fittable:
                why = self._probe_reason(calls, fits)
            elif any(c.must_explain and c.obs.status == "ok" for c in calls):
                why = "few"  # every difference is within 10x the tolerance: too small to fit on
        if why is not None:
            extra = self._run_probes(calls, fits, why)
            if extra:  # probes that returned nothing leave the verdict as it was
                calls = calls + extra
                fittable = any(c.ref_ratio > EXPLAIN_FACTOR and c.obs.status == "ok" for c in calls)
                fits = self._candidates(calls) if fittable else []
        fit = self._verdict(fits, calls) if fittable else None
        if isinstance(fit, list):
            # a fitted model reproduces the float64 calls within 10x their tolerance: they were not computed in float32
            named = [d for d in named if not d.id.endswith(".float32_internal")]
            for m, knobs, evidence in fit:
                named.append(self._diagnosis(m, evidence, knobs))
        elif isinstance(fit, str):
            self.result.diagnosis_note = fit
        covered = {gone for d in named for gone in SUBSUMES.get(d.id, ())}
        for d in [d for d in named if d.id not in covered]:
            if not any(x.id == d.id for x in self.result.diagnoses):
                self.result.diagnoses.append(d)
        if not named and self.result.failed_cases:
            facts = self._facts(case_calls)
            self.result.diagnosis_facts.extend(f for f in facts if f not in self.result.diagnosis_facts)
            if facts and not self.result.diagnosis_note:
                self.result.diagnosis_note = "No known mistake reproduces all of the failing results. What is known: " + "; ".join(f["text"] for f in facts) + "."

    def _diagnosis(self, m: Misconception, evidence: dict[str, Any], knobs: dict[str, Any] | None = None) -> Diagnosis:
        params = _params(m, knobs)
        confidence = evidence.pop("confidence", "high")
        return Diagnosis(m.id, m.title, m.feedback, m.reference, self.backend, evidence, params=params, confidence=confidence)

    # -- signatures read from structured failures and recorded calls ---------------------------

    def _structural(self, m: Misconception) -> dict[str, Any] | None:
        if m.signature is not None:
            prop, kind, *got = m.signature
            cases = self._failed_with(prop, (kind,), got[0] if got else None)
            seen = f" (got {got[0]})" if got else ""
            return {"failed_cases": cases, "rule": f"the '{prop}' property failed with a {kind} failure{seen}"} if cases else None
        if m.rule is not None and m.rule in RULES:
            return RULES[m.rule](self)
        if m.function is not None and m.function != self.exercise:
            return self._helper_function(m)
        return None

    def _failed_with(self, prop: str | None, kinds: tuple[str, ...], got: str | None = None) -> list[str]:
        return sorted(
            c.case_id
            for c in self.result.cases
            if (prop is None or c.property == prop)
            and any(
                i.backend == self.backend
                and i.outcome != "passed"
                and (i.failure or {}).get("kind") in kinds
                # a None output is a missing return, not the array type or dtype a signature names
                and ((i.failure or {}).get("got") == got if got is not None else (i.failure or {}).get("got") != "none")
                for i in c.instances
            )
        )

    def _helper_function(self, m: Misconception) -> dict[str, Any] | None:
        """causal_mask and other helpers: the mistake computes what the learner's helper returned on every call."""
        fn = m.implementation()
        matched, cases = 0, set()
        for e in self.failing:
            for obs in e.observations:
                if obs.function != m.target:
                    continue
                r = _ratio(fn, obs, e.case.tolerances[e.dtype])
                if r > EXPLAIN_FACTOR:
                    return None
                matched += 1
                cases.add(e.case.id)
        if not matched:
            return None
        for e in self.passing:
            for obs in e.observations:
                if obs.function == m.target and _ratio(fn, obs, e.case.tolerances[e.dtype]) > EXPLAIN_FACTOR:
                    return None
        return {"failed_cases": sorted(cases), "calls_reproduced": matched}

    # -- value fitting -----------------------------------------------------------------------

    def _calls(self) -> list[_Call]:
        """Every call of the exercise function with readable values or an exception, failing and passing."""
        ref = misconceptions._variant(self.exercise, {})
        calls = []
        for e in self.failing + self.passing:
            tol = e.case.tolerances[e.dtype]
            passed = e in self.passing  # it passed the real check: nothing there to explain
            for obs in e.observations:
                if obs.function != self.exercise or id(obs) in self.explained_calls:
                    continue
                if obs.status == "ok" and obs.values is None:
                    continue
                if obs.status not in ("ok", "raised"):
                    continue
                dims = obs.inputs.dims if isinstance(obs.inputs, Inputs) else {}
                ratio = _ratio(ref, obs, tol)
                calls.append(_Call(obs, e.case.id, tol, min(ratio, 1.0) if passed else ratio, dims))
        return calls

    def _candidates(self, calls: list[_Call]) -> list[_Fit]:
        """Every smallest model that reproduces the calls that need explaining and agrees with the rest."""
        must = sorted([c for c in calls if c.must_explain], key=lambda c: -c.ref_ratio)
        rest = [c for c in calls if not c.must_explain]
        settings = [(m, k) for m in self._catalogue() if m.by_output and self.backend in m.backends and m.id not in _FALLBACK_ONLY for k in m.settings()]
        fits = self._search(settings, must, rest)
        if not fits:
            fits = self._fit_scale(must, rest)
        if not fits:
            return []
        size = min(len(f.members) for f in fits)
        return [f for f in fits if len(f.members) == size]

    def _verdict(self, best: list[_Fit], calls: list[_Call]) -> list | str | None:
        if not best:
            return None
        rest = [c for c in calls if not c.must_explain and not c.case_id.startswith(PROBE_PREFIX)]
        ids = [frozenset(m.id for m, _ in f.members) for f in best]
        shared = frozenset.intersection(*ids)
        if not shared:
            alternatives = sorted(" + ".join(sorted(s)) for s in set(ids))
            return (
                "Several different mistakes reproduce every failing result equally well, so none is named: "
                + "; or ".join(alternatives)
                + ". The failing cases below show what differs."
            )
        chosen = best[0]
        probed = self._probe_evidence(chosen)
        settings = {repr(sorted(_flatten(f.knobs))) for f in best if frozenset(m.id for m, _ in f.members) == ids[0]}
        out: list[tuple[Misconception, dict[str, Any] | None, dict[str, Any]]] = []
        for m, fitted in chosen.members:
            if m.id not in shared:
                continue
            knobs: dict[str, Any] | None = fitted
            evidence: dict[str, Any] = {
                "failed_cases": sorted(c for c in chosen.cases if not c.startswith(PROBE_PREFIX)),
                "calls_reproduced": chosen.reproduced,
                "calls_consistent": len(rest),
                "max_ratio_to_tolerance": round(chosen.worst, 3),
                "model": [x.id for x, _ in chosen.members],
                "confidence": "high" if (chosen.reproduced >= 3 and len(chosen.cases) >= 2 and rest) or any(p["reproduced"] for p in probed) else "medium",
            }
            if len(set(ids)) > 1:
                evidence["alternatives"] = sorted(" + ".join(sorted(s)) for s in set(ids))
            if len(settings) > 1 and m.grid:
                fitted_params = [_params(m, f.knobs) for f in best if any(x.id == m.id for x, _ in f.members)]
                if any(a != fitted_params[0] for a in fitted_params):  # the outputs do not pin the parameter: none is reported
                    evidence["parameter_alternatives"] = fitted_params
                    evidence["confidence"] = "medium"
                    knobs = None
            if probed:
                evidence["probes"] = probed
            out.append((m, knobs, evidence))
        return out

    # -- designed probes (harness/probes.py) -------------------------------------------------

    def _probe_reason(self, calls: list[_Call], best: list[_Fit]) -> str | None:
        """Why the recorded outputs are not enough: several candidates, several parameter values,
        or too few observations (nothing fits, or the only fit rests on very few calls)."""
        if best:
            ids = {frozenset(m.id for m, _ in f.members) for f in best}
            if len(ids) > 1:
                return "ambiguous"
            if len({repr(sorted(_flatten(f.knobs))) for f in best}) > 1:
                return "parameter"
            if best[0].reproduced < FEW_CALLS or len({c for c in best[0].cases}) < 2:
                return "few"
            return None
        ok = [c for c in calls if c.obs.status == "ok" and c.must_explain]
        if len(ok) < 3 or len({c.case_id for c in ok}) < 2:
            return "few"
        return None

    def _run_probes(self, calls: list[_Call], best: list[_Fit], why: str) -> list[_Call]:
        """Run the designed probes (for an ambiguity, only those on which the candidates differ) and
        return their answers as calls to fit; a probe that raised or did not return adds nothing."""
        ok = [c for c in calls if c.obs.status == "ok" and isinstance(c.obs.inputs, Inputs)]
        hidden = {e.case.id for e in self.failing + self.passing if e.case.hidden}  # visible cases' inputs first
        seeds = [c.obs.inputs for c in sorted(ok, key=lambda c: (c.case_id in hidden, not c.must_explain, c.obs.dtype != "float64"))]
        designed = probes.design(self.exercise, seeds, self.backend)
        if why in ("ambiguous", "parameter"):
            designed = [p for p in designed if self._discriminates(p, best)]
        if not designed:
            return []
        try:
            self.prober.run(designed)
        except Exception:  # noqa: BLE001 - probes are diagnosis only; a broken prober leaves the verdict as it was
            return []
        ref = misconceptions._variant(self.exercise, {})
        out = []
        for p in designed:
            if p.observation is None:
                continue
            ratio = _ratio(ref, p.observation, PROBE_TOLERANCE)
            p.detail["differs_from_reference"] = bool(ratio > 1.0)
            out.append(_Call(p.observation, PROBE_PREFIX + p.name, PROBE_TOLERANCE, ratio, dict(p.inputs.dims)))
        self.probes = designed if out else []  # probes that all failed leave no trace: the verdict is as without them
        return out

    def _discriminates(self, p: probes.Probe, best: list[_Fit]) -> bool:
        """Do two candidate models give different outputs on this probe's inputs?"""
        outs: list[np.ndarray | None] = []
        for f in best:
            fn = misconceptions._variant(self.exercise, f.knobs)
            try:
                with np.errstate(all="ignore"):
                    outs.append(np.asarray(fn(*p.inputs.positional()), dtype=np.float64))
            except (ValueError, IndexError, TypeError, RuntimeError, FloatingPointError, ZeroDivisionError):
                outs.append(None)
        for a, b in itertools.combinations(outs, 2):
            if a is None or b is None:
                if (a is None) != (b is None):
                    return True
                continue
            if a.shape != b.shape:
                return True
            with np.errstate(all="ignore"):
                allowed = EXPLAIN_FACTOR * (PROBE_TOLERANCE.atol + PROBE_TOLERANCE.rtol * np.abs(np.where(np.isfinite(a), a, 0.0)))
                same = (np.isnan(a) & np.isnan(b)) | (a == b) | (np.abs(a - b) <= allowed)
            if not np.all(same):
                return True
        return False

    def _probe_evidence(self, chosen: _Fit | None) -> list[dict[str, Any]]:
        """What each probe showed: run or not, and whether the named model reproduces its answer."""
        out = []
        fn = misconceptions._variant(self.exercise, chosen.knobs) if chosen is not None else None
        for p in self.probes:
            item = p.summary()
            item["reproduced"] = bool(fn is not None and p.observation is not None and _ratio(fn, p.observation, PROBE_TOLERANCE) <= EXPLAIN_FACTOR)
            out.append(item)
        return out

    def _search(self, settings: list, must: list[_Call], rest: list[_Call]) -> list[_Fit]:
        for size in (1, 2, 3):
            start = time.monotonic()
            fits = []
            for combo in itertools.combinations(settings, size):
                if size == 3 and time.monotonic() - start > TRIPLE_BUDGET_S:
                    break
                families = [m.family for m, _ in combo]
                if len(set(families)) < size:
                    continue
                knobs: dict[str, Any] = {}
                for _, k in combo:
                    knobs = _merge(knobs, k)
                fit = self._accept(knobs, must, rest)
                if fit is not None:
                    fits.append(_Fit(tuple(combo), knobs, *fit))
            if fits:
                return fits
        return []

    def _accept(self, knobs: dict[str, Any], must: list[_Call], rest: list[_Call]) -> tuple[int, set[str], float] | None:
        """(calls reproduced, cases, worst ratio) if this model explains `must` and agrees with `rest`."""
        fn = misconceptions._variant(self.exercise, knobs)
        key = repr(sorted(_flatten(knobs)))
        worst, cases = 0.0, set()
        # Every call must agree, so the order only decides how soon a wrong model is dropped: gross
        # misses first (most models fail there at once), and calls at realistic sizes last.
        checks = [(c, True) for c in must if not c.large] + [(c, False) for c in rest if not c.large]
        checks += [(c, True) for c in must if c.large] + [(c, False) for c in rest if c.large]
        for c, explained in checks:
            r = self._cached(fn, key, c)
            # must: for a gross miss (ref_ratio > 10) this also means far better than the reference
            if (not r <= EXPLAIN_FACTOR) if explained else r > EXPLAIN_FACTOR:
                return None
            worst = max(worst, r)
            if explained:
                cases.add(c.case_id)
        return len(must), cases, worst

    def _cached(self, fn: Callable[..., Any], key: str, c: _Call) -> float:
        k = (id(c), key)
        if k not in self.cache:
            self.cache[k] = _ratio(fn, c.obs, c.tol)
        return self.cache[k]

    def _fit_scale(self, must: list[_Call], rest: list[_Call]) -> list[_Fit]:
        """Solve for the factor the scores were actually scaled by (relative to 1/sqrt(d_head))."""
        m = misconceptions.BY_ID.get(misconceptions.lifted_id(self.exercise, "ma.scale_other"))
        if m is None or not must:
            return []

        def knobs_for(c: float) -> dict[str, Any]:
            return _lift_knobs(self.exercise, {"scale": c})

        solved = _solve_scale(must + rest)
        if solved is not None and abs(solved - 1.0) >= 1e-3:
            knobs = knobs_for(round(solved, 6))
            fit = self._accept(knobs, must, rest)
            if fit is not None:
                return [_Fit(((m, knobs),), knobs, *fit)]

        def loss(logc: float) -> float:
            fn = misconceptions._variant(self.exercise, knobs_for(math.exp(logc)))
            return max(_ratio(fn, c.obs, c.tol) for c in must[:4])

        grid = np.linspace(-4.0, 4.0, 81)
        values = [loss(g) for g in grid]
        best = float(grid[int(np.argmin(values))])
        lo, hi = best - 0.1, best + 0.1
        for _ in range(30):  # golden-section refinement
            a, b = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
            if loss(a) < loss(b):
                hi = b
            else:
                lo = a
        factor = math.exp((lo + hi) / 2)
        if abs(factor - 1.0) < 1e-3:
            return []
        knobs = knobs_for(round(factor, 6))
        fit = self._accept(knobs, must, rest)
        return [_Fit(((m, knobs),), knobs, *fit)] if fit is not None else []

    # -- what is known when nothing is named ---------------------------------------------------

    def _facts(self, calls: list[_Call]) -> list[dict[str, Any]]:
        facts: list[dict[str, Any]] = []
        bad = [c for c in calls if c.must_explain]
        good = [c for c in calls if not c.must_explain]
        if not bad:
            return facts
        features = {
            "mask": lambda c: "a mask" if _mask_of(c.obs) is not None else "no mask",
            "dtype": lambda c: c.obs.dtype,
            "batch": lambda c: "batch 1" if c.dims.get("batch") == 1 else "batch > 1",
        }
        if EXERCISES[self.exercise].separate_key_axis:
            features["square"] = lambda c: "seq_q == seq_k" if c.dims.get("seq_q") == c.dims.get("seq_k") else "seq_q != seq_k"
        for name, feature in features.items():
            bad_values = {feature(c) for c in bad}
            good_values = {feature(c) for c in good}
            if len(bad_values) == 1 and good_values and not (bad_values & good_values):
                (value,) = bad_values
                facts.append({"feature": name, "failing": value, "passing": sorted(good_values), "text": f"every failing call has {value}; calls with {', '.join(sorted(good_values))} pass"})
        ran = [p for p in self.probes if p.observation is not None]
        if ran:
            differs = [p.name for p in ran if p.detail.get("differs_from_reference")]
            text = f"designed probes ran ({', '.join(p.name for p in ran)}); " + (f"{', '.join(differs)} differ from the reference" if differs else "all of them match the reference")
            facts.append({"feature": "probes", "probes": [p.summary() for p in self.probes], "text": text})
        raised = [c for c in bad if c.obs.status == "raised"]
        if raised and len(raised) < len(bad):
            kinds = sorted({builtin_exception_name(c.obs.error_type) or "an exception class of the submission's own" for c in raised})  # hidden calls are among them
            facts.append({"feature": "raised", "text": f"{len(raised)} of {len(bad)} differing calls raised {', '.join(kinds)}"})
        if all(c.obs.status == "ok" for c in bad):
            rel = max(_rel_error(c, self.exercise) for c in bad)
            if rel < 1e-4:
                facts.append({"feature": "size", "text": f"the differences are tiny (relative error at most {rel:.1e}), at the level of float32 rounding"})
        return facts


# ---------------------------------------------------------------- signature rules


def _square_only(d: _Diagnoser) -> dict[str, Any] | None:
    """Every value call with seq_q != seq_k fails and every one with seq_q == seq_k (>= 2) passes."""
    if not EXERCISES[d.exercise].separate_key_axis:
        return None

    def shapes(evidence: list) -> list[tuple[str, bool]]:
        out = []
        for e in evidence:
            if e.case.property in STRUCTURAL_PROPERTIES:
                continue
            for obs in e.observations:
                if isinstance(obs.inputs, Inputs) and EXERCISES[obs.inputs.exercise].separate_key_axis:
                    dims = obs.inputs.dims
                    out.append((e.case.id, dims["seq_q"] == dims["seq_k"] and dims["seq_q"] >= 2))
        return out

    bad, good = shapes(d.failing), shapes(d.passing)
    if not bad or any(square for _, square in bad) or not good or not all(square for _, square in good):
        return None
    for e in d.failing:
        d.explained_calls.update(id(o) for o in e.observations)
    return {"failed_cases": sorted({c for c, _ in bad}), "rule": "every case with seq_q != seq_k fails, every case with seq_q == seq_k passes"}


def _gradient_failures(d: _Diagnoser) -> list[dict[str, Any]]:
    return [
        i.failure or {}
        for c in d.result.cases
        if c.property == "gradients_match"
        for i in c.instances
        if i.backend == d.backend and i.outcome != "passed"
    ]


def _value_failures(d: _Diagnoser) -> bool:
    return any(e.case.property not in STRUCTURAL_PROPERTIES for e in d.failing)


def _gradients_only(d: _Diagnoser) -> dict[str, Any] | None:
    """Gradients are wrong while the forward values are right everywhere: a step autograd cannot see."""
    failures = _gradient_failures(d)
    if not failures or _value_failures(d):
        return None
    if not all(f.get("kind") == "gradient" and (f.get("evidence") or {}).get("forward_ok") for f in failures):
        return None
    return {"failed_cases": d._failed_with("gradients_match", ("gradient",)), "rule": "gradient cases fail with right forward values while every value case passes"}


_NO_GRAD = re.compile(r"\bno_grad\b|\binference_mode\b|set_grad_enabled\(\s*False")
# detach() not followed by .numpy(), or a write through .data: another way to cut the graph, so the cause is not certain
_DETACH = re.compile(r"\.detach\(\)(?!\s*\.(cpu\(\)\s*\.)?numpy\(\))|\.data\b")
_NUMPY_TRIP = re.compile(r"\.numpy\(\)|torch\.(tensor|from_numpy)\(")


def _no_graph(d: _Diagnoser, kinds: tuple[str, ...], pattern: re.Pattern, other: re.Pattern) -> dict[str, Any] | None:
    """Every gradient case lost the graph (none at all, or cut before some inputs) while the forward
    values are right; the source tells which way the graph was lost."""
    failures = _gradient_failures(d)
    if not failures or not all(f.get("kind") in kinds and (f.get("evidence") or {}).get("forward_ok") for f in failures):
        return None
    if not pattern.search(d.source) or other.search(d.source) or _DETACH.search(d.source):
        return None
    kind = "no graph at all" if all(f.get("kind") == "no_graph" for f in failures) else "a graph cut before some inputs"
    return {"failed_cases": d._failed_with("gradients_match", kinds), "rule": f"{kind} although the inputs require grad; forward values are right", "source_pattern": pattern.pattern}


def _no_graph_no_grad(d: _Diagnoser) -> dict[str, Any] | None:
    return _no_graph(d, ("no_graph",), _NO_GRAD, _NUMPY_TRIP)


def _no_graph_numpy(d: _Diagnoser) -> dict[str, Any] | None:
    return _no_graph(d, ("no_graph", "grad_missing"), _NUMPY_TRIP, _NO_GRAD)


def _exercise_calls(d: _Diagnoser, evidence: list) -> list[Any]:
    return [o for e in evidence for o in e.observations if o.function == d.exercise]


def _returns_tuple(d: _Diagnoser) -> dict[str, Any] | None:
    ok = [o for o in _exercise_calls(d, d.failing + d.passing) if o.status == "ok"]
    if not ok or not all(getattr(o, "kind", None) == "tuple" for o in ok):
        return None
    d.explained_calls.update(id(o) for o in ok)
    return {"failed_cases": sorted({e.case.id for e in d.failing}), "rule": f"all {len(ok)} calls returned a tuple"}


def _fails_without_mask(d: _Diagnoser) -> dict[str, Any] | None:
    calls = _exercise_calls(d, d.failing + d.passing)
    raised = [o for o in calls if o.status == "raised"]
    if not raised or not all(_mask_of(o) is None for o in raised):
        return None
    without = [o for o in calls if _mask_of(o) is None and o.status != "raised"]
    with_mask_ok = [o for o in calls if _mask_of(o) is not None and o.status == "ok"]
    if without or not with_mask_ok:
        return None
    d.explained_calls.update(id(o) for o in raised)
    cases = sorted({e.case.id for e in d.failing if any(o.status == "raised" for o in e.observations)})
    return {"failed_cases": cases, "rule": f"all {len(raised)} calls with mask=None raised ({', '.join(sorted({str(o.error_type) for o in raised}))}); every call with a mask returned"}


def _half_fill_overflow(d: _Diagnoser) -> dict[str, Any] | None:
    calls = _exercise_calls(d, d.failing + d.passing)
    raised = [o for o in calls if o.status == "raised"]
    if not raised or not all(o.dtype == "float16" and "overflow" in str(getattr(o, "error_message", "") or "") for o in raised):
        return None
    if not any(o.status == "ok" and o.dtype != "float16" for o in calls):
        return None
    d.explained_calls.update(id(o) for o in raised)
    cases = sorted({e.case.id for e in d.failing if any(o.status == "raised" for o in e.observations)})
    return {"failed_cases": cases, "rule": "only float16 calls raised, with an overflow converting a fill value"}


def _float32_internal(d: _Diagnoser) -> dict[str, Any] | None:
    """Only float64 calls differ, all by float32-rounding amounts, and every lower-precision case passes."""
    calls = d._calls()
    bad = [c for c in calls if c.must_explain]
    if not bad or any(c.obs.dtype != "float64" or c.obs.status != "ok" for c in bad):
        return None
    if not any(c.obs.dtype == "float32" for c in calls):
        return None
    worst = max(_rel_error(c, d.exercise) for c in bad)
    if worst > 1e-4:
        return None
    on_grid = all(np.array_equal(c.obs.values.astype(np.float32).astype(np.float64), c.obs.values) for c in bad)
    return {
        "failed_cases": sorted({c.case_id for c in bad}),
        "rule": "only float64 calls differ, by at most float32 rounding, and float32 cases pass",
        "max_relative_error": float(f"{worst:.3g}"),
        "result_on_float32_grid": on_grid,
        "confidence": "high" if on_grid else "medium",
    }


RULES: dict[str, Callable[[_Diagnoser], dict[str, Any] | None]] = {
    "square_only": _square_only,
    "gradients_only": _gradients_only,
    "no_graph_no_grad": _no_graph_no_grad,
    "no_graph_numpy": _no_graph_numpy,
    "returns_tuple": _returns_tuple,
    "fails_without_mask": _fails_without_mask,
    "half_fill_overflow": _half_fill_overflow,
    "float32_internal": _float32_internal,
}
# One mistake seen two ways: a True/False mask is a 0/1 keep-mask in bool dtype, so its values
# fit cm.keep01 too; only the more specific name is given.
SUBSUMES: dict[str, tuple[str, ...]] = {"cm.boolean": ("cm.keep01",)}
PROBE_PREFIX = "probe:"
_FALLBACK_ONLY = {"ma.scale_other", "mha.attention.scale_other", "block.attention.scale_other"}


# ---------------------------------------------------------------- per-case hints


def filter_hints(result: Any) -> None:
    """Keep a case's hints only where they agree with the exercise-level diagnosis: with a named
    diagnosis, only hints it names; without one, only hints the case itself verified."""
    named = {d.id for d in result.diagnoses}
    for case in result.cases:
        for inst in case.instances:
            failure = inst.failure
            if not failure or not failure.get("hints"):
                continue
            verified = set((failure.get("evidence") or {}).get("reproduced_by", []))
            kept = []
            for h in failure["hints"]:
                ident = misconceptions.lifted_id(result.exercise, h)
                if named and ident in named:
                    kept.append(ident)
                elif not named and (h in verified or _is_generic(h)):
                    kept.append(ident)
            failure["hints"] = kept
            m = misconceptions.BY_ID.get(kept[0]) if kept else None
            inst.likely = f"{m.title} [{m.id}]" if m is not None else None


def _is_generic(hint: str) -> bool:
    """Advice that names no mistake (a missing return, NumPy's float64 promotion, ...)."""
    return hint in ("hint.missing_return", "hint.numpy_promotion", "hint.half_not_cast_back", "hint.tolist", "hint.torch_to_numpy", "hint.numpy_to_torch", "hint.in_place")


# ---------------------------------------------------------------- helpers


def _ratio(fn: Callable[..., Any], obs: Any, tol: Any) -> float:
    """How far `fn` is from the learner's call, in units of the case tolerance (0 = both raised)."""
    args = exact = obs.inputs.positional() if isinstance(obs.inputs, Inputs) else list(obs.inputs)
    if obs.dtype == "float32" or (obs.dtype == "float16" and obs.backend == "numpy"):
        # Run the mistake in the learner's dtype: overflow (exp without the max shift) and
        # rounding happen at float32's limits, not float64's.
        args = [_cast(a, obs.dtype) for a in args]
    elif obs.dtype in ("float16", "bfloat16"):
        # PyTorch computes half-precision softmax and LayerNorm in float32 inside: do the same.
        args = [_cast(a, "float32") for a in args]
    error = None
    try:
        with np.errstate(all="ignore"):
            alt = np.asarray(fn(*args), dtype=np.float64)
        raised = False
    except (ValueError, IndexError, TypeError, RuntimeError, FloatingPointError, ZeroDivisionError) as exc:
        alt, raised, error = None, True, type(exc).__name__
    if obs.status == "raised":
        # Raising is weak evidence: it counts only with the same exception type, and a model is
        # never named on raised calls alone (see _Diagnoser.run).
        return 0.0 if raised and _error_group(error) == _error_group(obs.error_type) else math.inf
    if obs.status != "ok" or obs.values is None or raised or alt is None:
        return math.inf
    got = obs.values
    if got.shape != alt.shape:
        return math.inf
    if got.size == 0:
        return 0.0
    same_special = (np.isnan(got) & np.isnan(alt)) | (np.isinf(got) & np.isinf(alt) & (np.sign(got) == np.sign(alt)))
    with np.errstate(all="ignore"):
        diff = np.where(same_special, 0.0, np.abs(got - alt))
        allowed = tol.atol + tol.rtol * np.abs(np.where(np.isfinite(alt), alt, 0.0))
        allowed = allowed + _rounding_noise(fn, exact, alt) if args is not exact else allowed
        ratio = diff / allowed
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    return float(ratio.max())


def _solve_scale(calls: list[_Call]) -> float | None:
    """The score scale, relative to 1/sqrt(d_head), read exactly from the one-hot-queries probe:
    with V = I the output is the weights, and row i's scores are 2 * K[:, j] * factor (j the hot
    column), so log w_a - log w_b = 2 * factor * (K_aj - K_bj); least squares over all rows."""
    for c in calls:
        if c.case_id != PROBE_PREFIX + "one_hot_queries" or c.obs.status != "ok" or not isinstance(c.obs.inputs, Inputs):
            continue
        Q, K, W = c.obs.inputs.args["Q"], c.obs.inputs.args["K"], c.obs.values
        if W is None or W.shape != Q.shape[:3] + (K.shape[2],):
            return None
        xs, ys = [], []
        with np.errstate(all="ignore"):
            for b, h, i in itertools.product(range(Q.shape[0]), range(Q.shape[1]), range(1, Q.shape[2])):
                j = int(np.argmax(np.abs(Q[b, h, i])))
                w = W[b, h, i]
                if not np.all(np.isfinite(w)) or np.any(w <= 0):
                    return None
                lw = np.log(w)
                xs.append(Q[b, h, i, j] * (K[b, h, :, j] - K[b, h, 0, j]))
                ys.append(lw - lw[0])
        if not xs:
            return None
        x, y = np.concatenate(xs), np.concatenate(ys)
        if float(x @ x) == 0.0:
            return None
        factor = float(x @ y / (x @ x))
        return factor * math.sqrt(Q.shape[-1]) if factor > 0 else None
    return None


def _error_group(name: str | None) -> str | None:
    """NumPy raises ValueError where PyTorch raises RuntimeError for the same bad shapes."""
    return "shape" if name in ("ValueError", "RuntimeError", "IndexError") else name


def _rounding_noise(fn: Callable[..., Any], exact: list[Any], low: np.ndarray) -> Any:
    """How much this model's own low-precision run moves from its float64 run on these inputs:
    ill-conditioned inputs (tiny variances) amplify rounding, in the learner's code as in ours."""
    try:
        with np.errstate(all="ignore"):
            high = np.asarray(fn(*exact), dtype=np.float64)
    except (ValueError, IndexError, TypeError, RuntimeError, FloatingPointError, ZeroDivisionError):
        return 0.0
    if high.shape != low.shape:
        return 0.0
    with np.errstate(all="ignore"):
        noise = np.abs(high - low)
    return np.where(np.isfinite(noise), noise, 0.0)


def _rel_error(c: _Call, exercise: str) -> float:
    """The learner's largest difference from the reference, relative to the reference's largest
    value; inf when the shapes differ or the non-finite values (NaN, +-inf) are not where the
    reference has them (a NaN is a wrong value, not a tiny one)."""
    drawn = isinstance(c.obs.inputs, Inputs)
    ref = misconceptions._variant(c.obs.inputs.exercise if drawn else exercise, {})
    args = c.obs.inputs.positional() if drawn else list(c.obs.inputs)
    with np.errstate(all="ignore"):
        expected = np.asarray(ref(*args), dtype=np.float64)
        got = np.asarray(c.obs.values, dtype=np.float64)
        if expected.shape != got.shape:
            return math.inf
        finite = np.isfinite(expected)
        if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(expected[~finite], got[~finite], equal_nan=True):
            return math.inf
        scale = max(float(np.max(np.abs(expected[finite]), initial=0.0)), 1e-12)
        return float(np.max(np.abs(got[finite] - expected[finite]), initial=0.0)) / scale


def _cast(value: Any, dtype: str) -> Any:
    if isinstance(value, np.ndarray):  # remembered for read-only inputs, so a mistake's output on the cast is too
        return refcache.cast(value, dtype)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    if isinstance(value, list):
        return [_cast(v, dtype) for v in value]
    return value


def _mask_of(obs: Any) -> Any:
    return obs.inputs.args.get("mask") if isinstance(obs.inputs, Inputs) else None


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _flatten(knobs: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in knobs.items():
        if isinstance(v, dict):
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((prefix + k, repr(v)))
    return out


def _lift_knobs(exercise: str, knobs: dict[str, Any]) -> dict[str, Any]:
    return EXERCISES[exercise].attention_knobs(knobs)


def _params(m: Misconception, knobs: dict[str, Any] | None) -> dict[str, Any]:
    """The fitted parameters worth reporting: the knobs a grid family varies (an eps, a fill value),
    or a fitted scale factor."""
    if knobs is None or (not m.grid and m.id not in _FALLBACK_ONLY):
        return {}
    chosen = dict(_flatten_raw(knobs))
    if m.grid:
        varying = {k for g in m.grid for k, v in _flatten_raw(g) if any(dict(_flatten_raw(h)).get(k) != v for h in m.grid)}
    else:
        varying = set(chosen)
    return {k.rsplit(".", 1)[-1]: v for k, v in chosen.items() if k in varying}


def _flatten_raw(knobs: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in knobs.items():
        out.extend(_flatten_raw(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)])
    return out
