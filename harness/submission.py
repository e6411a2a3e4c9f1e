"""Read a learner's submission (.py or .ipynb) into chunks of code that run one after another.

A chunk is one top-level statement of a .py file or one notebook code cell: a line range of a
source file, which is sent to the worker once (the load message is linear in the file's size;
the worker compiles each range with its own line numbers). Running chunk by chunk means one
broken statement or cell does not hide the others; a syntax error is cut out (and reported with
its line) so the rest of the file can still be graded.

The file itself is hostile input too: FIFOs, devices, sockets and symlinks out of the
submission's folder are refused without being opened for reading; oversized files, NUL bytes,
non-UTF-8 bytes, malformed notebooks and code that Python's parser cannot handle each become a
SubmissionError naming what, where and what was expected, never an exception of ours.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SubmissionError

# Cell magics whose body is Python: the magic line is dropped, the body runs.
PYTHON_BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
_ASSIGN_SHELL = re.compile(r"^(\s*)([A-Za-z_][\w.,\s]*?)\s*=\s*[!%]")
_MAX_RECOVERIES = 20
# Limits on what a submission may be. A .py file of 5 MB is ~100 times the largest solution of
# these exercises; the cap keeps one file from filling the grader's memory or the worker's load
# message. Notebooks carry their outputs (plots), so the file may be larger; its code may not.
MAX_SOURCE_BYTES = 5_000_000
MAX_NOTEBOOK_BYTES = 50_000_000
MAX_COMPANIONS = 200  # helper files sent with a submission
MAX_COMPANION_CHARS = 20_000_000  # all its helper files together
MAX_JSON_DEPTH = 64


@dataclass
class SourceText:
    """One file (or notebook cell) of code, with syntax errors blanked out; sent to the worker once."""

    filename: str
    text: str
    cell: int | None = None


@dataclass
class Chunk:
    """Lines first_line..last_line (1-based) of the file `filename`."""

    filename: str
    first_line: int
    last_line: int
    cell: int | None = None
    file: int = 0  # index into Submission.files


@dataclass
class SyntaxProblem:
    """A syntax error that was cut out so the rest of the file could run."""

    filename: str
    line: int
    message: str
    removed: tuple[int, int]
    cell: int | None = None
    text: str = ""  # the lines that were cut out


@dataclass
class Submission:
    path: Path
    display: str
    kind: str  # "py" | "ipynb"
    chunks: list[Chunk]
    sha256: str
    syntax_problems: list[SyntaxProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[SourceText] = field(default_factory=list)
    companions: list[str] = field(default_factory=list)  # other files of a multi-file submission (helpers), as paths

    @property
    def filenames(self) -> set[str]:
        return {c.filename for c in self.chunks}

    def load_request(self) -> dict[str, Any]:
        """The load message (without limits): each file's code once, and the chunks as line ranges."""
        return {
            "path": self.display,
            "directory": str(self.path.resolve().parent),
            "module_name": "__main__" if self.kind == "ipynb" else "submission",
            "files": [{"filename": f.filename, "source": f.text, "cell": f.cell} for f in self.files],
            "chunks": [{"file": c.file, "first": c.first_line, "last": c.last_line} for c in self.chunks],
            "companions": self.companion_texts(),
        }

    def companion_texts(self) -> dict[str, str]:
        """The helper files of a multi-file submission, {name relative to the graded file: text}:
        a sandbox writes them into the submission's private folder (and nothing else of its
        folder is visible there). A helper that cannot be read as text is left out."""
        texts: dict[str, str] = {}
        folder = self.path.resolve().parent
        total = 0
        for companion in self.companions[:MAX_COMPANIONS]:
            p = Path(companion)
            try:
                text = _read_safely(p, str(p)).decode("utf-8")
            except (SubmissionError, UnicodeDecodeError, ValueError):
                continue
            total += len(text)
            if total > MAX_COMPANION_CHARS:  # a folder of huge files would fill the grader's memory and the worker's request
                break
            texts[os.path.relpath(p.resolve(), folder)] = text
        return texts

    def where(self, filename: str | None, line: int | None) -> str:
        """'line 12' for a .py file, 'cell 4, line 2' for a notebook."""
        if line is None:
            return ""
        for c in self.chunks:
            if c.filename == filename and c.cell is not None:
                return f"cell {c.cell}, line {line}"
        return f"line {line}"


def load_submission(path: str | Path, *, display: str | None = None, companions: list[str] | None = None) -> Submission:
    """Read and split a submission; raises SubmissionError if the file cannot be read as code at all.
    `display` names it in reports (e.g. 'class.zip!alice/sol.py'); `companions` are its helper files."""
    sub = _load_submission(Path(path), display or str(path))
    sub.companions = list(companions or [])
    return sub


def _load_submission(p: Path, display: str) -> Submission:
    raw = _read_safely(p, display)
    digest = hashlib.sha256(raw).hexdigest()
    try:
        return _load_bytes(p, display, raw, digest)
    except SubmissionError as exc:
        exc.sha256 = digest
        raise


def _load_bytes(p: Path, display: str, raw: bytes, digest: str) -> Submission:
    if p.suffix not in (".py", ".ipynb"):
        raise SubmissionError(f"{display}: unsupported file type '{p.suffix}'; expected a .py file or a .ipynb notebook")
    if not raw.strip():
        raise SubmissionError(f"{display}: the file is empty; expected {'Python code' if p.suffix == '.py' else 'a Jupyter notebook (JSON)'}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SubmissionError(f"{display}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}, column {column}); save the file as UTF-8") from None
    if p.suffix == ".ipynb":
        return _load_notebook(p, display, text, digest)
    _check_code(text, display)
    chunks, problems = split_python(text, display)
    sub = Submission(p, display, "py", chunks, digest, problems)
    sub.files = [SourceText(display, _blanked(text, problems))]
    return sub


def _read_safely(p: Path, display: str) -> bytes:
    """The file's bytes, refusing anything that is not a regular file in the submission's folder.

    Checked with lstat and opened with O_NONBLOCK|O_NOFOLLOW, so a FIFO, a device or a symlink to
    /dev/zero is refused at once: it never blocks the grader or fills its memory."""
    try:
        info = os.lstat(p)
    except FileNotFoundError:
        raise SubmissionError(f"{display}: no such file") from None
    except OSError as exc:
        raise SubmissionError(f"{display}: cannot read the file ({exc.strerror})") from None
    target = p
    if stat.S_ISLNK(info.st_mode):
        folder = Path(os.path.abspath(p.parent))
        target = Path(os.path.realpath(p))
        if target != folder and folder not in target.parents:
            raise SubmissionError(f"{display}: is a symbolic link to {target}, outside the submission's folder {folder}; submit the file itself")
        try:
            info = os.lstat(target)
        except OSError:
            raise SubmissionError(f"{display}: is a symbolic link to {target}, which does not exist") from None
    if stat.S_ISDIR(info.st_mode):
        raise SubmissionError(f"{display}: is a directory; give a .py file or a .ipynb notebook")
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionError(f"{display}: is {_file_kind(info.st_mode)}, not a regular file; submit a .py file or a .ipynb notebook")
    cap = MAX_NOTEBOOK_BYTES if p.suffix == ".ipynb" else MAX_SOURCE_BYTES
    if info.st_size > cap:
        raise SubmissionError(f"{display}: the file is {info.st_size:,} bytes, more than the {cap:,}-byte limit for a {p.suffix} submission")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SubmissionError(f"{display}: cannot read the file ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between lstat and open
            raise SubmissionError(f"{display}: is not a regular file; submit a .py file or a .ipynb notebook")
        chunks, size = [], 0
        while size <= cap:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            chunks.append(data)
            size += len(data)
    finally:
        os.close(fd)
    if size > cap:
        raise SubmissionError(f"{display}: the file is more than {cap:,} bytes, the limit for a {p.suffix} submission")
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _check_code(text: str, where: str) -> None:
    """Refuse code that Python's compiler cannot take (NUL bytes) or the 5 MB code limit."""
    if len(text.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise SubmissionError(f"{where}: the code is more than {MAX_SOURCE_BYTES:,} bytes, the limit for a submission")
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise SubmissionError(f"{where}: contains a NUL byte at line {line}, column {column}; a Python file must be plain text")


def _blanked(text: str, problems: list[SyntaxProblem]) -> str:
    """`text` with the line ranges cut out for syntax errors replaced by blank lines."""
    if not problems:
        return text
    lines = text.splitlines(keepends=True)
    for prob in problems:
        for i in range(prob.removed[0] - 1, min(prob.removed[1], len(lines))):
            lines[i] = "\n"
    return "".join(lines)


def _parse(source: str, filename: str) -> ast.Module:
    """ast.parse, with the parser's own crashes on pathological code turned into a SubmissionError."""
    try:
        return ast.parse(source, filename=filename)
    except (RecursionError, MemoryError) as exc:
        lines = source.splitlines() or [""]
        longest = max(range(len(lines)), key=lambda i: len(lines[i]))
        why = "nested too deeply" if isinstance(exc, RecursionError) else "too large"
        raise SubmissionError(
            f"{filename}: Python's parser cannot handle this code (an expression is {why}; the longest line is line {longest + 1}, "
            f"{len(lines[longest]):,} characters); split long expressions into several statements"
        ) from None


def split_python(text: str, filename: str, cell: int | None = None) -> tuple[list[Chunk], list[SyntaxProblem]]:
    """Top-level statements as chunks; syntax errors are blanked out block by block and reported."""
    lines = text.splitlines(keepends=True)
    problems: list[SyntaxProblem] = []
    for _ in range(_MAX_RECOVERIES):
        try:
            tree = _parse("".join(lines), filename)
            break
        except SyntaxError as exc:
            line = exc.lineno or 1
            start, end = _enclosing_block(lines, line)
            problems.append(SyntaxProblem(filename, line, exc.msg, (start, end), cell, "".join(lines[start - 1 : end])))
            for i in range(start - 1, end):
                lines[i] = "\n"
    else:
        return [], problems
    chunks = []
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        chunks.append(Chunk(filename, first, node.end_lineno or node.lineno, cell))
    return chunks, problems


_BLOCK_CONTINUATION = ("else", "elif", "except", "finally", "case")


def _enclosing_block(lines: list[str], line: int) -> tuple[int, int]:
    """1-based inclusive line range of the top-level block that contains `line`."""

    def starts_block(i: int) -> bool:
        text = lines[i]
        if not text.strip() or text[0] in " \t#)]}":
            return False
        word = re.match(r"[A-Za-z_]\w*", text)
        return not (word and word.group(0) in _BLOCK_CONTINUATION)

    index = min(max(line - 1, 0), len(lines) - 1) if lines else 0
    start = index
    while start > 0 and not starts_block(start):
        start -= 1
    while start > 0 and lines[start - 1].startswith("@"):
        start -= 1
    end = index + 1  # 0-based exclusive == 1-based inclusive last line
    while end < len(lines) and not starts_block(end):
        end += 1
    return start + 1, end


def strip_ipython(source: str) -> tuple[str | None, int]:
    """Drop IPython magics and shell escapes (never executed), keeping line numbers.

    Returns (code or None if the whole cell is a non-Python cell magic, number of lines dropped).
    """
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)[0] if len(lines[0].strip()) > 2 else ""
        if magic not in PYTHON_BODY_CELL_MAGICS:
            return None, len(lines)
        lines[0] = ""
        dropped = 1
    else:
        dropped = 0
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(("%", "!")) or (stripped.endswith("?") and not stripped.startswith("#") and re.fullmatch(r"[\w.]+\?\??", stripped)):
            out.append(f"{indent}pass")
            dropped += 1
            continue
        m = _ASSIGN_SHELL.match(line)
        if m:
            out.append(f"{m.group(1)}{m.group(2)} = None")
            dropped += 1
            continue
        out.append(line)
    return "\n".join(out) + "\n", dropped


def _load_notebook(p: Path, display: str, text: str, digest: str) -> Submission:
    import nbformat

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{display}: not a notebook: the file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise SubmissionError(f"{display}: not a notebook: its JSON is nested too deeply (a notebook is at most a few levels deep)") from None
    _check_notebook_shape(data, display)
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several unrelated types for malformed notebooks
        raise SubmissionError(f"{display}: not a Jupyter notebook: {str(exc)[:300]}") from None
    chunks: list[Chunk] = []
    files: list[SourceText] = []
    problems: list[SyntaxProblem] = []
    dropped_total = 0
    skipped_cells = []
    metadata = nb.get("metadata") or {}
    language = str((metadata.get("kernelspec") or {}).get("language", "python")).lower()
    if language not in ("python", "python3", ""):
        raise SubmissionError(f"{display}: the notebook's kernel language is '{language[:40]}', not Python")
    for index, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        source, dropped = strip_ipython(source)
        dropped_total += dropped
        if source is None:
            skipped_cells.append(index)
            continue
        filename = f"{display}, cell {index}"
        _check_code(source, filename)
        cell_chunks, cell_problems = split_python(source, filename, cell=index)
        problems.extend(cell_problems)
        if cell_chunks:
            # One chunk per cell: the cell runs as a unit, like in Jupyter.
            blanked = _blanked(source, cell_problems)
            files.append(SourceText(filename, blanked, index))
            last = max(len(blanked.splitlines()), cell_chunks[-1].last_line)
            chunks.append(Chunk(filename, cell_chunks[0].first_line, last, index, len(files) - 1))
    if sum(len(f.text) for f in files) > MAX_SOURCE_BYTES:
        raise SubmissionError(f"{display}: the notebook's code is more than {MAX_SOURCE_BYTES:,} bytes, the limit for a submission")
    notes = []
    if dropped_total:
        notes.append(f"{dropped_total} IPython magic or shell line(s) were skipped (not executed)")
    if skipped_cells:
        notes.append(f"cell(s) {', '.join(map(str, skipped_cells))} use a non-Python cell magic and were skipped")
    return Submission(p, display, "ipynb", chunks, digest, problems, notes, files)


def _check_notebook_shape(data: Any, display: str) -> None:
    """The parts of a notebook we read must have the types the format says (nbformat 4), else a
    SubmissionError naming the field: a kernelspec that is a string must not crash the grader."""
    what = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false", type(None): "null"}

    def fail(where: str, value: Any, expected: str) -> None:
        raise SubmissionError(f"{display}: not a valid notebook: {where} is {what.get(type(value), type(value).__name__)}, expected {expected}")

    if _depth(data) > MAX_JSON_DEPTH:
        raise SubmissionError(f"{display}: not a notebook: its JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(data, dict):
        fail("the top level", data, "an object with 'cells' and 'metadata'")
    if not isinstance(data.get("cells"), list):
        if "cells" not in data:
            raise SubmissionError(f"{display}: not a Jupyter notebook (no 'cells' list)")
        fail("'cells'", data["cells"], "a list of cells")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        fail("'metadata'", metadata, "an object")
    for key in ("kernelspec", "language_info"):
        if key in metadata and not isinstance(metadata[key], dict):
            fail(f"metadata.{key}", metadata[key], "an object")
    for key in ("language", "name"):
        for parent in ("kernelspec", "language_info"):
            value = metadata.get(parent, {}).get(key)
            if value is not None and not isinstance(value, str):
                fail(f"metadata.{parent}.{key}", value, "a string")
    for number, cell in enumerate(data["cells"], start=1):
        if not isinstance(cell, dict):
            fail(f"cell {number}", cell, "an object")
        if not isinstance(cell.get("cell_type"), str):
            fail(f"cell {number}'s cell_type", cell.get("cell_type"), "a string ('code', 'markdown' or 'raw')")
        source = cell.get("source", "")
        if not (isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)):
            fail(f"cell {number}'s source", source, "a string or a list of strings")
        if "metadata" in cell and not isinstance(cell["metadata"], dict):
            fail(f"cell {number}'s metadata", cell["metadata"], "an object")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        if isinstance(item, dict):
            todo.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, level + 1) for v in item)
    return deepest
