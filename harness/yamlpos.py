"""YAML loading that remembers where every value came from, so spec errors can say file:line:column.

PyYAML's composed node tree carries a mark for every node; we construct the data from that same
tree and keep it to map a JSON-Schema error path (`cases/3/tolerances/float32/atol`) back to a
position. The loader also accepts `1e-5` and `-inf` as floats (YAML 1.1 would read them as strings,
which surprises everyone who writes tolerances).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import SpecProblem

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Aliases let a 600-byte file stand for a billion values (every later step walks the expanded
# data). Spec files rarely need them: a few dozen references to shared defaults at most.
MAX_ALIASES = 100
MAX_EXPANDED_VALUES = 1_000_000


class _SpecLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader with a float resolver that also matches 1e-5, 3E+2, inf and -inf."""


_SpecLoader.yaml_implicit_resolvers = {k: list(v) for k, v in _BaseLoader.yaml_implicit_resolvers.items()}
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.?(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.iI"))


@dataclass
class YamlDocument:
    """Parsed data plus the node tree it was built from."""

    path: str
    data: Any
    root: yaml.Node | None

    def locate(self, json_path: tuple | list) -> tuple[int, int]:
        """1-based (line, column) of the value at `json_path`, or of its deepest existing ancestor."""
        node = self.root
        if node is None:
            return (1, 1)
        for key in json_path:
            child = _child(node, key)
            if child is None:
                break
            node = child
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def locate_key(self, json_path: tuple | list) -> tuple[int, int]:
        """Position of the *key* of the last element in `json_path` (better for 'unknown field')."""
        if not json_path:
            return self.locate(json_path)
        parent = self.root
        for key in json_path[:-1]:
            parent = _child(parent, key) if parent is not None else None
        if isinstance(parent, yaml.MappingNode):
            for key_node, _ in parent.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(json_path[-1]):
                    return (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return self.locate(json_path)

    def problem(self, json_path: tuple | list, message: str, *, at_key: bool = False) -> SpecProblem:
        line, col = self.locate_key(json_path) if at_key else self.locate(json_path)
        return SpecProblem(self.path, line, col, message)


def _child(node: yaml.Node | None, key: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                return value_node
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def _duplicate_keys(node: yaml.Node | None, path: str) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    m = key_node.start_mark
                    problems.append(SpecProblem(path, m.line + 1, m.column + 1, f"duplicate key '{key_node.value}' (the later one would silently win)"))
                seen.add(key_node.value)
            problems.extend(_duplicate_keys(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems.extend(_duplicate_keys(item, path))
    return problems


def load_yaml(text: str, path: str) -> tuple[YamlDocument | None, list[SpecProblem]]:
    """Parse one YAML document. Returns (None, [problem]) on a syntax error, with its position."""
    loader = _SpecLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(s for s in (exc.context, exc.problem) if s)
        return None, [SpecProblem(path, line, col, f"YAML syntax error: {what}")]
    except yaml.YAMLError as exc:
        return None, [SpecProblem(path, 1, 1, f"YAML error: {exc}")]
    finally:
        loader.dispose()
    bomb = _alias_problem(root, text, path)
    if bomb is not None:
        return None, [bomb]
    return YamlDocument(path, data, root), _duplicate_keys(root, path)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _alias_problem(root: yaml.Node | None, text: str, path: str) -> SpecProblem | None:
    """A problem if the node graph's aliases are too many, recursive, or expand too far; counted
    on the graph (each shared node once), never by expanding it."""
    if root is None:
        return None
    sizes: dict[int, int | None] = {}
    references = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            sizes[key] = 1 + sum(sizes[id(c)] or 0 for c in _children(node))
            continue
        if key in sizes:
            references += 1
            if sizes[key] is None:
                return _at_first_alias(text, path, "a YAML alias refers to a value that contains it (a recursive alias); write the values out")
            continue
        sizes[key] = None
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(_children(node)))
    if references > MAX_ALIASES:
        return _at_first_alias(text, path, f"the file uses YAML aliases {references:,} times, more than the limit of {MAX_ALIASES}; write the values out")
    total = sizes[id(root)] or 0
    if total > MAX_EXPANDED_VALUES:
        return _at_first_alias(text, path, f"YAML aliases expand this file to {total:,} values, more than the limit of {MAX_EXPANDED_VALUES:,} (an alias bomb?); write the values out")
    return None


def _at_first_alias(text: str, path: str, message: str) -> SpecProblem:
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
                return SpecProblem(path, event.start_mark.line + 1, event.start_mark.column + 1, message)
    except yaml.YAMLError:
        pass
    return SpecProblem(path, 1, 1, message)
