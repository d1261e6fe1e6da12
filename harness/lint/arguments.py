"""What arguments hold as written: the default of an optional setting, and the keys of a
dict spread into a call.

A seed is often optional: ``parser.add_argument("--seed", type=int)`` (default None), a
``seed=None`` parameter, a ``seed: Optional[int] = None`` field, then
``if args.seed is not None: torch.manual_seed(args.seed)``. The default run, the one a
reader reproduces, has no seed. This module finds the default of such a setting so that
the seeding walk can follow the branch the default run takes, and name the default in the
finding. A setting whose default cannot be read statically (a config file, a value
computed at run time) gives None here, and the walk keeps both branches.

``DataLoader(dataset, **loader_kwargs)`` hides ``shuffle`` and ``num_workers`` in a dict
built earlier in the same function (a literal, ``dict(...)``, ``.update(...)``, item
assignments): :func:`spread_keywords` collects them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from harness.lint.project import Function, Module, Project
from harness.lint.syntax import Syntax

# Kinds of nodes tested together, as tuples: ``isinstance(node, A | B)`` builds the
# union at each test, which costs more than the test in the loops over every node.
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_NAMES = (ast.Name, ast.Attribute)


@dataclass(frozen=True)
class Default:
    """The value an optional setting has when the user gives none, and how to say so."""

    value: object
    described: str
    node: ast.AST


class Defaults:
    """Defaults of the settings of one project, read once."""

    def __init__(self, project: Project) -> None:
        # Keyed by (group, name): a setting is looked up in its own module first, then in
        # the modules it imports or is imported by (the program it belongs to), never in
        # an unrelated script that happens to name an option alike.
        self._options: dict[tuple[object, str], Default] = {}
        self._fields: dict[tuple[object, str], Default] = {}
        self._groups = project.components()
        # Options whose default is computed when the parser is built, per module:
        # ``default=f"runs/{date.today()}"`` puts the clock into ``args.log_dir``.
        self.computed: dict[tuple[int, str], ast.expr] = {}
        for module in project.modules:
            for call in module.of_kind(ast.Call):
                func = call.func
                if isinstance(func, ast.Attribute) and func.attr == "add_argument":
                    self._option(call, module)
            for definition in module.of_kind(ast.ClassDef):
                self._dataclass_fields(definition, module)

    def _option(self, call: ast.Call, module: Module) -> None:
        """``add_argument("--seed", type=int, default=None)``: dest ``seed``."""
        flags = [a.value for a in call.args if isinstance(a, ast.Constant)]
        names = [f for f in flags if isinstance(f, str)]
        if not names:
            return
        keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
        dest_node = keywords.get("dest")
        if isinstance(dest_node, ast.Constant) and isinstance(dest_node.value, str):
            dest = dest_node.value
        else:
            long = [n for n in names if n.startswith("--")]
            dest = (long[0] if long else names[0]).lstrip("-").replace("-", "_")
        flag = names[0] if len(names) == 1 else next((n for n in names if n.startswith("--")), "")
        action = keywords.get("action")
        action_name = action.value if isinstance(action, ast.Constant) else None
        required = keywords.get("required")
        if isinstance(required, ast.Constant) and required.value is True:
            return
        if "default" in keywords:
            given = keywords["default"]
            if not isinstance(given, ast.Constant):
                self.computed.setdefault((id(module), dest), given)
                return  # computed at run time: unknown
            value = given.value
            shown = f"{flag} defaults to {value!r}"
        elif action_name == "store_true":
            value, shown = False, f"{flag} is off unless given"
        elif action_name == "store_false":
            value, shown = True, f"{flag} is on unless given"
        else:
            value, shown = None, f"{flag} has no default (None)"
        default = Default(value, shown, call)
        self._options.setdefault((id(module), dest), default)
        self._options.setdefault((("program", self._groups[module]), dest), default)

    def _dataclass_fields(self, node: ast.ClassDef, module: Module) -> None:
        """``seed: Optional[int] = None`` (and ``field(default=None)``) in a class body."""
        for statement in node.body:
            if not (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and statement.value is not None
            ):
                continue
            value_node = statement.value
            if isinstance(value_node, ast.Call):
                value_node = next(
                    (k.value for k in value_node.keywords if k.arg == "default"), value_node
                )
            if isinstance(value_node, ast.Constant):
                name = statement.target.id
                shown = f"{node.name}.{name} defaults to {value_node.value!r}"
                default = Default(value_node.value, shown, statement)
                self._fields.setdefault((id(module), name), default)
                self._fields.setdefault((("program", self._groups[module]), name), default)

    def of(self, node: ast.expr, module: Module, within: Function | None) -> Default | None:
        """The default of a setting read as ``args.seed`` (an option or a field) or as a
        parameter ``seed`` of the enclosing function; None when it is not known."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, _NAMES):
            for group in (id(module), ("program", self._groups[module])):
                found = self._options.get((group, node.attr)) or self._fields.get(
                    (group, node.attr)
                )
                if found is not None:
                    return found
            return None
        if isinstance(node, ast.Name) and within is not None:
            return _parameter_default(within, node.id)
        return None


def _parameter_default(function: Function, name: str) -> Default | None:
    arguments = function.node.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[tuple[ast.arg, ast.expr | None]] = [
        *zip(
            positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True
        ),
        *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True),
    ]
    for argument, value in defaults:
        if argument.arg == name and isinstance(value, ast.Constant):
            shown = f"{function.name}({name}={value.value!r}) by default"
            return Default(value.value, shown, argument)
    return None


@dataclass(frozen=True)
class SeedTest:
    """``if args.seed is not None:``: the setting tested, how (``truth``: ``if X``;
    otherwise a comparison with None), and whether the test is negated."""

    setting: ast.expr
    truth: bool
    negated: bool

    def body_runs(self, default: Default) -> bool:
        """Whether the body runs when the setting keeps its default."""
        holds = bool(default.value) if self.truth else default.value is not None
        return holds != self.negated


def seed_test(test: ast.expr) -> SeedTest | None:
    """A test of whether one setting was given: ``X``, ``not X``, ``X is (not) None``,
    ``X != None`` (and ``X is not None and ...`` on its left side)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and test.values:
        inner = seed_test(test.values[0])
        # `X is not None and ...`: the body runs only when the left side holds.
        return inner if inner is not None and not inner.negated else None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = seed_test(test.operand)
        return None if inner is None else SeedTest(inner.setting, inner.truth, not inner.negated)
    if _setting(test):
        return SeedTest(test, truth=True, negated=False)
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and _setting(test.left)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    ):
        op = test.ops[0]
        if isinstance(op, ast.IsNot | ast.NotEq):
            return SeedTest(test.left, truth=False, negated=False)
        if isinstance(op, ast.Is | ast.Eq):
            return SeedTest(test.left, truth=False, negated=True)
    return None


def _setting(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) or (
        isinstance(node, ast.Attribute) and isinstance(node.value, _NAMES)
    )


# -- dicts spread into calls ---------------------------------------------------------------


def spread_keywords(body: list[ast.stmt], syntax: Syntax) -> dict[str, dict[str, ast.expr]]:
    """For each name in one scope assigned a dict of string keys: its keys and the last
    value written under each (``x = {...}``, ``x = dict(...)``, ``x.update(...)``,
    ``x["k"] = v``). A name also assigned anything else is left out: its keys are unknown."""
    found: dict[str, dict[str, ast.expr]] = {}
    unknown: set[str] = set()
    updates: list[tuple[str, ast.expr]] = []
    for node in _scope_nodes(body, syntax):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                keys = _dict_keys(node.value)
                if keys is None:
                    unknown.add(target.id)
                else:
                    found.setdefault(target.id, {}).update(keys)
            elif (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and isinstance(target.slice, ast.Constant)
                and isinstance(target.slice.value, str)
            ):
                found.setdefault(target.value.id, {})[target.slice.value] = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
            and isinstance(node.func.value, ast.Name)
        ):
            name = node.func.value.id
            for keyword in node.keywords:
                if keyword.arg is not None:
                    found.setdefault(name, {})[keyword.arg] = keyword.value
            updates.extend((name, argument) for argument in node.args)
    for name, argument in updates:
        keys = found.get(argument.id) if isinstance(argument, ast.Name) else _dict_keys(argument)
        if keys is None:
            unknown.add(name)
        else:
            found.setdefault(name, {}).update(keys)
    return {name: keys for name, keys in found.items() if name not in unknown}


def _dict_keys(node: ast.expr) -> dict[str, ast.expr] | None:
    if isinstance(node, ast.Dict):
        if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
            return None
        return {
            k.value: v
            for k, v in zip(node.keys, node.values, strict=True)
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        }
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args or any(k.arg is None for k in node.keywords):
            return None
        return {k.arg: k.value for k in node.keywords if k.arg is not None}
    return None


def _scope_nodes(body: list[ast.stmt], syntax: Syntax) -> Iterator[ast.AST]:
    """The nodes of one scope in source order (an assignment before what follows it)."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        children = [child for child in syntax.children(node) if not isinstance(child, _DEFINITIONS)]
        stack.extend(reversed(children))
