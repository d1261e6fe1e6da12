"""Where values that differ between runs go: the flow rules fire only when one reaches a
result.

A timestamp that is printed is harmless; the same timestamp in a metrics file is not. The
rules about values (HR010 clock and host, HR011 OS entropy, HR012 set order, HR014 file
listing order, HR015 completion order, HR016 string hashes, HR018 seeds that are not fixed)
therefore follow each value from its source to where it ends:

- results: a value a function returns to no caller in the project (an entry point, a
  ``forward``, a ``__getitem__``), an artifact written (``np.save``, ``json.dump``,
  ``.to_csv``, ``.write``, ...), a metric logged (``mlflow.log_metric``, ``self.log``,
  ``writer.add_scalar``, ...) or data given to training (``.fit``, ``.partial_fit``);
- seeds: a seeding call, a generator constructor, or a ``seed=`` / ``random_state=``
  argument, where a clock, entropy or unseeded draw makes HR018 and a string hash HR016;
- nothing: ``print``, ``logging``, plot labels, progress bars.

Within a function the analysis is flow-insensitive (a name is as tainted as the union of
what is assigned to it) and iterated to a fixed point; containers take the taint of what is
appended to them, objects of what is assigned to their attributes (``self.files`` is shared
by the methods of a class). Across functions of the project each function gets a summary:
which of its parameters reach its return value and which reach a result or a seed, so a
helper that returns ``time.time()`` to a caller that only prints it is not a finding.

Order is a property of a sequence, not of its items: iterating over a listing gives items
that are each fine, but what is accumulated across the loop (appended, summed, written to
one file, returned from inside it) takes the order. ``sorted``, ``len``, ``set``, ``min``,
``max``, ``sum``, ``any``, ``all``, membership tests and ``.sort()`` remove it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from harness.lint import apis
from harness.lint.project import Class, Function, Module, Project
from harness.lint.seeding import SeedWalk, constant

# Kinds of nodes tested together, as tuples: ``isinstance(node, A | B)`` builds the
# union at each test, which costs more than the test in the loops over every node.
_ANNOTATED_OR_AUGMENTED = (ast.AnnAssign, ast.AugAssign)
_CALL_OR_SUBSCRIPT = (ast.Call, ast.Subscript)
_COMPREHENSIONS = (ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FOR = (ast.For, ast.AsyncFor)
_MEMBERSHIP = (ast.In, ast.NotIn)
_SEQUENCES = (ast.Tuple, ast.List)
_SETS = (ast.Set, ast.SetComp)
_TRY = (ast.Try, ast.TryStar)
_WAITS = (ast.Yield, ast.YieldFrom, ast.Await)
_WHILE_OR_IF = (ast.While, ast.If)
_WITH = (ast.With, ast.AsyncWith)
_YIELDS = (ast.Yield, ast.YieldFrom)

# Rule ids of the sources; DRAW and PARAM are internal: an unseeded global draw (only a
# finding when it becomes a seed) and a function's parameter (resolved at each call).
DRAW = "DRAW"
PARAM = "PARAM"
_SEED_VALUE_KINDS = frozenset({"HR010", "HR011", DRAW})
# What may make a source (see Flow._may_have_sources): builtins called by name, methods,
# and functions by their qualified name (joblib.Parallel: its unordered results).
_SOURCE_BUILTINS = frozenset({"hash", "set", "frozenset"})
_SOURCE_METHODS = apis.LISTING_METHODS | apis.UNORDERED_METHODS
_SOURCE_CALLS = frozenset(
    {
        *apis.CLOCK_OR_HOST,
        *apis.OS_ENTROPY,
        *apis.LISTINGS,
        *apis.WALKS,
        *apis.UNORDERED_CALLS,
        "joblib.Parallel",
    }
)
_MAX_PASSES = 6
_MAX_ROUNDS = 4
# Related locations kept per finding: enough to show the pattern, bounded for huge files.
_MAX_RELATED = 20


@dataclass(frozen=True, eq=False)
class Source:
    rule: str
    module: Module | None
    node: ast.AST
    detail: str
    ordered: bool = False
    # os.walk: the items it yields hold listings whose order is the file system's too.
    deep: bool = False
    # PARAM: the index of the parameter in its function.
    index: int = -1

    def __hash__(self) -> int:
        return hash((self.rule, id(self.node), self.ordered, self.index))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Source) and (self.rule, self.node, self.ordered, self.index) == (
            other.rule,
            other.node,
            other.ordered,
            other.index,
        )


Taint = frozenset[Source]
CLEAN: Taint = frozenset()


@dataclass(frozen=True, eq=False)
class Sink:
    kind: str  # "result" or "seed"
    what: str
    module: Module
    node: ast.AST


@dataclass(eq=False)
class FlowFinding:
    """A source that reaches a sink; HR018 findings are reported at the sink. ``related``
    holds the other places the same cause reaches (further sinks, or for HR018 the draw
    and the other seeds it feeds), ``cause`` the node that groups them."""

    rule: str
    module: Module
    node: ast.AST
    detail: str
    cause: ast.AST | None = None
    related: list[tuple[Module, ast.AST, str]] = field(default_factory=list)


@dataclass
class Summary:
    returns: Taint = CLEAN
    # Parameter index -> the sinks it reaches, in the order the code reaches them (a
    # dict, not a set: a set of sinks iterates in the order of their addresses).
    sinks: dict[int, dict[Sink, None]] = field(default_factory=dict)


class Flow:
    def __init__(self, project: Project, walk: SeedWalk, called: set[int]) -> None:
        self.project = project
        self.walk = walk
        self.called = called
        self.findings: dict[tuple[str, int, str], FlowFinding] = {}
        # Unseeded global draws whose value reaches a result: id of the draw's call, and
        # the first result it reaches. A draw that only feeds a print, an assert, a trace
        # or a timing is not a finding of the state rules.
        self.reached_draws: dict[int, Sink] = {}
        self.class_env: dict[int, dict[str, Taint]] = {}
        self.module_env: dict[int, dict[str, Taint]] = {}
        self._summaries: dict[int, Summary] = {}
        self._active: set[int] = set()
        # What another round would see differently (see :meth:`run`): per program, the
        # first value read of each global or attribute shared between analyses.
        self._components = project.components()
        self._installed: set[int] = set()
        self._reads: dict[tuple[int, str], tuple[int, object]] = {}
        # Per body: the names only ever assigned a set, and those sorted in place.
        self._scope_facts: dict[int, tuple[frozenset[str], set[str]]] = {}
        self._call_facts: dict[int, _CallFacts] = {}
        self._parameters: dict[int, dict[str, Taint]] = {}

    def scope_facts(self, body: list[ast.stmt]) -> tuple[frozenset[str], set[str]]:
        key = id(body)
        if key not in self._scope_facts:
            self._scope_facts[key] = _scope_facts(self.project.syntax.scope(body))
        return self._scope_facts[key]

    def call_facts(self, call: ast.Call, module: Module, function: Function | None) -> _CallFacts:
        """:func:`_call_facts`, once per call: the trees do not change once read, nor do
        the imports, definitions and seeding walk they are judged by, and a call node lies
        in one scope, so each pass and round of the analysis would find the same."""
        known = self._call_facts.get(id(call))
        if known is None:
            known = self._call_facts[id(call)] = _call_facts(
                self.project, self.walk, call, module, function
            )
        return known

    def parameters(self, function: Function) -> dict[str, Taint]:
        """What each parameter of a function holds when its analysis starts: itself, as a
        PARAM source resolved at each call. Kept per function: its signature does not
        change, and every pass and round starts from the same."""
        known = self._parameters.get(id(function))
        if known is None:
            known = self._parameters[id(function)] = {}
            node = function.node
            for index, name in enumerate([*function.params, *function.keyword_only]):
                if name == function.self_name:
                    continue
                known[name] = frozenset(
                    {
                        Source(PARAM, None, node, name, index=index),
                        Source(PARAM, None, node, name, ordered=True, index=index),
                    }
                )
        return known

    def run(self) -> list[FlowFinding]:
        """Analyse every module and function, again while a later analysis changed what
        an earlier one read (a method reading an attribute another method sets later).

        A round is repeated only for the programs (modules joined by imports, which share
        no state with others) where some analysis read a global or attribute before its
        final value was known: elsewhere another round would compute exactly the same.
        """
        if not self._may_have_sources():
            return []
        components = self._components
        rerun = set(components.values())
        for round_number in range(_MAX_ROUNDS):
            before = self._snapshot() if round_number else ()
            self._summaries.clear()
            self._installed.clear()
            self._reads.clear()
            for module in self.project.modules:
                if components[module] not in rerun:
                    continue
                analysis = _Analysis(self, module, None)
                # Shared while it fills, so that functions the body calls see the globals
                # assigned so far.
                self.module_env[id(module)] = analysis.env
                self._installed.add(id(module))
                analysis.run(module.tree.body)
            for function in self.project.functions():
                if components[function.module] in rerun:
                    self.summary(function)
            rerun = self._stale()
            if not rerun or (round_number and self._snapshot() == before):
                break
        return list(self.findings.values())

    def _may_have_sources(self) -> bool:
        """Whether any value of the program can differ between runs: an unseeded draw,
        or a call or a set that :meth:`_Analysis._sources`, ``_set_order`` or
        ``_call_free`` may take as a source (a superset: names as written, whatever they
        are bound to). Where none can, every value is clean and the analysis finds
        nothing, so it is not run: most scripts of a gallery read no clock, list no folder
        and make no set. Keep in step with those methods."""
        if self.walk.draws_unseeded():
            return True
        qualified = self.project.qualified
        for module in self.project.modules:
            sets = len(module.of_kind(ast.Set)) + len(module.of_kind(ast.SetComp))
            if sets:
                return True  # a set's order (is_set), also through a name or .union()
            for node in module.of_kind(ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in _SOURCE_BUILTINS:
                    return True
                if isinstance(func, ast.Attribute) and func.attr in _SOURCE_METHODS:
                    return True
                name = qualified(func, module)
                if name is not None and (name in _SOURCE_CALLS or name.startswith("secrets.")):
                    return True
        return False

    def read_global(self, module: Module, name: str) -> Taint:
        """A function's read of a module-level name."""
        value = self.module_env.get(id(module), {}).get(name, CLEAN)
        if id(module) not in self._installed:
            # The module's body has not run in this round: the value is the last round's.
            self._reads.setdefault((id(module), name), (self._components[module], value))
        return value

    def read_attribute(self, owner: Class, attribute: str) -> Taint:
        """A method's read of ``self.attribute``."""
        value = self.class_env.get(id(owner), {}).get(attribute, CLEAN)
        key = (id(owner), f".{attribute}")
        self._reads.setdefault(key, (self._components[owner.module], value))
        return value

    def read_attributes(self, owner: Class) -> dict[str, Taint]:
        """Every attribute of a class, read (and extended) at one construction."""
        attributes = self.class_env.get(id(owner), {})
        key = (id(owner), "*")
        self._reads.setdefault(key, (self._components[owner.module], dict(attributes)))
        return attributes

    def _stale(self) -> set[int]:
        """The programs where a value read in this round differs from its final value:
        only there can another round find more. Values only grow within a round, so the
        first read of each is the one to compare."""
        stale: set[int] = set()
        for (key, name), (component, value) in self._reads.items():
            if component in stale:
                continue
            if name == "*":
                final: object = self.class_env.get(key, {})
            elif name.startswith("."):
                final = self.class_env.get(key, {}).get(name[1:], CLEAN)
            else:
                final = self.module_env.get(key, {}).get(name, CLEAN)
            if final != value:
                stale.add(component)
        return stale

    def _snapshot(self) -> tuple[object, ...]:
        classes = tuple(
            sorted((k, a, len(t)) for k, env in self.class_env.items() for a, t in env.items())
        )
        modules = tuple(
            sorted((k, n, len(t)) for k, env in self.module_env.items() for n, t in env.items())
        )
        return classes, modules

    def summary(self, function: Function) -> Summary:
        key = id(function)
        if key in self._summaries:
            return self._summaries[key]
        if key in self._active:
            return Summary()
        self._active.add(key)
        try:
            analysis = _Analysis(self, function.module, function)
            analysis.run(function.node.body)
        finally:
            self._active.discard(key)
        summary = Summary(analysis.returns, analysis.param_sinks)
        self._summaries[key] = summary
        if key not in self.called and self.walk.entry_point(function):
            # Nothing in the project calls it: what it returns is a result (an entry
            # point's metrics, a model's output, a dataset's item).
            sink = Sink(
                "result", f"the value {function.name}() returns", function.module, function.node
            )
            self.reach(analysis.returns, sink, None)
        return summary

    def reach(self, taint: Taint, sink: Sink, analysis: _Analysis | None) -> None:
        """Record what reaching ``sink`` means for each source in ``taint``."""
        for source in _in_code_order(taint):
            if source.rule == PARAM:
                if analysis is not None and analysis.owns(source):
                    analysis.param_sinks.setdefault(source.index, {})[sink] = None
                continue
            if sink.kind == "seed":
                if source.rule in _SEED_VALUE_KINDS:
                    where = _where(source, sink.module)
                    detail = f"{sink.what} is given {source.detail}{where}"
                    self._seed_from(source, FlowFinding("HR018", sink.module, sink.node, detail))
                elif source.rule == "HR016" and source.module is not None:
                    self._add(
                        FlowFinding(
                            "HR016",
                            source.module,
                            source.node,
                            f"{source.detail} becomes {sink.what}",
                        )
                    )
                continue
            if source.rule == DRAW:
                self.reached_draws.setdefault(id(source.node), sink)
                continue
            if source.module is None:
                continue
            where = _where_sink(sink, source.module)
            found = self._add(
                FlowFinding(
                    source.rule,
                    source.module,
                    source.node,
                    f"{source.detail} reaches {sink.what}{where}",
                )
            )
            _relate(found, sink.module, sink.node, f"reached: {sink.what}")

    def _add(self, finding: FlowFinding) -> FlowFinding:
        key = (finding.rule, id(finding.node), finding.module.shown)
        return self.findings.setdefault(key, finding)

    def _seed_from(self, source: Source, finding: FlowFinding) -> None:
        """One HR018 finding per random value, at the first seed it feeds; the draw and
        the other seeds are its related locations."""
        key = ("HR018", id(source.node), "")
        known = self.findings.get(key)
        if known is None:
            finding.cause = source.node
            self.findings[key] = finding
            if source.module is not None:
                _relate(finding, source.module, source.node, f"the random value: {source.detail}")
        else:
            _relate(known, finding.module, finding.node, "also seeded with it")


def _in_code_order(taint: Taint) -> Iterable[Source]:
    """The sources by where they lie in the code. A set of sources iterates in the order
    of their nodes' addresses, which differs from run to run, and the first source to
    reach a sink decides the message of a finding placed there (HR018's "is given ...")."""
    if len(taint) < 2:
        return taint
    return sorted(taint, key=_code_position)


def _code_position(source: Source) -> tuple[str, int, int, str, str, int, bool]:
    return (
        source.module.shown if source.module is not None else "",
        getattr(source.node, "lineno", 0),
        getattr(source.node, "col_offset", 0),
        source.rule,
        source.detail,
        source.index,
        source.ordered,
    )


def _relate(finding: FlowFinding, module: Module, node: ast.AST, what: str) -> None:
    if node is finding.node or any(node is known for _, known, _ in finding.related):
        return
    if len(finding.related) < _MAX_RELATED:
        finding.related.append((module, node, what))


def _where(source: Source, module: Module) -> str:
    line = getattr(source.node, "lineno", None)
    if line is None or source.module is None:
        return ""
    if source.module is module:
        return f" (line {line})"
    return f" ({source.module.shown}:{line})"


def _where_sink(sink: Sink, module: Module) -> str:
    line = getattr(sink.node, "lineno", None)
    if line is None:
        return ""
    if sink.module is module:
        return f" at line {line}"
    return f" at {sink.module.shown}:{line}"


class _Analysis:
    """One function (or a module's body), iterated until its names stop changing."""

    def __init__(self, flow: Flow, module: Module, function: Function | None) -> None:
        self.flow = flow
        self.project = flow.project
        self.module = module
        self.function = function
        self.env: dict[str, Taint] = {}
        self.returns: Taint = CLEAN
        self.param_sinks: dict[int, dict[Sink, None]] = {}
        self.sorted_names: set[str] = set()
        self.set_names: frozenset[str] = frozenset()
        self.self_name = function.self_name if function else None
        self.owner: Class | None = function.owner if function else None
        # The order of the loops around the expression statement being evaluated: what a
        # mutator puts into its receiver there arrives in that order.
        self._order: Taint = CLEAN
        # Unseeded draws that decide the branch being evaluated (an augmentation applied
        # when random.random() < p): what the branch assigns or returns depends on them.
        self._control: Taint = CLEAN
        # The first value each name (or attribute of self, or class) had when this pass
        # read it; None for a name not bound yet. When every one is still the value at
        # the end of the pass, another pass would compute the same: see run().
        self._reads: dict[str | tuple[int, str], object] = {}

    def owns(self, source: Source) -> bool:
        return self.function is not None and source.node is self.function.node

    def run(self, body: list[ast.stmt]) -> None:
        self.set_names, self.sorted_names = self.flow.scope_facts(body)
        if self.function is not None:
            self.env.update(self.flow.parameters(self.function))
        for _ in range(_MAX_PASSES):
            before = (dict(self.env), self.returns, self._class_size())
            self._reads.clear()
            self._block(body, CLEAN)
            # Names only gain sources within a pass, so a pass whose reads all saw their
            # final values is a fixed point: the next would read and write the same.
            if not self._stale() or (dict(self.env), self.returns, self._class_size()) == before:
                break

    def _stale(self) -> bool:
        class_env = self.flow.class_env
        for key, value in self._reads.items():
            if isinstance(key, str):
                current: object = self.env.get(key)
            elif key[1] == "*":
                current = class_env.get(key[0], {})
            else:
                current = class_env.get(key[0], {}).get(key[1], CLEAN)
            if current != value:
                return True
        return False

    def _class_size(self) -> int:
        if self.owner is None:
            return 0
        return sum(len(t) for t in self.flow.class_env.get(id(self.owner), {}).values())

    # -- statements --------------------------------------------------------------------

    def _block(self, body: list[ast.stmt], order: Taint) -> None:
        for statement in body:
            self._statement(statement, order)

    def _statement(self, node: ast.stmt, order: Taint) -> None:  # noqa: PLR0912, PLR0915
        if isinstance(node, _DEFINITIONS):
            return
        if isinstance(node, ast.Assign):
            value = self.eval(node.value)
            accumulates = self._names(node.value) if order else set()
            for target in node.targets:
                self._bind(target, value, order, accumulates)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                accumulates = self._names(node.value) if order else set()
                self._bind(node.target, self.eval(node.value), order, accumulates)
        elif isinstance(node, ast.AugAssign):
            value = self.eval(node.value) | self.eval(node.target) | order
            self._bind(node.target, value, CLEAN, set())
        elif isinstance(node, _FOR):
            iterated = self.eval(node.iter)
            ordered = _ordered(iterated) | self._set_order(node.iter, "a for loop over a set")
            self._bind(node.target, _items(iterated), CLEAN, set())
            self._block(node.body, order | ordered)
            self._block(node.orelse, order)
        elif isinstance(node, _WHILE_OR_IF):
            deciding = _draws(self.eval(node.test))
            saved = self._control
            self._control = saved | deciding
            self._block(node.body, order)
            self._block(node.orelse, order)
            self._control = saved
        elif isinstance(node, _WITH):
            for item in node.items:
                value = self.eval(item.context_expr)
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, value, CLEAN, set())
            self._block(node.body, order)
        elif isinstance(node, _TRY):
            self._block(node.body, order)
            for handler in node.handlers:
                self._block(handler.body, order)
            self._block(node.orelse, order)
            self._block(node.finalbody, order)
        elif isinstance(node, ast.Match):
            self.eval(node.subject)
            for case in node.cases:
                self._block(case.body, order)
        elif isinstance(node, ast.Return):
            if node.value is not None:
                self.returns |= self.eval(node.value) | order | self._control
        elif isinstance(node, ast.Expr):
            expression = node.value
            if isinstance(expression, _YIELDS):
                if expression.value is not None:
                    self.returns |= self.eval(expression.value) | order
            else:
                self._order = order
                self.eval(expression)
                self._order = CLEAN
        else:
            for child in self.project.syntax.children(node):
                if isinstance(child, ast.expr):
                    self.eval(child)

    def _bind(self, target: ast.expr, value: Taint, order: Taint, accumulates: set[str]) -> None:
        value = value | self._control
        if isinstance(target, ast.Name):
            taint = value | (order if target.id in accumulates else CLEAN)
            if target.id in self.sorted_names:
                taint = _order_free(taint)
            self.env[target.id] = self.env.get(target.id, CLEAN) | taint
        elif isinstance(target, _SEQUENCES):
            for element in target.elts:
                self._bind(element, value, order, accumulates)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, value, order, accumulates)
        elif isinstance(target, ast.Subscript):
            # d[k] = v puts v into d, in the order the loop runs. The key is left out, as
            # in lookups: names are flow-insensitive here, and a loop variable reused
            # over a tainted container elsewhere would taint every store keyed by it.
            self._store_into(target.value, value | _ordered(self.eval(target.slice)) | order)
        elif isinstance(target, ast.Attribute):
            self._store_into(target, value | order)

    def _store_into(self, node: ast.expr, taint: Taint) -> None:
        """``container`` (a name, or an attribute of self) now holds ``taint`` too."""
        taint = taint | self._control
        if not taint:
            return
        if isinstance(node, ast.Name):
            if node.id in self.sorted_names:
                taint = _order_free(taint)
            self.env[node.id] = self.env.get(node.id, CLEAN) | taint
        elif isinstance(node, ast.Attribute):
            if (
                isinstance(node.value, ast.Name)
                and node.value.id == self.self_name
                and self.owner is not None
            ):
                attributes = self.flow.class_env.setdefault(id(self.owner), {})
                attributes[node.attr] = attributes.get(node.attr, CLEAN) | taint
            else:
                self._store_into(node.value, taint)
        elif isinstance(node, ast.Subscript):
            self._store_into(node.value, taint)

    # -- expressions -------------------------------------------------------------------

    def eval(self, node: ast.expr) -> Taint:  # noqa: PLR0911, PLR0912
        if isinstance(node, ast.Name):
            value = self.env.get(node.id)
            self._reads.setdefault(node.id, value)
            if value is not None:
                return value
            if self.function is not None:
                return self.flow.read_global(self.module, node.id)
            return CLEAN
        # The most frequent kinds first (on deep-learning code: Name 39%, Constant 22%,
        # Call 19%, Attribute 8% of the evaluations); the kinds are disjoint.
        if isinstance(node, ast.Constant):
            return CLEAN
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            if (
                isinstance(node.value, ast.Name)
                and node.value.id == self.self_name
                and self.owner is not None
            ):
                value = self.flow.read_attribute(self.owner, node.attr)
                self._reads.setdefault((id(self.owner), node.attr), value)
                return value
            computed = self.flow.walk.defaults.computed.get((id(self.module), node.attr))
            if computed is not None and isinstance(node.value, ast.Name):
                # args.log_dir: the option's default, computed when the parser is built.
                return self.eval(node.value) | self._call_free(computed)
            return self.eval(node.value)
        if isinstance(node, ast.Subscript):
            # Containers hold keys and values under one taint; a key read from a tainted
            # container's iteration would otherwise taint every lookup. Which item a
            # position picks still depends on the order, and which item a random index
            # picks on the draw (X[permutation], np.r_[noise + 2, noise - 2]).
            index = self.eval(node.slice)
            return self.eval(node.value) | _ordered(index) | _draws(index)
        if isinstance(node, ast.Lambda):
            return CLEAN
        if isinstance(node, ast.Compare):
            taint = self.eval(node.left).union(*(self.eval(c) for c in node.comparators))
            if any(isinstance(op, _MEMBERSHIP) for op in node.ops):
                return _order_free(taint)
            return taint
        if isinstance(node, ast.Set):
            return _order_free(self._union(node.elts))
        if isinstance(node, _COMPREHENSIONS):
            return self._comprehension(node)
        if isinstance(node, ast.NamedExpr):
            value = self.eval(node.value)
            self._bind(node.target, value, CLEAN, set())
            return value
        if isinstance(node, ast.IfExp):
            deciding = _draws(self.eval(node.test))
            return self.eval(node.body) | self.eval(node.orelse) | deciding
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            left, right = self.eval(node.left), self.eval(node.right)
            if _clock(left) and _clock(right):
                # The difference of two clock readings is a duration.
                return frozenset(s for s in left | right if not _is_clock(s))
            return left | right
        if isinstance(node, ast.Dict):
            return self._union([k for k in node.keys if k is not None]) | self._union(node.values)
        if isinstance(node, _WAITS):
            return self.eval(node.value) if node.value is not None else CLEAN
        children = [c for c in self.project.syntax.children(node) if isinstance(c, ast.expr)]
        return self._union(children)

    def _call_free(self, node: ast.expr) -> Taint:
        """The sources in an expression read elsewhere (an option's default), without
        following names, which belong to another scope."""
        found: set[Source] = set()
        for part in self.project.syntax.walk(node):
            if isinstance(part, ast.Call):
                name = self.project.qualified(part.func, self.module)
                if name in apis.CLOCK_OR_HOST and not part.args:
                    found.add(Source("HR010", self.module, part, f"{name}()"))
        return frozenset(found)

    def _union(self, nodes: Iterable[ast.expr]) -> Taint:
        result: set[Source] = set()
        for node in nodes:
            result |= self.eval(node)
        return frozenset(result)

    def _comprehension(
        self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp | ast.DictComp
    ) -> Taint:
        saved = dict(self.env)
        walk = self.project.syntax.walk
        bound = {n.id for g in node.generators for n in walk(g.target) if isinstance(n, ast.Name)}
        unread = [name for name in bound if name not in self._reads]
        ordered: Taint = CLEAN
        filters: Taint = CLEAN
        for generator in node.generators:
            iterated = self.eval(generator.iter)
            ordered |= _ordered(iterated) | self._set_order(
                generator.iter, "a comprehension over a set"
            )
            self._bind(generator.target, _items(iterated), CLEAN, set())
            for condition in generator.ifs:
                # A filter decides which items are in the result.
                filters |= self.eval(condition)
        if isinstance(node, ast.DictComp):
            element = self.eval(node.key) | self.eval(node.value) | filters
        else:
            element = self.eval(node.elt) | filters
        for name in bound:
            if name in saved:
                self.env[name] = saved[name]
            else:
                self.env.pop(name, None)
        for name in unread:
            if name in self._reads:
                # Read inside, the name held the comprehension's own value, which follows
                # from the iterables' reads (recorded) and the name's value before it: that
                # is the read to compare with the final value, or a comprehension would
                # always look stale (its name is unbound again after it) and cost a pass.
                self._reads[name] = saved.get(name)
        if isinstance(node, ast.SetComp):
            return _order_free(element)
        return element | ordered

    def _names(self, node: ast.expr) -> set[str]:
        """The names an expression reads: ``total = total + x`` in a loop accumulates."""
        return {n.id for n in self.project.syntax.walk(node) if isinstance(n, ast.Name)}

    def _set_order(self, node: ast.expr, what: str) -> Taint:
        if not self.is_set(node):
            return CLEAN
        return frozenset({Source("HR012", self.module, node, what, ordered=True)})

    def is_set(self, node: ast.expr) -> bool:
        """Whether ``node`` evidently evaluates to a set (see HR012's scope)."""
        if isinstance(node, _SETS):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.set_names
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.BitOr | ast.BitAnd | ast.Sub | ast.BitXor
        ):
            return self.is_set(node.left) or self.is_set(node.right)
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("set", "frozenset"):
            return self._builtin(func.id)
        return (
            isinstance(func, ast.Attribute)
            and func.attr in apis.SET_METHODS
            and self.is_set(func.value)
        )

    def _builtin(self, name: str) -> bool:
        """A bare name that is Python's builtin: not imported, defined or assigned here."""
        if (
            name in self.module.aliases
            or name in self.module.functions
            or name in self.module.classes
        ):
            return False
        value = self.env.get(name)
        self._reads.setdefault(name, value)
        return value is None

    # -- calls -------------------------------------------------------------------------

    def _call(self, call: ast.Call) -> Taint:
        func = call.func
        facts = self.flow.call_facts(call, self.module, self.function)
        name, attr = facts.name, facts.attr
        bare = func.id if isinstance(func, ast.Name) and self._builtin(func.id) else None
        arguments = [self.eval(a) for a in call.args]
        keywords = {k.arg: self.eval(k.value) for k in call.keywords}
        given = CLEAN.union(*arguments, *keywords.values())
        receiver = self.eval(func.value) if isinstance(func, ast.Attribute) else CLEAN
        if isinstance(func, _CALL_OR_SUBSCRIPT):
            receiver = self.eval(func)
        order = self._order
        sources = facts.sources if facts.sources is not None else self._sources(call, facts, bare)

        for key, what in facts.seeds:
            taint = given if key is None else keywords[key]
            self.flow.reach(taint, Sink("seed", what, self.module, call), self)

        if bare in apis.DISPLAY_BUILTINS or facts.display:
            stream = facts.print_file
            if bare == "print" and stream is not None:
                self.flow.reach(
                    given | self.eval(stream) | order,
                    Sink("result", "print(file=...)", self.module, call),
                    self,
                )
            return CLEAN
        if bare in apis.ORDER_FREE or facts.order_free:
            return _order_free(given | receiver) | sources
        if facts.tracer:
            # The example input picks the path through the module; the traced module (and
            # the file an export writes) holds the module's weights, not the input.
            return sources | (arguments[0] if arguments else CLEAN)
        if facts.in_place_draw:
            self._store_into(call.args[0], _draws(sources))
        if facts.sink is not None:
            # Training takes its arguments into the model; a writer also writes where its
            # receiver points (a file opened under a timestamped name).
            # Inside a loop over a listing, only a method sink (a file, a writer, a model
            # opened before the loop) accumulates in the loop's order; np.save(path, x)
            # per item writes each item alone.
            sink = Sink("result", facts.sink, self.module, call)
            training = attr in apis.TRAINING_METHODS
            in_order = order if isinstance(func, ast.Attribute) and not name else CLEAN
            self.flow.reach(given | in_order | (CLEAN if training else receiver), sink, self)
        if facts.mutator and isinstance(func, ast.Attribute):
            self._store_into(func.value, given | order)

        target = facts.target
        if isinstance(target, Class):
            if facts.constructor is not None:
                self._through(call, facts.constructor, arguments, keywords, bound=True, cls=target)
            return sources | given
        if isinstance(target, Function):
            bound = target.is_method and isinstance(func, ast.Attribute)
            return sources | self._through(call, target, arguments, keywords, bound=bound, cls=None)
        return sources | given | receiver

    def _through(
        self,
        call: ast.Call,
        target: Function,
        arguments: list[Taint],
        keywords: dict[str | None, Taint],
        *,
        bound: bool,
        cls: Class | None,
    ) -> Taint:
        """A project function's summary applied at one call: its return value, and the
        sinks its parameters reach, in terms of this call's arguments."""
        summary = self.flow.summary(target)
        names = [*target.params, *target.keyword_only]
        actual: dict[int, Taint] = {}
        offset = 1 if bound else 0
        for position, (argument, node) in enumerate(zip(arguments, call.args, strict=True)):
            if isinstance(node, ast.Starred):
                break
            actual[position + offset] = argument
        for key, value in keywords.items():
            if key in names:
                actual[names.index(key)] = value

        def substitute(taint: Taint) -> Taint:
            result: set[Source] = set()
            for source in taint:
                if source.rule == PARAM and source.node is target.node:
                    given = actual.get(source.index, CLEAN)
                    result |= {s for s in given if s.ordered == source.ordered or s.deep}
                else:
                    result.add(source)
            return frozenset(result)

        for index, sinks in summary.sinks.items():
            for sink in sinks:
                self.flow.reach(actual.get(index, CLEAN), sink, self)
        if cls is not None:
            attributes = self.flow.read_attributes(cls)
            if (id(cls), "*") not in self._reads:
                self._reads[(id(cls), "*")] = dict(attributes)
            for attribute, taint in list(attributes.items()):
                replaced = substitute(taint)
                if replaced != taint:
                    attributes[attribute] = taint | replaced
        return substitute(summary.returns)

    def _sources(self, call: ast.Call, facts: _CallFacts, bare: str | None) -> Taint:
        """The sources a call makes where its name alone does not decide (see
        :func:`_call_facts`): ``hash()`` and the order of a set, which depend on whether
        the name is Python's builtin here and on what the argument holds."""
        found: Source | None = None
        if bare == "hash" and call.args and not isinstance(constant(call.args[0]), int | float):
            found = Source("HR016", self.module, call, "hash()")
        elif (
            (bare in apis.ORDER_KEEPING or facts.attr == "join")
            and call.args
            and self.is_set(call.args[0])
        ):
            found = Source(
                "HR012", self.module, call, f"{bare or 'str.join'}() of a set", ordered=True
            )
        if found is None:
            return facts.later_sources
        return frozenset((found, *facts.later_sources))


class _CallFacts(NamedTuple):
    """What a call is, whatever the values that reach it: its name, whether it displays,
    writes or seeds, the sources its name makes, the project function it runs. Kept per
    call by :meth:`Flow.call_facts`."""

    name: str | None
    attr: str | None
    # None: the first source (by name) is not known from the name alone (see
    # _Analysis._sources); else every source the call makes.
    sources: Taint | None
    # The sources that follow the first: an unordered Parallel, an unseeded draw.
    later_sources: Taint
    # (keyword, how to name it) of each value the call uses as a seed; None: every
    # argument.
    seeds: tuple[tuple[str | None, str], ...]
    display: bool
    # print(file=...): the stream, when it is not standard output or error.
    print_file: ast.expr | None
    order_free: bool
    tracer: bool
    in_place_draw: bool
    # How to name the result the call writes, logs or trains on; None: none.
    sink: str | None
    mutator: bool
    target: Function | Class | None
    constructor: Function | None


def _call_facts(  # noqa: PLR0912 (one branch per kind of source)
    project: Project, walk: SeedWalk, call: ast.Call, module: Module, function: Function | None
) -> _CallFacts:
    func = call.func
    name = project.qualified(func, module)
    attr = func.attr if isinstance(func, ast.Attribute) else None
    first: Source | None = None
    known = True
    if name is not None and name in apis.CLOCK_OR_HOST:
        explicit = apis.CLOCK_OR_HOST[name]
        if explicit is None or len(call.args) < explicit:
            first = Source("HR010", module, call, f"{name}()")
    elif name is not None and (
        name in apis.OS_ENTROPY
        or (name.startswith("secrets.") and name.rpartition(".")[2] in apis.SECRETS)
    ):
        first = Source("HR011", module, call, f"{name}()")
    elif name in apis.LISTINGS:
        first = Source("HR014", module, call, f"{name}()", ordered=True)
    elif name in apis.WALKS:
        first = Source("HR014", module, call, f"{name}()", ordered=True, deep=True)
    elif name in apis.UNORDERED_CALLS:
        first = Source("HR015", module, call, f"{name}()", ordered=True)
    elif attr in apis.LISTING_METHODS and (name is None or name.startswith("pathlib.")):
        first = Source("HR014", module, call, f".{attr}()", ordered=True)
    elif attr in apis.UNORDERED_METHODS:
        first = Source("HR015", module, call, f".{attr}()", ordered=True)
    else:
        known = False  # hash() or a set's order, decided at each evaluation
    later: list[Source] = []
    if isinstance(func, ast.Call) and _unordered_parallel(project, func, module):
        later.append(
            Source(
                "HR015",
                module,
                call,
                "Parallel(return_as='generator_unordered')",
                ordered=True,
            )
        )
    if walk.unseeded(call):
        later.append(Source(DRAW, module, call, f"an unseeded draw, {name or attr}()"))
    sources = frozenset([first, *later] if first is not None else later) if known else None

    seeds: list[tuple[str | None, str]] = []
    if name in apis.SEEDS or name in apis.UNSEEDED_CONSTRUCTORS or attr == "manual_seed":
        seeds.append((None, f"{name or attr}()"))
    else:
        given = {k.arg for k in call.keywords if k.arg}
        for key in apis.SEED_KEYWORDS & given:
            seeds.append((key, f"{key}= of {name or attr or 'a call'}()"))

    stream = next((k.value for k in call.keywords if k.arg == "file"), None)
    if stream is not None and project.qualified(stream, module) in apis.STD_STREAMS:
        stream = None
    target = project.resolve_call(call, module, function)
    return _CallFacts(
        name=name,
        attr=attr,
        sources=sources,
        later_sources=frozenset(later),
        seeds=tuple(seeds),
        display=_display(project, name, attr, func, module),
        print_file=stream,
        order_free=name in apis.ORDER_FREE_QUALIFIED,
        tracer=name in apis.TRACERS,
        in_place_draw=name in apis.IN_PLACE_DRAWS and bool(call.args),
        sink=_sink(name, attr, func, module),
        mutator=attr in apis.MUTATORS,
        target=target,
        constructor=project.constructor(target) if isinstance(target, Class) else None,
    )


def _unordered_parallel(project: Project, node: ast.Call, module: Module) -> bool:
    name = project.qualified(node.func, module)
    mode = next((k.value for k in node.keywords if k.arg == "return_as"), None)
    return (
        name == "joblib.Parallel" and mode is not None and constant(mode) == "generator_unordered"
    )


def _display(
    project: Project, name: str | None, attr: str | None, func: ast.expr, module: Module
) -> bool:
    if name is not None and name.startswith(apis.DISPLAY_QUALIFIED_ROOTS):
        return True
    if attr in apis.DISPLAY_METHODS:
        return True
    if attr is not None and isinstance(func, ast.Attribute):
        receiver = project.qualified(func.value, module)
        if receiver in apis.STD_STREAMS:
            return True
        base = func.value
        if isinstance(base, ast.Name) and "log" in base.id.lower() and attr != "log_metric":
            return attr not in apis.METRIC_METHODS
    return False


def _sink(  # noqa: PLR0911 (one return per kind of result)
    name: str | None, attr: str | None, func: ast.expr, module: Module
) -> str | None:
    """How to name the result a call writes, logs or trains on, if it does."""
    if (
        name is not None
        and name.rpartition(".")[2] in apis.WRITER_FUNCTIONS
        and not (isinstance(func, ast.Name) and func.id in module.functions)
    ):
        return f"{name}()"
    if attr in apis.WRITER_METHODS:
        return f".{attr}()"
    if attr in apis.METRIC_METHODS:
        return f".{attr}()"
    if attr == "log" and isinstance(func, ast.Attribute):
        receiver = func.value
        tracker = (isinstance(receiver, ast.Name) and receiver.id in apis.METRIC_LOG_RECEIVERS) or (
            name is not None and name.startswith(("wandb.", "mlflow."))
        )
        if tracker:
            return ".log()"
    if attr in apis.TRAINING_METHODS or attr in apis.BACKWARD_METHODS:
        return f".{attr}()"
    if (
        attr == "train"
        and isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and "trainer" in func.value.id.lower()
    ):
        # A trainer object (transformers' Trainer, trl's) trains on what it was given.
        return ".train()"
    return None


def _draws(taint: Taint) -> Taint:
    return frozenset(s for s in taint if s.rule == DRAW)


def _is_clock(source: Source) -> bool:
    return source.rule == "HR010" and source.detail.removesuffix("()") in apis.CLOCKS


def _clock(taint: Taint) -> bool:
    return any(_is_clock(s) for s in taint)


def _ordered(taint: Taint) -> Taint:
    return frozenset(s for s in taint if s.ordered)


def _order_free(taint: Taint) -> Taint:
    return frozenset(s for s in taint if not s.ordered)


def _items(taint: Taint) -> Taint:
    """What iterating over a value gives each item: not the sequence's order, except for
    sources whose items hold ordered listings themselves (os.walk)."""
    return frozenset(s for s in taint if not s.ordered or s.deep)


def _scope_facts(nodes: Iterable[ast.AST]) -> tuple[frozenset[str], set[str]]:
    """In the nodes of one scope (not nested functions): the names every assignment of
    which is a set, and the names on which ``.sort()`` is called (their order is then the
    sort's)."""
    kinds: dict[str, bool] = {}
    sorted_names: set[str] = set()
    for node in nodes:
        if type(node) not in _SCOPE_FACT_NODES:
            continue  # most nodes: one test (parsed trees hold no subclasses)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "sort"
            and isinstance(node.func.value, ast.Name)
        ):
            sorted_names.add(node.func.value.id)
            continue
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, _ANNOTATED_OR_AUGMENTED) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                is_set = _looks_like_set(value)
                kinds[target.id] = kinds.get(target.id, True) and is_set
    return frozenset(name for name, is_set in kinds.items() if is_set), sorted_names


_SCOPE_FACT_NODES = frozenset({ast.Call, ast.Assign, ast.AnnAssign, ast.AugAssign})


def _looks_like_set(node: ast.expr) -> bool:
    if isinstance(node, _SETS):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("set", "frozenset")
    )
