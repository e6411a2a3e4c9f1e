"""The spec validator: every problem of a malformed case as file:line:column: message, all in
one run; the shipped spec clean, large enough, and covering every property per exercise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attnspec.errors import SpecError
from attnspec.exercises import EXERCISE_NAMES
from attnspec.loader import check_spec, load_spec, summarize
from attnspec.properties import PROPERTIES

BROKEN = Path(__file__).parent / "specs" / "broken"
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.*)$")


def expectations(path: Path) -> list[tuple[int, int, str]]:
    """The problems a fixture documents in its own header: '# expect: LINE:COL: message'."""
    out = []
    for line in path.read_text().splitlines():
        m = EXPECT.match(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_broken_spec_reports_exactly_its_documented_problems(path):
    spec, problems = check_spec([str(path)], builtin=False)
    assert spec is None
    shown = f"tests/specs/broken/{path.name}"  # how the fixture names itself in messages
    got = sorted((p.line, p.column, p.message.replace(str(path), shown)) for p in problems)
    assert got == sorted(expectations(path))
    assert all(p.path == str(path) for p in problems)


def test_fixtures_document_problems():
    assert all(expectations(p) for p in BROKEN.glob("*.yaml"))


def test_all_problems_of_all_files_come_in_one_run():
    files = sorted(BROKEN.glob("*.yaml"))
    _, problems = check_spec([str(BROKEN)], builtin=False)
    assert len(problems) == sum(len(expectations(p)) for p in files)
    assert {p.path for p in problems} == {str(p) for p in files}


def test_load_spec_raises_one_error_listing_every_problem():
    with pytest.raises(SpecError) as info:
        load_spec([str(BROKEN / "tolerances.yaml")], builtin=False)
    text = str(info.value)
    assert text.startswith("5 problems in the spec:")
    assert "tolerances.yaml:24:13: case 'ma.negative_points': points=-1 must be >= 0" in text


def test_a_missing_spec_folder_is_reported():
    _, problems = check_spec(["no/such/folder"], builtin=False)
    assert [str(p) for p in problems] == ["no/such/folder:1:1: no such spec file or folder"]


def test_a_case_id_may_not_repeat_across_files(tmp_path):
    shipped = load_spec()
    copy = tmp_path / "course.yaml"
    copy.write_text(
        "spec_version: 1\nexercise: manual_attention\n"
        "defaults: {tolerances: {float64: {atol: 1.0e-9, rtol: 1.0e-7}}}\n"
        "cases:\n"
        f"  - id: {shipped.cases[0].id}\n"
        "    title: same id as a shipped case\n"
        "    property: output_shape\n"
        "    inputs: {shapes: {batch: 2, n_heads: 3, seq_q: 5, seq_k: 7, d_head: 4, d_v: 6}}\n"
    )
    _, problems = check_spec([str(copy)])
    assert len(problems) == 1
    assert problems[0].line == 5
    assert "duplicate case id (first defined at attnspec:spec/" in problems[0].message


def test_the_shipped_spec_is_clean_and_big_enough():
    spec = load_spec()
    assert len(spec.cases) >= 60
    assert {f.spec_version for f in spec.files} == {1}
    assert len({c.id for c in spec.cases}) == len(spec.cases)


def test_every_property_has_a_case_for_every_exercise_it_applies_to():
    table = summarize(load_spec())
    missing = [(name, ex) for name, info in PROPERTIES.items() for ex in info.exercises if not table[ex].get(name)]
    assert missing == []


def test_the_shipped_spec_has_hidden_cases_and_designed_inputs():
    spec = load_spec()
    assert sum(c.hidden for c in spec.cases) >= 3
    ma = [c for c in spec.cases if c.exercise == "manual_attention" and c.inputs]
    assert any(c.inputs.poison for c in ma)
    assert any(c.inputs.score_scale and c.inputs.score_scale >= 1000 for c in spec.cases if c.inputs)
    assert any("float16" in c.dtypes and "bfloat16" in c.dtypes for c in spec.cases)
    assert any(c.property == "literal_values" and c.exercise == "multi_head_attention" for c in spec.cases)


def test_generated_shapes_do_not_hide_bugs():
    """seq_q, seq_k, d_head, d_v distinct (MA); seq, n_heads, d_head distinct (MHA, block)."""
    for case in load_spec().cases:
        spec = case.inputs
        if spec is None or spec.is_literal or spec.is_drawn or case.allow_degenerate_shapes:
            continue
        dims = {**spec.shapes, **PROPERTIES[case.property].fixed_dims}
        if case.exercise == "attention_param_count":  # integer arguments: a factor of 1 hides a forgotten factor
            assert dims["n_heads"] >= 2 and dims["n_layers"] >= 2 and dims["n_heads"] != dims["n_layers"], case.id
            assert dims["d_model"] != dims["d_head"], case.id
            continue
        assert dims["batch"] >= 2, case.id
        if case.exercise == "manual_attention":
            sizes = [dims["seq_q"], dims["d_head"], dims["d_v"]] + ([] if spec.mask.startswith("causal") else [dims["seq_k"]])
            assert len(set(sizes)) == len(sizes), case.id
            assert dims["n_heads"] >= 2, case.id
        else:
            d_head = dims["d_model"] // dims["n_heads"]
            sizes = [dims["seq"], d_head] + ([dims["n_heads"]] if dims["n_heads"] > 1 else [])
            assert len(set(sizes)) == len(sizes), case.id


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnspec", *args], capture_output=True, text=True, timeout=120)


def test_cli_validate_clean_prints_a_summary_and_counts():
    proc = run_cli("spec", "validate")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    counts = ", ".join(rf"{name} \d+" for name in EXERCISE_NAMES)  # one shipped file per registered exercise
    assert re.match(rf"spec OK: \d+ cases in {len(EXERCISE_NAMES)} files \({counts}\)", first), first
    assert "scale_discrimination" in proc.stdout and "gradients_match" in proc.stdout


def test_cli_validate_broken_lists_problems_and_exits_1():
    proc = run_cli("spec", "validate", "--no-builtin", str(BROKEN))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    total = sum(len(expectations(p)) for p in BROKEN.glob("*.yaml"))
    assert lines[-1] == f"{total} problems in {len(list(BROKEN.glob('*.yaml')))} files"
    assert all(re.match(r"^\S+\.yaml:\d+:\d+: ", line) for line in lines[:-1])
    assert proc.stderr == ""


def test_cli_grade_with_a_broken_spec_still_writes_a_report_and_exits_2(tmp_path):
    out = tmp_path / "results.json"
    proc = run_cli("grade", "examples/correct_numpy.py", "--spec", str(BROKEN / "version.yaml"), "--format", "gradescope", "--output", str(out))
    assert proc.returncode == 2
    import json

    report = json.loads(out.read_text())
    assert report["score"] == 0
    assert "spec_version 7 is not supported" in report["output"]


@pytest.mark.parametrize("fixture", ["alias_bomb.yaml", "non_finite.yaml", "huge_literal.yaml", "recursive_alias.yaml"])
def test_grading_with_a_hostile_spec_exits_2_with_a_report_not_a_traceback(tmp_path, fixture):
    """Spec files are input too: a malformed one ends `attnspec grade` with exit 2 and a report
    that lists its problems as file:line:col, never with a traceback or a hang."""
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / fixture).write_text((BROKEN / fixture).read_text())
    out = tmp_path / "report.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "attnspec", "grade", str(root / "examples" / "correct_numpy.py"), "--spec", str(folder), "--format", "json", "--output", str(out)],
        capture_output=True, text=True, timeout=300, cwd=root,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["status"] == "error"
    text = json.dumps(report)
    for line, col, message in expectations(BROKEN / fixture):
        assert f"{fixture}:{line}:{col}: " in text
        assert json.dumps(message)[1:-1].split(" (")[0] in text


def test_an_alias_bomb_is_refused_before_it_is_expanded():
    from attnspec.yamlpos import MAX_EXPANDED_VALUES, load_yaml

    doc, problems = load_yaml((BROKEN / "alias_bomb.yaml").read_text(), "bomb.yaml")
    assert doc is None and len(problems) == 1
    assert f"more than the limit of {MAX_EXPANDED_VALUES:,}" in problems[0].message
    shared = "base: &b {atol: 1.0e-9, rtol: 1.0e-7}\n" + "".join(f"k{i}: *b\n" for i in range(20))
    doc, problems = load_yaml(shared, "shared.yaml")
    assert doc is not None and problems == []  # a few references to shared defaults are fine
