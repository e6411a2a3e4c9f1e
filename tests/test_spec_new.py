"""`attnspec spec new` writes a case that validates as written, for every property and exercise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnspec.loader import check_spec
from attnspec.properties import PROPERTIES
from attnspec.skeleton import case_skeleton

PAIRS = [(exercise, name) for name, info in sorted(PROPERTIES.items()) for exercise in info.exercises]


@pytest.mark.parametrize("exercise,prop", PAIRS, ids=[f"{e}-{p}" for e, p in PAIRS])
def test_skeleton_validates_as_written(exercise, prop, tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text(case_skeleton(exercise, prop))
    spec, problems = check_spec([str(path)], builtin=False)
    assert problems == [], "\n".join(map(str, problems))
    (case,) = spec.cases
    assert case.exercise == exercise and case.property == prop


def test_cli_writes_a_new_file_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "course" / "mha.yaml"
    args = [sys.executable, "-m", "attnspec", "spec", "new", "--exercise", "multi_head_attention", "--property", "matches_reference", "--id", "course.mha.one", "-o", str(target)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and target.is_file()
    assert f"attnspec spec validate {target}" in first.stderr
    again = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert "id: course.mha.one" in target.read_text()


def test_unknown_property_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "attnspec", "spec", "new", "--exercise", "manual_attention", "--property", "nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown property 'nope'" in proc.stderr
