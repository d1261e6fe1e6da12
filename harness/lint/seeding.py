"""Which global generators are seeded, and which determinism switches are on, at each draw.

The rules about global state (HR001, HR002, HR004-HR006, HR009, HR013, HR017) depend on what
ran before the call, not on what else the file contains: a draw before the seed, or a
seed inside a function nothing calls, leaves the draw unseeded; a seed set by a helper in
another module that the entry calls seeds it. So the program is walked in execution order,
statement by statement, entering the project functions that each call names, with a state
that holds the generators seeded so far (and the switches turned on). Each draw site
remembers whether any walk reached it with its generator unseeded.

Where the walk starts: the body of every module no other project module imports (a
script, or a module run by harness), then every module-level function nothing calls (an
entry point such as an experiment's ``train(output, seed)``), in the state its module's
body leaves. Functions the code never calls by name (methods such as ``forward`` or
``__getitem__``, callbacks passed as values) run later, when the framework calls them: they
are walked in the state the program eventually reaches, the union of what its roots seed.

Branches are merged by union (a seed under ``if args.seed is not None`` counts), loops are
walked once; both choices favour precision over recall, as a linter left on in CI must.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.lint import apis
from harness.lint.project import Class, Function, Module, Project

State = frozenset[str]
EMPTY: State = frozenset()
# What harness's runtime sets before it calls an experiment: every global generator seeded
# and every determinism switch on.
MANAGED: State = frozenset(
    {
        apis.PYTHON,
        apis.NUMPY,
        apis.TORCH,
        apis.TENSORFLOW,
        apis.TORCH_DETERMINISTIC,
        apis.TF_DETERMINISTIC,
    }
)
# The key, in a managed mapping, that stands for a module's body (a command's script).
MODULE_BODY = ""
# Statements and calls walked in one run at most: a bound for pathological code, far
# above what real projects need.
_BUDGET = 500_000


@dataclass
class Site:
    """A call whose finding depends on the state in which it runs."""

    call: ast.Call
    module: Module
    rule: str
    detail: str
    # The state atom that makes the call fine (a seeded generator, a switch); None: never.
    needs: str | None
    unmet: bool = False


class SeedWalk:
    """``managed`` maps a file (resolved) to what harness runs in it: entry function names,
    or :data:`MODULE_BODY` for a command's script. Those start in the :data:`MANAGED`
    state, as the runtime seeds everything before it calls them."""

    def __init__(
        self, project: Project, managed: Mapping[Path, frozenset[str]] | None = None
    ) -> None:
        self.project = project
        self._managed = {path.resolve(): names for path, names in (managed or {}).items()}
        self.sites: dict[tuple[int, str], Site] = {}
        self._memo: dict[tuple[int, State], State] = {}
        self._active: set[tuple[int, State]] = set()
        self._entered: set[int] = set()
        self._budget = _BUDGET
        # Project functions that some call in the project names (filled by run()).
        self.called: set[int] = set()

    # -- entry -------------------------------------------------------------------------

    def run(self) -> None:
        project = self.project
        called, referenced = _call_graph(project)
        self.called = called
        imported = {
            id(m) for module in project.modules for ms in module.imports.values() for m in ms
        }
        finals: dict[int, State] = {}
        for module in project.modules:
            run_by_harness = MODULE_BODY in self._managed.get(module.path.resolve(), frozenset())
            if id(module) not in imported or run_by_harness:
                finals[id(module)] = self.module_body(module, MANAGED if run_by_harness else EMPTY)
        for module in project.modules:
            if id(module) not in finals:
                exits = [s for (key, _), s in self._memo.items() if key == id(module)]
                finals[id(module)] = (
                    frozenset().union(*exits) if exits else self.module_body(module, EMPTY)
                )
        component = project.components()
        eventual: dict[int, State] = {}
        for module in project.modules:
            group = component[module]
            eventual[group] = eventual.get(group, EMPTY) | finals[id(module)]
        for function in project.functions():
            if (
                function.owner is None
                and function.parent is None
                and function.node.name
                in self._managed.get(function.module.path.resolve(), frozenset())
            ):
                self.function(function, MANAGED)
        for function in project.functions():
            if (
                function.owner is None
                and function.parent is None
                and id(function) not in self._entered
                and id(function) not in called
                and id(function) not in referenced
            ):
                state = self.function(function, finals[id(function.module)])
                group = component[function.module]
                eventual[group] = eventual[group] | state
        for function in project.functions():
            if id(function) not in self._entered:
                start = eventual[component[function.module]] | finals[id(function.module)]
                self.function(function, start)

    def unseeded(self, call: ast.Call) -> bool:
        """Whether a global draw ran, in some walk, with its generator unseeded."""
        return any(
            site.needs in _GENERATORS and site.unmet
            for rule in _DRAW_RULES
            if (site := self.sites.get((id(call), rule))) is not None
        )

    # -- walking -----------------------------------------------------------------------

    def module_body(self, module: Module, state: State) -> State:
        return self._memoized(
            id(module), state, lambda: self._block(module.tree.body, module, None, state)
        )

    def function(self, function: Function, state: State) -> State:
        self._entered.add(id(function))
        node = function.node
        return self._memoized(
            id(function), state, lambda: self._block(node.body, function.module, function, state)
        )

    def _memoized(self, key: int, state: State, walk: Callable[[], State]) -> State:
        memo_key = (key, state)
        if memo_key in self._memo:
            return self._memo[memo_key]
        if memo_key in self._active or self._budget <= 0:
            return state
        self._active.add(memo_key)
        try:
            result = walk()
        finally:
            self._active.discard(memo_key)
        self._memo[memo_key] = result
        return result

    def _block(
        self, body: list[ast.stmt], module: Module, within: Function | None, state: State
    ) -> State:
        for statement in body:
            state = self._statement(statement, module, within, state)
        return state

    def _statement(  # noqa: PLR0911 (one branch per kind of statement)
        self, node: ast.stmt, module: Module, within: Function | None, state: State
    ) -> State:
        self._budget -= 1
        walk = self._block
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return self._expressions(node.decorator_list, module, within, state)
        if isinstance(node, ast.ClassDef):
            state = self._expressions([*node.decorator_list, *node.bases], module, within, state)
            body = [
                s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            return walk(body, module, within, state)
        if isinstance(node, ast.If):
            state = self._expressions([node.test], module, within, state)
            return walk(node.body, module, within, state) | walk(node.orelse, module, within, state)
        if isinstance(node, ast.For | ast.AsyncFor):
            state = self._expressions([node.iter], module, within, state)
            after = walk(node.body, module, within, state)
            return after | walk(node.orelse, module, within, after)
        if isinstance(node, ast.While):
            state = self._expressions([node.test], module, within, state)
            after = walk(node.body, module, within, state)
            return after | walk(node.orelse, module, within, after)
        if isinstance(node, ast.With | ast.AsyncWith):
            state = self._expressions(
                [item.context_expr for item in node.items], module, within, state
            )
            return walk(node.body, module, within, state)
        if isinstance(node, ast.Try | ast.TryStar):
            after = walk(node.body, module, within, state)
            for handler in node.handlers:
                after |= walk(handler.body, module, within, state)
            after = walk(node.orelse, module, within, after)
            return walk(node.finalbody, module, within, after)
        if isinstance(node, ast.Match):
            state = self._expressions([node.subject], module, within, state)
            merged = state
            for case in node.cases:
                merged |= walk(case.body, module, within, state)
            return merged
        if isinstance(node, ast.Import | ast.ImportFrom):
            for imported in module.imports.get(id(node), []):
                state = self.module_body(imported, state)
            return state
        children = [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]
        return self._expressions(children, module, within, state)

    def _expressions(
        self, nodes: list[ast.expr], module: Module, within: Function | None, state: State
    ) -> State:
        for node in nodes:
            for call in _calls_in_order(node):
                state = self._call(call, module, within, state)
        return state

    def _call(self, call: ast.Call, module: Module, within: Function | None, state: State) -> State:
        self._budget -= 1
        name = self.project.qualified(call.func, module)
        if name is not None:
            state = _switches(call, name, state)
        if name is not None and name.rpartition(".")[2] in apis.SKLEARN_ENSEMBLES:
            # The ensemble seeds the estimator it is given from its own random_state.
            for argument in [*call.args, *(k.value for k in call.keywords)]:
                self.sites.pop((id(argument), "HR013"), None)
        for rule, detail, needs in state_checks(call, name, module):
            site = self.sites.setdefault((id(call), rule), Site(call, module, rule, detail, needs))
            if needs is None or needs not in state:
                site.unmet = True
        target = self.project.resolve_call(call, module, within)
        if isinstance(target, Class):
            target = self.project.constructor(target)
        if isinstance(target, Function) and self._budget > 0:
            state = self.function(target, state)
        return state


_GENERATORS = frozenset({apis.PYTHON, apis.NUMPY, apis.TORCH, apis.TENSORFLOW})
# The rules whose sites are draws from a global generator (whose value can become a seed).
_DRAW_RULES = ("HR001", "HR002", "HR004", "HR005")


def _switches(call: ast.Call, name: str, state: State) -> State:
    """The state after a seeding call or a determinism switch."""
    if name in apis.SEEDS and not no_seed(call):
        return state | apis.SEEDS[name]
    if name == "torch.use_deterministic_algorithms":
        mode = call.args[0] if call.args else keyword(call, "mode")
        if mode is not None and constant(mode) is True:
            warn_only = keyword(call, "warn_only")
            if warn_only is None or constant(warn_only) is not True:
                return state | {apis.TORCH_DETERMINISTIC}
        if mode is not None and constant(mode) is False:
            return state - {apis.TORCH_DETERMINISTIC}
    if (
        name == "torch.set_deterministic_debug_mode"
        and call.args
        and constant(call.args[0]) in (2, "error")
    ):
        return state | {apis.TORCH_DETERMINISTIC}
    if name in (
        "tensorflow.config.experimental.enable_op_determinism",
        "keras.config.enable_op_determinism",
    ):
        return state | {apis.TF_DETERMINISTIC}
    return state


def state_checks(  # noqa: PLR0912 (one branch per family of calls)
    call: ast.Call, name: str | None, module: Module
) -> Iterator[tuple[str, str, str | None]]:
    """(rule, detail, what makes it fine) for each state rule the call falls under."""
    keywords = {k.arg for k in call.keywords if k.arg is not None}
    spread = any(k.arg is None for k in call.keywords)  # **kwargs: arguments unknown
    func = call.func
    attr = func.attr if isinstance(func, ast.Attribute) else None
    if name is not None:
        owner, _, function = name.rpartition(".")
        if owner == "random" and function in apis.PY_RANDOM:
            yield "HR001", f"{name}()", apis.PYTHON
        elif owner == "numpy.random" and function in apis.NUMPY_GLOBAL:
            yield "HR002", f"np.random.{function}()", apis.NUMPY
        elif (
            owner == "torch"
            and function in apis.TORCH_SAMPLERS
            and not ("generator" in keywords or spread)
        ):
            yield "HR004", f"torch.{function}() without generator=", apis.TORCH
        elif name == "torch.utils.data.random_split" and not ("generator" in keywords or spread):
            yield "HR004", "random_split() without generator=", apis.TORCH
        elif name in apis.TF_OPS and not ("seed" in keywords or spread):
            yield "HR005", f"tf.{name.removeprefix('tensorflow.')}() without seed=", apis.TENSORFLOW
        elif name.startswith("sklearn.") and not spread:
            yield from _sklearn(call, function, keywords)
        elif (
            name.startswith("torch.nn.")
            and function in apis.TORCH_LAYERS
            and owner in ("torch.nn", "torch.nn.modules")
        ):
            yield "HR017", f"nn.{function}(...)", apis.TORCH
        elif (
            name.startswith(apis.KERAS_ROOTS)
            and ".layers." in name
            and function in apis.KERAS_LAYERS
            and not (keywords & {"seed", "kernel_initializer", "embeddings_initializer"} or spread)
        ):
            yield "HR017", f"layers.{function}(...)", apis.TENSORFLOW
    uses_torch = any(
        value == "torch" or value.startswith("torch.") for value in module.aliases.values()
    )
    on_numpy = name is not None and (name == "numpy" or name.startswith("numpy."))
    if attr is not None and not on_numpy:
        if attr in apis.TORCH_INPLACE_SAMPLERS and uses_torch and "generator" not in keywords:
            yield "HR004", f".{attr}() without generator=", apis.TORCH
        elif attr in apis.TORCH_DETERMINISTIC_WHEN_ON:
            yield "HR009", f"{attr}()", apis.TORCH_DETERMINISTIC
        elif attr in apis.TORCH_NO_DETERMINISTIC_KERNEL:
            yield "HR009", f"{attr}() (no deterministic CUDA kernel)", None
        elif attr == "bincount" and (len(call.args) > 1 or "weights" in keywords):
            yield "HR009", "bincount(weights=...)", None
        elif attr in apis.ACCUMULATING and _accumulates(call):
            needs = apis.TORCH_DETERMINISTIC if attr != "put_" else None
            yield "HR009", f"{attr}(accumulate=True)", needs
        elif attr in apis.TF_SEGMENT and (name is None or name.startswith("tensorflow.")):
            yield "HR009", f"{attr}()", apis.TF_DETERMINISTIC
    yield from _dataloader(call, name, func, keywords, spread)


def _sklearn(
    call: ast.Call, function: str, keywords: set[str]
) -> Iterator[tuple[str, str, str | None]]:
    if function not in apis.SKLEARN_RANDOM:
        return
    given = keyword(call, "random_state")
    if given is not None and constant(given) is not None:
        return
    condition = apis.SKLEARN_RANDOM[function]
    if condition is not None:
        key, values = condition
        value = keyword(call, key)
        if value is None or constant(value) not in values:
            return
    if function in apis.SKLEARN_KMEANS:
        init = keyword(call, "init")
        if init is not None and not isinstance(constant(init), str):
            return  # initial centers given as an array: nothing is drawn
    if function in apis.SKLEARN_SHUFFLE_OFF:
        shuffle = keyword(call, "shuffle")
        if shuffle is not None and constant(shuffle) is False:
            return
    yield "HR013", f"{function}() without random_state", apis.NUMPY


def _dataloader(
    call: ast.Call, name: str | None, func: ast.expr, keywords: set[str], spread: bool
) -> Iterator[tuple[str, str, str | None]]:
    short = (
        name.rpartition(".")[2]
        if name
        else func.attr
        if isinstance(func, ast.Attribute)
        else func.id
        if isinstance(func, ast.Name)
        else None
    )
    if short != "DataLoader" or spread or keywords & {"generator"}:
        return
    shuffle = keyword(call, "shuffle")
    if shuffle is not None and constant(shuffle) is True and "sampler" not in keywords:
        yield "HR004", "DataLoader(shuffle=True) without generator=", apis.TORCH
    workers = keyword(call, "num_workers")
    if workers is None and len(call.args) > 5:
        workers = call.args[5]
    if workers is None or constant(workers) == 0 or "worker_init_fn" in keywords:
        return
    # Since torch 1.9 each worker seeds random, NumPy and torch from the main generator,
    # so workers reproduce once torch.manual_seed has run.
    yield "HR006", "DataLoader(num_workers=...)", apis.TORCH


def _call_graph(project: Project) -> tuple[set[int], set[int]]:
    """The project functions some call names, and those used as values (callbacks)."""
    called: set[int] = set()
    referenced: set[int] = set()
    scopes: list[tuple[Module, Function | None, list[ast.stmt]]] = [
        (module, None, module.tree.body) for module in project.modules
    ]
    scopes += [(f.module, f, f.node.body) for f in project.functions()]
    for module, within, body in scopes:
        for node in _own_nodes(body):
            if isinstance(node, ast.Call):
                target = project.resolve_call(node, module, within)
                if isinstance(target, Class):
                    target = project.constructor(target)
                if isinstance(target, Function):
                    called.add(id(target))
            elif isinstance(node, ast.Name | ast.Attribute) and _may_name_a_function(
                node, module, within
            ):
                probe = ast.Call(func=node, args=[], keywords=[])
                target = project.resolve_call(probe, module, within)
                if isinstance(target, Function):
                    referenced.add(id(target))
    # A name in call position is also a Load; only values used otherwise are callbacks.
    return called, referenced - called


def _may_name_a_function(
    node: ast.Name | ast.Attribute, module: Module, within: Function | None
) -> bool:
    """A cheap filter before resolving a name read as a value: only names defined or
    imported here, and attributes of those or of ``self``, can name a project function."""
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        base = node.value
        return isinstance(base, ast.Name) and (
            base.id in module.aliases or (within is not None and base.id == within.self_name)
        )
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return (
            node.id in module.functions
            or node.id in module.aliases
            or (within is not None and bool(within.local_functions))
        )
    return False


def _own_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.Call):
            # The callee expression is a call, not a reference.
            stack.extend(node.args)
            stack.extend(k.value for k in node.keywords)
            if isinstance(node.func, ast.Attribute):
                stack.append(node.func.value)
            elif not isinstance(node.func, ast.Name):
                stack.append(node.func)
            continue
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append(child)


def _calls_in_order(node: ast.AST) -> Iterator[ast.Call]:
    """Calls in evaluation order: arguments before the call that receives them."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        yield from _calls_in_order(child)
    if isinstance(node, ast.Call):
        yield node


def keyword(node: ast.Call, name: str) -> ast.expr | None:
    for item in node.keywords:
        if item.arg == name:
            return item.value
    return None


def constant(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else ...


def no_seed(node: ast.Call) -> bool:
    """No argument, or only None: the call seeds from the OS."""
    given = [*node.args, *(k.value for k in node.keywords)]
    return all(constant(value) is None for value in given)


def _accumulates(node: ast.Call) -> bool:
    accumulate = keyword(node, "accumulate")
    if accumulate is None and len(node.args) >= 3:
        accumulate = node.args[2]
    return accumulate is not None and constant(accumulate) is True
