"""README.md's two commands are what a newcomer runs; CI must run the same test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_readme_has_the_two_fresh_machine_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "attnspec grade examples/" in main_job and "-c constraints.txt" in main_job
    assert tests.endswith("pytest") and "-c constraints.txt" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_torch_is_pinned_in_constraints_and_optional_in_pyproject():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()
    pyproject = (ROOT / "pyproject.toml").read_text()
    dependencies = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "torch" not in dependencies
    assert re.search(r'^torch = \["torch', pyproject, flags=re.M)


def test_the_example_the_readme_grades_exists():
    path = readme_commands()[0].rsplit("attnspec grade ", 1)[1].split()[0]
    assert (ROOT / path).is_file()
