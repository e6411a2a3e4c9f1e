"""`attnspec grade --cluster`: a 2-worker Dask LocalCluster on 127.0.0.1 gives the same reports as a local run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attnspec.cli import main
from attnspec.cluster import grade_on_cluster, local_name, replace_in_strings
from attnspec.errors import UsageError

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "submissions"
TEST_SPEC = ROOT / "tests" / "specs" / "exercises"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, host="127.0.0.1", dashboard_address=None, threads_per_worker=2) as c:
        yield c


def _class(tmp: Path) -> list[str]:
    """A small class: a correct file, a wrong one, one that raises, one in a student folder, a broken notebook."""
    (tmp / "alice").mkdir()
    shutil.copy(SUBMISSIONS / "correct.py", tmp / "correct.py")
    shutil.copy(SUBMISSIONS / "wrong_shape.py", tmp / "wrong_shape.py")
    shutil.copy(SUBMISSIONS / "raises.py", tmp / "raises.py")
    shutil.copy(SUBMISSIONS / "many_bugs.py", tmp / "alice" / "solution.py")
    (tmp / "broken.ipynb").write_text("{not a notebook")
    return ["correct.py", "wrong_shape.py", "raises.py", "alice/solution.py", "broken.ipynb"]


@pytest.mark.slow
def test_cluster_reports_are_byte_identical_to_a_local_run(cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    files = _class(tmp_path)
    common = ["grade", *files, "--no-builtin", "--spec", str(TEST_SPEC), "--format", "json", "--no-timings"]
    local_code = main([*common, "--output-dir", "local"])
    remote_code = main([*common, "--output-dir", "remote", "--cluster", cluster.scheduler_address])
    assert local_code == remote_code == 1  # wrong and broken files fail in both
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local == sorted(p.name for p in (tmp_path / "remote").iterdir()) and len(local) == len(files)
    for name in local:
        mine, theirs = (tmp_path / "local" / name).read_bytes(), (tmp_path / "remote" / name).read_bytes()
        assert mine == theirs, name
    solution = (tmp_path / "remote" / "solution.json").read_text()
    assert '"path": "alice/solution.py"' in solution and "attnspec-cluster-" not in solution
    assert '"status": "graded"' in (tmp_path / "remote" / "correct.json").read_text()


@pytest.mark.slow
def test_cluster_with_timings_still_validates(cluster, tmp_path, monkeypatch):
    import json

    import jsonschema

    monkeypatch.chdir(tmp_path)
    shutil.copy(SUBMISSIONS / "correct.py", tmp_path / "correct.py")
    args = ["grade", "correct.py", "--no-builtin", "--spec", str(TEST_SPEC), "--format", "json", "-o", "first.json", "--cluster", cluster.scheduler_address]
    assert main(args) in (0, 1)
    with distributed.Client(cluster.scheduler_address) as client:
        pools_before = client.run(_pool_pid)
    assert main(["grade", "correct.py", "--no-builtin", "--spec", str(TEST_SPEC), "--format", "json", "-o", "r.json", "--cluster", cluster.scheduler_address]) in (0, 1)
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "harness" / "schemas" / "report.schema.json").read_text()))
    assert report["timings"]["total"] > 0
    with distributed.Client(cluster.scheduler_address) as client:
        assert client.run(_pool_pid) == pools_before, "a second run reuses each Dask worker's attnspec pool"
    assert all(pools_before.values())


def _pool_pid() -> dict[str, int]:
    from attnspec import cluster as module

    return {level: pool._proc.pid for level, pool in module._pools.items()}


def test_unreachable_scheduler_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        grade_on_cluster("tcp://127.0.0.1:9", [str(SUBMISSIONS / "correct.py")], None, None, on_error=lambda p, m: m, connect_timeout="1s")


def test_submission_names_stay_inside_the_task_folder():
    assert str(local_name("alice/solution.py")) == "alice/solution.py"
    assert str(local_name("../../etc/passwd")) == "passwd"
    assert str(local_name("/home/ta/class/bob.ipynb")) == "bob.ipynb"


def test_rename_replaces_worker_paths_everywhere():
    data = {"a": ["/tmp/attnspec-cluster-x/alice/s.py line 3"], "b": {"c": "cd /tmp/attnspec-cluster-x/alice"}, "n": 1}
    out = replace_in_strings(data, {"/tmp/attnspec-cluster-x/alice/s.py": "alice/s.py", "/tmp/attnspec-cluster-x/": "", "/tmp/attnspec-cluster-x": "."})
    assert out == {"a": ["alice/s.py line 3"], "b": {"c": "cd alice"}, "n": 1}
