"""The `attnspec` command's entry point (`python -m attnspec` too): for `attnspec grade`, the master
worker is started before the command line's own imports (harness/masterproc.py)."""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["grade"] and not {"-h", "--help"} & set(argv):
        from .masterproc import start_early

        start_early()
    from .cli import main as cli_main

    return cli_main(argv)
