"""The code `harness lint` reasons about as one program: the linted files, the project
modules they import, and which call reaches which function.

A seed set by a helper in another module, or a value returned by one, only counts when the
linter can follow the call, so the files are parsed together: each gets a dotted module
name (from its package's ``__init__.py`` files, or its stem for a script folder), imports
of project modules are resolved to those modules, and a call is resolved to the project
function or class it names (``helpers.seed_all()``, ``from .data import load``,
``Model(...)`` to ``Model.__init__``, ``self.step()`` within a class). Modules that a
linted file imports but that were not named on the command line are found next to it or
under the project root, parsed for context, and never reported on.

Nothing is imported or executed. Input files are the user's own code, but are still
bounded: files larger than :data:`MAX_FILE_BYTES` are not read for context, at most
:data:`MAX_CONTEXT_MODULES` are, and a module is only looked for inside the given roots.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from harness.lint.syntax import Syntax

# Kinds of nodes tested together, as tuples: ``isinstance(node, A | B)`` builds the
# union at each test, which costs more than the test in the loops over every node.
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_IMPORTS = (ast.Import, ast.ImportFrom)

MAX_FILE_BYTES = 4 * 1024 * 1024
# Deeper than any real code; the analyses recurse along the tree within Python's limit.
MAX_DEPTH = 120
MAX_CONTEXT_MODULES = 2000
_Node = TypeVar("_Node", bound=ast.AST)
# Re-exports followed from one package to the module that defines a name.
_MAX_REEXPORTS = 4


@dataclass(eq=False)
class Function:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: Module
    owner: Class | None
    # Names of nested functions defined directly in this one, for calls by bare name.
    local_functions: dict[str, Function] = field(default_factory=dict)
    parent: Function | None = None

    @property
    def name(self) -> str:
        prefix = f"{self.owner.name}." if self.owner else ""
        return prefix + self.node.name

    # Asked at every call the analyses follow: computed once (the tree does not change).
    @functools.cached_property
    def params(self) -> list[str]:
        arguments = self.node.args
        return [a.arg for a in [*arguments.posonlyargs, *arguments.args]]

    @property
    def keyword_only(self) -> list[str]:
        return [a.arg for a in self.node.args.kwonlyargs]

    @functools.cached_property
    def is_method(self) -> bool:
        if self.owner is None:
            return False
        decorators = {ast.unparse(d) for d in self.node.decorator_list}
        return "staticmethod" not in decorators

    @functools.cached_property
    def is_factory(self) -> bool:
        """A classmethod, whose first parameter is the class itself."""
        return any(ast.unparse(d) == "classmethod" for d in self.node.decorator_list)

    @functools.cached_property
    def self_name(self) -> str | None:
        return self.params[0] if self.is_method and self.params else None


@dataclass(eq=False)
class Class:
    node: ast.ClassDef
    module: Module
    methods: dict[str, Function] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(eq=False)
class Module:
    name: str
    path: Path
    shown: str
    source: str
    tree: ast.Module
    linted: bool
    # Every node of the module in ``ast.walk`` order, from the one walk that serves all
    # the checks (see :mod:`harness.lint.syntax`).
    nodes: list[ast.AST] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    classes: dict[str, Class] = field(default_factory=dict)
    # Every function in the module, nested and methods included.
    all_functions: list[Function] = field(default_factory=list)
    # The project modules this one imports, in the order of its import statements.
    imports: dict[int, list[Module]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return self._lines

    def of_kind(self, kind: type[_Node]) -> list[_Node]:
        """The module's nodes of one exact type (parsed trees hold no subclasses), in
        ``ast.walk`` order."""
        return cast(list[_Node], self._kinds.get(kind, []))

    @functools.cached_property
    def _kinds(self) -> dict[type[ast.AST], list[ast.AST]]:
        # Most checks look for one or two kinds of node (calls, sets, assignments) in
        # every module: one pass sorts the nodes, which do not change once read, instead
        # of a pass over all of them per check.
        kinds: dict[type[ast.AST], list[ast.AST]] = defaultdict(list)
        for node in self.nodes:
            kinds[type(node)].append(node)
        return dict(kinds)

    @functools.cached_property
    def _lines(self) -> list[str]:
        # Split once: every finding and related location in the file asks for a line.
        return self.source.splitlines()

    @functools.cached_property
    def imports_torch(self) -> bool:
        """Whether the module imports torch or a part of it (asked at each call)."""
        return any(
            value == "torch" or value.startswith("torch.") for value in self.aliases.values()
        )

    @functools.cached_property
    def folder(self) -> Path:
        return self.path.parent.resolve()

    @functools.cached_property
    def resolved(self) -> Path:
        """The file's path with links resolved, as harness names the code it runs."""
        return self.path.resolve()


Target = Function | Class


class Project:
    """Parsed modules and the resolution of names and calls between them."""

    def __init__(self, roots: Sequence[Path] = ()) -> None:
        self.modules: list[Module] = []
        self.syntax = Syntax()
        self._by_name: dict[str, list[Module]] = {}
        # The first part of every module's name: a dotted name rooted elsewhere
        # (``numpy.random.rand``) names no project module, whatever follows.
        self._first_names: set[str] = set()
        self._by_path: dict[Path, Module] = {}
        self._roots = [root.resolve() for root in roots]
        self._context_loaded = 0
        # (module name, importing folder) pairs already looked for and not found.
        self._missing: set[tuple[str, Path]] = set()
        # What the file system said, asked once per run: most files import the same
        # modules from the same few folders.
        self._files: dict[Path, bool] = {}
        self._search_roots: dict[Path, list[Path]] = {}
        self._resolved_folders: dict[Path, Path] = {}
        self._holds: dict[tuple[str, str], bool] = {}
        # What a callee, called from within a function (or a module's body), resolves
        # to: the analyses ask again at every pass and for every state.
        self._resolved: dict[tuple[int, int], Target | None] = {}
        self._attributes: dict[int, str | None] = {}

    def release(self) -> None:
        """Drop the links that make reference cycles (a module and its functions, a
        class and its methods, modules importing each other), once every analysis is
        done: the trees are then freed as soon as the last reference goes, instead of
        waiting for the cyclic collector to traverse hundreds of thousands of nodes."""
        for module in self.modules:
            for function in module.all_functions:
                function.local_functions.clear()
                if function.owner is not None:
                    function.owner.methods.clear()
            module.functions.clear()
            module.classes.clear()
            module.all_functions.clear()
            module.imports.clear()

    # -- loading -----------------------------------------------------------------------

    def add(
        self,
        path: Path,
        shown: str,
        source: str,
        tree: ast.Module,
        nodes: list[ast.AST],
        *,
        linted: bool,
    ) -> Module:
        """Add a module; ``nodes`` are its tree's, as :meth:`Syntax.read` recorded them."""
        name = self._module_name(path)
        module = Module(name, path, shown, source, tree, linted, nodes)
        module.resolved = self._resolve(path)
        module.aliases = _aliases(module.nodes, name, is_package=path.name == "__init__.py")
        _index_definitions(module)
        self.modules.append(module)
        self._by_name.setdefault(name, []).append(module)
        self._first_names.add(name.partition(".")[0])
        self._by_path[module.resolved] = module
        return module

    def link(self) -> None:
        """Resolve every import of a project module, loading context modules as needed."""
        linked: set[int] = set()
        pending = list(self.modules)
        while pending:
            module = pending.pop()
            if id(module) in linked:
                continue
            linked.add(id(module))
            for node in module.nodes:
                if not isinstance(node, _IMPORTS):
                    continue
                found = [
                    other
                    for name in _imported_names(node, module)
                    if (other := self._find(name, module)) is not None and other is not module
                ]
                if found:
                    module.imports[id(node)] = found
                    pending.extend(found)

    def _find(self, name: str, near: Module) -> Module | None:
        candidates = self._by_name.get(name, [])
        if candidates:
            for candidate in candidates:
                if candidate.path.parent == near.path.parent:
                    return candidate
            return candidates[0]
        return self._load_context(name, near)

    def _load_context(self, name: str, near: Module) -> Module | None:
        key = (name, near.path.parent)
        if key in self._missing or self._context_loaded >= MAX_CONTEXT_MODULES:
            return None
        found = self._read_context(name, near)
        if found is None:
            self._missing.add(key)
        return found

    def _read_context(self, name: str, near: Module) -> Module | None:
        parts = name.split(".")
        relative = Path(*parts)
        for root in self._roots_near(near):
            if not self._may_hold(root, parts[0]):
                continue
            for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
                if not self._is_file(candidate):
                    continue
                resolved = candidate.resolve()
                if resolved in self._by_path:
                    return self._by_path[resolved]
                if not resolved.is_relative_to(root):
                    continue  # a link out of the folder: not this project's code
                try:
                    if resolved.stat().st_size > MAX_FILE_BYTES:
                        continue
                    source = resolved.read_bytes().decode("utf-8-sig")
                    tree = ast.parse(source, filename=str(resolved))
                except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError):
                    continue
                nodes = self.syntax.read(tree, MAX_DEPTH)
                if nodes is None:
                    continue  # too deep to analyse
                self._context_loaded += 1
                return self.add(resolved, str(resolved), source, tree, nodes, linted=False)
        return None

    def _roots_near(self, near: Module) -> list[Path]:
        """Where a module imported by ``near`` is sought: its folder, its package's root,
        and the project's roots."""
        folder = near.path.parent
        roots = self._search_roots.get(folder)
        if roots is None:
            package_root = self._package_root(folder).resolve()
            roots = list(dict.fromkeys([near.folder, package_root, *self._roots]))
            self._search_roots[folder] = roots
        return roots

    def _resolve(self, path: Path) -> Path:
        """``path.resolve()`` for a file, its folder resolved once per run: resolving
        stats every part of the path, and the files of a run share a few folders. A
        file that is itself a link is resolved whole."""
        if path.is_symlink():
            return path.resolve()
        folder = self._resolved_folders.get(path.parent)
        if folder is None:
            folder = self._resolved_folders[path.parent] = path.parent.resolve()
        return folder / path.name

    def _may_hold(self, root: Path, first: str) -> bool:
        """Whether ``root`` holds a module or package named ``first``: a module below it
        can lie there only then. Most imports name installed packages (``numpy``,
        ``sklearn.datasets``), sought in every folder: asked once per folder and name."""
        key = (str(root), first)
        known = self._holds.get(key)
        if known is None:
            known = (root / f"{first}.py").exists() or (root / first).is_dir()
            self._holds[key] = known
        return known

    def _is_file(self, path: Path) -> bool:
        known = self._files.get(path)
        if known is None:
            known = self._files[path] = path.is_file()
        return known

    def _module_name(self, path: Path) -> str:
        """The dotted name: the package path (folders with ``__init__.py``) and the stem."""
        parts = [] if path.name == "__init__.py" else [path.stem]
        folder = path.parent
        while self._is_file(folder / "__init__.py") and folder.name:
            parts.insert(0, folder.name)
            folder = folder.parent
        return ".".join(parts) or path.parent.name

    def _package_root(self, folder: Path) -> Path:
        """The folder above the outermost package that holds ``folder``."""
        while self._is_file(folder / "__init__.py") and folder.parent != folder:
            folder = folder.parent
        return folder

    # -- resolution --------------------------------------------------------------------

    def module(self, name: str, near: Module) -> Module | None:
        candidates = self._by_name.get(name, [])
        for candidate in candidates:
            if candidate.path.parent == near.path.parent:
                return candidate
        return candidates[0] if candidates else None

    def lookup(self, qualified: str, near: Module, depth: int = 0) -> Target | Module | None:
        """The project function, class or module a dotted name (as the aliases give it)
        names, or None when it is not the project's. A name a package re-exports
        (``from .train_utils import setup`` in ``utils/__init__.py``) is followed."""
        parts = qualified.split(".")
        # A name rooted in no project module (numpy.random.rand): no part to look up.
        cuts = range(len(parts), 0, -1) if parts[0] in self._first_names else range(0)
        for cut in cuts:
            module = self.module(".".join(parts[:cut]), near)
            if module is None:
                continue
            rest = parts[cut:]
            if not rest:
                return module
            if len(rest) == 1:
                found = module.functions.get(rest[0]) or module.classes.get(rest[0])
                exported = module.aliases.get(rest[0])
                if found is None and exported is not None and depth < _MAX_REEXPORTS:
                    followed = self.lookup(exported, module, depth + 1)
                    return followed if isinstance(followed, Function | Class) else None
                return found
            if len(rest) == 2 and rest[0] in module.classes:
                return module.classes[rest[0]].methods.get(rest[1])
            return None
        return None

    def may_be_its_own(self, qualified: str) -> bool:
        """Whether a dotted name (as the aliases give it) may name a module, function or
        class of the project: not unless it is rooted in a project module's name (see
        :meth:`lookup`)."""
        return qualified.partition(".")[0] in self._first_names

    def qualified(self, node: ast.expr, module: Module) -> str | None:
        """``np.random.rand`` -> ``numpy.random.rand``; a module's own top-level function
        or class -> ``module.name``; None unless rooted in an import or a definition."""
        if isinstance(node, ast.Name):
            if node.id in module.aliases:
                return module.aliases[node.id]
            if node.id in module.functions or node.id in module.classes:
                return f"{module.name}.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            # Kept per attribute: the analyses ask again at every pass (a node lies in
            # one module, whose imports and definitions are fixed once it is added).
            key = id(node)
            if key in self._attributes:
                return self._attributes[key]
            base = self.qualified(node.value, module)
            found = None if base is None else f"{base}.{node.attr}"
            self._attributes[key] = found
            return found
        return None

    def resolve_call(
        self, call: ast.Call, module: Module, within: Function | None
    ) -> Target | None:
        """The project function or class a call names, if any."""
        return self.resolve_callee(call.func, module, within)

    def resolve_callee(
        self, func: ast.expr, module: Module, within: Function | None
    ) -> Target | None:
        """The project function or class ``func`` would run if called, if any: what a
        call of it resolves to (a callback passed as a value is asked without a call)."""
        key = (id(func), id(within))
        if key in self._resolved:
            return self._resolved[key]
        found = self._resolve_callee(func, module, within)
        self._resolved[key] = found
        return found

    def _resolve_callee(
        self, func: ast.expr, module: Module, within: Function | None
    ) -> Target | None:
        if within is not None and isinstance(func, ast.Name):
            scope: Function | None = within
            while scope is not None:
                if func.id in scope.local_functions:
                    return scope.local_functions[func.id]
                scope = scope.parent
        if within is not None and within.owner is not None:
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == within.self_name
            ):
                return self.method(within.owner, func.attr)
            if isinstance(func, ast.Name) and func.id == within.self_name and within.is_factory:
                return within.owner  # cls(...) in a classmethod builds the class
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name)
                and func.value.func.id == "super"
            ):
                return self._base_method(within.owner, func.attr)
        name = self.qualified(func, module)
        if name is None:
            return None
        found = self.lookup(name, module)
        return found if isinstance(found, Function | Class) else None

    def method(self, cls: Class, name: str, depth: int = 0) -> Function | None:
        """A method of a project class, looked up through its project base classes."""
        if name in cls.methods:
            return cls.methods[name]
        if depth > 8:
            return None
        for base in cls.node.bases:
            qualified = self.qualified(base, cls.module)
            found = self.lookup(qualified, cls.module) if qualified else None
            if isinstance(found, Class):
                method = self.method(found, name, depth + 1)
                if method is not None:
                    return method
        return None

    def _base_method(self, cls: Class, name: str) -> Function | None:
        """``super().name``: the method as the project base classes define it."""
        for base in cls.node.bases:
            qualified = self.qualified(base, cls.module)
            found = self.lookup(qualified, cls.module) if qualified else None
            if isinstance(found, Class) and found is not cls:
                method = self.method(found, name)
                if method is not None:
                    return method
        return None

    def constructor(self, cls: Class) -> Function | None:
        return self.method(cls, "__init__")

    def functions(self) -> Iterator[Function]:
        for module in self.modules:
            yield from module.all_functions

    def programs(self) -> list[Project]:
        """The linked project split into its programs: modules joined by imports, which
        share nothing else, so each is analysed alone (and may be in another process).
        Only programs with a linted module; each keeps the project's order of modules."""
        members: dict[int, list[Module]] = {}
        for module, component in self.components().items():
            members.setdefault(component, []).append(module)
        return [
            self._part(modules)
            for modules in members.values()
            if any(module.linted for module in modules)
        ]

    def _part(self, modules: list[Module]) -> Project:
        part = Project()
        part._roots = self._roots
        part.syntax = self.syntax
        # Linked already: nothing more is loaded for context.
        part._context_loaded = MAX_CONTEXT_MODULES
        for module in modules:
            part.modules.append(module)
            part._by_name.setdefault(module.name, []).append(module)
            part._first_names.add(module.name.partition(".")[0])
            part._by_path[module.resolved] = module
        return part

    def components(self) -> dict[Module, int]:
        """Modules grouped by import: each group is one program for "eventually seeded"."""
        parent = {id(m): id(m) for m in self.modules}

        def find(key: int) -> int:
            while parent[key] != key:
                parent[key] = parent[parent[key]]
                key = parent[key]
            return key

        for module in self.modules:
            for imported in module.imports.values():
                for other in imported:
                    parent[find(id(other))] = find(id(module))
        return {m: find(id(m)) for m in self.modules}


def deepest_beyond(tree: ast.AST, limit: int) -> ast.AST | None:
    """The first node nested deeper than ``limit``, if any: the analyses recurse along the
    tree, so such a file is refused rather than crashing them."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return node
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def _aliases(nodes: Iterable[ast.AST], module_name: str, *, is_package: bool) -> dict[str, str]:
    """Local name -> the module or object it was imported as, for every import in the file;
    relative imports are made absolute against the module's own package."""
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".", 1)[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module_name, is_package=is_package)
            if base is None:
                continue
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = (
                        f"{base}.{alias.name}" if base else alias.name
                    )
    return aliases


def _absolute(node: ast.ImportFrom, module_name: str, *, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    package = module_name.split(".")
    if not is_package:
        package = package[:-1]
    if node.level - 1 > len(package):
        return None
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _imported_names(node: ast.Import | ast.ImportFrom, module: Module) -> list[str]:
    """The modules an import statement may load: ``import a.b`` loads ``a.b``;
    ``from a import b`` loads ``a`` and, when ``b`` is a submodule, ``a.b``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _absolute(node, module.name, is_package=module.path.name == "__init__.py")
    if base is None:
        return []
    names = [base] if base else []
    names += [
        f"{base}.{alias.name}" if base else alias.name for alias in node.names if alias.name != "*"
    ]
    return names


def _index_definitions(module: Module) -> None:
    _index_scope(module, module.tree.body, None, None)


def _index_scope(
    module: Module, body: list[ast.stmt], owner: Class | None, parent: Function | None
) -> None:
    # A function of the module, not a closure that calls itself: a recursive closure is a
    # reference cycle, which would keep the module's tree alive until a collection.
    for node in _statements(body):
        if isinstance(node, _FUNCTIONS):
            function = Function(node, module, owner, parent=parent)
            module.all_functions.append(function)
            if parent is not None:
                parent.local_functions[node.name] = function
            elif owner is not None:
                owner.methods[node.name] = function
            else:
                module.functions[node.name] = function
            _index_scope(module, node.body, None, function)
        elif isinstance(node, ast.ClassDef):
            cls = Class(node, module)
            if owner is None and parent is None:
                module.classes[node.name] = cls
            _index_scope(module, node.body, cls, None)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a block, descending into if/for/while/try/with (a definition inside
    ``if TYPE_CHECKING`` or a try is still a definition of this scope)."""
    for node in body:
        yield node
        if isinstance(node, _DEFINITIONS):
            continue
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(node, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _statements(inner)
        for handler in getattr(node, "handlers", []) or []:
            yield from _statements(handler.body)
        for case in getattr(node, "cases", []) or []:
            yield from _statements(case.body)
