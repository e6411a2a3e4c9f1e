"""Load and validate spec files: YAML -> JSON Schema -> semantic checks -> `Spec`.

Every problem in every file is collected and reported as file:line:column: message, in one run;
a case with a problem is never half-loaded. The shipped spec is always loaded first, then the
folders given with --spec (a course's hidden cases), in sorted order.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .errors import SpecError, SpecProblem
from .exercises import BACKENDS, EXERCISES, TORCH_ONLY_DTYPES
from .inputs import generate_inputs, literal_inputs, literal_problems, shape_problems
from .plugins import HINT as PLUGIN_HINT
from .properties import PROPERTIES
from .timing import skip_timed_cases
from .specmodel import SPEC_VERSIONS, Case, ForbiddenCall, InputSpec, Location, Rules, Spec, SpecFile, Tolerance, Withheld
from .schemawords import case_prefix, schema_problems
from .yamlpos import YamlDocument, load_yaml

BUILTIN_PREFIX = "attnspec:spec/"
DEFAULT_POINTS = 1.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_EXAMPLES = 10
# Spec files are input too. A hand-written literal case has tens of values; a million is far
# beyond any worked example and still cheap to hold. A spec file of 10 MB is ~1000 times the
# shipped ones.
MAX_LITERAL_VALUES = 1_000_000
MAX_SPEC_BYTES = 10_000_000


@dataclass(frozen=True)
class SpecSource:
    display: str
    path: Path


def schema() -> dict[str, Any]:
    """spec/schema.json with the registered exercises filled in (the file leaves the list to the registry)."""
    data = json.loads(resources.files("attnspec.spec").joinpath("schema.json").read_text())
    data["$defs"]["exercise"] = {**data["$defs"]["exercise"], "enum": list(EXERCISES)}
    return data


def builtin_sources() -> list[SpecSource]:
    root = resources.files("attnspec.spec")
    names = sorted(p.name for p in root.iterdir() if p.name.endswith((".yaml", ".yml")))
    return [SpecSource(BUILTIN_PREFIX + n, Path(str(root.joinpath(n)))) for n in names]


def discover(paths: list[str]) -> tuple[list[SpecSource], list[SpecProblem]]:
    sources: list[SpecSource] = []
    problems: list[SpecProblem] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
            if not found:
                problems.append(SpecProblem(given, 1, 1, "folder contains no .yaml spec files"))
            sources.extend(SpecSource(str(q), q) for q in found)
        elif p.is_file():
            sources.append(SpecSource(given, p))
        else:
            problems.append(SpecProblem(given, 1, 1, "no such spec file or folder"))
    return sources, problems


def load_spec(extra: list[str] | None = None, *, builtin: bool = True, overrides: str | None = None) -> Spec:
    """The spec from the shipped files (unless builtin=False) and `extra` files/folders; SpecError lists every problem."""
    spec, problems = check_spec(extra, builtin=builtin, overrides=overrides)
    if problems:
        raise SpecError(problems)
    assert spec is not None
    return spec


def check_spec(extra: list[str] | None = None, *, builtin: bool = True, overrides: str | None = None) -> tuple[Spec | None, list[SpecProblem]]:
    from .plugins import ensure_entry_point_plugins

    ensure_entry_point_plugins()  # installed plugins' properties (docs/plugins.md); PluginError if one is broken
    sources = builtin_sources() if builtin else []
    more, problems = discover(list(extra or []))
    sources.extend(more)
    validator = jsonschema.Draft202012Validator(schema())
    files: list[SpecFile] = []
    cases: list[Case] = []
    rules: dict[str, Rules] = {}
    withheld: list[Withheld] = []
    seen_ids: dict[str, Location] = {}
    seen_paths: set[Path] = set()
    for source in sources:
        resolved = source.path.resolve()
        if resolved in seen_paths:
            continue
        seen_paths.add(resolved)
        try:
            size = source.path.stat().st_size
            if size > MAX_SPEC_BYTES:
                problems.append(SpecProblem(source.display, 1, 1, f"the file is {size:,} bytes, more than the {MAX_SPEC_BYTES:,}-byte limit for a spec file"))
                continue
            text = source.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(SpecProblem(source.display, 1, 1, f"cannot read the file: {exc}"))
            continue
        doc, yaml_problems = load_yaml(text, source.display)
        problems.extend(yaml_problems)
        if doc is None:
            continue
        try:
            loaded = _FileLoader(doc, validator, seen_ids).load()
        except (RecursionError, MemoryError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else "too large to hold in memory"
            problems.append(SpecProblem(source.display, 1, 1, f"the file's data is {why} to check; keep spec files to plain cases"))
            continue
        problems.extend(loaded.problems)
        if loaded.file is not None:
            files.append(loaded.file)
        cases.extend(loaded.cases)
        withheld.extend(loaded.withheld)
        if loaded.rules is not None:
            prev = rules.get(loaded.rules.exercise)
            if prev is None:
                rules[loaded.rules.exercise] = loaded.rules
            else:
                rules[prev.exercise] = Rules(prev.exercise, prev.points, prev.forbidden + loaded.rules.forbidden, prev.source)
    if problems:
        return None, sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message))
    if skip_timed_cases():  # attnspec's own test suite: realistic-size cases only where a test asks
        cases = [c for c in cases if c.time_factor is None]
    spec = Spec(tuple(files), tuple(cases), rules, tuple(withheld))
    if overrides:  # a course's overrides file (harness/overrides.py), applied over the loaded spec
        from .overrides import apply_overrides

        return apply_overrides(spec, overrides)
    return spec, []


@dataclass
class _Loaded:
    file: SpecFile | None
    cases: list[Case]
    rules: Rules | None
    withheld: list[Withheld]
    problems: list[SpecProblem]


class _FileLoader:
    """Turns one parsed YAML document into cases, collecting every problem with its position."""

    def __init__(self, doc: YamlDocument, validator: jsonschema.Draft202012Validator, seen_ids: dict[str, Location]):
        self.doc = doc
        self.validator = validator
        self.seen_ids = seen_ids
        self.problems: list[SpecProblem] = []

    def add(self, path: tuple | list, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.doc.problem(tuple(path), message, at_key=at_key))

    def load(self) -> _Loaded:
        data = self.doc.data
        if not isinstance(data, dict):
            self.add((), "a spec file must be a mapping with spec_version and cases")
            return _Loaded(None, [], None, [], self.problems)
        version = data.get("spec_version")
        if isinstance(version, int) and version not in SPEC_VERSIONS:
            self.add(("spec_version",), f"spec_version {version} is not supported by this attnspec (it knows {', '.join(map(str, SPEC_VERSIONS))}); upgrade attnspec")
            return _Loaded(None, [], None, [], self.problems)
        bad_cases: set[int] = set()
        file_level_ok = True
        reported: set[tuple] = set()
        for error in self.validator.iter_errors(data):
            path = list(error.absolute_path)
            reported.add(tuple(path))
            if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
                bad_cases.add(path[1])
            else:
                file_level_ok = False
            self._schema_problem(error, data)
        for where, value in _non_finite(data):
            if where in reported:
                continue
            if len(where) >= 2 and where[0] == "cases" and isinstance(where[1], int):
                bad_cases.add(where[1])
            else:
                file_level_ok = False
            self.add(where, f"{case_prefix(list(where), data)}{where[-1]}={value!r} must be a finite number")
        if not file_level_ok:
            return _Loaded(None, [], None, [], self.problems)
        defaults = data.get("defaults", {})
        cases = []
        for index, raw in enumerate(data.get("cases", [])):
            if index in bad_cases:
                continue
            case = self._case(index, raw, data, defaults)
            if case is not None:
                cases.append(case)
        rules = self._rules(data)
        withheld = [
            Withheld(w["suite"], w["exercise"], int(w["cases"]), float(w["points"]), w.get("note", ""), Location(self.doc.path, self.doc.locate(("withheld", i))[0]))
            for i, w in enumerate(data.get("withheld", []))
        ]
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
        spec_file = SpecFile(self.doc.path, int(data["spec_version"]), data.get("suite"), len(cases), digest)
        return _Loaded(spec_file, cases, rules, withheld, self.problems)

    # ---- schema errors, in words

    def _schema_problem(self, error: jsonschema.ValidationError, data: dict[str, Any]) -> None:
        for path, message, at_key in schema_problems(error, data):
            self.add(path, message, at_key=at_key)

    # ---- one case

    def _case(self, index: int, raw: dict[str, Any], data: dict[str, Any], defaults: dict[str, Any]) -> Case | None:
        at = ("cases", index)
        before = len(self.problems)
        cid = raw["id"]
        prefix = f"case '{cid}': "
        line = self.doc.locate(at)[0]
        if cid in self.seen_ids:
            self.add(at + ("id",), f"{prefix}duplicate case id (first defined at {self.seen_ids[cid]})")
        else:
            self.seen_ids[cid] = Location(self.doc.path, line)
        exercise = raw.get("exercise") or data.get("exercise")
        if exercise is None:
            self.add(at, f"{prefix}no exercise: set 'exercise:' on the case or at the top of the file")
            return None
        prop = PROPERTIES.get(raw["property"])
        if prop is None:
            hint = difflib.get_close_matches(raw["property"], list(PROPERTIES), n=1)
            more = f"; did you mean '{hint[0]}'?" if hint else f"; known properties: {_known_properties()}; {PLUGIN_HINT}"
            self.add(at + ("property",), f"{prefix}unknown property '{raw['property']}'{more}")
            return None
        if exercise not in prop.exercises:
            self.add(at + ("property",), f"{prefix}property '{prop.name}' does not apply to {exercise} (it applies to {', '.join(prop.exercises)})")
            return None
        params = raw.get("params", {})
        for path, count in _oversized_literals(params):
            self.add(at + ("params",) + path, f"{prefix}a literal array of {count:,} values is larger than the limit of {MAX_LITERAL_VALUES:,}")
        if len(self.problems) > before:
            return None
        for error in jsonschema.Draft202012Validator(prop.params_schema).iter_errors(params):
            self._schema_problem(_reroot(error, list(at) + ["params"]), data)
        backends = self._backends(at, prefix, raw, defaults, prop)
        dtypes = tuple(raw.get("dtypes", defaults.get("dtypes", ["float64"])))
        if backends is not None and "numpy" in backends:
            torch_only = [d for d in dtypes if d in TORCH_ONLY_DTYPES]
            if torch_only:
                if "backends" in raw or "backends" in defaults:
                    self.add(at + ("dtypes",), f"{prefix}dtype {torch_only[0]} exists only in PyTorch: set backends: [torch] on this case")
                else:
                    backends = tuple(b for b in backends if b != "numpy")
        tolerances = {**{k: Tolerance(**v) for k, v in defaults.get("tolerances", {}).items()}, **{k: Tolerance(**v) for k, v in raw.get("tolerances", {}).items()}}
        for dtype in dtypes:
            if dtype not in tolerances:
                self.add(
                    at + ("dtypes",) if "dtypes" in raw else at,
                    f"{prefix}no tolerance for {dtype}: add tolerances: {{{dtype}: {{atol: ..., rtol: ...}}}} to the case or to the file's defaults",
                )
        input_spec = self._inputs(at, prefix, raw, exercise, prop)
        if "examples" in raw and (input_spec is None or not input_spec.is_drawn):
            self.add(at + ("examples",), f"{prefix}examples applies only to cases with [low, high] shape ranges (drawn by hypothesis)")
        if len(self.problems) > before or backends is None:
            return None
        case = Case(
            id=cid,
            exercise=exercise,
            title=raw["title"],
            property=prop.name,
            params=params,
            inputs=input_spec,
            tolerances={d: tolerances[d] for d in dtypes},
            dtypes=dtypes,
            backends=backends,
            points=float(raw.get("points", defaults.get("points", DEFAULT_POINTS))),
            visibility=raw.get("visibility", defaults.get("visibility", "visible")),
            feedback=raw.get("feedback", ""),
            timeout=float(raw.get("timeout", defaults.get("timeout", DEFAULT_TIMEOUT))),
            examples=int(raw.get("examples", defaults.get("examples", DEFAULT_EXAMPLES))),
            source=Location(self.doc.path, line),
            allow_degenerate_shapes=raw.get("allow_degenerate_shapes"),
            time_factor=float(raw["time_factor"]) if "time_factor" in raw else None,
        )
        if prop.validate is not None:
            try:
                built = build_fixed_inputs(case)
            except MemoryError:
                self.add(at + ("inputs",), f"{prefix}the inputs of this case are too large to build; use smaller shapes")
                return None
            for path, message in prop.validate(case, built):
                self.add(at + tuple(path), prefix + message)
        if len(self.problems) > before:
            return None
        return case

    def _backends(self, at: tuple, prefix: str, raw: dict[str, Any], defaults: dict[str, Any], prop: Any) -> tuple[str, ...] | None:
        given = raw.get("backends")
        backends = tuple(given if given is not None else defaults.get("backends", list(BACKENDS)))
        allowed = tuple(b for b in backends if b in prop.backends)
        if given is not None and len(allowed) < len(backends):
            wrong = [b for b in backends if b not in prop.backends]
            self.add(at + ("backends",), f"{prefix}property '{prop.name}' runs only on {', '.join(prop.backends)}, not {', '.join(wrong)}")
            return None
        if not allowed:
            self.add(at, f"{prefix}property '{prop.name}' runs only on {', '.join(prop.backends)}; set backends accordingly")
            return None
        return allowed

    def _inputs(self, at: tuple, prefix: str, raw: dict[str, Any], exercise: str, prop: Any) -> InputSpec | None:
        given = raw.get("inputs")
        if not prop.needs_inputs:
            if given is not None:
                self.add(at + ("inputs",), f"{prefix}property '{prop.name}' makes its own inputs; remove 'inputs'", at_key=True)
            return None
        if given is None:
            self.add(at, f"{prefix}missing required field 'inputs' (property '{prop.name}' needs inputs)")
            return None
        if "literal" in given:
            oversized = _oversized_literals(given["literal"])
            for path, count in oversized:
                self.add(
                    at + ("inputs", "literal") + path,
                    f"{prefix}a literal array of {count:,} values is larger than the limit of {MAX_LITERAL_VALUES:,} (literal inputs are for small worked examples; use shapes: for large ones)",
                )
            if oversized:
                return None
            for path, message in literal_problems(exercise, given["literal"]):
                self.add(at + ("inputs", "literal") + tuple(path), prefix + message)
            return InputSpec(literal=given["literal"])
        spec = InputSpec(
            shapes={k: (tuple(v) if isinstance(v, list) else v) for k, v in given["shapes"].items()},
            mask=given.get("mask", "none"),
            seed=int(given.get("seed", 0)),
            scale=float(given.get("scale", 1.0)),
            offset=float(given.get("offset", 0.0)),
            score_scale=given.get("score_scale"),
            poison=bool(given.get("poison", False)),
        )
        for name, value in prop.fixed_dims.items():
            if name in spec.shapes and spec.shapes[name] != value:
                self.add(at + ("inputs", "shapes", name), f"{prefix}property '{prop.name}' sets {name}={value} itself; remove {name} from shapes")
        if prop.masks is not None and spec.mask not in prop.masks:
            self.add(at + ("inputs", "mask"), f"{prefix}property '{prop.name}' needs a mask of kind {', '.join(prop.masks)}, not '{spec.mask}'")
        for path, message in shape_problems(exercise, spec, fixed=prop.fixed_dims, degenerate_ok=bool(raw.get("allow_degenerate_shapes"))):
            self.add(at + ("inputs",) + tuple(path), prefix + message)
        return spec

    def _rules(self, data: dict[str, Any]) -> Rules | None:
        raw = data.get("rules")
        if raw is None:
            return None
        exercise = data.get("exercise")
        if exercise is None:
            self.add(("rules",), "rules need a file-level 'exercise:' to say which exercise they govern")
            return None
        forbidden = tuple(ForbiddenCall(f["call"], f["reason"]) for f in raw.get("forbidden", []))
        return Rules(exercise, float(raw.get("points", DEFAULT_POINTS)), forbidden, Location(self.doc.path, self.doc.locate(("rules",))[0]))


def _known_properties() -> str:
    from .plugins import is_plugin_property, origin_label

    return ", ".join(f"{p} ({origin_label(p)})" if is_plugin_property(p) else p for p in sorted(PROPERTIES))


def _non_finite(data: Any) -> list[tuple[tuple, float]]:
    """(path, value) of every NaN or infinite number outside literal arrays (where -inf is a mask
    value): points, timeouts, tolerances and scales must be finite."""
    found: list[tuple[tuple, float]] = []
    todo: list[tuple[tuple, Any]] = [((), data)]
    while todo:
        path, value = todo.pop()
        if len(path) >= 4 and path[0] == "cases" and (path[2:4] == ("inputs", "literal") or path[2] == "params"):
            continue
        if isinstance(value, dict):
            todo.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((path + (i,), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append((path, value))
    return sorted(found, key=lambda f: [str(p) for p in f[0]])


def _oversized_literals(block: Any) -> list[tuple[tuple, int]]:
    """(path, number of values) of each literal array (nested list, eye, fill) over the limit,
    counted without building it: {fill: 0, shape: [100000, 100000]} must not allocate 80 GB."""
    out: list[tuple[tuple, int]] = []
    if not isinstance(block, dict):
        return out
    for key, value in block.items():
        if isinstance(value, dict) and not ({"eye", "fill"} & set(value)):
            out.extend(((key,) + p, n) for p, n in _oversized_literals(value))
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) and not ({"eye", "fill"} & set(v)) for v in value):  # a list of params dicts (layers)
            out.extend(((key, i) + p, n) for i, v in enumerate(value) for p, n in _oversized_literals(v))
            continue
        count = _literal_count(value)
        if count > MAX_LITERAL_VALUES:
            out.append(((key,), count))
    return out


def _literal_count(value: Any) -> int:
    total, todo = 0, [value]
    while todo and total <= MAX_LITERAL_VALUES:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict) and "eye" in item:
            n = item["eye"] if isinstance(item["eye"], int) else 0
            total += n * n
        elif isinstance(item, dict) and "fill" in item:
            shape = item.get("shape")
            total += math.prod(s for s in shape if isinstance(s, int)) if isinstance(shape, list) else 0
        else:
            total += 1
    return total


def build_fixed_inputs(case: Case) -> Any:
    """Inputs of a case whose shapes are fixed (or literal), in float64; None for drawn cases."""
    from .properties import PROPERTIES as props

    spec = case.inputs
    if spec is None:
        return None
    if spec.is_literal:
        return literal_inputs(case.exercise, spec.literal or {})
    if spec.is_drawn:
        return None
    dims = {**spec.shapes, **props[case.property].fixed_dims}
    return generate_inputs(case.exercise, spec, dims)


def _reroot(error: jsonschema.ValidationError, prefix: list) -> jsonschema.ValidationError:
    error.path.extendleft(reversed(prefix))
    return error


def summarize(spec: Spec) -> dict[str, dict[str, int]]:
    """Case counts per exercise and property (for `attnspec spec validate`)."""
    table: dict[str, dict[str, int]] = {e: {} for e in EXERCISES}
    for case in spec.cases:
        table[case.exercise][case.property] = table[case.exercise].get(case.property, 0) + 1
    return table
