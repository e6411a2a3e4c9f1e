"""Make learner-controlled text (file names, student ids, printed output, messages) safe to put
on a terminal: control characters, escape sequences and bidirectional overrides are shown as
visible escapes instead of acting on the terminal, so a file name cannot forge a summary line."""

from __future__ import annotations

import re

_UNSAFE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_BLOCK = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object, *, multiline: bool = False) -> str:
    """`text` with every control character written as a visible escape (\\x1b, \\r, \\u202e).

    multiline=True keeps newlines (printed output); the default escapes them too (one-line fields
    such as file names and student ids)."""
    pattern = _UNSAFE_BLOCK if multiline else _UNSAFE_LINE
    return pattern.sub(_escape, str(text))
