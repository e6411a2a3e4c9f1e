"""Hostile submissions against `--sandbox strict`: each attack gains nothing, changes no other
verdict, leaves no process behind and writes nothing outside the run's outputs.

Every attacker in tests/hostile/ is graded through the real CLI (a subprocess, so that an attack
that escaped would hit that grader, not pytest), on the small isolation spec. The invariants:
- the attacker's verdict is no better than its honest version's;
- every other submission's report equals its report when graded alone (JSON, minus timings),
  with -j 1 and with -j 2;
- every report is complete and the exit code is the documented one (1: some case failed);
- no process of any sandbox is left; no file appears outside the run's output folder.
The tests skip, saying why, where the kernel refuses namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from attnspec import sandbox
from attnspec.reports import sandbox_summary
from attnspec.results import GradeResult, strip_timings
from attnspec.runner import WORKER_MARGIN_S, Limits, WorkerPool, WorkerSession
from attnspec.submission import load_submission

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "hostile"
CORRECT = ROOT / "tests" / "submissions" / "correct.py"
SPEC = ["--no-builtin", "--spec", str(ROOT / "tests" / "specs" / "isolation")]
CASES = ["--case", "iso.ref_b3", "--case", "iso.ref_b4", "--case", "iso.ref_b5_causal", "--case", "iso.dtype_b6"]

pytestmark = pytest.mark.slow


def namespaces_missing() -> str | None:
    """Why strict isolation is impossible here, or None when the kernel allows it."""
    with WorkerPool("auto") as pool:
        info = pool.sandbox_info()
    return f"no kernel namespaces here: {', '.join(info['missing'])} unavailable ({info.get('reason', '')})" if info["missing"] else None


_MISSING = namespaces_missing() if sys.platform == "linux" else "not Linux"
needs_namespaces = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def sandbox_processes() -> list[int]:
    """Live processes running under a sandbox's unprivileged uid (or in a sandbox's PID namespace)."""
    ours = os.readlink("/proc/self/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            uid = int(fields["Uid"].split()[0])
            nested = len(fields.get("NSpid", "").split()) > 1 and os.readlink(f"/proc/{name}/ns/pid") != ours
        except (OSError, KeyError, ValueError):
            continue
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if sandbox.UID_BASE <= uid < sandbox.UID_BASE + 100_000_000 or (nested and "attnspec" in _cmdline(name)):
            found.append(int(name))
    return found


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def assert_nothing_left(before: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in sandbox_processes() if p not in before]
        if not left:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of a sandbox outlived the run: {[(p, _cmdline(str(p))) for p in left]}")


def grade(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "attnspec", "grade", *args, *SPEC, "--sandbox", "strict"], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def comparable(data: dict) -> dict:
    """A report minus what only says how it was run: timings, and the class layout's note of the
    student and their files (absent when a file is graded alone)."""
    data = strip_timings(data)
    data["submission"] = {k: v for k, v in data["submission"].items() if k not in ("student", "layout", "companions")}
    return data


def class_folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "class"
    folder.mkdir()
    for name in names:
        source = HOSTILE / name if (HOSTILE / name).exists() else ROOT / "tests" / "submissions" / name
        shutil.copy(source, folder / name)
    return folder


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# ---------------------------------------------------------------- levels and reports


def test_sandbox_field_round_trips_through_the_result_model():
    info = sandbox.describe("auto", ["pid", "net"], "mount: refused")
    result = GradeResult(submission={"path": "x.py"}, spec={}, status="graded", sandbox=info)
    again = GradeResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.sandbox == info == {"requested": "auto", "level": "partial", "features": ["pid", "net"], "missing": ["mount", "ipc", "uts", "uid"], "reason": "mount: refused"}
    assert sandbox_summary(info) == "partial (pid, net); missing: mount, ipc, uts, uid"


@needs_namespaces
def test_every_format_records_the_level_used(tmp_path):
    import xml.etree.ElementTree as ET

    import jsonschema

    out = {}
    for fmt in ("text", "json", "junit", "gradescope"):
        target = tmp_path / f"report.{fmt}"
        proc = grade(str(CORRECT), "--case", "iso.ref_b3", "--format", fmt, "--output", str(target), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        out[fmt] = target.read_text()
    full = {"requested": "strict", "level": "namespaces", "features": list(sandbox.FEATURES), "missing": []}
    assert "sandbox: namespaces (pid, net, mount, ipc, uts, uid)" in out["text"].splitlines()[0]
    data = json.loads(out["json"])
    assert data["sandbox"] == full
    jsonschema.validate(data, json.loads((ROOT / "harness" / "schemas" / "report.schema.json").read_text()))
    suites = ET.fromstring(out["junit"]).findall("testsuite")
    assert suites and all(json.loads(s.find("properties/property[@name='attnspec.sandbox']").get("value")) == full for s in suites)
    gs = json.loads(out["gradescope"])
    assert gs["extra_data"]["sandbox"] == full and "Sandbox: namespaces (pid, net, mount, ipc, uts, uid)." in gs["output"]
    jsonschema.validate(gs, json.loads((ROOT / "harness" / "schemas" / "gradescope.schema.json").read_text()))


@needs_namespaces
def test_strict_refuses_with_exit_2_and_auto_falls_back_with_a_warning(tmp_path):
    env = {**os.environ, sandbox.DISABLE_ENV: "net"}
    base = [sys.executable, "-m", "attnspec", "grade", str(CORRECT), "--case", "iso.ref_b3", *SPEC, "--format", "json"]
    strict = subprocess.run([*base, "--sandbox", "strict", "--output", str(tmp_path / "s.json")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert strict.returncode == 2
    assert "--sandbox strict: this machine cannot isolate submissions: net unavailable" in strict.stderr
    assert not (tmp_path / "s.json").exists()
    auto = subprocess.run([*base, "--sandbox", "auto", "--output", str(tmp_path / "a.json")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr
    assert [line for line in auto.stderr.splitlines() if "warning: sandbox" in line] == [
        "attnspec: warning: sandbox: isolating with pid, mount, ipc, uts, uid only; missing net (net disabled by ATTNSPEC_SANDBOX_DISABLE)"
    ]
    assert report(tmp_path / "a.json")["sandbox"]["level"] == "partial"
    none = subprocess.run([*base, "--sandbox", "none", "--output", str(tmp_path / "n.json")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert none.returncode == 0 and "warning" not in none.stderr
    assert report(tmp_path / "n.json")["sandbox"] == {"requested": "none", "level": "none", "features": [], "missing": list(sandbox.FEATURES)}


# ---------------------------------------------------------------- the class run


@needs_namespaces
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_class_with_killer_stopper_planter_and_daemon_gives_honest_ones_their_solo_grade(tmp_path, jobs):
    """The Must-show run: one submission kills its parent (and whatever grader it can find), one
    stops them, one plants modules, one starts daemons; the honest ones get exactly their solo
    report and no process is left."""
    honest = ["correct.py", "uses_helper.py"]
    attackers = ["kills_parent.py", "stops_parent.py", "plants_modules.py", "daemon.py"]
    folder = class_folder(tmp_path, honest + attackers)
    before = sandbox_processes()
    out = tmp_path / "out"
    proc = grade(str(folder), "-j", jobs, *CASES, "--format", "json", "--output-dir", str(out), cwd=tmp_path)
    # 0 or 1 (whether an attacker lost a case): their children answer the grader directly, so a
    # stopped or killed zygote costs an attacker only the cases it cannot answer
    assert proc.returncode in (0, 1), proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(n).stem + ".json" for n in honest + attackers)
    for name in honest:
        solo = tmp_path / f"solo-{name}.json"
        alone = grade(str(folder / name), *CASES, "--format", "json", "--output", str(solo), cwd=tmp_path)
        assert alone.returncode == 0, alone.stderr
        assert comparable(report(out / (Path(name).stem + ".json"))) == comparable(report(solo))
    for name in attackers:  # complete reports, no better than correct
        data = report(out / (Path(name).stem + ".json"))
        assert data["status"] == "graded" and data["max_score"] == 4 and data["score"] <= 4
        assert all(c["outcome"] in ("passed", "failed", "error") for e in data["exercises"] for c in e["cases"])
    time.sleep(1.5)  # the daemons try to rewrite reports every 0.5 s
    for path in out.iterdir():
        json.loads(path.read_text())
    assert_nothing_left(before)
    assert files_under(folder) == set(honest + attackers)


@needs_namespaces
def test_planted_modules_reach_nobody(tmp_path):
    """Graded together, the planter and the classmate who imports `attn_helper` if it exists: the
    classmate's result is its solo result, and nothing was planted on the grader's disk."""
    folder = class_folder(tmp_path, ["plants_modules.py", "uses_helper.py"])
    out = tmp_path / "out"
    proc = grade(str(folder), "-j", "1", *CASES, "--format", "json", "--output-dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert report(out / "uses_helper.json")["score"] == 4
    assert "planted in" in report(out / "plants_modules.json")["load"]["output"]
    assert not list(tmp_path.rglob("attn_helper.py"))
    assert not any(Path(p, "attn_helper.py").exists() for p in sys.path if p)


# ---------------------------------------------------------------- what the sandbox shows


def _variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    source = (HOSTILE / name).read_text()
    assert old in source
    target = tmp_path / "honest" / name
    target.parent.mkdir(exist_ok=True)
    target.write_text(source.replace(old, new))
    return target


@needs_namespaces
@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("reads_reference.py", "FOUND = find(", "FOUND = [] or find("),
        ("reads_classmate.py", 'if "def manual_attention" in source', "if False"),
    ],
)
def test_reading_the_reference_or_a_classmate_gains_nothing(tmp_path, name, old, new):
    folder = class_folder(tmp_path, [name, "correct.py"])
    out = tmp_path / "out"
    proc = grade(str(folder), "-j", "2", *CASES, "--format", "json", "--output-dir", str(out), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    attacker = report(out / (Path(name).stem + ".json"))
    honest_path = _variant(tmp_path, name, old, new)
    alone = grade(str(honest_path), *CASES, "--format", "json", "--output", str(tmp_path / "honest.json"), cwd=tmp_path)
    honest = report(tmp_path / "honest.json")
    assert alone.returncode == 1
    outcomes = lambda d: [(c["case_id"], c["outcome"], c["points"]) for e in d["exercises"] for c in e["cases"]]  # noqa: E731
    assert attacker["score"] == honest["score"] < 4 and outcomes(attacker) == outcomes(honest)
    assert "found: []" in attacker["load"]["output"] or "copied: False" in attacker["load"]["output"]
    assert report(out / "correct.json")["score"] == 4


@needs_namespaces
def test_no_network(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    path = tmp_path / "network.py"
    path.write_text((HOSTILE / "network.py").read_text().replace("PORT = 0", f"PORT = {port}"))
    proc = grade(str(path), *CASES, "--format", "json", "--output", str(tmp_path / "r.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    data = report(tmp_path / "r.json")
    assert "no network: [Errno 101] Network is unreachable" in data["load"]["output"] and data["score"] == 4


@needs_namespaces
def test_writes_outside_its_private_folder_fail(tmp_path):
    cwd = tmp_path / "grader-cwd"
    out = tmp_path / "out"
    sub = tmp_path / "subs"
    for d in (cwd, out, sub):
        d.mkdir()
    targets = [str(sub), str(out), str(cwd), str(tmp_path), "/tmp"]
    path = sub / "writes_outside.py"
    path.write_text((HOSTILE / "writes_outside.py").read_text().replace("TARGETS = []", f"TARGETS = {targets!r}"))
    stray = [Path(t, "hostile-was-here.txt") for t in [*targets, "/", "/usr", "/etc", os.path.expanduser("~")]]
    assert not any(p.exists() for p in stray)
    proc = grade(str(path), *CASES, "--format", "json", "--output-dir", str(out), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert [p for p in stray if p.exists()] == []
    # only its own private /tmp and its working folder (HOME inside) took the writes
    assert "wrote into: ['/tmp', '/submission']" in report(out / "writes_outside.json")["load"]["output"]
    assert files_under(tmp_path) == {"grader-cwd", "out", "subs", "subs/writes_outside.py", "out/writes_outside.json"}


@needs_namespaces
def test_ptrace_and_proc_mem_reach_nothing_of_the_grader(tmp_path):
    proc = grade(str(HOSTILE / "ptrace.py"), *CASES, "--format", "json", "--output", str(tmp_path / "r.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    output = report(tmp_path / "r.json")["load"]["output"]
    visible = json.loads(output.split("visible:")[1].split("reached:")[0].strip())
    assert visible == [1, 2]  # its sandbox's init and itself: the PID namespace hides every other process
    assert "reached: []" in output


@needs_namespaces
def test_fork_bomb_is_contained_and_leaves_nothing(tmp_path):
    folder = class_folder(tmp_path, ["fork_bomb.py", "correct.py"])
    before = sandbox_processes()
    out = tmp_path / "out"
    proc = grade(str(folder), "-j", "2", *CASES, "--format", "json", "--output-dir", str(out), cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    solo = tmp_path / "solo.json"
    assert grade(str(folder / "correct.py"), *CASES, "--format", "json", "--output", str(solo), cwd=tmp_path).returncode == 0
    assert comparable(report(out / "correct.json")) == comparable(report(solo))
    bomb = report(out / "fork_bomb.json")
    assert bomb["status"] == "graded" and bomb["score"] <= 4
    assert_nothing_left(before)


# ---------------------------------------------------------------- the watchdog


@needs_namespaces
def test_watchdog_ends_a_stopped_zygote_at_the_submission_limit():
    """A zygote that does not answer at all (here stopped from outside, as a hostile submission
    would if it could) costs only its own submission: at the submission limit its sandbox is
    killed, the running case ends with the limit as its reason, and no later case starts."""
    limits = Limits(case_timeout=60, submission_timeout=1.0)
    before = sandbox_processes()
    with WorkerPool("strict") as pool:
        session = WorkerSession(pool, load_submission(CORRECT).load_request(), limits)
        assert session.start().ok
        clone = session.clone()  # a second zygote in the same sandbox; the grader knows its real pid
        assert clone.pid is not None and clone.pid != session.pid
        assert os.readlink(f"/proc/{clone.pid}/ns/pid") == os.readlink(f"/proc/{session.pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        session.resume = lambda: None  # type: ignore[method-assign]  # a zygote the grader cannot wake (see the next test)
        os.kill(session.pid, signal.SIGSTOP)
        start = time.monotonic()
        with session.case("iso.ref_b3", 60) as cs:
            outcome = cs.call("manual_attention", [[1.0]], backend="numpy", dtype="float64")
        elapsed = time.monotonic() - start
        assert outcome.status == "worker_lost"
        assert outcome.detail == "the submission's total time limit (1 s) was reached: its processes were stopped"
        assert elapsed < 30  # the case's own 60 s limit was not waited for
        for each in (session, clone):
            with each.case("iso.ref_b4", 60) as cs:
                assert cs.lost == "the submission's total time limit (1 s) was reached: its processes were stopped"
            each.close()
    assert_nothing_left(before)


@needs_namespaces
def test_a_stopped_zygote_is_resumed_and_answers_at_once():
    """A submission that SIGSTOPs its zygote (its parent) does not stall the grader: the zygote is
    sent SIGCONT (through a pidfd, so never another process) whenever it is asked something."""
    limits = Limits(case_timeout=60, submission_timeout=60)
    before = sandbox_processes()
    with WorkerPool("strict") as pool:
        session = WorkerSession(pool, load_submission(CORRECT).load_request(), limits)
        assert session.start().ok and session.pidfd is not None
        for case in ("iso.ref_b3", "iso.ref_b4"):
            os.kill(session.pid, signal.SIGSTOP)
            start = time.monotonic()
            with session.case(case, 60) as cs:
                outcome = cs.call("manual_attention", [np.ones((1, 1, 2, 2))] * 3 + [None], backend="numpy", dtype="float64")
            assert outcome.ok and cs.lost is None, (outcome, cs.lost)
            assert time.monotonic() - start < WORKER_MARGIN_S  # no reply was waited out
        session.close()
    assert_nothing_left(before)


# ---------------------------------------------------------------- what is hidden


def test_the_plan_hides_the_grader_package_its_cwd_and_home(tmp_path):
    plan = sandbox.plan(list(sandbox.FEATURES), str(tmp_path), [str(tmp_path / "specs")])
    hidden = set(plan["hide"])
    assert {str(ROOT / "harness"), str(ROOT / "reference"), str(ROOT / "spec")} <= hidden or any(p.endswith("/attnspec") for p in hidden)
    assert {os.getcwd(), os.path.expanduser("~"), str(tmp_path / "specs")} <= hidden


@needs_namespaces
def test_a_hidden_folder_inside_a_visible_site_packages_is_empty(tmp_path, monkeypatch):
    """A grader installed into site-packages (not editable) lies inside a folder the sandbox must
    show: that folder stays visible, the hidden one inside it appears empty."""
    site = tmp_path / "site-packages"
    (site / "secretpkg").mkdir(parents=True)
    (site / "secretpkg" / "answers.yaml").write_text("hidden: case\n")
    (site / "visible.py").write_text("X = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    probe = tmp_path / "probe.py"
    probe.write_text(f"import os\nprint(sorted(os.listdir({str(site)!r})), os.listdir({str(site / 'secretpkg')!r}))\nimport visible\n")
    with WorkerPool("strict") as pool:
        pool.sandbox_info()  # the first sandbox is built ahead, before the folder was named: it is not used
        pool.hide([site / "secretpkg"])
        session = WorkerSession(pool, load_submission(probe).load_request(), Limits())
        load = session.start()
        session.close()
    assert load.ok and load.chunk_errors == []
    assert load.output["text"] == "['secretpkg', 'visible.py'] []\n"
