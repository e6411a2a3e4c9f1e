"""Grading a class end to end: `<student>/<file>` tree with broken and hanging submissions, the
gradebook against each JSON report, progress lines, the hang budget, incremental regrades,
SIGTERM in the middle of a run, timeouts on drawn cases, and file names with escape sequences."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from attnspec.gradebook import parse_gradebook_csv, report_name

ROOT = Path(__file__).resolve().parents[1]
CORRECT = (ROOT / "examples" / "correct_numpy.py").read_text()
BUGGY = (ROOT / "examples" / "buggy" / "mask_ignored.py").read_text()
FORGED = "x\x1b[2J\nzed     76 of 76  100.0  passed"
HANG = "import numpy as np\n\ndef manual_attention(Q, K, V, mask=None):\n    while True:\n        pass\n"


def run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnspec", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def notebook(code: str) -> str:
    return nbformat.writes(new_notebook(cells=[new_code_cell("import numpy as np\nimport math"), new_code_cell(code)]))


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (through /proc's children lists)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                kids = [int(k) for k in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def reports_by_name(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    for student, name, text in [
        ("alice", "attention.py", CORRECT),
        ("bob", "work.ipynb", notebook(BUGGY)),
        ("carol", "attention.py", "import numpy as np\n\ndef manual_attention(Q, K, V, mask=None:\n    return Q\n"),
        ("dave", "attention.ipynb", '{"cells": [ not json'),
        ("erin", "attention.py", HANG),
    ]:
        (subs / student).mkdir(parents=True)
        (subs / student / name).write_text(text)
    (subs / "alice" / "helpers.py").write_text("def unused():\n    return 1\n")
    args = ["grade", "submissions", "--gradebook", "grades.csv", "--format", "json", "-j", "2", "--exercise", "manual_attention", "--submission-timeout", "8", "--case-floor", "2"]
    proc = run(*args, cwd=root)
    return root, proc, args


def test_one_row_per_student_with_the_reports_totals(graded_class):
    root, proc, _ = graded_class
    assert proc.returncode == 1, proc.stderr
    rows = {r["student"]: r for r in parse_gradebook_csv((root / "grades.csv").read_text())}
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin"]
    reports = reports_by_name(root / "grades-reports")
    assert sorted(reports) == [f"{s}.json" for s in sorted(rows)]
    for student, row in rows.items():
        report = reports[f"{student}.json"]
        assert Path(root / row["report"]).name == f"{student}.json"
        assert float(row["total"]) == report["score"], student
        assert report["submission"]["student"] == student
    assert rows["alice"]["status"] == "passed" and float(rows["alice"]["percent"]) == 100.0
    assert reports["alice.json"]["submission"]["companions"] == [str(Path("submissions/alice/helpers.py"))]
    assert rows["bob"]["status"] == "failed" and "ma.mask_ignored" in rows["bob"]["mistakes"]
    assert rows["carol"]["status"] == "failed" and rows["dave"]["status"] == "error"
    assert float(rows["carol"]["total"]) == 0 and float(rows["dave"]["total"]) == 0
    assert "not valid JSON" in json.dumps(reports["dave.json"])
    assert len({r["max"] for r in rows.values()}) == 1  # one total to enter in the LMS
    assert (root / "grades.csv").read_text().startswith("# attnspec gradebook: max points")


def test_the_hanging_submission_costs_its_budget_not_a_timeout_per_case(graded_class):
    root, proc, _ = graded_class
    erin = reports_by_name(root / "grades-reports")["erin.json"]
    messages = [i["message"] for e in erin["exercises"] for c in e["cases"] for i in c["instances"]]
    assert any("not run: time budget spent" in m for m in messages)
    assert not any("internal error" in m or "Flaky" in m for m in messages)
    not_run = [c for e in erin["exercises"] for c in e["cases"] if c["outcome"] == "not_run"]
    assert not_run and all(c["points"] == 0 for c in not_run)
    assert "Timed out (hang budget spent): erin" in proc.stdout


def test_progress_lines_when_not_a_terminal_and_a_class_summary(graded_class):
    _, proc, _ = graded_class
    assert "attnspec: graded 5/5" in proc.stderr
    assert "Score distribution (4 graded" in proc.stdout  # dave's notebook is unreadable: an error, not a grade
    assert "Grading errors: dave" in proc.stdout
    assert "5 submissions graded in" in proc.stdout


def test_regrade_uses_the_cache_and_one_resubmission_is_regraded(tmp_path):
    subs = tmp_path / "subs"
    for student, text in [("alice", CORRECT), ("bob", BUGGY), ("carol", CORRECT)]:
        (subs / student).mkdir(parents=True)
        (subs / student / "attention.py").write_text(text)
    args = ["grade", "subs", "--output-dir", "out", "--format", "text", "--case", "ma.shape.rectangular", "--case", "ma.mask.causal_future", "--progress", "never"]
    first = run(*args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert (tmp_path / ".attnspec-cache").is_dir()
    second = run(*args, cwd=tmp_path)
    assert "(3 from the cache)" in second.stdout
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # cached results render identically
    (subs / "bob" / "attention.py").write_text(CORRECT)
    third = run(*args, cwd=tmp_path)
    assert "(2 from the cache)" in third.stdout
    assert (tmp_path / "out" / "bob.txt").read_bytes() != before["bob.txt"]
    forced = run(*args, "--force", cwd=tmp_path)
    assert "from the cache" not in forced.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_keeps_finished_reports_and_the_gradebook(tmp_path, signum):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a_quick.py").write_text(CORRECT)
    (subs / "b_hang.py").write_text(HANG)
    (subs / "c_hang.py").write_text(HANG)
    cmd = [sys.executable, "-m", "attnspec", "grade", "subs", "--gradebook", "gb.json", "--format", "json", "-j", "1", "--exercise", "manual_attention", "--progress", "never"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    report = tmp_path / "gb-reports" / "a_quick.json"
    deadline = time.monotonic() + 300
    while not report.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert report.exists(), "the first report was not written as it came"
    time.sleep(1.0)  # b_hang is running now
    started = descendants(proc.pid)
    assert started, "grader and worker processes should be running"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err  # 130 for Ctrl-C, 143 for SIGTERM
    time.sleep(0.5)
    assert not [p for p in started if alive(p)], "processes of the run outlived it"
    assert f"interrupted ({signal.Signals(signum).name})" in err
    assert json.loads(report.read_text())["status"] == "graded"
    rows = {r["student"]: r for r in json.loads((tmp_path / "gb.json").read_text())["rows"]}
    assert rows["a_quick"]["status"] == "passed"
    assert rows["b_hang"]["status"] == "interrupted" and rows["c_hang"]["status"] == "interrupted"
    interrupted = json.loads((tmp_path / "gb-reports" / "b_hang.json").read_text())
    assert interrupted["status"] == "interrupted"
    jsonschema.validate(interrupted, json.loads((ROOT / "harness" / "schemas" / "report.schema.json").read_text()))


def test_timeouts_on_drawn_cases_are_timeouts_not_internal_errors(tmp_path):
    sub = tmp_path / "sometimes.py"
    sub.write_text(
        "import numpy as np\n\ndef manual_attention(Q, K, V, mask=None):\n"
        "    if Q.shape[-2] > 3:\n        while True:\n            pass\n"
        "    s = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])\n"
        "    w = np.exp(s - s.max(-1, keepdims=True))\n    return (w / w.sum(-1, keepdims=True)) @ V\n"
    )
    proc = run("grade", str(sub), "--case", "ma.shape.drawn", "--case-timeout", "2", "--format", "json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    inst = report["exercises"][0]["cases"][0]["instances"][0]
    assert inst["outcome"] == "error"
    assert "did not finish within the case's time limit" in inst["message"]
    assert "internal error" not in proc.stdout and "Flaky" not in proc.stdout


def test_a_file_name_with_escape_sequences_cannot_forge_summary_lines(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "examples" / "correct_numpy.py", subs / "honest.py")
    (subs / f"{FORGED}.py").write_text(HANG.replace("while True:\n        pass", "return Q"))
    proc = run("grade", "subs", "--case", "ma.shape.rectangular", "--output-dir", "out", "--no-cache", "--progress", "always", cwd=tmp_path)
    assert "\x1b[2J" not in proc.stdout and "\x1b[2J" not in proc.stderr
    assert not any(line.startswith("zed") for line in proc.stdout.splitlines())
    assert "\\x1b[2J" in proc.stdout
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["honest.txt", f"{report_name(FORGED)}.txt"]
    assert "\x1b" not in report_name(FORGED) and "\n" not in report_name(FORGED)


@pytest.mark.parametrize("level", ["none", "auto"])
def test_the_second_grader_pool_is_a_fork_of_the_first_master_and_grades_the_same(tmp_path, level):
    """-j 2 starts one master worker (one interpreter start, one torch import) and forks the second
    from it: the copy answers like a fresh one (its sandbox, its reports) and ends with its pool."""
    from attnspec.classrun import start_pools
    from attnspec.grade import GradeOptions, grade
    from attnspec.loader import load_spec
    from attnspec.reports.json_report import render_json

    (tmp_path / "a.py").write_text(CORRECT)
    (tmp_path / "b.py").write_text(BUGGY)
    spec = load_spec([], builtin=True)
    options = GradeOptions(exercises=("manual_attention",), sandbox=level, workers=1)
    pools = start_pools(2, preload_torch=False, sandbox=level, hide=[str(tmp_path)])
    try:
        assert pools[1]._proc is None and pools[0]._proc is not None
        assert pools[1].sandbox_info() == pools[0].sandbox_info()
        forked = pools[1]
        reports = {(i, name): render_json(grade(str(tmp_path / name), spec, options, pool), timings=False) for i, pool in enumerate(pools) for name in ("a.py", "b.py")}
        assert reports[0, "a.py"] == reports[1, "a.py"] and reports[0, "b.py"] == reports[1, "b.py"]
        assert json.loads(reports[1, "a.py"])["score"] == json.loads(reports[1, "a.py"])["max_score"]
        masters = [p for p in descendants(os.getpid()) if "attnspec.worker" in Path(f"/proc/{p}/cmdline").read_text()]
    finally:
        for pool in reversed(pools):
            pool.close()
    assert len(masters) >= 2  # the original and its fork (both run `python -m attnspec.worker`)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in masters) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in masters), "a master worker outlived its pool"
    assert forked._sock.fileno() == -1


def test_a_grader_process_that_dies_costs_only_its_own_submission(tmp_path, monkeypatch):
    """A submission that kills its grader process (the kernel's out-of-memory killer, say) breaks
    that round's process pool: every submission in flight is graded again on its own, the rest
    in a new round, and only the one that kills its grader again gets an error report."""
    from attnspec import classrun
    from attnspec.layouts import ClassEntry

    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def fake_grade(entry, spec, options, pool=None, spec_error=None):  # runs in the forked grader processes
        (attempts / f"{entry.student}.{os.getpid()}").touch()
        if entry.student == "dies":
            os._exit(9)
        time.sleep(0.2)
        return classrun.error_result(entry.display, f"graded {entry.student}", status="graded")

    monkeypatch.setattr(classrun, "grade_submission", fake_grade)
    names = ["a", "b", "dies", "c", "d", "e"]
    entries = [ClassEntry.for_file(tmp_path / f"{n}.py", student=n) for n in names]
    seen: list[int] = []
    run = classrun.run_class(entries, None, None, jobs=2, on_result=lambda i, r, c: seen.append(i))
    assert sorted(seen) == list(range(len(names)))  # one result each, none twice
    for i, n in enumerate(names):
        result = run.results[i]
        if n == "dies":
            assert result.status == "error" and result.error == classrun.DIED_ALONE
        else:
            assert (result.status, result.error) == ("graded", f"graded {n}")
    tries = sorted(p.name.split(".")[0] for p in attempts.iterdir())
    assert tries.count("dies") == 2  # in its round, then alone
