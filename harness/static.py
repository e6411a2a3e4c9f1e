"""Read a submission without running it: imports, function definitions, stubs, forbidden APIs.

The worker is authoritative for what the code *does*; this module tells us, before anything
runs, which backend to prepare (so torch is imported only when needed), where each function is
defined, whether it is still the starter stub, and which forbidden APIs its body names.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from .submission import Submission


@dataclass(frozen=True)
class Use:
    """A reference to an API in the learner's code."""

    api: str
    filename: str
    line: int
    function: str | None = None


@dataclass
class FunctionInfo:
    name: str
    filename: str
    line: int
    params: list[str]
    is_stub: bool
    node: ast.FunctionDef | ast.AsyncFunctionDef = field(repr=False)


@dataclass
class StaticReport:
    imports: set[str] = field(default_factory=set)
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    attnspec_imports: list[Use] = field(default_factory=list)
    introspection: list[Use] = field(default_factory=list)  # stack frames / gc: a way into the grader's objects

    @property
    def backend_hints(self) -> list[str]:
        """Backends the code plausibly targets, from its imports."""
        hints = []
        if "torch" in self.imports:
            hints.append("torch")
        if "numpy" in self.imports or not hints:
            hints.append("numpy")
        if self.imports & {"array_api_compat", "array_api_strict"}:
            hints = ["numpy", "torch"]
        return hints

    def forbidden_uses(self, function: str, apis: list[str]) -> list[Use]:
        """Uses of `apis` in `function` and in the submission's own helpers it calls (transitively).
        Names resolve as Python would: a name a function binds itself (an argument, an assignment,
        its own import) hides the module's import or helper of that name."""
        if function not in self.functions or not apis:
            return []
        uses: list[Use] = []
        seen: set[str] = set()
        todo = [function]
        while todo:
            name = todo.pop()
            if name in seen or name not in self.functions:
                continue
            seen.add(name)
            info = self.functions[name]
            for node, aliases, helpers in _scoped_nodes(info.node, self.aliases, set(self.functions)):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in helpers:
                    todo.append(node.id)
                path = _resolve(node, aliases)
                matched = [api for api in apis if path is not None and _matches(path, api)]
                if not matched:
                    continue
                # one use per name in the code: the API it names exactly, else the first it resembles
                api = next((a for a in matched if path == a or str(path).startswith(a + ".")), matched[0])
                use = Use(api, info.filename, getattr(node, "lineno", info.line), name)
                if use not in uses:
                    uses.append(use)
        return sorted(uses, key=lambda u: (u.filename, u.line))


_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _scoped_nodes(scope: ast.AST, aliases: dict[str, str], helpers: set[str]) -> list[tuple[ast.AST, dict[str, str], set[str]]]:
    """Every node inside a function with the import aliases and helper-function names in force
    there: the names the function (or a function nested in it) binds itself hide the enclosing
    ones, and its own imports add theirs."""
    own = _own_scope(scope)
    bound = _bindings(scope, own)
    visible = {k: v for k, v in aliases.items() if k not in bound}
    visible.update(_import_aliases_in(own))
    callable_names = helpers - bound
    out: list[tuple[ast.AST, dict[str, str], set[str]]] = []
    for node in own:
        out.append((node, visible, callable_names))
        if node is not scope and isinstance(node, _NESTED_SCOPES):
            out.extend(_scoped_nodes(node, visible, callable_names))
    return out


def _own_scope(scope: ast.AST) -> list[ast.AST]:
    """The nodes of a function's own scope: nested functions, lambdas and classes are included as
    nodes (their names, defaults and decorators belong here) but not walked into."""
    nodes: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, _NESTED_SCOPES):
            todo.extend(node.decorator_list if not isinstance(node, ast.Lambda) else [])
            args = getattr(node, "args", None)
            if isinstance(args, ast.arguments):
                todo.extend(d for d in args.defaults + args.kw_defaults if d is not None)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _bindings(scope: ast.AST, own: list[ast.AST]) -> set[str]:
    """The names a function binds in its own scope (so local to it), less those it declares global."""
    bound: set[str] = set()
    args = getattr(scope, "args", None)
    if isinstance(args, ast.arguments):
        every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a is not None]
        bound.update(a.arg for a in every)
    declared: set[str] = set()
    for node in own:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not scope:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
    return bound - declared


# Ways to reach the worker's own objects (its frames, its tracer, its reply) from learner code.
# No solution of these exercises needs them; a submission that uses them fails the rules case.
INTROSPECTION_CALLS = {
    "sys._getframe": "stack frames",
    "sys._current_frames": "stack frames",
    "sys.settrace": "call tracer",
    "sys.setprofile": "call tracer",
    "sys.gettrace": "call tracer",
    "sys.getprofile": "call tracer",
    "inspect.currentframe": "stack frames",
    "inspect.stack": "stack frames",
    "inspect.trace": "stack frames",
    "inspect.getouterframes": "stack frames",
    "inspect.getinnerframes": "stack frames",
    "gc.get_objects": "objects (through the garbage collector)",
    "gc.get_referrers": "objects (through the garbage collector)",
    "gc.get_referents": "objects (through the garbage collector)",
    "traceback.walk_stack": "stack frames",
}
INTROSPECTION_ATTRS = {"f_back", "f_locals", "f_globals", "f_builtins", "tb_frame", "gi_frame", "cr_frame", "ag_frame", "__closure__", "cell_contents"}


def analyze(submission: Submission) -> StaticReport:
    """Imports, top-level functions and introspection of each file, each file parsed once."""
    report = StaticReport()
    for source in submission.files:
        try:
            tree = ast.parse(source.text, filename=source.filename)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            for module, line in _imported_modules(node):
                report.imports.add(module.split(".")[0])
                if module.split(".")[0] == "attnspec":
                    report.attnspec_imports.append(Use(f"import {module}", source.filename, line))
        aliases = _import_aliases(tree)
        report.aliases = _module_aliases(tree, report.aliases)
        try:
            report.introspection.extend(_introspection(tree, aliases, source.filename))
        except RecursionError:  # an attribute chain nested deeper than our resolver goes
            report.introspection.append(Use("objects (code too deeply nested to check)", source.filename, 1))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [a.arg for a in node.args.posonlyargs + node.args.args]
                report.functions[node.name] = FunctionInfo(node.name, source.filename, node.lineno, params, _is_stub(node), node)
    return report


def _introspection(tree: ast.AST, aliases: dict[str, str], filename: str) -> list[Use]:
    """Every use of frame/gc/tracer introspection in the file (anywhere: load time counts too)."""
    uses: list[Use] = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Attribute) and node.attr in INTROSPECTION_ATTRS:
            what = "stack frames" if node.attr not in ("__closure__", "cell_contents") else "closures"
        else:
            path = _resolve(node, aliases)
            if path is not None:
                what = next((kind for api, kind in INTROSPECTION_CALLS.items() if path == api or path.startswith(api + ".")), None)
        if what is not None:
            use = Use(what, filename, getattr(node, "lineno", 1))
            if use not in uses:
                uses.append(use)
    return sorted(uses, key=lambda u: u.line)


def _imported_modules(node: ast.AST) -> list[tuple[str, int]]:
    if isinstance(node, ast.Import):
        return [(alias.name, node.lineno) for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [(node.module, node.lineno)]
    if isinstance(node, ast.Call):
        target = _dotted(node.func)
        if target in ("__import__", "importlib.import_module", "import_module") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return [(first.value, node.lineno)]
    return []


def _module_aliases(tree: ast.Module, earlier: dict[str, str]) -> dict[str, str]:
    """The module's import aliases as they stand after its top-level code ran, statement by
    statement (a notebook's cells in order): a later def, class or assignment of the same name
    replaces an import, and imports inside functions are the functions' own."""
    aliases = dict(earlier)
    for stmt in tree.body:
        own = [stmt] if isinstance(stmt, _NESTED_SCOPES) else [stmt, *_own_scope(stmt)]
        if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            path = _resolve(stmt.value, aliases)
            if path is not None:  # sdpa = F.scaled_dot_product_attention
                aliases.update((t.id, path) for t in stmt.targets if isinstance(t, ast.Name))
                continue
        for node in own:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                aliases.update(_import_aliases_in([node]))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                aliases.pop(node.name, None)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                aliases.pop(node.id, None)
    return aliases


def _import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted path for every import in `tree` (import a.b as c, from a import b as c)."""
    return _import_aliases_in(list(ast.walk(tree)))


def _import_aliases_in(nodes: list[ast.AST]) -> dict[str, str]:
    """Local name -> dotted path for the imports among `nodes`, in order."""
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _resolve(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """Dotted API path that `node` refers to, through import aliases and getattr(x, 'name')."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
        obj, name = node.args[0], node.args[1]
        base = _resolve(obj, aliases)
        if base and isinstance(name, ast.Constant) and isinstance(name.value, str):
            return f"{base}.{name.value}"
        return None
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        base = _resolve(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return aliases.get(node.id)
    return None


def _matches(path: str, api: str) -> bool:
    """Same path, or the same name under the same top package (torch.nn.modules.activation.MultiheadAttention)."""
    if path == api or path.startswith(api + "."):
        return True
    p, a = path.split("."), api.split(".")
    return p[0] == a[0] and a[-1] in p[1:] and len(p) >= 2


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """True if the body is only a docstring and pass / ... / raise NotImplementedError."""
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return True
    for stmt in body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis:
            continue
        if isinstance(stmt, ast.Raise) and stmt.exc is not None:
            target = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
            if isinstance(target, ast.Name) and target.id == "NotImplementedError":
                continue
        return False
    return True


# ---------------------------------------------------------------- where a running line sits

_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _spans(node: ast.AST, line: int) -> bool:
    """Whether `line` lies within the node's lines (nodes without positions span nothing)."""
    first = getattr(node, "lineno", None)
    return first is not None and first <= line <= (getattr(node, "end_lineno", None) or first)


def outermost_loop(tree: ast.AST, line: int) -> ast.AST | None:
    """The outermost loop around `line` within its innermost function (a sample of a looping
    frame lands on any line of the loop; its first line is the same in every run)."""
    loop = None
    node = tree
    while True:
        inner = [c for c in ast.iter_child_nodes(node) if _spans(c, line)]
        if not inner:
            return loop
        node = inner[0]
        if isinstance(node, _SCOPES):
            loop = None  # only loops inside the innermost function count
        elif isinstance(node, _LOOPS) and loop is None:
            loop = node
