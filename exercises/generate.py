#!/usr/bin/env python3
"""Write the learners' starter files under exercises/starters/ from exercises/source.yaml.

    python exercises/generate.py              write every starter that changed
    python exercises/generate.py --check      list stale, missing or unexpected starters, exit 1
                                              if there are any; writes nothing
    python exercises/generate.py --out DIR    write under DIR/starters/ instead

For every exercise and backend it writes starters/<backend>/<exercise>.py and .ipynb: the
statement, rules and hints from source.yaml, the imports, a stub per graded function (signature
from attnspec.exercises, docstring from source.yaml, body `raise NotImplementedError`), and a way
to grade the file on the visible cases. Output is deterministic (no timestamps, fixed notebook
cell ids), so a regenerated tree can be compared byte for byte with the committed one.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import nbformat.v4 as v4
import yaml

from attnspec.exercises import BACKENDS, EXERCISE_NAMES, FUNCTIONS, HELPER_EXERCISE

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source.yaml"
STARTERS = "starters"
SUFFIXES = (".py", ".ipynb")
WIDTH = 99
GENERATED = "# Starter file generated from exercises/source.yaml by exercises/generate.py."
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class SourceError(Exception):
    """source.yaml does not describe the exercises attnspec grades; fix the file it names."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of source.yaml, with text fields still per backend (see `pick`)."""

    name: str
    number: int
    title: str
    summary: str
    statement: Any
    example: Any
    rules: tuple[Any, ...]
    hints: tuple[Any, ...]
    docs: dict[str, Any]  # function name -> docstring, in the order the file defines them
    paste: tuple[str, ...]
    scratch: Any
    common_rules: bool = True  # False: the backend rules about array arguments do not apply (integer arguments)


@dataclass(frozen=True)
class Source:
    backends: dict[str, dict[str, Any]]
    common_rules: tuple[Any, ...]
    exercises: tuple[Exercise, ...]


# ---------------------------------------------------------------- reading the source


def load_source(path: Path = SOURCE) -> Source:
    """Read source.yaml and check it covers exactly the exercises and functions attnspec grades."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    backends = data.get("backends", {})
    if sorted(backends) != sorted(BACKENDS):
        raise SourceError(f"{path}: backends must be {', '.join(BACKENDS)}, got {', '.join(backends) or 'none'}")
    exercises = tuple(_exercise(path, raw) for raw in data.get("exercises", []))
    names = tuple(e.name for e in exercises)
    if names != EXERCISE_NAMES:
        raise SourceError(f"{path}: exercises must be {', '.join(EXERCISE_NAMES)} in that order, got {', '.join(names) or 'none'}")
    return Source(backends, tuple(data.get("common_rules", [])), exercises)


def _exercise(path: Path, raw: dict[str, Any]) -> Exercise:
    name = raw["name"]
    docs = {fn: spec["doc"] for fn, spec in raw["functions"].items()}
    expected = sorted([h for h, e in HELPER_EXERCISE.items() if e == name] + [name])
    if sorted(docs) != expected:
        raise SourceError(f"{path}: exercise {name} must define the functions {', '.join(expected)}, got {', '.join(docs)}")
    paste = tuple(p.strip() for p in str(raw.get("paste") or "").split(",") if p.strip())
    unknown = [p for p in paste if p not in FUNCTIONS]
    if unknown:
        raise SourceError(f"{path}: exercise {name}: paste names unknown function(s) {', '.join(unknown)}")
    return Exercise(
        name=name,
        number=int(raw["number"]),
        title=raw["title"],
        summary=raw["summary"],
        statement=raw["statement"],
        example=raw.get("example"),
        rules=tuple(raw.get("rules", [])),
        hints=tuple(raw.get("hints", [])),
        docs=docs,
        paste=paste,
        scratch=raw.get("scratch"),
        common_rules=bool(raw.get("common_rules", True)),
    )


def pick(value: Any, backend: str) -> str | None:
    """A text field's value for `backend`: the string itself, or its entry in {numpy: ..., torch: ...}."""
    if isinstance(value, dict):
        value = value.get(backend)
    return None if value is None else str(value)


def _texts(values: tuple[Any, ...], backend: str) -> list[str]:
    return [t for t in (pick(v, backend) for v in values) if t]


# ---------------------------------------------------------------- shared pieces


def check_args(ex: Exercise, backend: str, filename: str) -> list[str]:
    """The `attnspec grade` arguments that check one starter on the visible cases."""
    return ["grade", filename, "--exercise", ex.name, "--backend", backend, "--visible-only"]


def check_cell(ex: Exercise, backend: str, filename: str) -> str:
    """The notebook's check cell: IPython magics that grade the kernel's functions (attnspec.check)."""
    return f"%load_ext attnspec\n%attnspec_check {ex.name} --backend {backend} --notebook {filename}"


def heading(ex: Exercise, source: Source, backend: str) -> str:
    return f"Exercise {ex.number} ({source.backends[backend]['label']}): {ex.title}"


def bullets(items: list[str], width: int = WIDTH) -> str:
    wrap = textwrap.TextWrapper(width=width, initial_indent="- ", subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
    return "\n".join(wrap.fill(" ".join(item.split())) for item in items)


def rules_for(ex: Exercise, source: Source, backend: str) -> list[str]:
    return (_texts(source.common_rules, backend) if ex.common_rules else []) + _texts(ex.rules, backend)


def stub(name: str, doc: str) -> str:
    """`def <contract signature>:` with the docstring and a body that raises NotImplementedError."""
    lines = doc.strip("\n").splitlines()
    body = "\n".join(f"    {line}" if line.strip() else "" for line in lines[1:])
    docstring = f'    """{lines[0]}\n{body}\n    """' if len(lines) > 1 else f'    """{lines[0]}"""'
    return f"def {FUNCTIONS[name].signature}:\n{docstring}\n    raise NotImplementedError(\"{name} is not implemented yet\")\n"


def paste_block(ex: Exercise) -> str:
    """A comment-only section where the learner pastes the earlier exercises' functions."""
    names = " and ".join(ex.paste)
    numbers = [str(EXERCISE_NAMES.index(p) + 1) for p in ex.paste if p in EXERCISE_NAMES]
    earlier = f"exercise {numbers[0]}" if len(numbers) == 1 else f"exercises {', '.join(numbers[:-1])} and {numbers[-1]}"
    them = "it" if len(ex.paste) == 1 else "them"
    return (
        f"# ---- Your {names} from {earlier} ----\n"
        f"# Paste your solution here so that {ex.name} can call {them}.\n"
        f"# Only {ex.name} is graded in this file.\n"
    )


def stubs(ex: Exercise, backend: str) -> str:
    return "\n\n".join(stub(fn, pick(doc, backend) or fn) for fn, doc in ex.docs.items())


# ---------------------------------------------------------------- the .py starter


def render_py(ex: Exercise, source: Source, backend: str) -> str:
    filename = f"{ex.name}.py"
    doc = [heading(ex, source, backend) + ".", "", pick(ex.statement, backend).rstrip()]
    example = pick(ex.example, backend)
    if example:
        doc += ["", "Worked example:", "", example.replace("**", "").rstrip()]
    doc += ["", "Rules:", "", bullets(rules_for(ex, source, backend))]
    doc += ["", "Hints:", "", bullets(_texts(ex.hints, backend))]
    doc += [
        "",
        "Check your work on the visible test cases by running this file,",
        "",
        f"    python {filename}",
        "",
        "which grades it with `attnspec grade` (the command is at the end of the file).",
    ]
    text = "\n".join(doc)
    if '"""' in text:
        raise SourceError(f"exercise {ex.name}: the text must not contain triple quotes")
    quote = 'r"""' if "\\" in text else '"""'
    header = f"{GENERATED}\n{quote}{text}\n\"\"\"\n"
    imports = source.backends[backend]["imports"].rstrip() + "\n"
    body = ([paste_block(ex)] if ex.paste else []) + [stubs(ex, backend), _main_block(ex, backend, filename)]
    return header + "\n" + imports + "\n\n" + "\n\n".join(body)


def _main_block(ex: Exercise, backend: str, filename: str) -> str:
    args = ", ".join(f'"{a}"' for a in check_args(ex, backend, filename)[2:])
    return (
        'if __name__ == "__main__":\n'
        "    # Running this file grades it on the visible test cases (the hidden ones run only in\n"
        "    # the course's autograder). attnspec never runs this block when grading the file.\n"
        "    import importlib.util\n"
        "    import subprocess\n"
        "    import sys\n"
        "    from pathlib import Path\n"
        "\n"
        '    if importlib.util.find_spec("attnspec") is None:\n'
        '        sys.exit("attnspec is not installed in this Python (pip install attnspec)")\n'
        "    here = Path(__file__).resolve()\n"
        '    command = [sys.executable, "-m", "attnspec", "grade", here.name,\n'
        f"               {args}]\n"
        "    sys.exit(subprocess.call(command, cwd=here.parent))\n"
    )


# ---------------------------------------------------------------- the notebook starter


def render_notebook(ex: Exercise, source: Source, backend: str) -> str:
    filename = f"{ex.name}.ipynb"
    md, code = v4.new_markdown_cell, v4.new_code_cell
    cells = [md(f"# {heading(ex, source, backend)}\n\n{pick(ex.statement, backend).rstrip()}", id="statement")]
    example = pick(ex.example, backend)
    if example:
        cells.append(md(f"## Worked example\n\n{example.rstrip()}", id="example"))
    cells.append(md("## Rules\n\n" + bullets(rules_for(ex, source, backend)), id="rules"))
    cells.append(md("## Hints\n\n" + bullets(_texts(ex.hints, backend)), id="hints"))
    cells.append(code(source.backends[backend]["imports"].rstrip(), id="imports"))
    functions = " and ".join(f"`{fn}`" for fn in ex.docs)
    cells.append(md(
        "## Your implementation\n\n"
        f"Replace the `raise NotImplementedError(...)` line of {functions} with your code. Keep the "
        "names and arguments as they are: the grader calls them exactly like this.",
        id="implement",
    ))
    if ex.paste:
        cells.append(code(paste_block(ex).rstrip(), id="paste"))
    cells.append(code(stubs(ex, backend).rstrip(), id="solution"))
    scratch = pick(ex.scratch, backend)
    if scratch:
        cells.append(md(
            "## Try it\n\n"
            "Scratch space for trying your code on small inputs. The grader runs every code cell of "
            "the notebook, this one included, so keep it quick and free of errors.",
            id="try",
        ))
        cells.append(code(scratch.rstrip(), id="scratch"))
    cells.append(md(
        "## Check your work\n\n"
        "Run the cell below. It grades the functions as they are defined in this notebook's kernel "
        "right now, on the visible test cases, and shows the report here: no need to save first. "
        "The report says that it graded the kernel's code, and whether the saved notebook differs; "
        "the course grades the saved file, so save before you submit. The hidden cases run only in "
        "the course's autograder. The cell's lines start with `%` (IPython magics): the grader skips "
        "them, so this cell never runs the checker inside the grader. If you renamed the notebook, "
        "change the name after `--notebook` (it is only used for that comparison). Outside a "
        "notebook, `import attnspec; attnspec.check()` does the same.",
        id="check-intro",
    ))
    cells.append(code(check_cell(ex, backend, filename), id="check"))
    nb = v4.new_notebook(cells=cells, metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


# ---------------------------------------------------------------- the whole tree


def render_all(source: Source | None = None) -> dict[str, str]:
    """Every starter as {path relative to exercises/: text}, in a stable order."""
    source = source or load_source()
    files: dict[str, str] = {}
    for backend in BACKENDS:
        for ex in source.exercises:
            base = f"{STARTERS}/{backend}/{ex.name}"
            files[f"{base}.py"] = render_py(ex, source, backend)
            files[f"{base}.ipynb"] = render_notebook(ex, source, backend)
    return files


def differences(files: dict[str, str], root: Path) -> list[tuple[str, str]]:
    """(problem, path) for each starter under `root` that is stale, missing or not generated."""
    found = []
    for rel, text in files.items():
        target = root / rel
        if not target.exists():
            found.append(("missing", rel))
        elif target.read_bytes() != text.encode("utf-8"):
            found.append(("stale", rel))
    for rel in _existing(root):
        if rel not in files:
            found.append(("unexpected", rel))
    return found


def _existing(root: Path) -> list[str]:
    base = root / STARTERS
    if not base.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for d in base.iterdir() if d.is_dir() for p in d.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def write(files: dict[str, str], root: Path) -> list[str]:
    """Write the starters that differ, delete generated-looking files no longer produced; return the paths touched."""
    touched = []
    for problem, rel in differences(files, root):
        target = root / rel
        if problem == "unexpected":
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[rel].encode("utf-8"))
        touched.append(rel)
    return touched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the exercise starters from exercises/source.yaml.")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale, missing or unexpected starters")
    parser.add_argument("--out", type=Path, default=HERE, metavar="DIR", help="write under DIR/starters/ (default: the exercises/ folder)")
    parser.add_argument("--source", type=Path, default=SOURCE, metavar="FILE", help="the source file (default: exercises/source.yaml)")
    args = parser.parse_args(argv)
    try:
        files = render_all(load_source(args.source))
    except (SourceError, KeyError, yaml.YAMLError) as exc:
        print(f"generate.py: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = differences(files, args.out)
        for problem, rel in problems:
            print(f"{problem}: {args.out / rel}")
        if problems:
            print(f"{len(problems)} starter file(s) out of date; run: python exercises/generate.py", file=sys.stderr)
            return 1
        print(f"all {len(files)} starter files are up to date")
        return 0
    touched = write(files, args.out)
    for rel in touched:
        print(f"{'wrote' if (args.out / rel).exists() else 'removed'} {args.out / rel}")
    print(f"{len(touched)} of {len(files)} starter files changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
