"""Hostile input: submissions that lie to the grader, corrupt its messages or are malformed files.

Each attack in tests/hostile_inputs/ is graded against its honest version (the same mistake
made openly) on the isolation spec (one case per batch size, tests/specs/isolation/), and must
gain nothing: its score is at most the honest one and the case it aimed at fails, with a message
that says why. A class run of every attack, every malformed file and a correct file gives each
submission exactly its solo verdict, one schema-valid report each, and the documented exit code.
Everything runs at the default isolation level.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnspec import protocol
from attnspec.errors import SubmissionError
from attnspec.grade import GradeOptions, grade
from attnspec.loader import load_spec
from attnspec.reports.json_report import render_json
from attnspec.results import GradeResult
from attnspec import callexec
from attnspec.runner import Limits, call_request, decode_outcome
from attnspec.static import analyze
from attnspec.submission import MAX_SOURCE_BYTES, load_submission

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOSTILE = HERE / "hostile_inputs"
SUBMISSIONS = HERE / "submissions"
SPEC_DIR = HERE / "specs" / "isolation"
SCHEMA = json.loads((ROOT / "harness" / "schemas" / "report.schema.json").read_text())
EXERCISE = "manual_attention"
RULES = f"{EXERCISE}.implementation_rules"
LIMITS = Limits(memory_mb=1024, chunk_timeout=5.0, load_timeout=30.0, submission_timeout=300.0)
CORRUPTED = "the submission corrupted the worker ("
TAMPER_CASES = ("iso.ref_b3", "iso.ref_b4", "iso.ref_b5_causal", "iso.dtype_b6", "iso.type_b7", "iso.shape_b8", "iso.unchanged_b9")

# attack -> (its honest version, {case: message fragments it must show})
ATTACKS: dict[str, tuple[Path, dict[str, list[str]]]] = {
    "lying_dtype.py": (SUBMISSIONS / "wrong_dtype.py", {"iso.dtype_b6": ["out.dtype=float64, but should be float32"]}),
    "fake_class.py": (SUBMISSIONS / "wrong_dtype.py", {"iso.dtype_b6": ["Impostor", "which has no dtype"]}),
    "torch_function_lies.py": (HOSTILE / "torch_wrong_dtype.py", {"iso.dtype_b6": ["out.dtype=float64, but should be float32"]}),
    "json_hides_mutation.py": (SUBMISSIONS / "mutates_input.py", {"iso.unchanged_b9": ["modified its input Q in place"]}),
    "frames_hide_mutation.py": (SUBMISSIONS / "mutates_input.py", {"iso.unchanged_b9": [CORRUPTED + "it changed the grader's own code in its process)"]}),
    "forged_reply.py": (SUBMISSIONS / "wrong_dtype.py", {"iso.dtype_b6": [CORRUPTED, "said to hold float32 values", "came with 2688 bytes"]}),
    "corrupts_reply.py": (SUBMISSIONS / "os_exit.py", {"iso.ref_b3": [CORRUPTED + "the message header is not valid JSON)"]}),
    "frames_tamper.py": (
        HOSTILE / "honest_sdpa.py",
        {RULES: ["inspects the grader's stack frames (line 13)"], **{c: [CORRUPTED + "it switched off the grader's call tracing)"] for c in TAMPER_CASES}},
    ),
    "gc_tamper.py": (
        HOSTILE / "honest_sdpa.py",
        {RULES: ["inspects the grader's objects (through the garbage collector) (line 14)"], **{c: [CORRUPTED] for c in TAMPER_CASES}},
    ),
}


def _options() -> GradeOptions:
    return GradeOptions(exercises=(EXERCISE,), limits=LIMITS)


@pytest.fixture(scope="module")
def spec():
    return load_spec([str(SPEC_DIR)], builtin=False)


@pytest.fixture(scope="module")
def graded(spec, pool):
    cache: dict[str, GradeResult] = {}

    def run(path: Path | str) -> GradeResult:
        key = str(path)
        if key not in cache:
            cache[key] = grade(key, spec, _options(), pool)
        return cache[key]

    return run


def _outcomes(result: GradeResult) -> dict[str, str]:
    return {c.case_id: c.outcome for c in result.cases}


def _messages(result: GradeResult, case_id: str) -> str:
    case = next(c for c in result.cases if c.case_id == case_id)
    return "\n".join(i.message for i in case.instances)


def _valid(result: GradeResult) -> dict:
    data = json.loads(render_json(result))
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    return data


# ---------------------------------------------------------------- lying and tampering submissions


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_gains_nothing_over_its_honest_version(graded, attack):
    honest_path, expected = ATTACKS[attack]
    result, honest = graded(HOSTILE / attack), graded(honest_path)
    assert result.score <= honest.score, (result.score, honest.score)
    outcomes = _outcomes(result)
    for case_id, fragments in expected.items():
        assert outcomes[case_id] != "passed", case_id
        text = _messages(result, case_id)
        for fragment in fragments:
            assert fragment in text, (case_id, text)
    # Every case the attack did not aim at is graded exactly as for the honest version.
    honest_outcomes = _outcomes(honest)
    for case_id, outcome in outcomes.items():
        if case_id not in expected:
            assert outcome == honest_outcomes[case_id], case_id
    assert result.exit_code == 1
    _valid(result)


def test_the_attacks_target_a_case_the_honest_version_also_fails(graded):
    """The honest versions are real: each fails the case its attack tried to forge."""
    for attack, (honest_path, expected) in ATTACKS.items():
        honest = _outcomes(graded(honest_path))
        failing = [c for c in expected if honest.get(c) not in ("passed", None)]
        assert failing, attack


def test_a_forged_load_reply_fails_that_submission_with_a_plain_verdict(graded):
    result = graded(HOSTILE / "corrupts_load.py")
    assert result.score == 0
    (exercise,) = result.exercises
    assert exercise.status == "load_error"
    assert CORRUPTED + "Loaded.chunk_errors is an integer, not a list)" in exercise.message
    assert "Traceback" not in json.dumps(_valid(result))


def test_a_correct_future_annotations_dataclass_file_gets_full_marks(graded):
    result = graded(HOSTILE / "future_dataclass.py")
    assert result.score == result.max_score > 0
    assert not result.load.errors


# ---------------------------------------------------------------- the protocol believes only bytes


def _reply(**fields) -> dict:
    return {"status": "ok", "duration": 0.0, **fields}


@pytest.mark.parametrize(
    ("reply", "buffers", "why"),
    [
        (_reply(duration=float("nan")), [], "CallReply.duration is a number, not a finite number"),
        (_reply(status="passed"), [], "CallReply.status is 'passed', not one of"),
        (_reply(mutated="Q"), [], "CallReply.mutated is a string, not a list"),
        (_reply(tripwires=[{"api": "x" * 301}]), [], "holds 301 characters, more than the limit of 300"),
        (_reply(output={"kind": "ndarray"}), [], "CallReply.output lacks its field 'type'"),
        (_reply(verdict="pass"), [], "unexpected field 'verdict'"),
        (_reply(output={"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float32", "shape": [2, 3], "values": 0, "encoding": "float64"}), [b"\0" * 48], "said to be float32 came with float64 values"),
        (_reply(output={"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float64", "shape": [2, 3], "values": 0, "encoding": "float64"}), [b"\0" * 40], "came with 40 bytes"),
        (_reply(output={"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float64", "shape": [2, 3], "values": 3, "encoding": "float64"}), [], "without their shape, encoding or buffer"),
        (_reply(grads={"Q": {"shape": [2], "buf": 0}}), [b"\0" * 8], "needs 16"),
    ],
)
def test_a_malformed_reply_is_a_corrupted_worker_not_an_exception(reply, buffers, why):
    outcome = decode_outcome(reply, buffers)
    assert outcome.status == "corrupted" and outcome.fatal
    assert outcome.detail.startswith(CORRUPTED) and why in outcome.detail, outcome.detail
    assert outcome.problem() == outcome.detail


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_float32_call_sends_float32_bytes_that_decode_to_the_cast_the_worker_made_before(backend):
    """Inputs of a float32 call cross as float32 (half the bytes); the worker's arrays are the ones
    it built before from float64 bytes: a float32 cast rounds the same on either side, -inf and
    values beyond float32's range included."""
    if backend == "torch":
        torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    Q = rng.standard_normal((2, 3, 4, 5)) * np.array([1.0, 1e-30, 1e30, 3e38, 1e-45])
    mask = np.where(rng.random((4, 4)) < 0.3, -np.inf, 0.0)
    args = [Q, Q[::-1].copy(), Q + 1, mask]
    header32, sent32 = call_request("manual_attention", args, backend, "float32", None, [])
    header64, sent64 = call_request("manual_attention", args, backend, "float64", None, [])
    assert [len(b) for b in sent32] == [len(b) // 2 for b in sent64]
    received = [bytearray(b) for b in sent32]  # as recv hands them over
    got = callexec.decode_args(header32["args"], received, backend, "float32")
    with np.errstate(over="ignore"):
        before = [callexec._to_backend(protocol.decode_float64(n, sent64), backend, "float32") for n in header64["args"]]
    for g, b in zip(got, before):
        if backend == "torch":
            assert g.dtype == torch.float32 and torch.equal(g.isnan(), b.isnan()) and torch.equal(torch.nan_to_num(g), torch.nan_to_num(b))
            g.add_(1)  # the worker's own writable memory
        else:
            assert g.dtype == np.float32 and np.array_equal(g, b, equal_nan=True)
            g += 1
    assert all(bytes(b) == bytes(a) for a, b in zip(sent32, call_request("manual_attention", args, backend, "float32", None, [])[1]))


@pytest.mark.parametrize(
    ("node", "buffers", "why"),
    [
        ({"t": "array", "shape": [2], "buf": 0, "dtype": "float16"}, [bytearray(4)], "said to hold float16 values"),
        ({"t": "array", "shape": [2], "buf": 0, "dtype": "float32"}, [bytearray(16)], r"holds 16 bytes, but shape \(2,\) needs 8"),
        ({"t": "array", "shape": [2], "buf": 1}, [bytearray(16)], "refers to a buffer that was not sent"),
    ],
)
def test_an_array_node_that_does_not_match_its_bytes_is_refused(node, buffers, why):
    with pytest.raises(protocol.CorruptMessage, match=why):
        protocol.decode_array(node, buffers)


def test_only_a_received_buffer_is_used_in_place():
    data = np.arange(4.0)
    owned = protocol.decode_array({"shape": [4], "buf": 0}, [bytearray(data.tobytes())])
    shared = memoryview(data).cast("B")
    copied = protocol.decode_array({"shape": [4], "buf": 0}, [shared])
    assert owned.flags.writeable and np.array_equal(owned, data)
    copied[0] = 99.0  # a copy: the grader's array behind the view is untouched
    assert data[0] == 0.0 and not np.shares_memory(copied, data)


def test_values_are_converted_by_the_grader_from_their_own_dtype():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    reply = _reply(output={"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float32", "shape": [2, 3], "values": 0, "encoding": "float32"})
    outcome = decode_outcome(reply, [values.tobytes()])
    assert outcome.ok and outcome.output.values.dtype == np.float64
    np.testing.assert_array_equal(outcome.output.values, values)


# values at the checks' edges (length limits 64/200/300/4096/64 KiB, the integer range, enums), half the time
_EDGE_VALUES = ["x" * n for n in (64, 65, 200, 201, 300, 301, 4096, 4097, 65536, 65537)] + [1 << 62, (1 << 62) + 1, -(1 << 62) - 1, 2.5, float("inf"), True, None, "ok", "raised", "float32", "tensor", "nope", [], {}, [1] * 32, [1] * 33, ["Q"] * 65, [{"api": "a"}] * 101, {f"k{i}": {"shape": [1], "buf": 0} for i in range(33)}]
_JSON = st.sampled_from(_EDGE_VALUES) | st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(1 << 64), max_value=1 << 64) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["kind", "type", "api", "shape", "buf", "op", "zz"]), inner, max_size=4),
    max_leaves=12,
)
_VALID = {
    protocol.CallReply: {
        "status": "ok", "duration": 0.5, "error": {"type": "ValueError", "message": "m", "traceback": "", "line": 3, "file": "f.py"},
        "output": {"kind": "ndarray", "type": "numpy.ndarray", "dtype": "float32", "shape": [2, 3], "values": 0, "encoding": "float32"},
        "mutated": ["Q"], "tripwires": [{"api": "torch.softmax", "file": None, "line": 2}], "grads": {"Q": {"shape": [2], "buf": 1}},
        "samples": [{"file": "f.py", "line": 1, "count": 3}], "stopped": None,
    },
    protocol.Call: {"function": "manual_attention", "backend": "torch", "dtype": "float32", "arg_names": ["Q"], "args": [{"t": "array", "shape": [2], "buf": 0}], "grad": {"wrt": ["Q"], "cotangent": {"t": "none"}}, "op": "call"},
    protocol.Loaded: {"duration": 1, "chunk_errors": [{"type": "E", "chunk": 2}], "functions": {"f": {"callable": True, "type": "function", "bindable": None}}, "output": {"text": "hi", "bytes": 2}, "op": "loaded"},
}


def _mutate(header: Any, path: list[Any], value: Any, action: str) -> Any:
    if not path:
        return value
    out = dict(header) if isinstance(header, dict) else list(header)
    key = path[0]
    if isinstance(out, dict) and len(path) == 1 and action == "drop":
        out.pop(key, None)
        return out
    if isinstance(out, dict) and key not in out:
        out[key] = value
        return out
    if isinstance(out, list) and not (isinstance(key, int) and key < len(out)):
        return out + [value]
    out[key] = _mutate(out[key], path[1:], value, action)
    return out


def _paths(value: Any, prefix: list[Any]) -> list[list[Any]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, prefix + [k])
        found.append(prefix + ["zz"])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, prefix + [i])
    return found


def _verdict(parse: Any) -> Any:
    try:
        return ("ok", parse())
    except (protocol.CorruptMessage, protocol._Invalid):
        return ("invalid", None)


def _compare_parsers(cls: type, header: Any) -> None:
    fast = _verdict(lambda: protocol._fast_parser(cls)(header, 0))
    slow = _verdict(lambda: protocol._parse_dataclass(cls, header, cls.__name__, 0))
    assert fast[0] == slow[0] and repr(fast[1]) == repr(slow[1]), (header, fast, slow)
    if fast[0] == "ok":  # and a message turns back into the header the field-by-field way
        plain = {name: protocol._plain(getattr(fast[1], name)) for name in protocol._field_names(cls)}
        assert {k: v for k, v in fast[1].to_header().items() if k != "op"} == plain
        assert cls.parse(header) == fast[1]


@pytest.mark.parametrize("cls", sorted(_VALID, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_the_compiled_checks_agree_with_the_field_by_field_checks_on_every_edge_of_every_field(cls):
    """Headers are parsed by closures compiled per message class (fast, no error text), falling
    back to the field-by-field checks for the message: the two agree on each field of a valid
    header set to each edge value, or dropped."""
    header = _VALID[cls]
    _compare_parsers(cls, header)
    for path in _paths(header, []):
        _compare_parsers(cls, _mutate(header, path, None, "drop"))
        for value in _EDGE_VALUES:
            _compare_parsers(cls, _mutate(header, path, value, "set"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_VALID, key=lambda c: c.__name__)), st.data())
def test_the_compiled_checks_agree_with_the_field_by_field_checks_on_drawn_headers(cls, data):
    """The same on headers with several fields changed at once, to drawn JSON."""
    header = _VALID[cls]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(header, [])))
        header = _mutate(header, path, data.draw(_JSON), data.draw(st.sampled_from(["set", "drop"])))
    _compare_parsers(cls, header)


def _pipe_message(raw: bytes) -> tuple[int, threading.Thread]:
    r, w = os.pipe()

    def write() -> None:
        with os.fdopen(w, "wb") as f:
            try:
                f.write(raw)
            except BrokenPipeError:
                pass

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return r, t


def _framed(body: bytes) -> bytes:
    return struct.pack(">Q", len(body)) + body


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (struct.pack(">Q", protocol.MAX_HEADER + 1), "more than the 4 MiB limit"),
        (_framed(b"[" * 100_001 + b"]" * 100_001), "nested too deeply"),
        (_framed(b"{'a': nope}"), "not valid JSON"),
        (_framed(b"[]"), "not a JSON object"),
        (_framed(b'{"_buffers":[],"a":NaN}'), "not valid JSON"),
        (_framed(b'{"_buffers":[1,-2]}'), "buffer sizes are missing or invalid"),
        (_framed(b'{"_buffers":[536870912,536870912]}'), "more than the 768 MiB limit"),
        (_framed(b'{"a":1} {"b":2}'), "data after its JSON"),
    ],
)
def test_recv_refuses_oversized_and_malformed_messages(raw, why):
    r, t = _pipe_message(raw)
    try:
        with pytest.raises(protocol.CorruptMessage, match=why):
            protocol.recv(r, deadline=None)
    finally:
        os.close(r)
        t.join(timeout=5)


def test_buffers_of_any_size_arrive_whole_and_a_cut_one_is_an_error():
    """recv grows each buffer as its bytes arrive (a sender that announces 512 MiB and sends
    nothing makes the reader hold almost nothing): several MiB arrive exactly, a cut message fails."""
    data = np.random.default_rng(3).bytes(5 * (1 << 20) + 7)
    framed = b"".join([protocol._LEN_pack(len(body := json.dumps({"_buffers": [len(data), 0]}).encode())), body, data])
    r, t = _pipe_message(framed)
    try:
        header, buffers = protocol.recv(r, deadline=None)
    finally:
        os.close(r)
        t.join(timeout=5)
    assert header == {} and [bytes(b) for b in buffers] == [data, b""] and all(type(b) is bytearray for b in buffers)
    r, t = _pipe_message(framed[: -len(data) // 2])
    try:
        with pytest.raises(protocol.ProtocolError, match="in the middle of a message"):
            protocol.recv(r, deadline=None)
    finally:
        os.close(r)
        t.join(timeout=5)


def test_patching_json_and_struct_does_not_change_what_is_sent(monkeypatch):
    r, w = os.pipe()
    try:
        monkeypatch.setattr(json, "dumps", lambda *a, **k: '{"status":"ok"}')
        monkeypatch.setattr(json.encoder.JSONEncoder, "encode", lambda self, o: '{"status":"ok"}')
        monkeypatch.setattr(json.encoder, "c_make_encoder", None)
        monkeypatch.setattr(struct, "pack", lambda *a: b"\0" * 8)
        protocol.send(w, {"status": "raised", "mutated": ["Q"]})
        monkeypatch.undo()
        header, _ = protocol.recv(r)
    finally:
        os.close(r)
        os.close(w)
    assert header == {"status": "raised", "mutated": ["Q"]}


def test_nothing_in_the_worker_decides_pass_or_fail():
    """The worker imports neither the comparison nor the properties nor the grade logic."""
    code = "import sys, attnspec.worker; print(sorted(m for m in sys.modules if m.startswith('attnspec')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert loaded and not loaded & {"attnspec.compare", "attnspec.properties", "attnspec.grade", "attnspec.diagnosis", "attnspec.scoring"}


# ---------------------------------------------------------------- malformed submission files


def _notebook(cells: list, **metadata) -> str:
    return json.dumps({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})


MALFORMED_FILES: dict[str, tuple[bytes, str]] = {
    "non_utf8.py": (b"x = 1\ny = '\xff'\n", "not UTF-8 text (byte 0xff at line 2, column 6); save the file as UTF-8"),
    "nul_byte.py": (b"import numpy\nx = 1\x00\n", "contains a NUL byte at line 2, column 6"),
    "empty.py": (b"", "the file is empty; expected Python code"),
    "blank.ipynb": (b"  \n", "the file is empty; expected a Jupyter notebook (JSON)"),
    "long_expression.py": (("x = " + "1 + " * 100_000 + "1\n").encode(), "Python's parser cannot handle this code (an expression is nested too deeply; the longest line is line 1, 400,005 characters)"),
    "deep_json.ipynb": (("[" * 100_000 + "]" * 100_000).encode(), "its JSON is nested too deeply"),
    "deep_metadata.ipynb": (_notebook([], a=json.loads("[" * 100 + "]" * 100)).encode(), "its JSON is nested more than 64 levels deep"),
    "kernelspec_string.ipynb": (_notebook([], kernelspec="python3").encode(), "metadata.kernelspec is a string, expected an object"),
    "language_info_list.ipynb": (_notebook([], language_info=["python"]).encode(), "metadata.language_info is a list, expected an object"),
    "kernel_language_number.ipynb": (_notebook([], kernelspec={"language": 3}).encode(), "metadata.kernelspec.language is a number, expected a string"),
    "cells_object.ipynb": (json.dumps({"cells": {"a": 1}, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(), "'cells' is an object, expected a list of cells"),
    "source_number.ipynb": (_notebook([{"cell_type": "code", "source": 7, "metadata": {}, "outputs": [], "execution_count": None}]).encode(), "cell 1's source is a number, expected a string or a list of strings"),
    "cell_type_list.ipynb": (_notebook([{"cell_type": ["code"], "source": "", "metadata": {}}]).encode(), "cell 1's cell_type is a list, expected a string"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_FILES))
def test_a_malformed_file_is_a_precise_submission_error(tmp_path, name):
    data, message = MALFORMED_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SubmissionError) as info:
        load_submission(path)
    assert str(info.value) == f"{path}: {message}" or message in str(info.value), str(info.value)


def _special_files(folder: Path) -> dict[str, str]:
    """Make a FIFO, a socket, and symlinks to a device and out of the folder; name -> expected message."""
    os.mkfifo(folder / "pipe.py")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.py"))
    server.close()
    (folder / "zero.py").symlink_to("/dev/zero")
    outside = folder.parent / "elsewhere.py"
    outside.write_text("def manual_attention(Q, K, V, mask=None):\n    return Q\n")
    (folder / "outside.py").symlink_to(outside)
    return {
        "pipe.py": "is a named pipe (FIFO), not a regular file",
        "sock.py": "is a socket, not a regular file",
        "zero.py": "is a symbolic link to /dev/zero, outside the submission's folder",
        "outside.py": f"is a symbolic link to {outside}, outside the submission's folder",
    }


def test_special_files_are_refused_at_once_without_being_read(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    expected = _special_files(folder)
    errors: dict[str, str] = {}

    def load_all() -> None:
        for name in expected:
            try:
                load_submission(folder / name)
            except SubmissionError as exc:
                errors[name] = str(exc)

    worker = threading.Thread(target=load_all, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "reading a special file blocked"
    for name, message in expected.items():
        assert message in errors[name], errors.get(name)


def test_a_symlink_inside_the_folder_is_followed(tmp_path):
    (tmp_path / "real.py").write_text((SUBMISSIONS / "correct.py").read_text())
    (tmp_path / "link.py").symlink_to(tmp_path / "real.py")
    assert load_submission(tmp_path / "link.py").chunks


def test_a_huge_file_gets_a_clear_message_not_a_lost_worker(tmp_path):
    path = tmp_path / "huge.py"
    line = "x = 1  # " + "padding " * 12 + "\n"
    with path.open("w") as f:
        f.write((SUBMISSIONS / "correct.py").read_text())
        f.write(line * (50_000_000 // len(line)))
    with pytest.raises(SubmissionError, match=rf"more than the {MAX_SOURCE_BYTES:,}-byte limit for a \.py submission"):
        load_submission(path)


def test_a_correct_file_with_4500_top_level_lines_grades_fully_with_a_linear_load_message(graded, tmp_path):
    path = tmp_path / "long_correct.py"
    body = "".join(f"CONSTANT_{i} = {i}\n" for i in range(4500))
    path.write_text(body + (SUBMISSIONS / "correct.py").read_text() + "\nassert CONSTANT_4499 == 4499\n")
    submission = load_submission(path)
    assert len(submission.chunks) > 4500
    message = json.dumps(submission.load_request())
    assert len(message) < 2 * path.stat().st_size + 100_000  # each line once, not once per chunk
    result = graded(path)
    assert result.score == result.max_score > 0
    assert not result.load.errors


def test_tracebacks_keep_the_learners_line_numbers(graded, tmp_path):
    path = tmp_path / "late_error.py"
    path.write_text("".join(f"A_{i} = {i}\n" for i in range(300)) + (SUBMISSIONS / "correct.py").read_text() + "\nraise ValueError('line numbers')\n")
    result = graded(path)
    (error,) = result.load.errors
    assert error["type"] == "ValueError" and error["line"] == len(path.read_text().splitlines())


def test_static_analysis_flags_frame_and_gc_introspection():
    sub = load_submission(HOSTILE / "frames_tamper.py")
    uses = analyze(sub).introspection
    assert [(u.api, u.line) for u in uses][:2] == [("stack frames", 13), ("stack frames", 15)]
    assert analyze(load_submission(SUBMISSIONS / "correct.py")).introspection == []


# ---------------------------------------------------------------- a class run


def test_a_class_run_gives_every_submission_its_solo_verdict(graded, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    names = ["correct.py", "wrong_dtype.py"]
    for name in names:
        (folder / name).write_text((SUBMISSIONS / name).read_text())
    attacks = ["corrupts_reply.py", "fake_class.py", "frames_tamper.py", "json_hides_mutation.py", "corrupts_load.py"]
    for name in attacks:
        (folder / name).write_text((HOSTILE / name).read_text())
    for name in ("kernelspec_string.ipynb", "long_expression.py", "nul_byte.py"):
        (folder / name).write_bytes(MALFORMED_FILES[name][0])
    specials = _special_files(folder)
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "attnspec", "grade", str(folder), "--spec", str(SPEC_DIR), "--no-builtin", "--exercise", EXERCISE]
    proc = subprocess.run(cmd + ["--format", "json", "--output-dir", str(reports), "-j", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr  # some submissions fail; none is a grading error
    assert "Traceback" not in proc.stdout + proc.stderr
    got = {p.stem: json.loads(p.read_text()) for p in reports.glob("*.json")}
    everyone = names + attacks + ["kernelspec_string.ipynb", "long_expression.py", "nul_byte.py"] + list(specials)
    assert sorted(got) == sorted(Path(n).stem for n in everyone)
    for data in got.values():
        jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    for name in names + attacks:
        solo = graded(folder / name)
        data = got[Path(name).stem]
        assert data["score"] == solo.score, name
        assert {c["case_id"]: c["outcome"] for e in data["exercises"] for c in e["cases"]} == _outcomes(solo), name
    for name, message in specials.items():
        (exercise,) = got[Path(name).stem]["exercises"]
        assert exercise["status"] == "load_error" and message in exercise["message"]
    assert "kernelspec is a string" in got["kernelspec_string"]["exercises"][0]["message"]
    assert got["correct"]["score"] == got["correct"]["max_score"] > 0


def test_a_child_that_floods_the_grader_with_outputs_loses_its_worker_at_the_limit():
    from attnspec.runner import KEPT_BYTES_LIMIT

    shipped = load_spec()
    cases = tuple(c.id for c in shipped.cases if c.exercise == EXERCISE and c.inputs is not None and not c.inputs.is_literal)[:14]  # enough calls to reach the limit
    result = grade(str(HOSTILE / "floods_outputs.py"), shipped, dataclasses.replace(_options(), case_ids=cases))
    text = "\n".join(i.message for e in result.exercises for c in e.cases for i in c.instances)
    assert f"its outputs came to more than {KEPT_BYTES_LIMIT >> 20} MiB in all" in text
    assert result.score < result.max_score / 2 and result.exit_code == 1
    _valid(result)


@pytest.mark.parametrize("decode", [
    lambda shape, buf: protocol.decode_values("uint8", shape, buf),
    lambda shape, buf: protocol.decode_float64({"t": "array", "shape": shape, "buf": 0}, [buf]),
])
def test_an_output_larger_than_a_worker_may_send_is_refused_before_it_is_expanded(decode):
    count = protocol.MAX_OUTPUT_ELEMENTS + 1
    with pytest.raises(protocol.CorruptMessage, match=f"said to hold {count} values, more than the {protocol.MAX_OUTPUT_ELEMENTS}"):
        decode([count], bytearray(count))  # a uint8 buffer that would be 8x larger as float64


def test_a_patch_of_the_worker_module_at_load_time_is_tampering_not_a_pass(graded):
    """The worker's module and the state check are held like callexec's own: a submission that
    swaps the worker's reply sender before any case runs gets every call reported as tampering."""
    result, honest = graded(HOSTILE / "worker_send_patch.py"), graded(SUBMISSIONS / "mutates_input.py")
    assert result.score <= honest.score and _outcomes(result)["iso.unchanged_b9"] != "passed"
    assert CORRUPTED + "it changed the grader's own code in its process)" in _messages(result, "iso.unchanged_b9")
