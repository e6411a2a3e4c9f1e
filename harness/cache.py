"""Incremental regrades: a graded result is stored under a key made of everything that decides it
(the submission's bytes and its companions', how it is shown, the spec's content, the attnspec
version and the grading options), so regrading a class after one student resubmits grades one
file. Results that depend on the machine's load (a timeout, a spent budget, a lost worker) or on
a grader failure are never stored."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import __version__

UNSTABLE_MARKS = (
    "did not finish within the case's time limit",
    "not run: time budget spent",
    "stopped responding",
    "internal error in attnspec",
    "the worker did not",
)
CACHE_FORMAT = 1


def cache_key(path: Path, display: str, companions: list[Path], spec_digest: str, options: Any) -> str:
    """The key of one submission's result; any change to what decides it changes the key."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "version": __version__, "spec": spec_digest, "display": display, "options": _fingerprint(options)}, sort_keys=True, default=str).encode())
    for name, p in [("", path), *sorted((str(c.relative_to(path.parent)) if c.is_relative_to(path.parent) else c.name, c) for c in companions)]:
        h.update(b"\0file\0" + name.encode("utf-8", "surrogateescape") + b"\0")
        h.update(_digest_file(p))
    return h.hexdigest()


def _digest_file(p: Path) -> bytes:
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        h.update(f"unreadable: {exc.strerror}".encode())
    return h.digest()


def _fingerprint(options: Any) -> Any:
    """Every option that can change a result; `workers` (how many cases run at once) cannot."""
    data = dataclasses.asdict(options) if dataclasses.is_dataclass(options) and not isinstance(options, type) else dict(options)
    data.pop("workers", None)
    return data


def cacheable(result: dict[str, Any]) -> bool:
    """Only complete, load-independent results are stored."""
    if result.get("status") != "graded":
        return False
    text = json.dumps(result.get("exercises", []))
    return not any(mark in text for mark in UNSTABLE_MARKS)


class ResultCache:
    """Results as JSON files under `directory` (default `.attnspec-cache/` beside the reports)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.hits = 0
        self.stored = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("result"), dict):
            return None
        self.hits += 1
        return data["result"]

    def put(self, key: str, result: dict[str, Any]) -> None:
        if not cacheable(result):
            return
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "result": result}, sort_keys=True), encoding="utf-8")
            os.replace(tmp, target)
            self.stored += 1
        except OSError:
            pass  # a read-only or full cache folder costs speed, never a grade
