"""Learner code runs only in worker processes, and whatever it does costs at most the case it did it in.

Every fixture in tests/submissions/ is a correct NumPy (or PyTorch) `manual_attention` except in
ONE case of tests/specs/isolation/ (each case there has its own batch size, which the fixture
checks). For each fixture: that case fails with a message that names what happened, and every
other case still passes. Fixtures are graded through `attnspec.grade.grade` with one shared
`WorkerPool` (one interpreter start for the whole module), and a few through the real CLI.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnspec.grade import GradeOptions, grade
from attnspec.loader import load_spec
from attnspec.properties import PROPERTIES
from attnspec.results import CaseResult, GradeResult, strip_timings
from attnspec.runner import Limits, WorkerSession
from attnspec.submission import load_submission

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SUBMISSIONS = HERE / "submissions"
SPEC_DIR = HERE / "specs" / "isolation"
EXERCISE = "manual_attention"
RULES = f"{EXERCISE}.implementation_rules"
CASE_TIMEOUT = 3  # the spec's default `timeout`
LIMITS = Limits(memory_mb=512, chunk_timeout=1.0, load_timeout=20.0, output_bytes=1 << 20, submission_timeout=120.0)


def _options(**changes) -> GradeOptions:
    return GradeOptions(exercises=(EXERCISE,), limits=dataclasses.replace(LIMITS, **changes.pop("limits", {})), **changes)


@pytest.fixture(scope="module")
def spec():
    return load_spec([str(SPEC_DIR)], builtin=False)


@pytest.fixture(scope="module")
def graded(spec, pool):
    """grade(fixture) with the shared pool, each fixture graded once per module."""
    cache: dict[str, GradeResult] = {}

    def run(name: str) -> GradeResult:
        if name not in cache:
            cache[name] = grade(str(SUBMISSIONS / name), spec, _options(), pool)
        return cache[name]

    return run


def _cases(result: GradeResult) -> dict[str, CaseResult]:
    return {c.case_id: c for c in result.cases}


def _all_messages(case: CaseResult) -> str:
    return "\n".join(i.message for i in case.instances)


def assert_only_these_fail(result: GradeResult, spec, expected: dict[str, tuple[str, list[str]]]) -> None:
    """`expected` maps case id -> (outcome, message fragments); every other case must pass."""
    __tracebackhide__ = True
    assert result.status == "graded", result.error
    (exercise,) = result.exercises
    assert exercise.status == "graded", exercise.message
    cases = _cases(result)
    want_ids = {c.id for c in spec.cases} | {RULES}
    assert set(cases) == want_ids, f"cases graded: {sorted(cases)}"
    for case_id, case in cases.items():
        if case_id in expected:
            outcome, fragments = expected[case_id]
            message = _all_messages(case)
            assert case.outcome == outcome, f"{case_id}: {case.outcome} ({message!r}), expected {outcome}"
            assert case.points == 0.0
            for fragment in fragments:
                assert fragment in message, f"{case_id}: {message!r} does not contain {fragment!r}"
        else:
            assert case.outcome == "passed", f"{case_id} should pass but is {case.outcome}: {_all_messages(case)}"
            assert case.points == case.max_points
    lost = sum(cases[c].max_points for c in expected)
    assert exercise.score == pytest.approx(exercise.max_score - lost)


# ---------------------------------------------------------------- one misbehaviour, one failed case

B3 = "iso.ref_b3"

MISBEHAVIOURS = {
    "hangs.py": {B3: ("error", [f"did not finish within the case's time limit {CASE_TIMEOUT} s (infinite loop?)", 'hangs.py", line 11 in manual_attention (the loop that starts there)'])},
    "sys_exit.py": {B3: ("error", ["raised SystemExit: the function called sys.exit(0)", 'sys_exit.py", line 10'])},
    "os_exit.py": {B3: ("error", ["crashed: the process exited with status 0 before returning (os._exit()"])},
    "segfault.py": {B3: ("error", ["crashed: killed by signal SIGSEGV"])},
    "memory_bomb.py": {B3: ("error", ["raised MemoryError: out of memory (the memory limit is 512 MiB)", "hoard.append"])},
    "huge_print.py": {B3: ("error", ["printed more than the 1 MiB output limit"])},
    "raises.py": {B3: ("error", ["raised ValueError: boom: batch 3 is not supported", 'raises.py", line 10, in manual_attention\n    raise ValueError(\'boom: batch 3 is not supported\')\nValueError'])},
    "returns_none.py": {B3: ("failed", ["out is None: the function returned nothing"])},
    "returns_list.py": {"iso.type_b7": ("failed", ["out is a Python list (as an array: shape (7, 2, 4, 7)), but should be a numpy.ndarray"])},
    "wrong_shape.py": {"iso.shape_b8": ("failed", ["out.shape=(8, 4, 2, 7), but should be (8, 2, 4, 7)"])},
    "wrong_dtype.py": {"iso.dtype_b6": ("failed", ["out.dtype=float64, but should be float32 (the inputs' dtype)"])},
    "returns_nan.py": {B3: ("failed", ["out contains NaN (168 of 168 elements are not finite)"])},
    "mutates_input.py": {"iso.unchanged_b9": ("failed", ["manual_attention modified its input Q in place"])},
    "patches_numpy.py": {B3: ("failed", ["out differs from the expected values in 168 of 168 elements"])},
    "forges_output.py": {B3: ("failed", ["out differs from the expected values in 168 of 168 elements", "should be"])},
    "imports_attnspec.py": {
        B3: ("error", ["raised ImportError: submissions may not import attnspec (the grader's own package)", 'imports_attnspec.py", line 17']),
        RULES: ("failed", ["the submission imports attnspec (line 9)", "the submission imports attnspec (line 17)"]),
    },
    "kills_worker.py": {B3: ("error", ["ran in a worker process that stopped responding and was replaced: the submission's process died"])},
    "closes_fds.py": {B3: ("error", ["crashed: the process exited with status 70 before returning"])},
}


@pytest.mark.parametrize("fixture", sorted(MISBEHAVIOURS))
def test_misbehaviour_fails_only_its_case(graded, spec, fixture):
    result = graded(fixture)
    assert_only_these_fail(result, spec, MISBEHAVIOURS[fixture])
    assert result.exit_code == 1


@pytest.mark.parametrize("fixture", ["correct.py", "patches_numpy_at_load.py", "records_pid.py", "freezes_worker.py"])
def test_well_behaved_fixture_passes_every_case(graded, spec, fixture):
    """freezes_worker.py stops its zygote in one case, but its case child still answers the grader
    directly with correct values, and the grader resumes the stopped zygote (SIGCONT)."""
    result = graded(fixture)
    assert_only_these_fail(result, spec, {})
    assert result.load.errors == []
    assert result.exit_code == 0


def test_hang_is_stopped_at_the_case_deadline_and_the_next_case_runs(graded):
    cases = _cases(graded("hangs.py"))
    hang = cases[B3]
    assert hang.duration < CASE_TIMEOUT + 2.5, "the hung case was not stopped at its deadline"
    assert hang.instances[0].duration >= CASE_TIMEOUT - 0.1
    # B3 is the first case: the ones after it ran (in fresh processes) and passed.
    ids = [c.case_id for c in graded("hangs.py").cases if c.case_id != RULES]
    assert ids.index(B3) == 0 and len(ids) == 7
    assert all(cases[i].outcome == "passed" and cases[i].instances[0].calls >= 1 for i in ids[1:])


def test_huge_print_is_captured_truncated(graded):
    result = graded("huge_print.py")
    cases = _cases(result)
    printed = cases[B3].output
    assert printed.startswith("computing attention for batch 3\nxxxx")
    assert "bytes not shown" in printed
    assert len(printed) <= 8000
    # the other cases' small prints are shown as they are
    assert cases["iso.ref_b4"].output == "computing attention for batch 4\n"


def test_printed_text_cannot_forge_a_result(graded):
    result = graded("forges_output.py")
    cases = _cases(result)
    assert cases[B3].outcome == "failed" and cases[B3].points == 0.0
    assert result.score < result.max_score
    # the forged text is kept as the learner's output, and only there
    assert '"score": 100.0' in result.load.output and "PASS iso.ref_b3 (1/1)" in result.load.output
    assert '{"op": "loaded", "status": "ok"}' in result.load.output
    assert "PASSED iso.ref_b3 1.0/1.0" in cases[B3].output


def test_import_of_attnspec_is_refused_at_load_and_at_run_time(graded):
    result = graded("imports_attnspec.py")
    assert "import refused: submissions may not import attnspec" in result.load.output


def test_module_level_infinite_loop_is_stopped_and_earlier_functions_graded(spec, pool):
    result = grade(str(SUBMISSIONS / "load_hang.py"), spec, _options(), pool)
    assert_only_these_fail(result, spec, {})
    (error,) = result.load.errors
    assert error["type"] == "Timeout"
    assert error["message"] == "this part of the submission ran for more than 1.0 s at load time and was stopped"
    assert error["line"] is None and error["file"].endswith("load_hang.py")


def test_module_level_print_loop_is_capped_at_the_output_limit(spec, pool):
    result = grade(str(SUBMISSIONS / "load_print_loop.py"), spec, _options(), pool)
    assert_only_these_fail(result, spec, {})
    (error,) = result.load.errors
    assert error["type"] == "OSError", "the print loop ran until the chunk timeout instead of hitting the output limit"
    assert error["message"] == "printed more than the 1 MiB output limit at load time (the output was cut off); print less"
    assert error["line"] == 20
    assert result.load.output_bytes <= LIMITS.output_bytes + 65536


def test_torch_monkeypatch_stays_in_its_case(graded, spec):
    pytest.importorskip("torch")
    result = graded("torch_patches_softmax.py")
    assert result.exercises[0].backends == ["torch"]
    assert_only_these_fail(result, spec, {B3: ("failed", ["out differs from the expected values in 168 of 168 elements", "float64, torch"])})


# ---------------------------------------------------------------- which cases share a child process


def _first_call(case: CaseResult) -> int:
    return int(case.output.split()[1])


def test_cases_that_change_nothing_share_a_child_failing_ones_too(graded, spec):
    """Cases are dealt to the two zygotes in turn (b3 b5 b7 b9 | b4 b6 b8). A child runs its
    zygote's next case when the case changed nothing a later case could see, whatever its verdict."""
    result = graded("prints_pid.py")
    assert_only_these_fail(result, spec, {B3: ("failed", ["out differs from the expected values"])})
    cases = _cases(result)
    assert _first_call(cases["iso.ref_b5_causal"]) == _first_call(cases[B3])  # after b3 failed, in its child
    assert _first_call(cases["iso.dtype_b6"]) == _first_call(cases["iso.ref_b4"])
    assert _first_call(cases["iso.type_b7"]) == _first_call(cases[B3])


def test_a_case_that_changes_a_global_leaves_its_child_behind(graded, spec):
    result = graded("counts_calls.py")
    assert_only_these_fail(result, spec, {B3: ("failed", ["out differs from the expected values"])})
    for case in result.cases:
        if case.output:
            assert case.output.startswith("call 1 "), (case.case_id, case.output)  # a fresh child for every case


def test_a_verdict_that_depends_on_earlier_cases_is_taken_from_a_fresh_child(graded, spec):
    """b3 fails in a child that ran the backend probe first, but passes in a fresh one: the fresh
    verdict is reported, and the zygote's later cases each get a fresh child."""
    result = graded("wrong_after_earlier_calls.py")
    assert_only_these_fail(result, spec, {})


def test_the_state_check_sees_library_patches_and_ignores_lazy_submodules(monkeypatch):
    """What a case child compares after each case (harness/childstate.py), on this process."""
    torch = pytest.importorskip("torch")
    import types

    from attnspec.childstate import Snapshot

    snap = Snapshot({"np": np, "torch": torch}, set())
    assert not snap.changed()
    patches = [
        (torch, "softmax", lambda *a, **k: None),  # a library function replaced
        (torch.Tensor, "add", lambda *a: None),  # an inherited tensor method shadowed
        (np, "einsum", np.matmul),
        (builtins, "sum", lambda *a: 0),
    ]
    for owner, name, value in patches:
        with monkeypatch.context() as m:
            m.setattr(owner, name, value, raising=False)
            assert snap.changed(), f"{owner.__name__}.{name}"
        assert not snap.changed()
    with monkeypatch.context() as m:
        m.delattr(torch.nn.functional, "relu")
        assert snap.changed()
    with monkeypatch.context() as m:  # a module gaining a submodule (torch imports some lazily) is no change
        m.setattr(torch, "lazily_imported", types.ModuleType("torch.lazily_imported"), raising=False)
        assert not snap.changed()
    import functools

    # PyTorch wrapping its own function (as importing torch._dynamo does to torch.manual_seed): a
    # function whose code is in torch's package and whose __wrapped__ is the original: no change
    own = functools.wraps(torch.manual_seed)(types.FunctionType(torch.nn.functional.relu.__code__, {}))
    with monkeypatch.context() as m:
        m.setattr(torch, "manual_seed", own)
        assert not snap.changed()
    # the same claim from a function written in the learner's file is a patch
    with monkeypatch.context() as m:
        m.setattr(torch, "manual_seed", functools.wraps(torch.manual_seed)(lambda *a: None))
        assert snap.changed()


def test_case_order_and_sharing_are_the_same_in_every_grading(spec, pool):
    runs = [grade(str(SUBMISSIONS / "wrong_after_earlier_calls.py"), spec, _options(), pool) for _ in range(2)]
    assert [(c.case_id, c.outcome, c.output) for c in runs[0].cases] == [(c.case_id, c.outcome, c.output) for c in runs[1].cases]


# ---------------------------------------------------------------- the grading process stays clean


def test_learner_code_never_runs_in_the_grading_process(graded):
    result = graded("records_pid.py")
    match = re.fullmatch(r"learner pid=(\d+)\n", result.load.output)
    assert match, result.load.output
    assert int(match.group(1)) != os.getpid()
    assert "ATTNSPEC_ISOLATION_MARK" not in os.environ
    assert not hasattr(builtins, "ATTNSPEC_ISOLATION_MARK")
    loaded_here = [name for name, m in list(sys.modules.items()) if getattr(m, "__file__", None) and Path(m.__file__).resolve().parent == SUBMISSIONS]
    assert loaded_here == []
    # numpy here is untouched by the fixtures that monkeypatch it in their workers
    graded("patches_numpy.py")
    graded("patches_numpy_at_load.py")
    assert np.exp(np.float64(0.0)) == 1.0
    assert np.frombuffer(np.arange(2.0).tobytes()).tolist() == [0.0, 1.0]
    assert np.float64 is np.dtype("float64").type


def test_dead_worker_is_replaced_and_only_its_case_is_lost(pool):
    """At the runner level: a case that kills its worker costs that case; the next case gets a new worker."""
    from attnspec.inputs import generate_inputs
    from attnspec.specmodel import InputSpec

    dims = {"batch": 3, "n_heads": 2, "seq_q": 4, "seq_k": 5, "d_head": 6, "d_v": 7}
    trigger = generate_inputs(EXERCISE, InputSpec(shapes=dims), dims, seed=1)
    harmless = generate_inputs(EXERCISE, InputSpec(shapes={**dims, "batch": 4}), {**dims, "batch": 4}, seed=1)
    session = WorkerSession(pool, load_submission(SUBMISSIONS / "kills_worker.py").load_request(), LIMITS)
    try:
        assert session.start().ok
        first_pid = session.pid
        with session.case("trigger", CASE_TIMEOUT) as cs:
            lost = cs.call(EXERCISE, trigger, backend="numpy", dtype="float64")
        assert lost.status == "worker_lost" and lost.fatal
        assert not session.alive
        with session.case("after", CASE_TIMEOUT) as cs:
            ok = cs.call(EXERCISE, harmless, backend="numpy", dtype="float64")
        assert ok.ok, ok.problem(LIMITS)
        assert session.restarts == 1 and session.pid != first_pid
        assert ok.output is not None and ok.output.shape == (4, 2, 4, 7)
    finally:
        session.close()


# ---------------------------------------------------------------- fail closed


def test_internal_error_fails_the_case_with_the_reason(spec, pool, monkeypatch):
    def broken(ctx, inputs):
        raise RuntimeError("simulated bug in a property")

    monkeypatch.setitem(PROPERTIES, "matches_reference", dataclasses.replace(PROPERTIES["matches_reference"], check=broken))
    result = grade(str(SUBMISSIONS / "correct.py"), spec, _options(), pool)
    message = "internal error in attnspec while checking this case (RuntimeError: simulated bug in a property); please report it"
    refs = {c.id: ("error", [message]) for c in spec.cases if c.property == "matches_reference"}
    assert len(refs) == 3
    assert_only_these_fail(result, spec, refs)


def test_submission_time_limit_fails_the_cases_it_cuts_off(spec, pool):
    # One worker, so the cases after the hanging one are exactly those the deadline cuts off.
    result = grade(str(SUBMISSIONS / "hangs.py"), spec, _options(limits={"submission_timeout": 1.0}, workers=1), pool)
    cases = _cases(result)
    assert cases[B3].outcome == "error"
    cut = [c for c in result.cases if c.case_id not in (B3, RULES)]
    assert len(cut) == 6
    for case in cut:
        assert case.outcome == "not_run" and case.points == 0.0  # issue 10: the budget is spent, the rest is not run
        assert case.message == "not run: time budget spent (the submission's 1 s budget was used up by earlier cases)"
    assert not result.all_passed and result.exit_code == 1


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("fixture", ["hangs.py", "many_bugs.py", "kills_worker.py"])
def test_two_grades_give_identical_json(graded, spec, pool, fixture):
    first = graded(fixture).to_dict()
    second = grade(str(SUBMISSIONS / fixture), spec, _options(), pool).to_dict()
    assert json.dumps(strip_timings(first), sort_keys=True) == json.dumps(strip_timings(second), sort_keys=True)


def test_many_bugs_each_fail_their_own_case(graded, spec):
    assert_only_these_fail(
        graded("many_bugs.py"),
        spec,
        {
            B3: ("error", ["raised ValueError: boom: batch 3 is not supported"]),
            "iso.ref_b4": ("failed", ["out contains NaN (1 of 224 elements are not finite)"]),
            "iso.dtype_b6": ("failed", ["out.dtype=float64, but should be float32"]),
            "iso.shape_b8": ("error", ["crashed: killed by signal SIGSEGV"]),
        },
    )


# ---------------------------------------------------------------- through the real command


def _cli(*args: str, timeout: float = 60) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "attnspec", "grade", *args, "--spec", str(SPEC_DIR), "--no-builtin", "--exercise", EXERCISE, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE.parent,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _cli_outcomes(report: dict) -> dict[str, tuple[str, str]]:
    (exercise,) = report["exercises"]
    return {c["case_id"]: (c["outcome"], "\n".join(i["message"] for i in c["instances"])) for c in exercise["cases"]}


def test_cli_correct_submission_exits_0(spec):
    code, report, _ = _cli(str(SUBMISSIONS / "correct.py"))
    assert code == 0
    assert report["status"] == "graded" and report["score"] == report["max_score"] == len(spec.cases) + 1


def test_cli_hang_fails_one_case_and_exits_1(spec):
    code, report, _ = _cli(str(SUBMISSIONS / "hangs.py"))
    assert code == 1
    outcomes = _cli_outcomes(report)
    outcome, message = outcomes.pop(B3)
    assert outcome == "error" and f"did not finish within the case's time limit {CASE_TIMEOUT} s" in message
    assert outcomes and all(o == "passed" for o, _ in outcomes.values()), outcomes
    assert report["score"] == report["max_score"] - 1


def test_cli_memory_bomb_with_memory_option(spec):
    code, report, _ = _cli(str(SUBMISSIONS / "memory_bomb.py"), "--memory", "512")
    assert code == 1
    outcomes = _cli_outcomes(report)
    outcome, message = outcomes.pop(B3)
    assert outcome == "error" and "raised MemoryError: out of memory (the memory limit is 512 MiB)" in message
    assert all(o == "passed" for o, _ in outcomes.values()), outcomes


def test_cli_forged_output_stays_inside_the_report(spec):
    code, report, _ = _cli(str(SUBMISSIONS / "forges_output.py"))
    assert code == 1  # stdout parsed as one JSON document: nothing the learner printed leaked into it
    assert report["score"] == report["max_score"] - 1
    assert _cli_outcomes(report)[B3][0] == "failed"
    assert "PASS iso.ref_b3 (1/1)" in report["load"]["output"]


def test_cli_two_runs_give_identical_json(spec):
    runs = [_cli(str(SUBMISSIONS / "many_bugs.py")) for _ in range(2)]
    assert [code for code, _, _ in runs] == [1, 1]
    first, second = (strip_timings(report) for _, report, _ in runs)
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_top_level_code_runs_once_even_with_parallel_workers(spec, pool, tmp_path):
    """The second zygote is forked from the loaded first one, so side effects happen once."""
    source = (SUBMISSIONS / "correct.py").read_text()
    path = tmp_path / "counts_loads.py"
    path.write_text("with open('loads.txt', 'a') as log:\n    log.write('loaded\\n')\n\n" + source)
    result = grade(str(path), spec, _options(workers=2), pool)
    assert all(c.passed for c in result.cases)
    assert (tmp_path / "loads.txt").read_text() == "loaded\n"
