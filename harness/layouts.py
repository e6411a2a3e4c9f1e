"""Find the students' submissions in what an instructor has: a folder of files, one folder per
student, zip files, or the exports of Gradescope, Canvas and GitHub Classroom.

Each student becomes one `ClassEntry`: a student id (from the layout, or from --student-pattern),
the file to grade, the companion files next to it (helpers it imports), and the relative path its
report name is derived from. Scanning never follows a link out of the folder and never opens a
FIFO or a device; zip files are extracted into a temporary folder with no path traversal, no
links and bounded sizes. A problem with one student's files becomes that entry's `error`, never
the run's.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .exercises import EXERCISE_NAMES
from .submission import MAX_NOTEBOOK_BYTES, MAX_SOURCE_BYTES

SOURCE_SUFFIXES = (".py", ".ipynb")
MAX_FILE_BYTES = 20 << 20  # one source file
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_BYTES = 200 << 20  # uncompressed, per archive
MAX_SCAN_FILES = 200  # files looked at inside one student's folder
MAX_DEPTH = 6
CANVAS_NAME = re.compile(r"^(?P<name>[^_]+)(?P<late>_LATE)?_(?P<id>\d+)_(?P<subid>\d+)_(?P<file>.+)$")


@dataclass
class ClassEntry:
    """One student's submission in a class run."""

    student: str  # the id in the gradebook
    key: str  # relative path of the student's unit (folder or file): the report name comes from it
    path: Path | None  # the file to grade (None when `error` says why there is none)
    display: str  # how the file is named in reports and messages
    companions: list[Path] = field(default_factory=list)  # other files of the submission (helpers)
    layout: str = "files"
    late: bool = False
    error: str | None = None  # a problem with this student's files: graded as an error report
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_file(cls, path: str | Path, *, display: str | None = None, student: str | None = None, companions: list[Path] | None = None) -> "ClassEntry":
        """One file to grade (what an integration with its own file selection passes)."""
        p = Path(path)
        return cls(student=student or p.stem, key=student or p.stem, path=p, display=display or str(path), companions=list(companions or []), layout="file", error=_refuse(p, p.parent))


class Scratch:
    """Temporary folders for extracted zip files; removed by `cleanup` (or at exit)."""

    def __init__(self) -> None:
        self._dirs: list[tempfile.TemporaryDirectory[str]] = []

    def new(self) -> Path:
        d = tempfile.TemporaryDirectory(prefix="attnspec-zip-")
        self._dirs.append(d)
        return Path(d.name)

    def cleanup(self) -> None:
        for d in self._dirs:
            d.cleanup()
        self._dirs.clear()


def discover(paths: list[str], scratch: Scratch, *, student_pattern: str | None = None, exercises: tuple[str, ...] = ()) -> list[ClassEntry]:
    """Every student's submission under `paths` (files, folders or zip exports), in a stable order."""
    names = exercises or EXERCISE_NAMES
    entries: list[ClassEntry] = []
    for given in paths:
        p = Path(given)
        if not os.path.lexists(p):
            raise UsageError(f"no such submission file: {given}")
        if p.is_dir() and not p.is_symlink():
            entries.extend(_scan_root(p, given, names, scratch))
        elif p.suffix == ".zip" and p.is_file():
            root = scratch.new()
            problem = extract_zip(p, root)
            if problem:
                raise UsageError(f"{given}: {problem}")
            entries.extend(_scan_root(_single_top(root), given, names, scratch, zip_root=root))
        else:
            entries.append(ClassEntry(student=p.stem, key=p.stem, path=p, display=given, layout="file", error=_refuse(p, p.parent)))
    singles = [e for e in entries if e.layout == "file"]
    clashing = [e for e in singles if sum(o.key == e.key for o in singles) > 1]
    for e in clashing:  # files named one by one: the stem, or the path as given when stems clash
        e.key = Path(e.display).with_suffix("").as_posix().removeprefix("./") or e.key
    if student_pattern:
        _apply_pattern(entries, student_pattern)
    return entries


def _single_top(root: Path) -> Path:
    """An archive that holds one folder (e.g. 'submissions/') is read from inside it."""
    items = [q for q in root.iterdir() if not q.name.startswith((".", "__MACOSX"))]
    return items[0] if len(items) == 1 and items[0].is_dir() and not items[0].is_symlink() else root


def _scan_root(root: Path, given: str, exercises: tuple[str, ...], scratch: Scratch, zip_root: Path | None = None) -> list[ClassEntry]:
    shown = Path(given) if zip_root is None else Path(given + "!")

    def display(q: Path) -> str:
        return str(shown / q.relative_to(root)) if zip_root is None else f"{given}!{q.relative_to(root).as_posix()}"

    if (root / "submission_metadata.yml").is_file():
        return _gradescope(root, exercises, display)
    items = sorted((q for q in root.iterdir() if not q.name.startswith((".", "__MACOSX"))), key=lambda q: q.name)
    folders = [q for q in items if q.is_dir() and not q.is_symlink()]
    files = [q for q in items if q.suffix in SOURCE_SUFFIXES + (".zip",) and not q.is_dir()]
    if folders:
        layout = "classroom" if _classroom_prefix(folders) else "folders"
        prefix = _classroom_prefix(folders)
        entries = [_folder_entry(f, root, f.name[len(prefix):] if prefix else f.name, layout, exercises, display) for f in folders]
        entries += [_file_entry(f, root, exercises, display, scratch) for f in files]
        return entries
    canvas = [f for f in files if CANVAS_NAME.match(f.name)]
    if canvas and len(canvas) == len(files):
        return _canvas(files, root, exercises, display)
    if not files:
        raise UsageError(f"{given}: no submissions found (expected .py or .ipynb files, one folder per student, zip files, or a Gradescope/Canvas/GitHub Classroom export)")
    return [_file_entry(f, root, exercises, display, scratch) for f in files]


def _classroom_prefix(folders: list[Path]) -> str:
    """GitHub Classroom names repositories '<assignment>-<username>': the common prefix up to a '-'."""
    if not folders or (len(folders) < 3 and not any((f / ".git").exists() for f in folders)):
        return ""  # two folders sharing a prefix (alice-smith, alice-jones) are not enough evidence
    common = os.path.commonprefix([f.name for f in folders])
    cut = common.rfind("-")
    if cut <= 0 or any(len(f.name) <= cut + 1 for f in folders):
        return ""
    return common[: cut + 1]


def _file_entry(f: Path, root: Path, exercises: tuple[str, ...], display: Any, scratch: Scratch) -> ClassEntry:
    key = f.relative_to(root).with_suffix("").as_posix()
    if f.suffix == ".zip" and f.is_file() and not f.is_symlink():
        return _zip_entry(f, key, exercises, display, scratch)
    return ClassEntry(student=f.stem, key=key, path=f, display=display(f), layout="files", error=_refuse(f, root))


def _zip_entry(f: Path, key: str, exercises: tuple[str, ...], display: Any, scratch: Scratch) -> ClassEntry:
    target = scratch.new()
    problem = extract_zip(f, target)
    if problem:
        return ClassEntry(student=f.stem, key=key, path=None, display=display(f), layout="zip", error=f"{display(f)}: {problem}")
    entry = _folder_entry(_single_top(target), target, f.stem, "zip", exercises, lambda q: f"{display(f)}!{q.relative_to(target).as_posix()}")
    entry.key = key
    return entry


def _folder_entry(folder: Path, root: Path, student: str, layout: str, exercises: tuple[str, ...], display: Any) -> ClassEntry:
    key = folder.relative_to(root).as_posix()
    entry = ClassEntry(student=student, key=key, path=None, display=display(folder), layout=layout)
    sources, refused = _sources(folder)
    if refused and not sources:
        entry.error = refused[0]
        return entry
    if not sources:
        entry.error = f"{display(folder)}: no .py or .ipynb file in this student's folder"
        return entry
    chosen, why = choose_graded_file(sources, exercises)
    if chosen is None:
        entry.error = f"{display(folder)}: {why}"
        entry.companions = sources
        return entry
    entry.path, entry.display = chosen, display(chosen)
    entry.companions = [s for s in sources if s != chosen]
    return entry


def _sources(folder: Path) -> tuple[list[Path], list[str]]:
    """The .py/.ipynb files in a student's folder (a bounded walk that stays inside it)."""
    found: list[Path] = []
    refused: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        depth = len(Path(dirpath).relative_to(folder).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "__MACOSX") and depth < MAX_DEPTH)
        for name in sorted(filenames):
            q = Path(dirpath) / name
            if q.suffix not in SOURCE_SUFFIXES:
                continue
            problem = _refuse(q, folder)
            if problem:
                refused.append(problem)
            else:
                found.append(q)
            if len(found) + len(refused) >= MAX_SCAN_FILES:
                return found, refused
    return found, refused


def _refuse(path: Path, folder: Path) -> str | None:
    """Why this file cannot be graded (a FIFO, a device, a link out of its folder, too big), or None."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror})"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return f"{path}: a symbolic link to nothing readable; submit the file itself"
        base = folder.resolve()
        if base not in target.parents:
            return f"{path}: a symbolic link that leaves the submission's folder; submit the file itself"
        info = os.stat(target)
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file"
        return f"{path}: {kind}; a submission must be a regular .py or .ipynb file"
    if info.st_size > MAX_FILE_BYTES:
        return f"{path}: {info.st_size} bytes, more than the {MAX_FILE_BYTES >> 20} MiB a submission file may have"
    return None


# one pass over the text for every exercise name
_DEFS = re.compile(rf"\bdef\s+({'|'.join(map(re.escape, EXERCISE_NAMES))})\s*\(")


def defined_exercises(path: Path, exercises: tuple[str, ...] = EXERCISE_NAMES) -> list[str]:
    """The exercise functions a file defines (a text search: it never runs or parses learner code)."""
    try:
        with open(path, "rb") as f:
            # no more than the file may hold to be graded at all (submission.py's limits)
            text = f.read(MAX_NOTEBOOK_BYTES if path.suffix == ".ipynb" else MAX_SOURCE_BYTES).decode("utf-8-sig", errors="replace")
    except OSError:
        return []
    found = set(_DEFS.findall(text))
    return [e for e in exercises if e in found]


def choose_graded_file(sources: list[Path], exercises: tuple[str, ...] = EXERCISE_NAMES) -> tuple[Path | None, str]:
    """The file that defines the exercise functions: the one defining the most of them (ties: the
    shallowest, then notebooks, then by name). A single file is graded whatever it defines."""
    if len(sources) == 1:
        return sources[0], ""
    defs = {s: defined_exercises(s, exercises) for s in sources}
    best = [s for s in sources if defs[s]]
    if not best:
        names = ", ".join(s.name for s in sources[:8]) + (", ..." if len(sources) > 8 else "")
        return None, f"none of its files ({names}) defines {' or '.join(exercises)}; the graded file must contain def {exercises[0]}(...)"
    best.sort(key=lambda s: (-len(defs[s]), len(s.parts), s.suffix != ".ipynb", s.name))
    return best[0], ""


def _gradescope(root: Path, exercises: tuple[str, ...], display: Any) -> list[ClassEntry]:
    """Gradescope's 'Export submissions': submission_metadata.yml plus one folder per submission."""
    import yaml

    try:
        meta = yaml.safe_load((root / "submission_metadata.yml").read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{root / 'submission_metadata.yml'}: not readable as YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{root / 'submission_metadata.yml'}: expected a mapping of submission folders to their submitters")
    entries = []
    for folder in sorted(q for q in root.iterdir() if q.is_dir() and not q.is_symlink() and not q.name.startswith(".")):
        found = meta.get(folder.name)
        info: dict[str, Any] = found if isinstance(found, dict) else {}
        submitters = info.get(":submitters") or info.get("submitters") or []
        first = submitters[0] if submitters and isinstance(submitters[0], dict) else {}
        student = str(first.get(":sid") or first.get("sid") or first.get(":email") or first.get("email") or first.get(":name") or first.get("name") or folder.name)
        entry = _folder_entry(folder, root, student, "gradescope", exercises, display)
        entry.meta = {"submission": folder.name, "submitters": [str(s.get(":name") or s.get("name") or "") for s in submitters if isinstance(s, dict)]}
        entries.append(entry)
    return entries


def _canvas(files: list[Path], root: Path, exercises: tuple[str, ...], display: Any) -> list[ClassEntry]:
    """Canvas 'Download submissions': flat files '<name>[_LATE]_<userid>_<subid>_<file>'."""
    groups: dict[tuple[str, str], list[Path]] = {}
    late: dict[tuple[str, str], bool] = {}
    for f in files:
        m = CANVAS_NAME.match(f.name)
        assert m is not None
        k = (m["name"], m["id"])
        groups.setdefault(k, []).append(f)
        late[k] = late.get(k, False) or bool(m["late"])
    entries = []
    for (name, uid), group in sorted(groups.items()):
        entry = ClassEntry(student=f"{name}_{uid}", key=f"{name}_{uid}", path=None, display=display(group[0]), layout="canvas", late=late[(name, uid)])
        refused = [p for p in (_refuse(g, root) for g in group) if p]
        usable = [g for g in group if not _refuse(g, root)]
        if not usable:
            entry.error = refused[0] if refused else f"{display(group[0])}: no usable file"
        else:
            chosen, why = choose_graded_file(usable, exercises)
            if chosen is None:
                entry.error = f"{name}_{uid}: {why}"
            else:
                entry.path, entry.display = chosen, display(chosen)
            entry.companions = [g for g in usable if g != chosen]
        entries.append(entry)
    return entries


def _apply_pattern(entries: list[ClassEntry], pattern: str) -> None:
    """--student-pattern: the named group 'student' of a regex searched in each entry's path."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--student-pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if "student" not in rx.groupindex:
        raise UsageError(f"--student-pattern {pattern!r} has no named group (?P<student>...)")
    for e in entries:
        m = rx.search(e.display) or rx.search(e.key)
        if m is None or not m.group("student"):
            raise UsageError(f"--student-pattern {pattern!r} does not match {e.display!r}; every submission's path must contain the student id")
        e.student = m.group("student")
        e.key = e.student


def extract_zip(archive: Path, target: Path) -> str | None:
    """Extract `archive` into `target` safely; returns a problem description, or None."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        return f"not a readable zip file ({exc})"
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            return f"holds {len(members)} entries, more than the {MAX_ZIP_MEMBERS} allowed"
        total = 0
        base = target.resolve()
        for m in members:
            name = m.filename
            mode = (m.external_attr >> 16) & 0o170000
            if mode == stat.S_IFLNK:
                return f"holds a symbolic link ({name}); links are not extracted"
            if mode and mode not in (stat.S_IFREG, stat.S_IFDIR):
                return f"holds a special file ({name})"
            parts = Path(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                return f"holds a path that leaves the archive ({name})"
            total += m.file_size
            if m.file_size > MAX_FILE_BYTES * 5 or total > MAX_ZIP_BYTES:
                return f"expands to more than {MAX_ZIP_BYTES >> 20} MiB"
            dest = (target / Path(*parts)).resolve() if parts else base
            if dest != base and base not in dest.parents:
                return f"holds a path that leaves the archive ({name})"
            if m.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(m) as src, open(dest, "wb") as out:
                while chunk := src.read(1 << 16):
                    written += len(chunk)
                    if written > m.file_size or written > MAX_FILE_BYTES * 5:
                        return f"{name} expands to more than it declares"
                    out.write(chunk)
    return None
