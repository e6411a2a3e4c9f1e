"""`attnspec.check()`: grade the functions as they are defined in the running kernel, now.

A notebook's saved file lags behind its kernel: a fix made in a cell but not saved is what the
learner is looking at, so that is what a check from the notebook should grade. The functions'
*source* (never the live objects) is collected here, from `inspect.getsource` or, failing that,
from IPython's input history (`In` / `_ih`), together with the imports and simple constants they
use; it is written to a temporary .py file and graded like any submission, in the sandboxed
worker (isolation unchanged). The report says that the kernel's code was graded and, when the
notebook file is known, whether the saved file differs.

In Jupyter the result renders as the concise HTML report (`_repr_html_`); in a terminal it is
the text report. In a notebook, use the IPython magic the starters use, so that the grader (which
skips magics) never runs the check inside itself:

    %load_ext attnspec
    %attnspec_check manual_attention --backend numpy
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import shlex
import sys
import tempfile
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import UsageError
from .exercises import EXERCISE_NAMES, HELPER_EXERCISE

KERNEL_NOTE = "Graded the code defined in this kernel now, not the saved file."
_LITERALS = (int, float, complex, str, bytes, bool, type(None))


@dataclass
class KernelSource:
    """The source assembled from a kernel's namespace, and what it was made of."""

    text: str
    functions: dict[str, str] = field(default_factory=dict)  # name -> its source
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- collecting the source


def user_namespace() -> dict[str, Any]:
    """IPython's user namespace when running in IPython, else the globals of the first caller outside attnspec."""
    ip = _ipython()
    if ip is not None:
        return ip.user_ns
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("attnspec"):
        frame = frame.f_back
    return frame.f_globals if frame is not None else {}


def _ipython() -> Any:
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _user_functions(ns: dict[str, Any]) -> dict[str, Any]:
    """Functions and classes defined by the user in this namespace (not imported ones)."""
    home = ns.get("__name__", "__main__")
    return {
        name: value
        for name, value in ns.items()
        if not name.startswith("_") and isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == home
    }


def function_source(name: str, obj: Any, ns: dict[str, Any]) -> str | None:
    """The current definition's source: inspect first (IPython registers every cell), then the input history."""
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        pass
    for cell in reversed(list(ns.get("In") or ns.get("_ih") or [])):
        found = _definition_in(str(cell), name)
        if found is not None:
            return found
    return None


def _definition_in(cell: str, name: str) -> str | None:
    from .submission import strip_ipython

    code, _ = strip_ipython(cell)
    try:
        tree = ast.parse(code or "")
    except SyntaxError:
        return None
    for node in reversed(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            lines = (code or "").splitlines()
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return "\n".join(lines[first - 1 : node.end_lineno]) + "\n"
    return None


def _names_used(obj: Any) -> set[str]:
    """Global names a function (with its nested functions) or a class's methods refer to."""
    codes = [obj.__code__] if isinstance(obj, types.FunctionType) else [v.__code__ for v in vars(obj).values() if isinstance(v, types.FunctionType)]
    names: set[str] = set()
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def _import_line(name: str, value: Any) -> str | None:
    """`import numpy as np`, `from math import sqrt`: how the kernel got `name`, if it is importable."""
    if isinstance(value, types.ModuleType):
        full = value.__name__
        if full.split(".")[0] == "attnspec":
            return None  # submissions may not import the grader
        return f"import {full}" if full == name else f"import {full} as {name}"
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not module or not qualname or "." in qualname or module.split(".")[0] in ("attnspec", "__main__", "builtins"):
        return None
    try:
        if getattr(importlib.import_module(module), qualname) is not value:
            return None
    except (ImportError, AttributeError):
        return None
    return f"from {module} import {qualname}" + (f" as {name}" if name != qualname else "")


def _literal_line(name: str, value: Any) -> str | None:
    if isinstance(value, (list, tuple, dict, *_LITERALS)):
        text = repr(value)
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return f"{name} = {text}" if len(text) < 2000 else None
    return None


def kernel_source(ns: dict[str, Any], wanted: Sequence[str]) -> KernelSource:
    """The graded functions, the user functions they call, and the imports and constants they use."""
    user = _user_functions(ns)
    todo = [n for n in wanted if n in user]
    chosen: list[str] = []
    while todo:
        name = todo.pop(0)
        if name in chosen:
            continue
        chosen.append(name)
        todo.extend(n for n in sorted(_names_used(user[name])) if n in user and n not in chosen)
    used = set().union(*(_names_used(user[n]) for n in chosen)) if chosen else set()
    imports: list[str] = []
    constants: list[str] = []
    notes: list[str] = []
    for name in sorted(used):
        if name in user or name not in ns:
            continue
        line = _import_line(name, ns[name]) or _literal_line(name, ns[name])
        if line is None:
            notes.append(f"{name} is used by your functions but could not be carried over from the kernel")
        else:
            (imports if line.startswith(("import ", "from ")) else constants).append(line)
    sources: dict[str, str] = {}
    for name in [n for n in user if n in chosen]:  # kernel order: definitions as the cells made them
        text = function_source(name, user[name], ns)
        if text is None:
            notes.append(f"the source of {name} could not be found in this kernel")
        else:
            sources[name] = text
    header = "# The functions as defined in the running kernel, collected by attnspec.check().\n"
    body = "\n".join(imports) + "\n\n" + "\n".join(constants) + "\n\n" + "\n\n".join(sources.values())
    return KernelSource(header + body.strip("\n") + "\n", sources, notes)


# ---------------------------------------------------------------- comparing with the saved file


def find_notebook(ns: dict[str, Any], given: str | os.PathLike[str] | None) -> Path | None:
    """The notebook file of this kernel: the one given, else what Jupyter or VS Code tell the kernel."""
    candidates = [ns.get("__vsc_ipynb_file__"), ns.get("__session__"), os.environ.get("JPY_SESSION_NAME"), given]
    for c in candidates:
        if c and str(c).endswith((".ipynb", ".py")) and Path(str(c)).is_file():
            return Path(str(c))
    return Path(str(given)) if given else None


def saved_differences(notebook: Path, sources: dict[str, str]) -> list[str]:
    """How the saved file's definitions differ from the kernel's ([] when they are the same)."""
    from .static import analyze
    from .submission import load_submission

    saved = analyze(load_submission(notebook)).functions
    out = []
    for name, text in sources.items():
        if name not in saved:
            out.append(f"{name} is not defined in the saved file")
            continue
        try:
            kernel_tree = ast.parse(text).body[0]
        except (SyntaxError, IndexError):
            continue
        if ast.dump(kernel_tree) != ast.dump(saved[name].node):
            out.append(f"{name} differs")
    return out


# ---------------------------------------------------------------- the check


class CheckResult:
    """A grading of the kernel's code: HTML in Jupyter (`_repr_html_`), text everywhere else."""

    def __init__(self, result: Any, note: str, concise: bool = True):
        self.result = result
        self.note = note
        self.concise = concise

    @property
    def score(self) -> float:
        return float(self.result.score)

    def _repr_html_(self) -> str | None:
        from .reports.html import render_html

        try:
            return render_html(self.result, fragment=True, concise=self.concise, note=self.note)
        except UsageError:  # no jinja2/matplotlib: Jupyter shows the text instead
            return None

    def __str__(self) -> str:
        from .reports.text import render_text

        return f"{self.note}\n\n{render_text(self.result)}"

    __repr__ = __str__


def check(
    exercise: str | Sequence[str] | None = None,
    *,
    notebook: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    visible_only: bool = True,
    concise: bool = True,
    spec: Sequence[str] = (),
    namespace: dict[str, Any] | None = None,
) -> CheckResult:
    """Grade the exercise functions as defined in this kernel now (visible cases by default)."""
    ns = namespace if namespace is not None else user_namespace()
    wanted = _wanted(exercise, ns)
    source = kernel_source(ns, [*wanted, *(h for h, e in HELPER_EXERCISE.items() if e in wanted)])
    if not source.functions:
        raise UsageError(f"{', '.join(wanted)} is not defined in this kernel: run the cell that defines it, then check again")
    path = find_notebook(ns, notebook)
    result = _grade_source(source.text, path, wanted, backend, visible_only, tuple(spec))
    note = _note(path, source)
    outcome = CheckResult(result, note, concise)
    if _ipython() is None and not hasattr(sys, "ps1"):
        print(outcome)  # a script: nothing else would show the report
    return outcome


def _wanted(exercise: str | Sequence[str] | None, ns: dict[str, Any]) -> list[str]:
    names = [exercise] if isinstance(exercise, str) else list(exercise or [])
    unknown = [n for n in names if n not in EXERCISE_NAMES]
    if unknown:
        raise UsageError(f"unknown exercise {', '.join(unknown)}; expected one of {', '.join(EXERCISE_NAMES)}")
    if names:
        return names
    defined = [n for n in EXERCISE_NAMES if n in _user_functions(ns)]
    if not defined:
        raise UsageError(f"none of {', '.join(EXERCISE_NAMES)} is defined in this kernel: run the cell that defines your function, then check again")
    return defined


def _grade_source(text: str, notebook: Path | None, wanted: list[str], backend: str, visible_only: bool, spec_dirs: tuple[str, ...]) -> Any:
    from .grade import GradeOptions, grade
    from .loader import load_spec

    stem = notebook.stem if notebook is not None else "kernel"
    with tempfile.TemporaryDirectory(prefix="attnspec-check-") as tmp:
        path = Path(tmp) / f"{stem}_kernel.py"
        path.write_text(text, encoding="utf-8")
        options = GradeOptions(exercises=tuple(wanted), backend=backend, visible_only=visible_only)
        result = grade(str(path), load_spec(list(spec_dirs)), options)
    shown = f"{notebook.name if notebook else 'this kernel'} (the code defined in the kernel)"
    result.submission.update(path=shown, graded_from="kernel", notebook=str(notebook) if notebook else None)
    for case in result.cases:  # the temporary file is gone: reproduce with the saved notebook
        if case.repro:
            case.repro = case.repro.replace(shlex.quote(str(path)), shlex.quote(str(notebook))) if notebook else None
    return result


def _note(path: Path | None, source: KernelSource) -> str:
    lines = [KERNEL_NOTE[:-1] + f" ({', '.join(source.functions)})."]
    if path is None:
        lines.append("The saved notebook was not compared: its file name is unknown here (pass notebook='name.ipynb').")
    elif not path.is_file():
        lines.append(f"The saved file {path} was not found, so it was not compared.")
    else:
        differences = saved_differences(path, source.functions)
        if differences:
            lines.append(f"The saved file {path.name} differs from the kernel ({'; '.join(differences)}): this report is for the kernel's version. Save the notebook before you submit: the course grades the saved file.")
        else:
            lines.append(f"The saved file {path.name} defines the same functions.")
    lines.extend(f"Note: {n}." for n in source.notes)
    return "\n".join(lines)


# ---------------------------------------------------------------- the IPython magic


def _magic_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%attnspec_check", description="Grade the functions defined in this kernel on the visible cases.")
    p.add_argument("exercise", nargs="*", metavar="EXERCISE", help=f"one of {', '.join(EXERCISE_NAMES)} (default: those defined in the kernel)")
    p.add_argument("--backend", default="auto", choices=("auto", "numpy", "torch", "both"))
    p.add_argument("--notebook", help="the notebook file, to compare with the kernel")
    p.add_argument("--all-cases", action="store_true", help="include hidden cases (as the course autograder does)")
    p.add_argument("--full", action="store_true", help="show every failing case, not only the first of each property")
    return p


def attnspec_check_magic(line: str) -> CheckResult | None:
    """`%attnspec_check [EXERCISE ...] [--backend B] [--notebook FILE] [--full] [--all-cases]`."""
    try:
        args = _magic_parser().parse_args(shlex.split(line))
    except SystemExit:
        return None  # argparse already printed the usage error
    ip = _ipython()
    try:
        return check(args.exercise or None, notebook=args.notebook, backend=args.backend, visible_only=not args.all_cases, concise=not args.full, namespace=ip.user_ns if ip is not None else None)
    except UsageError as exc:
        print(f"attnspec: {exc}", file=sys.stderr)
        return None


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext attnspec` registers `%attnspec_check`."""
    ipython.register_magic_function(attnspec_check_magic, "line", "attnspec_check")


__all__ = ["check", "CheckResult", "kernel_source", "load_ipython_extension"]
