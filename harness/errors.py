"""One exception hierarchy for everything attnspec reports to a user.

Each error carries a message written for the person who can fix it. The CLI catches
`AttnspecError` at its boundary and prints the message, never a traceback from our internals.
"""

from __future__ import annotations

from dataclasses import dataclass


class AttnspecError(Exception):
    """Base class: a problem with what the user gave us (spec, submission, options), not a bug in attnspec."""

    exit_code = 2


class UsageError(AttnspecError):
    """Bad command-line usage or options. Fix: see `attnspec --help`."""


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong in a spec file, located as file:line:column."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class SpecError(AttnspecError):
    """A spec file is malformed. Cause and fix: every problem is listed as file:line:column: message."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.column, p.message))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the spec"
        super().__init__(head + ":\n" + "\n".join(str(p) for p in self.problems))


class SubmissionError(AttnspecError):
    """The submission file cannot be read at all (missing, not a notebook, not text). Fix: the message says what and where."""

    def __init__(self, message: str, *, sha256: str | None = None) -> None:
        super().__init__(message)
        self.sha256 = sha256  # of the bytes, when they were read (not for a refused FIFO or device)


class WorkerError(AttnspecError):
    """A worker process could not be started (not a learner's fault). Fix: check the Python environment."""


class BackendUnavailable(AttnspecError):
    """The submission needs a backend that is not installed (e.g. PyTorch). Fix: pip install 'attnspec[torch]'."""
