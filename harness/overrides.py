"""Course overrides: a course's changes to the shipped spec, kept in one small YAML file.

An instructor who wants three points for one case, a hidden case made visible, a longer time limit
or the course's own feedback writes only those changes (per case id, or per property for every
case of that property) instead of copying the spec files. The file is validated like a spec file
(JSON Schema, then semantic checks), every problem reported as file:line:column; unknown case ids
and properties get a did-you-mean. Applying the file adds it to the spec's files, so the spec
digest changes and every report lists the overrides it was graded with.

    overrides_version: 1
    course: {name: "ML 101", references: {matches_reference: "Week 3 notes, section 2"}}
    cases:
      ma.mask.causal_future: {points: 3, visibility: hidden}
    properties:
      matches_reference: {feedback: "Compare with the formula on slide 12."}
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .errors import SpecProblem
from .schemawords import schema_problems
from .properties import PROPERTIES
from .specmodel import Rules, Spec, SpecFile
from .yamlpos import YamlDocument, load_yaml

CASE_FIELDS = ("points", "visibility", "timeout", "feedback")
RULES_FIELDS = ("points",)


def schema() -> dict[str, Any]:
    return json.loads(resources.files("attnspec.spec").joinpath("overrides.schema.json").read_text())


@dataclass(frozen=True)
class Overrides:
    """A validated overrides file: entries by case id and by property, plus course details."""

    path: str
    course: dict[str, Any]
    cases: dict[str, dict[str, Any]]
    properties: dict[str, dict[str, Any]]
    sha256: str

    def entry_for(self, case_id: str, prop: str) -> dict[str, Any]:
        """The merged entry for one case: the property's, then the case's own (which wins), then references."""
        refs = self.course.get("references", {})
        merged = {**self.properties.get(prop, {}), **self.cases.get(case_id, {})}
        reference = merged.get("reference") or refs.get(case_id) or refs.get(prop)
        if reference:
            merged["reference"] = reference
        return merged


def read_overrides(path: str) -> tuple[Overrides | None, YamlDocument | None, list[SpecProblem]]:
    """Parse and schema-check the file; semantic checks need the spec (see `apply_overrides`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, None, [SpecProblem(path, 1, 1, f"cannot read the overrides file: {exc}")]
    doc, problems = load_yaml(text, path)
    if doc is None:
        return None, None, problems
    data = doc.data
    if not isinstance(data, dict):
        return None, doc, [doc.problem((), "an overrides file must be a mapping with overrides_version: 1 and cases/properties")]
    problems = list(problems)
    for error in jsonschema.Draft202012Validator(schema()).iter_errors(data):
        problems += [doc.problem(tuple(path), message, at_key=at_key) for path, message, at_key in schema_problems(error, data)]
    if problems:
        return None, doc, sorted(problems, key=lambda p: (p.line, p.column, p.message))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return Overrides(path, dict(data.get("course") or {}), dict(data.get("cases") or {}), dict(data.get("properties") or {}), digest), doc, []


def apply_overrides(spec: Spec, path: str) -> tuple[Spec | None, list[SpecProblem]]:
    """`spec` with the overrides in `path` applied, or every problem in the file (none applied)."""
    overrides, doc, problems = read_overrides(path)
    if overrides is None or doc is None:
        return None, problems
    problems = _semantic_problems(overrides, doc, spec)
    if problems:
        return None, sorted(problems, key=lambda p: (p.line, p.column, p.message))
    cases = tuple(_apply_case(case, overrides.entry_for(case.id, case.property)) for case in spec.cases)
    rules = {e: _apply_rules(r, overrides.cases.get(r.case_id, {})) for e, r in spec.rules.items()}
    label = SpecFile(overrides.path, 1, _suite_label(overrides), 0, overrides.sha256)
    return replace(spec, files=(*spec.files, label), cases=cases, rules=rules), []


def _suite_label(overrides: Overrides) -> str:
    name = overrides.course.get("name")
    return f"overrides: {name}" if name else "overrides"


def _apply_case(case: Any, entry: dict[str, Any]) -> Any:
    changes: dict[str, Any] = {}
    if "points" in entry:
        changes["points"] = float(entry["points"])
    if "timeout" in entry:
        changes["timeout"] = float(entry["timeout"])
    if "visibility" in entry:
        changes["visibility"] = entry["visibility"]
    feedback = entry.get("feedback", case.feedback)
    if entry.get("reference"):
        feedback = f"{feedback} (course: {entry['reference']})" if feedback else f"See the course: {entry['reference']}"
    if feedback != case.feedback:
        changes["feedback"] = feedback
    return replace(case, **changes) if changes else case


def _apply_rules(rules: Rules, entry: dict[str, Any]) -> Rules:
    return replace(rules, points=float(entry["points"])) if "points" in entry else rules


def _semantic_problems(overrides: Overrides, doc: YamlDocument, spec: Spec) -> list[SpecProblem]:
    """Case ids and properties the spec does not have, and fields a rules case cannot take."""
    problems: list[SpecProblem] = []
    case_ids = [c.id for c in spec.cases]
    rules_ids = {r.case_id: r for r in spec.rules.values()}
    for cid, entry in overrides.cases.items():
        if cid in rules_ids:
            for key in entry:
                if key not in RULES_FIELDS:
                    problems.append(doc.problem(("cases", cid, key), f"case '{cid}': an implementation-rules case takes only points, not '{key}'", at_key=True))
        elif cid not in case_ids:
            problems.append(doc.problem(("cases", cid), f"unknown case id '{cid}'{_hint(cid, [*case_ids, *rules_ids])}", at_key=True))
    used = {c.property for c in spec.cases}
    for prop in overrides.properties:
        if prop not in PROPERTIES:
            problems.append(doc.problem(("properties", prop), f"unknown property '{prop}'{_hint(prop, list(PROPERTIES))}", at_key=True))
        elif prop not in used:
            problems.append(doc.problem(("properties", prop), f"property '{prop}' is used by no case of the loaded spec, so this entry would change nothing", at_key=True))
    for key in overrides.course.get("references", {}):
        if key not in case_ids and key not in PROPERTIES:
            problems.append(doc.problem(("course", "references", key), f"'{key}' is neither a case id nor a property{_hint(key, [*case_ids, *PROPERTIES])}", at_key=True))
    return problems


def _hint(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
