"""Course overrides: validated like spec files (file:line:col, did-you-mean), applied over the spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attnspec.cli import main
from attnspec.errors import SpecError
from attnspec.loader import check_spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
TEST_SPEC = str(ROOT / "tests" / "specs" / "exercises")
CORRECT = ROOT / "tests" / "submissions" / "correct.py"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "overrides.yaml"
    path.write_text(text)
    return str(path)


def problems(tmp_path: Path, text: str, builtin: bool = True) -> list[str]:
    path = write(tmp_path, text)
    spec, found = check_spec([] if builtin else [TEST_SPEC], builtin=builtin, overrides=path)
    assert spec is None
    return [str(p).replace(path, "F") for p in found]


# ---------------------------------------------------------------- validation


def test_unknown_case_id_and_property_get_a_did_you_mean_at_their_key(tmp_path):
    found = problems(tmp_path, "overrides_version: 1\ncases:\n  ma.mask.causal_futur: {points: 3}\nproperties:\n  matches_referenc: {feedback: x}\n")
    assert found == [
        "F:3:3: unknown case id 'ma.mask.causal_futur'; did you mean 'ma.mask.causal_future'?",
        "F:5:3: unknown property 'matches_referenc'; did you mean 'matches_reference'?",
    ]


def test_schema_errors_are_positioned_like_spec_errors(tmp_path):
    text = "overrides_version: 1\ncases:\n  ma.mask.causal_future:\n    points: -1\n    visibilty: hidden\n    timeout: 0\n"
    assert problems(tmp_path, text) == [
        "F:4:13: points=-1 must be >= 0",
        "F:5:5: unknown field 'visibilty'; did you mean 'visibility'?",
        "F:6:14: timeout=0 must be > 0",
    ]


def test_version_missing_yaml_syntax_and_duplicate_keys(tmp_path):
    assert problems(tmp_path, "cases: {}\n") == ["F:1:1: missing required field 'overrides_version'"]
    assert problems(tmp_path, "overrides_version: 1\ncases: {a: [1, 2}\n")[0].startswith("F:2:")
    dup = problems(tmp_path, "overrides_version: 1\ncases:\n  ma.mask.causal_future: {points: 2}\n  ma.mask.causal_future: {points: 3}\n")
    assert dup == ["F:4:3: duplicate key 'ma.mask.causal_future' (the later one would silently win)"]


def test_rules_case_takes_points_only_and_references_need_a_known_key(tmp_path):
    text = "overrides_version: 1\ncourse:\n  references: {matches_referencee: week 3}\ncases:\n  manual_attention.implementation_rules: {visibility: hidden}\n"
    assert problems(tmp_path, text) == [
        "F:3:16: 'matches_referencee' is neither a case id nor a property; did you mean 'matches_reference'?",
        "F:5:43: case 'manual_attention.implementation_rules': an implementation-rules case takes only points, not 'visibility'",
    ]


def test_rules_points_are_overridden():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "overrides_version: 1\ncases:\n  manual_attention.implementation_rules: {points: 0}\n")
        base, spec = load_spec(), load_spec(overrides=path)
    assert base.rules["manual_attention"].points > 0 and spec.rules["manual_attention"].points == 0.0
    assert spec.rules["multi_head_attention"] == base.rules["multi_head_attention"]


def test_property_no_loaded_case_uses_is_reported(tmp_path):
    found = problems(tmp_path, "overrides_version: 1\nproperties:\n  gradients_match: {points: 2}\n", builtin=False)
    assert found == ["F:3:3: property 'gradients_match' is used by no case of the loaded spec, so this entry would change nothing"]


# ---------------------------------------------------------------- applying


def test_case_entries_win_over_property_entries_and_references_are_appended(tmp_path):
    base = load_spec([TEST_SPEC], builtin=False)
    path = write(tmp_path, """overrides_version: 1
course:
  name: ML 101
  references: {ex.ma.dtype: "Week 2, slide 4"}
properties:
  matches_reference: {points: 2, timeout: 30, feedback: Compare with the formula.}
cases:
  ex.ma.reference_causal: {points: 5, visibility: hidden}
""")
    spec = load_spec([TEST_SPEC], builtin=False, overrides=path)
    ref = spec.case("ex.ma.reference_causal")
    assert (ref.points, ref.visibility, ref.timeout, ref.feedback) == (5.0, "hidden", 30.0, "Compare with the formula.")
    others = [c for c in spec.cases if c.property == "matches_reference" and c.id != "ex.ma.reference_causal"]
    assert others and all(c.points == 2.0 and c.timeout == 30.0 for c in others)
    dtype = spec.case("ex.ma.dtype")
    before = base.case("ex.ma.dtype").feedback
    assert dtype.feedback == (f"{before} (course: Week 2, slide 4)" if before else "See the course: Week 2, slide 4")
    untouched = [c for c in base.cases if c.property not in ("matches_reference",) and c.id != "ex.ma.dtype"]
    assert all(spec.case(c.id) == c for c in untouched)
    assert spec.digest != base.digest
    assert spec.files[-1].path == path and spec.files[-1].suite == "overrides: ML 101"


def test_bad_overrides_raise_spec_error_from_load_spec(tmp_path):
    path = write(tmp_path, "overrides_version: 1\ncases: {nope: {points: 1}}\n")
    with pytest.raises(SpecError, match=r"overrides.yaml:2:9: unknown case id 'nope'"):
        load_spec(overrides=path)


def test_grade_with_overrides_reports_the_points_and_the_file(tmp_path, capsys):
    path = write(tmp_path, "overrides_version: 1\ncases:\n  ex.ma.dtype: {points: 4}\n")
    out = tmp_path / "r.json"
    main(["grade", str(CORRECT), "--no-builtin", "--spec", TEST_SPEC, "--overrides", path, "--exercise", "manual_attention", "--format", "json", "-o", str(out)])
    report = json.loads(out.read_text())
    case = next(c for e in report["exercises"] for c in e["cases"] if c["case_id"] == "ex.ma.dtype")
    assert case["max_points"] == 4.0
    assert path in report["spec"]["files"]
    assert f"--overrides {path}" in case["repro"] or any(f"--overrides {path}" in (c["repro"] or "") for e in report["exercises"] for c in e["cases"])
    plain = tmp_path / "plain.json"
    main(["grade", str(CORRECT), "--no-builtin", "--spec", TEST_SPEC, "--exercise", "manual_attention", "--format", "json", "-o", str(plain)])
    assert json.loads(plain.read_text())["spec"]["digest"] != report["spec"]["digest"]


def test_spec_validate_takes_overrides(tmp_path):
    good = write(tmp_path, "overrides_version: 1\ncases:\n  ex.ma.dtype: {points: 4}\n")
    ok = subprocess.run([sys.executable, "-m", "attnspec", "spec", "validate", "--no-builtin", "--spec", TEST_SPEC, "--overrides", good], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("spec OK"), ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("overrides_version: 1\nproperties:\n  output_dtyp: {points: 1}\n")
    fail = subprocess.run([sys.executable, "-m", "attnspec", "spec", "validate", "--overrides", str(bad)], capture_output=True, text=True)
    assert fail.returncode == 1
    assert f"{bad}:3:3: unknown property 'output_dtyp'; did you mean 'output_dtype'?" in fail.stdout
