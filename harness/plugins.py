"""Instructors' own properties: plugin modules that register checks next to the built-in ones.

A plugin is a Python module that calls `register_property` (re-exported as
`attnspec.plugins.register_property`) when it is imported. It is found in two ways:

- `--plugins MODULE[,MODULE]` on `attnspec grade`, `spec validate`, `spec check`, `spec new`,
  `spec properties` (and `--attnspec-plugins` for pytest): an importable module name or a path
  to a `.py` file;
- an entry point in the group `attnspec.properties` of an installed package (loaded whenever
  attnspec loads a spec, so notebooks and the pytest plugin see them too).

A plugin is instructor code, trusted like attnspec's own properties: it runs in the grader
process, and reaches learner code only through `ctx.call` (docs/plugins.md, docs/isolation.md).
Every problem with a plugin (it does not import, it registers a name twice, its schema is not a
JSON Schema) is a `PluginError` naming the plugin and the file:line, which the CLI prints
without a traceback (exit 2).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema

from .errors import AttnspecError
from .exercises import BACKENDS, EXERCISES
from .properties.base import PROPERTIES, CaseAborted, Failed, PropertyInfo, fail, register

__all__ = ["register_property", "fail", "load_plugins", "PluginError"]

ENTRY_POINT_GROUP = "attnspec.properties"
BUILTIN = "built-in"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MASK_KINDS = ("none", "causal", "bias", "block", "padding", "mixed", "causal_4d", "bias_4d", "block_4d", "padding_4d", "mixed_4d")
NO_PARAMS = {"type": "object", "additionalProperties": False, "properties": {}}


class PluginError(AttnspecError):
    """A plugin could not be loaded or registered a property wrongly. Fix: the message names the plugin and the line."""


@dataclass
class Plugin:
    """One loaded plugin module and the properties it registered."""

    name: str  # the module name, or the file's stem
    how: str  # "--plugins PATH", "entry point NAME = VALUE (package DIST)"
    file: str | None  # the module's file, when it has one
    properties: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"plugin '{self.name}' ({self.how})"


@dataclass(frozen=True)
class Origin:
    """Where a plugin property was registered."""

    plugin: Plugin | None
    file: str | None
    line: int | None

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else (self.file or "?")

    def describe(self) -> str:
        who = self.plugin.describe() if self.plugin is not None else "a plugin"
        return f"{who}, registered at {self.where()}"

    @property
    def label(self) -> str:
        """Short form for listings: 'plugin NAME'."""
        return f"plugin {self.plugin.name}" if self.plugin is not None else "plugin"


ORIGINS: dict[str, Origin] = {}  # plugin property name -> origin; built-ins are absent
PLUGINS: dict[tuple[str, str], Plugin] = {}  # ("module", name) or ("file", resolved path) -> loaded plugin
_loading: list[Plugin] = []  # the plugin being imported (innermost last)
_entry_points_loaded = False


# ---------------------------------------------------------------- the public API


def register_property(
    name: str,
    check: Callable[[Any, Any], None] | None = None,
    *,
    exercises: Iterable[str],
    params_schema: dict[str, Any] | None = None,
    summary: str | None = None,
    backends: Iterable[str] = BACKENDS,
    needs_inputs: bool = True,
    masks: Iterable[str] | None = None,
    fixed_dims: dict[str, int] | None = None,
    validate: Callable[[Any, Any], list[tuple[tuple, str]]] | None = None,
    function: str | None = None,
    relational: bool = False,
) -> Any:
    """Register a property `name` checked by `check(ctx, inputs)`; usable as a decorator.

    `exercises` (required) names the exercises it applies to; `params_schema` is the JSON Schema
    of the case's `params` (default: no params); `summary` defaults to the first line of the
    check's docstring. The other fields are those of the built-in properties (PropertyInfo)."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    origin = Origin(_loading[-1] if _loading else None, caller.f_code.co_filename if caller else None, caller.f_lineno if caller else None)
    del frame, caller

    def add(fn: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        info = _property_info(name, fn, origin, exercises=exercises, params_schema=params_schema, summary=summary, backends=backends, needs_inputs=needs_inputs,
                              masks=masks, fixed_dims=fixed_dims, validate=validate, function=function, relational=relational)
        register(info)
        ORIGINS[name] = origin
        if origin.plugin is not None:
            origin.plugin.properties.append(name)
        return fn

    return add if check is None else add(check)


def _property_info(name: str, check: Any, origin: Origin, *, exercises: Iterable[str], params_schema: dict[str, Any] | None, summary: str | None, backends: Iterable[str],
                   needs_inputs: bool, masks: Iterable[str] | None, fixed_dims: dict[str, int] | None, validate: Any, function: str | None, relational: bool) -> PropertyInfo:
    def bad(problem: str) -> PluginError:
        return PluginError(f"{origin.describe()}: property {name!r}: {problem}")

    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise bad("a property name is lower_snake_case (letters, digits, _), starting with a letter")
    if name in PROPERTIES:
        first = ORIGINS.get(name)
        by = first.describe() if first is not None else f"attnspec's built-in properties ({getattr(PROPERTIES[name].check, '__module__', 'attnspec.properties')})"
        raise bad(f"the name is already taken by {by}; choose another name")
    if not callable(check):
        raise bad(f"the check must be a function check(ctx, inputs), not {type(check).__name__}")
    if isinstance(exercises, str):
        exercises = [exercises]
    exercises = tuple(exercises)
    if not exercises:
        raise bad(f"exercises must name the exercises it applies to, explicitly (of {', '.join(EXERCISES)})")
    unknown = [e for e in exercises if e not in EXERCISES]
    if unknown:
        raise bad(f"unknown exercise(s) {', '.join(map(repr, unknown))}; the exercises are {', '.join(EXERCISES)}")
    backends = tuple(backends)
    if not backends or any(b not in BACKENDS for b in backends):
        raise bad(f"backends must be some of {', '.join(BACKENDS)}, got {list(backends)}")
    if masks is not None:
        masks = tuple(masks)
        wrong = [m for m in masks if m not in MASK_KINDS]
        if wrong:
            raise bad(f"unknown mask kind(s) {', '.join(map(repr, wrong))}; the kinds are {', '.join(MASK_KINDS)}")
    schema = dict(NO_PARAMS) if params_schema is None else params_schema
    if not isinstance(schema, dict):
        raise bad("params_schema must be a JSON Schema (a dict)")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise bad(f"params_schema is not a valid JSON Schema: {exc.message} (at {'/'.join(map(str, exc.absolute_path)) or 'the top'})") from None
    if schema.get("type") != "object":
        raise bad('params_schema must describe a mapping: {"type": "object", "properties": {...}}')
    text = summary or next(iter((inspect.getdoc(check) or "").strip().splitlines()), "")
    if not text:
        raise bad("give it a summary (summary=... or a docstring on the check): learners read it as the case's feedback")
    return PropertyInfo(
        name,
        text,
        _guarded(check, name, origin),
        applies_to=exercises,
        backends=backends,
        params_schema=schema,
        needs_inputs=bool(needs_inputs),
        fixed_dims=dict(fixed_dims or {}),
        masks=masks,
        validate=_guarded_validate(validate, name, origin) if validate is not None else None,
        function=function,
        relational=bool(relational),
    )


def _guarded(check: Callable[[Any, Any], None], name: str, origin: Origin) -> Callable[[Any, Any], None]:
    """A plugin check whose own bugs fail the case as an error naming the plugin (not as attnspec's)."""

    @functools.wraps(check)
    def run(ctx: Any, inputs: Any) -> None:
        try:
            check(ctx, inputs)
        except (Failed, CaseAborted):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in the plugin: the case errs, with where
            where = _where(exc, origin.file)
            message = f"the plugin property '{name}' ({origin.plugin.describe() if origin.plugin else 'a plugin'}) raised {type(exc).__name__}: {exc}{f' at {where}' if where else ''}; this is a bug in the plugin, report it to the course staff"
            raise fail("plugin_error", claim=message, outcome="error", claim_hidden=f"the plugin property '{name}' failed; report it to the course staff") from None

    return run


def _guarded_validate(validate: Callable[[Any, Any], Any], name: str, origin: Origin) -> Callable[[Any, Any], list[tuple[tuple, str]]]:
    def run(case: Any, inputs: Any) -> list[tuple[tuple, str]]:
        try:
            return [(tuple(path), str(message)) for path, message in (validate(case, inputs) or [])]
        except Exception as exc:  # noqa: BLE001 - reported at the case, not as a traceback
            where = _where(exc, origin.file)
            return [((), f"the validate function of plugin property '{name}' raised {type(exc).__name__}: {exc}{f' at {where}' if where else ''}")]

    return run


def _where(exc: BaseException, prefer: str | None) -> str | None:
    """file:line of the deepest frame in `prefer` (the plugin's file), else of the deepest frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    kept = [f for f in frames if not f.filename.startswith("<frozen")]
    mine = [f for f in kept if prefer and os.path.abspath(f.filename) == os.path.abspath(prefer)]
    chosen = mine or kept
    return f"{chosen[-1].filename}:{chosen[-1].lineno}" if chosen else None


# ---------------------------------------------------------------- loading


def split_plugin_args(given: Iterable[str] | None) -> list[str]:
    """`--plugins a,b --plugins c` -> ['a', 'b', 'c']."""
    return [p.strip() for item in (given or []) for p in str(item).split(",") if p.strip()]


def load_plugins(given: Iterable[str] | None = None, *, entry_points: bool = True) -> list[Plugin]:
    """Import the plugins named (module names or .py paths) and, with `entry_points`, every
    installed `attnspec.properties` entry point. A plugin already loaded is not loaded again."""
    loaded = []
    if entry_points:
        loaded.extend(load_entry_point_plugins())
    for item in split_plugin_args(given):
        loaded.append(_load_one(item))
    return loaded


def load_entry_point_plugins() -> list[Plugin]:
    global _entry_points_loaded
    loaded = []
    for ep in _entry_points():
        module = ep.value.split(":", 1)[0].strip()
        key = ("module", module)
        if key in PLUGINS:
            loaded.append(PLUGINS[key])
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None)
        plugin = Plugin(module, f"entry point {ep.name} = {ep.value} in group {ENTRY_POINT_GROUP}" + (f", package {dist}" if dist else ""), None)

        def load(ep: Any = ep, plugin: Plugin = plugin) -> None:
            obj = ep.load()
            plugin.file = getattr(sys.modules.get(plugin.name), "__file__", None)
            if callable(obj) and not inspect.ismodule(obj):
                obj()  # module:function entry points: the function registers

        _import(plugin, key, load)
        loaded.append(plugin)
    _entry_points_loaded = True
    return loaded


def ensure_entry_point_plugins() -> None:
    """Load the entry-point plugins once per process (spec loading calls this)."""
    if not _entry_points_loaded:
        load_entry_point_plugins()


def _entry_points() -> list[Any]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load_one(item: str) -> Plugin:
    looks_like_path = item.endswith(".py") or os.sep in item or (os.altsep is not None and os.altsep in item)
    if looks_like_path:
        path = Path(item)
        if not path.is_file():
            raise PluginError(f"plugin '{item}' (--plugins {item}): no such file; give a path to a .py file or an importable module name")
        key = ("file", str(path.resolve()))
        if key in PLUGINS:
            return PLUGINS[key]
        plugin = Plugin(path.stem, f"--plugins {item}", str(path))

        def load() -> None:
            module_name = f"attnspec_plugin_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # so its classes pickle and dataclasses resolve
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise

        _import(plugin, key, load)
        return plugin
    key = ("module", item)
    if key in PLUGINS:
        return PLUGINS[key]
    plugin = Plugin(item, f"--plugins {item}", None)

    def load_module() -> None:
        try:
            found = importlib.util.find_spec(item)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise PluginError(f"{plugin.describe()}: no module named {item!r} on the Python path; give an importable module name or a path to a .py file")
        plugin.file = found.origin
        importlib.import_module(item)

    _import(plugin, key, load_module)
    return plugin


def _import(plugin: Plugin, key: tuple[str, str], load: Callable[[], None]) -> None:
    """Run `load` with `plugin` as the origin of what it registers; every failure is a PluginError."""
    _loading.append(plugin)
    try:
        load()
    except PluginError:
        _forget(plugin)
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a plugin's import is its own; report it, never our traceback
        _forget(plugin)
        where = _where(exc, plugin.file)
        raise PluginError(f"{plugin.describe()} failed to import: {type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")) from None
    finally:
        _loading.pop()
    if not plugin.properties:
        print(f"attnspec: warning: {plugin.describe()} registered no property (call attnspec.plugins.register_property in it)", file=sys.stderr)
    PLUGINS[key] = plugin


def _forget(plugin: Plugin) -> None:
    """Undo what a plugin registered (its import failed half way)."""
    for name in plugin.properties:
        PROPERTIES.pop(name, None)
        ORIGINS.pop(name, None)
    plugin.properties.clear()


def unload_plugins() -> None:
    """Remove every plugin property (for tests, and for a process that loads another set)."""
    global _entry_points_loaded
    for plugin in list(PLUGINS.values()):
        _forget(plugin)
    for name in list(ORIGINS):
        PROPERTIES.pop(name, None)
        ORIGINS.pop(name, None)
    PLUGINS.clear()
    _entry_points_loaded = False


# ---------------------------------------------------------------- listing


def origin_label(name: str) -> str:
    """'built-in' or 'plugin NAME', for listings."""
    origin = ORIGINS.get(name)
    return BUILTIN if origin is None else origin.label


def origin_text(name: str) -> str:
    origin = ORIGINS.get(name)
    return BUILTIN if origin is None else origin.describe()


def is_plugin_property(name: str) -> bool:
    return name in ORIGINS


HINT = "a plugin can add properties: --plugins MODULE_OR_FILE.py, or an 'attnspec.properties' entry point (docs/plugins.md)"
