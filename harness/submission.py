"""Read a learner's submission (.py or .ipynb) into chunks of code that run one after another.

A chunk is one top-level statement of a .py file or one notebook code cell, padded with blank
lines so tracebacks keep the learner's line numbers. Running chunk by chunk means one broken
statement or cell does not hide the others; a syntax error is cut out (and reported with its
line) so the rest of the file can still be graded.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SubmissionError

# Cell magics whose body is Python: the magic line is dropped, the body runs.
PYTHON_BODY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
_ASSIGN_SHELL = re.compile(r"^(\s*)([A-Za-z_][\w.,\s]*?)\s*=\s*[!%]")
_MAX_RECOVERIES = 20


@dataclass
class Chunk:
    source: str
    filename: str
    first_line: int
    cell: int | None = None


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
    companions: list[str] = field(default_factory=list)  # other files of a multi-file submission (helpers), as paths

    @property
    def filenames(self) -> set[str]:
        return {c.filename for c in self.chunks}

    def load_request(self) -> dict[str, Any]:
        return {
            "path": self.display,
            "directory": str(self.path.resolve().parent),
            "module_name": "__main__" if self.kind == "ipynb" else "submission",
            "chunks": [{"source": c.source, "filename": c.filename, "cell": c.cell} for c in self.chunks],
        }

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
    if not p.exists():
        raise SubmissionError(f"{display}: no such file")
    if p.is_dir():
        raise SubmissionError(f"{display}: is a directory; give a .py file or a .ipynb notebook")
    raw = p.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{display}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    if p.suffix == ".ipynb":
        return _load_notebook(p, display, text, digest)
    if p.suffix != ".py":
        raise SubmissionError(f"{display}: unsupported file type '{p.suffix}'; expected a .py file or a .ipynb notebook")
    chunks, problems = split_python(text, display)
    return Submission(p, display, "py", chunks, digest, problems)


def split_python(text: str, filename: str, cell: int | None = None) -> tuple[list[Chunk], list[SyntaxProblem]]:
    """Top-level statements as chunks; syntax errors are blanked out block by block and reported."""
    lines = text.splitlines(keepends=True)
    problems: list[SyntaxProblem] = []
    for _ in range(_MAX_RECOVERIES):
        try:
            tree = ast.parse("".join(lines), filename=filename)
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
        last = node.end_lineno or node.lineno
        source = "\n" * (first - 1) + "".join(lines[first - 1 : last])
        chunks.append(Chunk(source, filename, first, cell))
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
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{display}: not a notebook: the file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several unrelated types for malformed notebooks
        raise SubmissionError(f"{display}: not a Jupyter notebook: {exc}") from None
    if not isinstance(nb, dict) or "cells" not in nb:
        raise SubmissionError(f"{display}: not a Jupyter notebook (no 'cells' list)")
    chunks: list[Chunk] = []
    problems: list[SyntaxProblem] = []
    dropped_total = 0
    skipped_cells = []
    language = str(nb.get("metadata", {}).get("kernelspec", {}).get("language", "python")).lower()
    if language not in ("python", "python3", ""):
        raise SubmissionError(f"{display}: the notebook's kernel language is '{language}', not Python")
    for index, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source, dropped = strip_ipython(str(cell.get("source", "")))
        dropped_total += dropped
        if source is None:
            skipped_cells.append(index)
            continue
        filename = f"{display}, cell {index}"
        cell_chunks, cell_problems = split_python(source, filename, cell=index)
        problems.extend(cell_problems)
        if cell_chunks:
            # One chunk per cell: the cell runs as a unit, like in Jupyter.
            first = cell_chunks[0].first_line
            lines = source.splitlines(keepends=True)
            for prob in cell_problems:
                for i in range(prob.removed[0] - 1, prob.removed[1]):
                    lines[i] = "\n"
            body = "".join(lines[first - 1 :])
            chunks.append(Chunk("\n" * (first - 1) + body, filename, first, index))
    notes = []
    if dropped_total:
        notes.append(f"{dropped_total} IPython magic or shell line(s) were skipped (not executed)")
    if skipped_cells:
        notes.append(f"cell(s) {', '.join(map(str, skipped_cells))} use a non-Python cell magic and were skipped")
    return Submission(p, display, "ipynb", chunks, digest, problems, notes)
