"""Finding a class's submissions: each layout, student ids, the graded file of a multi-file
submission, refused files, safe zip extraction, and injective report names."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attnspec.errors import UsageError
from attnspec.gradebook import report_name, report_names
from attnspec.layouts import Scratch, choose_graded_file, discover, extract_zip

ROOT = Path(__file__).resolve().parents[1]
CORRECT = (ROOT / "examples" / "correct_numpy.py").read_text()
HELPER = "def softmax(x):\n    return x\n"


@pytest.fixture
def scratch():
    s = Scratch()
    yield s
    s.cleanup()


def by_student(entries):
    return {e.student: e for e in entries}


def test_student_folders_with_a_helper_next_to_the_solution(tmp_path, scratch):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "attention.py").write_text(CORRECT)
    (tmp_path / "alice" / "helpers.py").write_text(HELPER)
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "work.py").write_text(CORRECT)
    entries = by_student(discover([str(tmp_path)], scratch))
    assert sorted(entries) == ["alice", "bob"]
    alice = entries["alice"]
    assert alice.layout == "folders" and alice.path.name == "attention.py" and alice.error is None
    assert [c.name for c in alice.companions] == ["helpers.py"]
    assert alice.key == "alice"


def test_a_multi_file_submission_without_the_exercise_is_a_clear_error(tmp_path, scratch):
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "a.py").write_text(HELPER)
    (tmp_path / "carol" / "b.py").write_text("x = 1\n")
    (tmp_path / "dave").mkdir()
    (tmp_path / "dave" / "x.py").write_text(CORRECT)
    carol = by_student(discover([str(tmp_path)], scratch))["carol"]
    assert carol.path is None
    assert "none of its files (a.py, b.py) defines manual_attention" in carol.error


def test_the_file_defining_most_exercises_is_graded(tmp_path):
    one = tmp_path / "one.py"
    one.write_text("def manual_attention(Q, K, V, mask=None):\n    pass\n")
    both = tmp_path / "both.py"
    both.write_text(CORRECT)
    chosen, _ = choose_graded_file([one, both])
    assert chosen == both


def test_flat_files_one_student_each(tmp_path, scratch):
    (tmp_path / "alice.py").write_text(CORRECT)
    (tmp_path / "bob.ipynb").write_text((ROOT / "examples" / "correct_notebook.ipynb").read_text())
    (tmp_path / "notes.txt").write_text("not a submission")
    entries = discover([str(tmp_path)], scratch)
    assert [(e.student, e.layout, e.path.name) for e in entries] == [("alice", "files", "alice.py"), ("bob", "files", "bob.ipynb")]


def test_canvas_export_groups_a_students_files_and_marks_late(tmp_path, scratch):
    (tmp_path / "smithjane_1234_5678_attention.py").write_text(CORRECT)
    (tmp_path / "smithjane_1234_5679_helpers.py").write_text(HELPER)
    (tmp_path / "doejohn_LATE_4321_8765_attention.py").write_text(CORRECT)
    entries = by_student(discover([str(tmp_path)], scratch))
    assert sorted(entries) == ["doejohn_4321", "smithjane_1234"]
    jane = entries["smithjane_1234"]
    assert jane.layout == "canvas" and jane.path.name.endswith("attention.py") and not jane.late
    assert [c.name for c in jane.companions] == ["smithjane_1234_5679_helpers.py"]
    assert entries["doejohn_4321"].late


def test_gradescope_export_takes_the_id_from_the_metadata(tmp_path, scratch):
    (tmp_path / "submission_metadata.yml").write_text(
        "submission_111:\n  :submitters:\n  - :name: Ada Lovelace\n    :sid: '2024001'\n    :email: ada@example.org\n"
        "submission_222:\n  :submitters:\n  - :name: Alan Turing\n    :email: alan@example.org\n"
    )
    for sub in ("submission_111", "submission_222"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "attention.py").write_text(CORRECT)
    entries = by_student(discover([str(tmp_path)], scratch))
    assert sorted(entries) == ["2024001", "alan@example.org"]
    assert entries["2024001"].layout == "gradescope" and entries["2024001"].meta["submitters"] == ["Ada Lovelace"]


def test_github_classroom_repositories(tmp_path, scratch):
    for user in ("octocat", "hubot"):
        repo = tmp_path / f"attention-lab-{user}"
        (repo / ".git").mkdir(parents=True)
        (repo / "src").mkdir()
        (repo / "src" / "attention.py").write_text(CORRECT)
        (repo / "README.md").write_text("lab")
    entries = by_student(discover([str(tmp_path)], scratch))
    assert sorted(entries) == ["hubot", "octocat"]
    assert entries["hubot"].layout == "classroom" and entries["hubot"].path.name == "attention.py"


def test_zip_of_a_class_and_zip_per_student(tmp_path, scratch):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("submissions/alice/attention.py", CORRECT)
        zf.writestr("submissions/bob/attention.py", CORRECT)
    entries = by_student(discover([str(archive)], scratch))
    assert sorted(entries) == ["alice", "bob"]
    assert entries["alice"].display == f"{archive}!alice/attention.py"
    assert entries["alice"].path.read_text() == CORRECT
    folder = tmp_path / "class"
    folder.mkdir()
    with zipfile.ZipFile(folder / "carol.zip", "w") as zf:
        zf.writestr("attention.py", CORRECT)
        zf.writestr("helpers.py", HELPER)
    carol = by_student(discover([str(folder)], scratch))["carol"]
    assert carol.layout == "zip" and carol.path.name == "attention.py" and [c.name for c in carol.companions] == ["helpers.py"]


@pytest.mark.parametrize(
    "member, why",
    [("../evil.py", "leaves the archive"), ("/abs/evil.py", "leaves the archive"), ("a/../../evil.py", "leaves the archive")],
)
def test_zip_path_traversal_is_refused(tmp_path, member, why):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, "x = 1\n")
    target = tmp_path / "out"
    target.mkdir()
    assert why in extract_zip(archive, target)
    assert not (tmp_path / "evil.py").exists()


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("attention.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    target = tmp_path / "out"
    target.mkdir()
    assert "symbolic link" in extract_zip(archive, target)
    assert not (target / "attention.py").exists()


def test_fifos_and_links_out_of_the_folder_are_refused(tmp_path, scratch):
    (tmp_path / "alice").mkdir()
    os.mkfifo(tmp_path / "alice" / "attention.py")
    (tmp_path / "bob").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside.py"
    outside.write_text(CORRECT)
    (tmp_path / "bob" / "attention.py").symlink_to(outside)
    entries = by_student(discover([str(tmp_path)], scratch))
    assert "a FIFO" in entries["alice"].error
    assert "symbolic link that leaves the submission's folder" in entries["bob"].error


def test_student_pattern_overrides_the_layout_id(tmp_path, scratch):
    for name in ("hw1_s001_final.py", "hw1_s002_final.py"):
        (tmp_path / name).write_text(CORRECT)
    entries = discover([str(tmp_path)], scratch, student_pattern=r"_(?P<student>s\d+)_")
    assert [e.student for e in entries] == ["s001", "s002"]
    with pytest.raises(UsageError, match="does not match"):
        discover([str(tmp_path)], scratch, student_pattern=r"(?P<student>zzz\d+)")
    with pytest.raises(UsageError, match="named group"):
        discover([str(tmp_path)], scratch, student_pattern=r"s\d+")


@given(st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=6, unique_by=lambda s: s.lower()))
def test_report_names_are_injective_and_reversible(keys):
    names = [report_name(k) for k in keys]
    assert len(set(names)) == len(names)
    for key, name in zip(keys, names):
        assert "/" not in name and not name.startswith(".")
        assert unquote(name if not name.startswith("%2E") else "." + name[3:]) == key


def test_two_submissions_with_one_name_is_an_error_naming_both(tmp_path, scratch):
    (tmp_path / "alice.py").write_text(CORRECT)
    (tmp_path / "alice.ipynb").write_text((ROOT / "examples" / "correct_notebook.ipynb").read_text())
    entries = discover([str(tmp_path)], scratch)
    with pytest.raises(UsageError) as info:
        report_names([(e.key, e.display) for e in entries])
    assert "alice.ipynb" in str(info.value) and "alice.py" in str(info.value)


def test_same_file_name_given_twice_uses_the_relative_path(tmp_path, scratch, monkeypatch):
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "sol.py").write_text(CORRECT)
    monkeypatch.chdir(tmp_path)
    entries = discover(["a/sol.py", "b/sol.py"], scratch)
    names = report_names([(e.key, e.display) for e in entries])
    assert names == ["a%2Fsol", "b%2Fsol"]


@pytest.mark.parametrize("level", ["none", "auto"])
def test_a_helper_folder_found_through_file_loads_in_and_out_of_the_sandbox(tmp_path, level):
    """The usual idiom sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib')): the
    submission's __file__ is where its code sees the file, next to its helper files."""
    from attnspec.grade import GradeOptions, grade
    from attnspec.loader import load_spec
    from attnspec.runner import WorkerPool

    student = tmp_path / "class" / "erin"
    (student / "lib").mkdir(parents=True)
    (student / "lib" / "ops.py").write_text("import numpy as np\n\ndef softmax(s):\n    e = np.exp(s - s.max(-1, keepdims=True))\n    return e / e.sum(-1, keepdims=True)\n")
    (student / "hw.py").write_text(
        "import math, os, sys\nimport numpy as np\n"
        "sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lib'))\n"
        "from ops import softmax\n\n"
        "def manual_attention(Q, K, V, mask=None):\n"
        "    s = Q @ np.swapaxes(K, -1, -2) / math.sqrt(Q.shape[-1])\n"
        "    return softmax(s if mask is None else s + mask) @ V\n"
    )
    with WorkerPool(level) as pool:
        result = grade(str(student / "hw.py"), load_spec(), GradeOptions(exercises=("manual_attention",), backend="numpy"), pool,
                       display="class/erin/hw.py", companions=[str(student / "lib" / "ops.py")])
    assert result.load.errors == [], result.load.errors
    assert result.score == result.max_score


def test_an_exercise_defined_only_in_a_helper_file_is_reported_as_not_graded(tmp_path):
    from attnspec.grade import GradeOptions, grade
    from attnspec.loader import load_spec
    from attnspec.runner import WorkerPool

    student = tmp_path / "dave"
    student.mkdir()
    (student / "core.py").write_text("def causal_mask(seq_len):\n    import numpy as np\n    return np.triu(np.full((seq_len, seq_len), -np.inf), k=1)\n\ndef attention_param_count(d_model, d_head, n_heads, n_layers):\n    return 4 * d_model * d_head * n_heads * n_layers\n")
    (student / "stack.py").write_text("from core import *\n\ndef transformer_stack(x, layers, n_heads, mask=None):\n    return x\n")
    with WorkerPool() as pool:
        result = grade(str(student / "core.py"), load_spec(), GradeOptions(), pool, display="dave/core.py", companions=[str(student / "stack.py")])
    assert [e.exercise for e in result.exercises] == ["causal_mask", "attention_param_count"]
    assert any(n.startswith("stack.py defines transformer_stack, which is not graded: only core.py is") for n in result.load.notes), result.load.notes
