"""`pytest --attnspec SUBMISSION`: the spec's cases as pytest items, so -k, -x and IDEs work.

Items are `SUBMISSION::<exercise>::<case id>[<backend>]`, plus `<exercise>::status` (the function
is defined and callable) and `<exercise>::<exercise>.implementation_rules`. Backends come from the
file's imports (or --attnspec-backend), so ids are known before grading. The submission is graded
once, after collection and -k/-m deselection, on the selected items' cases only; each item then
reports its `CaseResult` with the text `attnspec grade` prints for that case, and an item whose
backend the grader did not use is skipped with the reason.

Without --attnspec this plugin only adds its options: it is loaded in every pytest run of the
environment, so it imports nothing from attnspec until a session asks for it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any, Iterator

import pytest

_STATE = pytest.StashKey["_AttnspecSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("attnspec", "attnspec: grade an attention-exercise submission as pytest items")
    group.addoption("--attnspec", metavar="SUBMISSION", default=None, help="grade this .py file or .ipynb notebook; one item per spec case and backend")
    group.addoption("--attnspec-spec", action="append", default=[], metavar="DIR", help="add the cases in this spec folder or file (repeatable)")
    group.addoption("--attnspec-no-builtin", action="store_true", default=False, help="do not load the shipped spec")
    group.addoption("--attnspec-overrides", default=None, metavar="FILE", help="a course's overrides file applied over the spec")
    group.addoption("--attnspec-backend", choices=("auto", "numpy", "torch", "both"), default="auto", help="auto (default): the backends the file imports")
    group.addoption("--attnspec-visible-only", action="store_true", default=False, help="collect only visible cases")
    group.addoption("--attnspec-plugins", action="append", default=[], metavar="MODULE[,MODULE]", help="load instructors' own properties from these modules or .py files (docs/plugins.md)")
    group.addoption("--attnspec-sandbox", choices=("auto", "strict", "none"), default="auto", help="isolation of the learner's code, as `attnspec grade --sandbox`")


def pytest_configure(config: pytest.Config) -> None:
    given = config.getoption("attnspec")
    if given is None:
        return
    root = config.invocation_params.dir
    path = (root / given).resolve()
    if not path.is_file():
        raise pytest.UsageError(f"--attnspec {given}: no such file (give a .py file or a .ipynb notebook)")
    for folder in config.getoption("attnspec_spec"):
        if not (root / folder).exists():
            raise pytest.UsageError(f"--attnspec-spec {folder}: no such spec file or folder")
    from .errors import AttnspecError
    from .plugins import load_plugins

    try:
        load_plugins(config.getoption("attnspec_plugins"))
    except AttnspecError as exc:  # a broken plugin: its message, not a traceback
        raise pytest.UsageError(f"--attnspec-plugins: {exc}") from None
    state = _AttnspecSession(config, given, path)
    config.stash[_STATE] = state
    config.pluginmanager.register(state, "attnspec-session")
    # Collect the submission; without explicit paths, only it (not testpaths or the current folder).
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [str(path)]
        config.args_source = pytest.Config.ArgsSource.ARGS
    elif not any((root / arg.split("::")[0]).resolve() == path for arg in config.args):
        config.args.append(str(path))


class AttnspecFailure(Exception):
    """A case failed: the exception carries its report text, shown instead of a traceback."""


class _AttnspecSession:
    """Options, the loaded spec and the one grade result of a pytest session (registered as a plugin)."""

    def __init__(self, config: pytest.Config, given: str, path: Path):
        self.given, self.path = given, path
        self.spec_dirs: list[str] = config.getoption("attnspec_spec")
        self.builtin = not config.getoption("attnspec_no_builtin")
        self.overrides: str | None = config.getoption("attnspec_overrides")
        self.backend: str = config.getoption("attnspec_backend")
        self.sandbox: str = config.getoption("attnspec_sandbox")
        self.visible_only: bool = config.getoption("attnspec_visible_only")
        self.plugins: list[str] = config.getoption("attnspec_plugins")
        self.spec: Any = None
        self.spec_error: str | None = None
        self.graded = False  # grading runs once, even if it fails
        self.result: Any = None
        self.error: str | None = None
        self.status_selected: set[str] = set()
        self.lines: dict[str, int] = {}
        self.defined: tuple[str, ...] = ()  # exercises the file defines (empty: grade them all)

    # -- collection ----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent: pytest.Collector) -> Any:
        if module_path.resolve() == self.path:  # never import the submission as a test module
            return AttnspecFile.from_parent(parent, path=module_path)
        return None

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> Any:
        if file_path.suffix != ".py" and file_path.resolve() == self.path:  # notebooks
            return AttnspecFile.from_parent(parent, path=file_path)
        return None

    def load_spec(self) -> None:
        from .errors import SpecError
        from .loader import load_spec

        try:
            self.spec = load_spec(self.spec_dirs, builtin=self.builtin, overrides=self.overrides)
        except SpecError as exc:
            self.spec_error = f"the spec is invalid:\n{exc}"

    def analyze(self) -> list[str]:
        """The backends items are collected for (fixed before grading, so ids are stable); notes def lines."""
        from .errors import SubmissionError
        from .static import analyze
        from .submission import load_submission

        from .exercises import EXERCISE_NAMES
        from .grade import exercises_in_file

        fixed = {"auto": [], "numpy": ["numpy"], "torch": ["torch"], "both": ["numpy", "torch"]}[self.backend]
        try:
            submission = load_submission(self.path)
        except SubmissionError:
            return fixed or ["numpy"]  # grading reports why the file cannot be read
        static = analyze(submission)
        if submission.kind == "py":  # so IDEs jump to the function
            self.lines = {name: fn.line - 1 for name, fn in static.functions.items()}
        # Like `attnspec grade`: the exercises the file defines (all of them if it defines none).
        self.defined = exercises_in_file(EXERCISE_NAMES, submission, static)
        return fixed or static.backend_hints

    # -- grading -------------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)  # after the terminal has printed "collected N items"
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.config.getoption("collectonly"):
            return
        items = [i for i in session.items if isinstance(i, AttnspecItem)]
        if items and self.spec is not None:
            self.grade(items)
        for item in items:
            item.outcome = self.verdict(item)
            if item.outcome[0] == "skipped":  # a mark, so the skip is reported at the item, not here
                item.add_marker(pytest.mark.skip(reason=item.outcome[1]))

    def grade(self, items: list[AttnspecItem]) -> None:
        """Grade once, on the cases of the items left after -k/-m deselection."""
        if self.graded:
            return
        self.graded = True
        from .errors import AttnspecError, UsageError
        from .exercises import EXERCISE_NAMES
        from .grade import GradeOptions, grade
        from .runner import WorkerPool

        self.status_selected = {i.exercise for i in items if i.kind == "status"}
        ids = {i.case_id for i in items}
        # Restrict the spec rather than GradeOptions.case_ids, which drops implementation rules.
        spec = dataclasses.replace(
            self.spec,
            cases=tuple(c for c in self.spec.cases if c.id in ids or (self.visible_only and c.hidden)),
            rules={e: r for e, r in self.spec.rules.items() if r.case_id in ids},
        )
        repro = [x for d in self.spec_dirs for x in ("--spec", d)] + ([] if self.builtin else ["--no-builtin"]) + (["--overrides", self.overrides] if self.overrides else [])
        repro += [x for p in self.plugins for x in ("--plugins", p)]
        options = GradeOptions(
            exercises=tuple(e for e in EXERCISE_NAMES if any(i.exercise == e for i in items)),
            backend=self.backend,
            visible_only=self.visible_only,
            repro_args=tuple(repro),
        )
        try:
            pool = WorkerPool(self.sandbox, [*self.spec_dirs, str(Path(self.given).resolve().parent)])
            try:
                info = pool.sandbox_info()
                if self.sandbox == "strict" and info["missing"]:
                    raise UsageError(f"--attnspec-sandbox strict: {', '.join(info['missing'])} unavailable ({info.get('reason', '')})")
                self.result = grade(self.given, spec, options, pool)
            finally:
                pool.close()
        except AttnspecError as exc:
            self.error = f"grading failed: {exc}"

    def verdict(self, item: AttnspecItem) -> tuple[str, str]:
        """('passed' | 'failed' | 'skipped', text) for one item."""
        from .reports import STATUS_WORDS

        if item.kind == "spec":
            return "failed", str(self.spec_error)
        problem = self._grading_problem()
        ex = None if problem else next((e for e in self.result.exercises if e.exercise == item.exercise), None)
        if ex is not None and ex.status != "graded":
            problem = ex.message or f"{item.exercise}: {STATUS_WORDS.get(ex.status, ex.status)}"
        if item.kind == "status":
            return ("failed", problem) if problem else ("passed", "")
        if problem:  # reported once, on the status item, unless that one was deselected
            if item.exercise in self.status_selected:
                return "skipped", f"not run: {problem.splitlines()[0]} (see {item.exercise}::status)"
            return "failed", problem
        case = next((c for c in ex.cases if c.case_id == item.case_id), None) if ex else None
        if case is None:
            return "skipped", _backend_reason(ex, item.backend) if ex and item.backend else "not run by the grader"
        if item.backend is not None:
            case = dataclasses.replace(case, instances=[i for i in case.instances if i.backend == item.backend])
            if not case.instances:
                return "skipped", _backend_reason(ex, item.backend)
        if case.outcome == "not_run" and not case.instances:
            return "skipped", "not run by the grader"
        if all(i.outcome == "passed" for i in case.instances):
            return "passed", ""
        return "failed", _case_text(case)

    def _grading_problem(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.result is None:
            return "grading did not complete (see the first error of this run)"
        if self.result.status != "graded":
            return f"grading failed: {self.result.error}"
        return None

    # -- reporting -----------------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.result is None or self.result.status != "graded":
            return
        from .reports import diagnosis_line, exercise_headline, fmt_points, load_problem_lines, not_run_lines

        lines = load_problem_lines(self.result)
        for ex in self.result.exercises:
            lines.append(exercise_headline(ex))
            lines.extend(f"  {n}" for n in ex.backend_notes)
            lines.extend(f"  {diagnosis_line(d)}" for d in ex.diagnoses)
        lines.append(f"Total: {fmt_points(self.result.score)}/{fmt_points(self.result.max_score)} points on the cases run")
        lines.extend(not_run_lines(self.result))
        terminalreporter.write_sep("=", "attnspec")
        for line in lines:
            terminalreporter.write_line(line)


def _case_text(case: Any) -> str:
    """The same lines `attnspec grade` prints for a failed case."""
    from .reports import case_failure_lines, fmt_points, shows_inputs

    lines = case_failure_lines(case)  # the message first: pytest's short summary shows that line
    if not shows_inputs(case):
        lines.append("(hidden case: its inputs and printed output are not shown)")
    lines.append(f"Case: {case.case_id} ({case.title}), {fmt_points(case.points)}/{fmt_points(case.max_points)} points")
    return "\n".join(lines)


def _backend_reason(ex: Any, backend: str) -> str:
    note = next((n for n in ex.backend_notes if n.startswith(f"not graded on {backend}")), None)
    if note:
        return note
    if backend == "torch" and importlib.util.find_spec("torch") is None:
        return "not graded on torch: torch is not installed"
    return f"not run: {ex.exercise} was graded on {', '.join(ex.backends) or 'no backend'}, not {backend}"


class AttnspecFile(pytest.File):
    """The submission: one collector per exercise that has cases in the spec."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        state = self.config.stash[_STATE]
        state.load_spec()
        if state.spec is None:
            yield AttnspecItem.from_parent(self, name="spec", kind="spec", exercise="")
            return
        from .exercises import EXERCISE_NAMES

        backends = state.analyze()
        for exercise in [e for e in EXERCISE_NAMES if not state.defined or e in state.defined]:
            cases = [c for c in state.spec.cases if c.exercise == exercise and not (state.visible_only and c.hidden)]
            rules = state.spec.rules.get(exercise)
            if cases or rules:
                yield ExerciseCollector.from_parent(self, name=exercise, cases=cases, rules=rules, backends=backends)


class ExerciseCollector(pytest.Collector):
    def __init__(self, *, cases: list[Any], rules: Any, backends: list[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.cases, self.rules, self.backends = cases, rules, backends

    def collect(self) -> Iterator[pytest.Item]:
        make = AttnspecItem.from_parent
        yield make(self, name="status", kind="status", exercise=self.name)
        for case in self.cases:
            # A case for other backends only is still collected, and skipped with the reason.
            for backend in [b for b in self.backends if b in case.backends] or list(case.backends[:1]):
                yield make(self, name=f"{case.id}[{backend}]", kind="case", exercise=self.name, case_id=case.id, backend=backend, prop=case.property)
        if self.rules is not None:
            yield make(self, name=self.rules.case_id, kind="rules", exercise=self.name, case_id=self.rules.case_id)


class AttnspecItem(pytest.Item):
    """One case on one backend, an exercise's implementation rules or status, or the spec itself."""

    def __init__(self, *, kind: str, exercise: str, case_id: str = "", backend: str | None = None, prop: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.kind, self.exercise, self.case_id, self.backend = kind, exercise, case_id, backend
        self.outcome: tuple[str, str] | None = None  # set once the submission is graded
        if prop:
            self.extra_keyword_matches.add(prop)  # -k scale_discrimination

    def runtest(self) -> None:
        outcome, text = self.outcome or self.config.stash[_STATE].verdict(self)
        if outcome == "skipped":
            pytest.skip(text)
        if outcome == "failed":
            raise AttnspecFailure(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AttnspecFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Not a suffix of the node id, or pytest -v would print ma::values::small for ma.values.small.
        line = self.config.stash[_STATE].lines.get(self.exercise, 0)
        return self.path, line, "attnspec " + self.nodeid.split("::", 1)[-1]
