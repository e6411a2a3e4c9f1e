"""The exercise registry is the one list of exercises: the spec schema, the shipped spec files, the
docs pages, the properties and the mistake catalogue all agree with it.

A new exercise is a module in harness/exercises/; these tests fail until its spec file and docs
page exist, and fail if some stage keeps its own list that the new exercise is missing from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from attnspec import exercises, misconceptions
from attnspec.exercises import EXERCISE_NAMES, EXERCISES, HELPER_EXERCISE
from attnspec.loader import load_spec, schema
from attnspec.properties import PROPERTIES
from attnspec.properties.base import PropertyInfo, every_exercise

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec"
DOCS = ROOT / "docs"


def test_registry_finds_one_module_per_exercise_in_course_order():
    modules = sorted(p.stem for p in (ROOT / "harness" / "exercises").glob("*.py") if p.stem not in ("__init__", "base"))
    assert sorted(EXERCISE_NAMES) == modules
    numbers = [EXERCISES[n].number for n in EXERCISE_NAMES]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert len({e.prefix for e in EXERCISES.values()}) == len(EXERCISES), "id prefixes must be unique"


def test_schema_file_keeps_no_list_of_its_own_and_the_loaded_schema_lists_the_registry():
    raw = json.loads((SPEC / "schema.json").read_text())
    assert "enum" not in raw["$defs"]["exercise"], "spec/schema.json must not hard-code exercises: the loader fills them in from the registry"
    assert schema()["$defs"]["exercise"]["enum"] == list(EXERCISE_NAMES)


def test_the_loaded_schema_refuses_an_unregistered_exercise():
    validator = jsonschema.Draft202012Validator(schema())
    assert not list(validator.iter_errors({"spec_version": 1, "exercise": EXERCISE_NAMES[0], "cases": []}))
    errors = list(validator.iter_errors({"spec_version": 1, "exercise": "no_such_exercise", "cases": []}))
    assert errors and "no_such_exercise" in errors[0].message


def test_each_exercise_has_its_shipped_spec_file_and_nothing_else_is_shipped():
    files = {p.stem: yaml.safe_load(p.read_text()) for p in SPEC.glob("*.yaml")}
    assert sorted(files) == sorted(EXERCISE_NAMES)
    for name, data in files.items():
        assert data["exercise"] == name
    spec = load_spec()
    assert {c.exercise for c in spec.cases} == set(EXERCISE_NAMES)
    assert set(spec.rules) == set(EXERCISE_NAMES), "every exercise states its implementation rules"


def test_each_exercise_has_a_docs_page_with_its_signature():
    pages = {p.stem: p.read_text() for p in (DOCS / "exercises").glob("*.md")}
    assert sorted(pages) == sorted(EXERCISE_NAMES)
    for name, text in pages.items():
        first = text.splitlines()[0]
        assert first == f"# `{EXERCISES[name].signature}`" or first.startswith(f"# `{EXERCISES[name].signature}`:"), first
        for helper in EXERCISES[name].helpers:
            assert f"`{helper.signature}`" in text
    contracts = (DOCS / "contracts.md").read_text()
    assert "(exercises/)" in contracts
    for link in re.findall(r"\(exercises/([a-z_]+)\.md\)", contracts):
        assert link in EXERCISE_NAMES


def test_helpers_belong_to_registered_exercises():
    assert HELPER_EXERCISE == {}, "causal_mask is an exercise of its own now, not a helper graded inside manual_attention"
    assert set(exercises.FUNCTIONS) == set(EXERCISE_NAMES) | set(HELPER_EXERCISE)
    functions = exercises.reference_functions("numpy")
    assert set(functions) == set(exercises.FUNCTIONS)


def test_every_property_applies_to_registered_exercises_explicitly():
    for prop in PROPERTIES.values():
        assert prop.exercises, prop.name
        assert set(prop.exercises) <= set(EXERCISE_NAMES)
    with pytest.raises(ValueError, match="unknown exercises"):
        PropertyInfo("x", "x", lambda ctx, inputs: None, applies_to=("no_such_exercise",))
    assert PropertyInfo("y", "y", lambda ctx, inputs: None, applies_to=every_exercise).exercises == EXERCISE_NAMES


def test_every_exercise_owns_its_mistakes_and_has_the_structural_families():
    for name, e in EXERCISES.items():
        own = e.mistakes() + e.late_mistakes()
        assert own, f"{name} declares no mistakes"
        assert all(m.id.startswith(e.prefix + ".") and m.exercise == name for m in own)
        listed = {m.id for m in misconceptions.for_exercise(name, listed_only=True)}
        array_families = {f"{e.prefix}.wrong_dtype", f"{e.prefix}.modifies_inputs", f"{e.prefix}.batch_first_only"}
        if e.array_inputs:
            assert array_families <= listed
        else:  # integer arguments (causal_mask, attention_param_count): no batch, no input dtype, nothing to modify
            assert not array_families & listed
        assert {m.id for m in own if m.listed} <= listed
    assert len(misconceptions.BY_ID) == len(misconceptions.CATALOGUE)


def test_mistakes_of_a_sublayer_are_named_through_the_exercises_that_call_it():
    for name, e in EXERCISES.items():
        for lower_name in e.sublayers:
            lower = EXERCISES[lower_name]
            lifted = [m for m in lower.mistakes() if m.function is None and m.knobs is not None and m.id not in lower.not_lifted]
            assert lifted
            for m in lifted:
                ident = misconceptions.lifted_id(name, m.id)
                assert ident == f"{e.prefix}.{lower.lifted_name}.{m.id.split('.', 1)[1]}"
                assert misconceptions.BY_ID[ident].exercise == name
