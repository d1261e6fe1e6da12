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

Branches are merged by union, loops are walked once; both choices favour precision over
recall, as a linter left on in CI must. One exception: a branch that tests whether a
setting was given (``if args.seed is not None:``) whose default is known
(:mod:`harness.lint.arguments`) is followed the way the default run takes it, and so is a
seeding call given a setting that defaults to None (``random.seed(args.seed)``): a seed
the default run does not set is recorded as a :class:`MaybeSeed` (HR019), and what draws
after it is unseeded.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.lint import apis
from harness.lint.arguments import Default, Defaults, seed_test, spread_keywords
from harness.lint.project import Class, Function, Module, Project
from harness.lint.syntax import Syntax

# Kinds of nodes tested together, as tuples: ``isinstance(node, A | B)`` builds the
# union at each test, which costs more than the test in the loops over every node.
_ANNOTATED_OR_AUGMENTED = (ast.AugAssign, ast.AnnAssign)
_FOR = (ast.For, ast.AsyncFor)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_IMPORTS = (ast.Import, ast.ImportFrom)
_NAMES = (ast.Attribute, ast.Name)
_TRY = (ast.Try, ast.TryStar)
_WITH = (ast.With, ast.AsyncWith)

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


@dataclass
class MaybeSeed:
    """A seed the default run does not set: under a test of an optional setting, or given
    a setting that defaults to None."""

    node: ast.AST
    module: Module
    generators: frozenset[str]
    default: Default


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
        self.maybe: dict[int, MaybeSeed] = {}
        self.defaults = Defaults(project)
        # Parameters some call in the project leaves out, per function: there the
        # function sees the default.
        self._omitted: dict[int, set[str]] = {}
        # Per module, the settings it assigns (``opt.seed = random.randint(...)``): their
        # value is no longer the default.
        self._assigned: dict[int, frozenset[str]] = {}
        self._spread: dict[int, dict[str, dict[str, ast.expr]]] = {}
        # The settings tested by the branches being walked.
        self._tested: list[str | None] = []
        # Above zero while a model whose weights the code then loads is being built.
        self._loading = 0
        self._loaded: dict[int, frozenset[str]] = {}
        self._memo: dict[tuple[int, State], State] = {}
        self._facts: dict[
            int, tuple[str | None, Function | None, list[tuple[str, str, str | None]], set[str]]
        ] = {}
        self._active: set[tuple[int, State]] = set()
        self._entered: set[int] = set()
        self._budget = _BUDGET
        # Project functions that some call in the project names (filled by run()).
        self.called: set[int] = set()
        # Modules another project module imports (filled by run()).
        self.imported: set[int] = set()
        self._unseeded: set[int] | None = None

    # -- entry -------------------------------------------------------------------------

    def run(self) -> None:
        project = self.project
        called, referenced = _call_graph(project)
        self.called = called
        imported = {
            id(m) for module in project.modules for ms in module.imports.values() for m in ms
        }
        self.imported = imported
        finals: dict[int, State] = {}
        for module in project.modules:
            run_by_harness = MODULE_BODY in self._managed.get(module.resolved, frozenset())
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
                and function.node.name in self._managed.get(function.module.resolved, frozenset())
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

    def entry_point(self, function: Function) -> bool:
        """Whether a function nothing in the project calls is where a run starts, so that
        what it returns is a result: a method the framework calls (``forward``,
        ``__getitem__``), a function of a script, or one harness runs. A helper of an
        imported module that nothing calls is not: no run reaches it."""
        if function.owner is not None or function.parent is not None:
            return True
        if id(function.module) not in self.imported:
            return True
        managed = self._managed.get(function.module.resolved, frozenset())
        return function.node.name in managed

    def unseeded(self, call: ast.Call) -> bool:
        """Whether a global draw ran, in some walk, with its generator unseeded (asked
        once the walk has run)."""
        return id(call) in self._unseeded_draws()

    def draws_unseeded(self) -> bool:
        """Whether any global draw ran, in some walk, with its generator unseeded."""
        return bool(self._unseeded_draws())

    def _unseeded_draws(self) -> set[int]:
        # The flow analysis asks at every call it evaluates: the sites are final by then.
        if self._unseeded is None:
            self._unseeded = {
                id(site.call)
                for site in self.sites.values()
                if site.rule in _DRAW_RULES and site.needs in _GENERATORS and site.unmet
            }
        return self._unseeded

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

    def _statement(  # noqa: PLR0911, PLR0912 (one branch per kind of statement)
        self, node: ast.stmt, module: Module, within: Function | None, state: State
    ) -> State:
        self._budget -= 1
        walk = self._block
        if isinstance(node, _FUNCTIONS):
            return self._expressions(node.decorator_list, module, within, state)
        if isinstance(node, ast.ClassDef):
            state = self._expressions([*node.decorator_list, *node.bases], module, within, state)
            body = [s for s in node.body if not isinstance(s, _FUNCTIONS)]
            return walk(body, module, within, state)
        if isinstance(node, ast.If):
            state = self._expressions([node.test], module, within, state)
            test = seed_test(node.test)
            # Under `if args.seed is not None:` a seeding call given args.seed is the
            # branch's seed, judged with the branch, not a seed given None.
            tested = ast.unparse(test.setting) if test is not None else None
            self._tested.append(tested)
            try:
                then = walk(node.body, module, within, state)
                otherwise = walk(node.orelse, module, within, state)
            finally:
                self._tested.pop()
            if then != otherwise:
                default_path = self._default_branch(node, module, within, then, otherwise)
                if default_path is not None:
                    return default_path
            return then | otherwise
        if isinstance(node, _FOR):
            state = self._expressions([node.iter], module, within, state)
            after = walk(node.body, module, within, state)
            return after | walk(node.orelse, module, within, after)
        if isinstance(node, ast.While):
            state = self._expressions([node.test], module, within, state)
            after = walk(node.body, module, within, state)
            return after | walk(node.orelse, module, within, after)
        if isinstance(node, _WITH):
            state = self._expressions(
                [item.context_expr for item in node.items], module, within, state
            )
            return walk(node.body, module, within, state)
        if isinstance(node, _TRY):
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
        if isinstance(node, _IMPORTS):
            for imported in module.imports.get(id(node), []):
                state = self.module_body(imported, state)
            return state
        children = [c for c in self.project.syntax.children(node) if isinstance(c, ast.expr)]
        loading = isinstance(node, ast.Assign) and self._weights_loaded(node, module, within)
        self._loading += loading
        try:
            return self._expressions(children, module, within, state)
        finally:
            self._loading -= loading

    def _weights_loaded(self, node: ast.Assign, module: Module, within: Function | None) -> bool:
        """``self.mlp = MLP()`` in a scope that calls ``self.mlp.load_state_dict(...)``:
        the drawn initial weights are replaced by trained ones."""
        if id(module) not in self._loaded:
            # Most modules load no weights: one pass over the module's calls says so.
            self._loaded[id(module)] = frozenset(
                ast.unparse(n.func.value)
                for n in module.of_kind(ast.Call)
                if isinstance(n.func, ast.Attribute) and n.func.attr in apis.WEIGHT_LOADERS
            )
        if not self._loaded[id(module)]:
            return False
        body = within.node.body if within is not None else module.tree.body
        if id(body) not in self._loaded:
            walk = self.project.syntax.walk
            self._loaded[id(body)] = frozenset(
                ast.unparse(n.func.value)
                for statement in body
                for n in walk(statement)
                if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr in apis.WEIGHT_LOADERS
            )
        loaded = self._loaded[id(body)]
        return bool(loaded) and any(ast.unparse(t) in loaded for t in node.targets)

    def _default_branch(
        self, node: ast.If, module: Module, within: Function | None, body: State, orelse: State
    ) -> State | None:
        """The state after ``node`` on the default run, when its test asks whether an
        optional setting was given and the setting's default is known; a seed only the
        other branch sets is recorded."""
        test = seed_test(node.test)
        if test is None:
            return None
        default = self._default(test.setting, module, within)
        if default is None:
            return None
        runs = test.body_runs(default)
        taken, skipped, branch = (body, orelse, node.orelse) if runs else (orelse, body, node.body)
        lost = (skipped - taken) & _GENERATORS
        if lost:
            where = _first_seeding(branch, self.project, module, within) or node.test
            self._record_maybe(where, module, lost, default)
        return taken

    def _default(
        self, setting: ast.expr, module: Module, within: Function | None
    ) -> Default | None:
        """The default of an optional setting, where the code runs with it: a parameter
        of an entry point (or of a function some call leaves it out of), an option or
        field the module does not assign itself."""
        if id(module) not in self._assigned:
            self._assigned[id(module)] = _assigned_settings(module, self.project.syntax)
        if ast.unparse(setting) in self._assigned[id(module)]:
            return None
        if isinstance(setting, ast.Name) and (
            within is None
            or within.owner is not None
            or within.parent is not None
            or (
                id(within) in self.called and setting.id not in self._omitted.get(id(within), set())
            )
        ):
            return None
        return self.defaults.of(setting, module, within)

    def _record_maybe(
        self, node: ast.AST, module: Module, generators: frozenset[str], default: Default
    ) -> None:
        known = self.maybe.get(id(node))
        if known is None:
            self.maybe[id(node)] = MaybeSeed(node, module, generators, default)
        else:
            known.generators |= generators

    def _optional_seed(
        self, call: ast.Call, name: str, module: Module, within: Function | None
    ) -> bool:
        """``random.seed(args.seed)`` with ``--seed`` defaulting to None: recorded, and the
        generators stay unseeded (they seed from the OS, or the call fails)."""
        given = [*call.args, *(k.value for k in call.keywords)]
        if len(given) != 1 or ast.unparse(given[0]) in self._tested:
            return False
        default = self._default(given[0], module, within)
        if default is None or default.value is not None:
            return False
        self._record_maybe(call, module, apis.SEEDS[name] & _GENERATORS, default)
        return True

    def _expressions(
        self, nodes: list[ast.expr], module: Module, within: Function | None, state: State
    ) -> State:
        calls_in_order = self.project.syntax.calls_in_order
        for node in nodes:
            for call in calls_in_order(node):
                state = self._call(call, module, within, state)
        return state

    def _call(self, call: ast.Call, module: Module, within: Function | None, state: State) -> State:
        self._budget -= 1
        name, target, checks, omitted = self._call_facts(call, module, within)
        if name is not None and not (
            name in apis.SEEDS and self._optional_seed(call, name, module, within)
        ):
            state = _switches(call, name, state)
        if name is not None and name.rpartition(".")[2] in apis.SKLEARN_ENSEMBLES:
            # The ensemble seeds the estimator it is given from its own random_state.
            for argument in [*call.args, *(k.value for k in call.keywords)]:
                self.sites.pop((id(argument), "HR013"), None)
        for rule, detail, needs in checks:
            site = self.sites.setdefault((id(call), rule), Site(call, module, rule, detail, needs))
            if (needs is None or needs not in state) and not (self._loading and rule == "HR017"):
                site.unmet = True
        if target is not None and self._budget > 0:
            self._omitted.setdefault(id(target), set()).update(omitted)
            state = self.function(target, state)
        return state

    def _call_facts(
        self, call: ast.Call, module: Module, within: Function | None
    ) -> tuple[str | None, Function | None, list[tuple[str, str, str | None]], set[str]]:
        """What a call is, whatever the state: its name, the project function it runs,
        the state rules it falls under and the parameters it leaves out. Kept per call:
        a function is walked again for every state it is entered in (a call node always
        lies in the same scope)."""
        known = self._facts.get(id(call))
        if known is not None:
            return known
        name = self.project.qualified(call.func, module)
        target = self.project.resolve_call(call, module, within)
        checks = list(state_checks(call, name, module, self._spread_of(call, module, within)))
        if isinstance(target, Class):
            layer = self._framework_layer(target)
            if layer is not None:
                checks.append(("HR017", f"{target.name}(...) (a subclass of {layer})", apis.TORCH))
            target = self.project.constructor(target)
        function = target if isinstance(target, Function) else None
        omitted = _omitted(call, function) if function is not None else set()
        facts = (name, function, checks, omitted)
        self._facts[id(call)] = facts
        return facts

    def _spread_of(
        self, call: ast.Call, module: Module, within: Function | None
    ) -> dict[str, ast.expr] | None:
        """The keywords of a call with the ``**name`` dicts of its scope merged in; None
        when a spread dict's keys are not known."""
        spreads = [k.value for k in call.keywords if k.arg is None]
        if not spreads:
            return None
        body = within.node.body if within is not None else module.tree.body
        key = id(body)
        if key not in self._spread:
            self._spread[key] = spread_keywords(body, self.project.syntax)
        known = self._spread[key]
        merged: dict[str, ast.expr] = {}
        for item in call.keywords:
            if item.arg is not None:
                merged[item.arg] = item.value
            elif isinstance(item.value, ast.Name) and item.value.id in known:
                merged.update(known[item.value.id])
            else:
                return None
        return merged

    def _framework_layer(self, cls: Class, depth: int = 0) -> str | None:
        """The torch layer a project class derives from (``class Lin(nn.Linear)``)."""
        if depth > 8:
            return None
        for base in cls.node.bases:
            qualified = self.project.qualified(base, cls.module)
            if qualified is None:
                continue
            owner, _, short = qualified.rpartition(".")
            if owner in ("torch.nn", "torch.nn.modules") and short in apis.TORCH_LAYERS:
                return f"nn.{short}"
            found = self.project.lookup(qualified, cls.module)
            if isinstance(found, Class) and found is not cls:
                layer = self._framework_layer(found, depth + 1)
                if layer is not None:
                    return layer
        return None


_GENERATORS = frozenset({apis.PYTHON, apis.NUMPY, apis.TORCH, apis.TENSORFLOW})
# The rules whose sites are draws from a global generator (whose value can become a seed).
_DRAW_RULES = ("HR001", "HR002", "HR004", "HR005")


def _switches(call: ast.Call, name: str, state: State) -> State:  # noqa: PLR0911
    """The state after a seeding call or a determinism switch."""
    if name in apis.SEEDS and not no_seed(call):
        return state | apis.SEEDS[name]
    if name.startswith(apis.SEEDING_TRAINER_ROOTS) and name.endswith("Trainer"):
        return state | apis.SEEDS["transformers.set_seed"]
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
    call: ast.Call,
    name: str | None,
    module: Module,
    spread_keywords: Mapping[str, ast.expr] | None = None,
) -> Iterator[tuple[str, str, str | None]]:
    """(rule, detail, what makes it fine) for each state rule the call falls under;
    ``spread_keywords``: the call's keywords with its ``**dict`` arguments resolved."""
    given = (
        dict(spread_keywords)
        if spread_keywords is not None
        else {k.arg: k.value for k in call.keywords if k.arg is not None}
    )
    keywords = set(given)
    # **kwargs whose keys are not known: the arguments are unknown.
    spread = spread_keywords is None and any(k.arg is None for k in call.keywords)
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
            yield from _sklearn(function, given)
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
        elif _model_constructor(call, name, given, spread):
            yield "HR017", f"{function}() without pretrained weights", apis.TORCH
    on_numpy = name is not None and (name == "numpy" or name.startswith("numpy."))
    if attr is not None and not on_numpy:
        if (
            attr in apis.TORCH_INPLACE_SAMPLERS
            and module.imports_torch
            and "generator" not in keywords
        ):
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
    yield from _dataloader(call, name, func, given, spread)


def _model_constructor(  # noqa: PLR0911 (one return per kind of model zoo)
    call: ast.Call, name: str, given: Mapping[str, ast.expr], spread: bool
) -> bool:
    """A model of torchvision, timm or transformers built with randomly drawn weights."""
    if spread:
        return False
    owner, _, function = name.rpartition(".")
    if name.startswith(apis.TORCHVISION_MODELS) or name in apis.TIMM_CONSTRUCTORS:
        if not function[:1].islower() or function in apis.MODEL_ZOO_HELPERS:
            return False
        positional = call.args[1:] if name in apis.TIMM_CONSTRUCTORS else call.args
        if positional:
            return False  # the old positional `pretrained`, or unknown
        for key in apis.PRETRAINED_KEYWORDS & set(given):
            if constant(given[key]) not in (None, False):
                return False  # pretrained weights, or a value known only at run time
        return True
    if name.startswith(apis.TRANSFORMERS_ROOT):
        model = owner.rpartition(".")[2] if function == "from_config" else function
        return (
            model[:1].isupper()
            and any(marker in model for marker in apis.TRANSFORMERS_MODEL_MARKERS)
            and (function == "from_config" or bool(call.args) or "config" in given)
            and not model.endswith(("Config", "Tokenizer", "Output", "Processor"))
        )
    return False


def _sklearn(
    function: str, keywords: Mapping[str, ast.expr]
) -> Iterator[tuple[str, str, str | None]]:
    if function not in apis.SKLEARN_RANDOM:
        return
    given = keywords.get("random_state")
    if given is not None and constant(given) is not None:
        return
    condition = apis.SKLEARN_RANDOM[function]
    if condition is not None:
        key, values = condition
        value = keywords.get(key)
        if value is None or constant(value) not in values:
            return
    if function in apis.SKLEARN_KMEANS:
        init = keywords.get("init")
        if init is not None and not isinstance(constant(init), str):
            return  # initial centers given as an array: nothing is drawn
    if function in apis.SKLEARN_SHUFFLE_OFF:
        shuffle = keywords.get("shuffle")
        if shuffle is not None and constant(shuffle) is False:
            return
    yield "HR013", f"{function}() without random_state", apis.NUMPY


def _dataloader(
    call: ast.Call,
    name: str | None,
    func: ast.expr,
    given: Mapping[str, ast.expr],
    spread: bool,
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
    if short != "DataLoader" or spread or "generator" in given:
        return
    shuffle = given.get("shuffle")
    if shuffle is None and len(call.args) > 2:
        shuffle = call.args[2]
    if shuffle is not None and constant(shuffle) not in (False, None, 0):
        # shuffle=(sampler is None), shuffle=is_train: the default run usually shuffles.
        shown = "True" if constant(shuffle) is True else ast.unparse(shuffle)
        yield "HR004", f"DataLoader(shuffle={shown}) without generator=", apis.TORCH
    workers = given.get("num_workers")
    if workers is None and len(call.args) > 5:
        workers = call.args[5]
    if workers is None or constant(workers) == 0 or "worker_init_fn" in given:
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
    # Method names called on objects the linter cannot type (``trainer.evaluate()``): a
    # method of that name has a caller, which takes what it returns.
    called_by_name: set[str] = set()
    for module, within, body in scopes:
        # A name or attribute that a call calls is not a value: the scope's nodes come
        # depth first, each call before its callee.
        callees: set[int] = set()
        for node in project.syntax.scope(body):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, _NAMES):
                    callees.add(id(func))
                target = project.resolve_call(node, module, within)
                if isinstance(target, Class):
                    target = project.constructor(target)
                if isinstance(target, Function):
                    called.add(id(target))
                elif target is None and isinstance(func, ast.Attribute):
                    called_by_name.add(func.attr)
            elif (
                isinstance(node, _NAMES)
                and id(node) not in callees
                and _may_name_a_function(node, project, module, within)
            ):
                target = project.resolve_callee(node, module, within)
                if isinstance(target, Function):
                    referenced.add(id(target))
    called |= {
        id(f)
        for f in project.functions()
        if f.owner is not None
        and f.node.name in called_by_name
        and not f.node.name.startswith("__")
    }
    # A name in call position is also a Load; only values used otherwise are callbacks.
    return called, referenced - called


def _may_name_a_function(
    node: ast.Name | ast.Attribute, project: Project, module: Module, within: Function | None
) -> bool:
    """A cheap filter before resolving a name read as a value: only names defined here or
    imported from the project, and attributes of those or of ``self``, can name a project
    function (``torch.nn.functional.relu`` is not looked up)."""
    aliases = module.aliases
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        base = node.value
        return isinstance(base, ast.Name) and (
            (base.id in aliases and project.may_be_its_own(aliases[base.id]))
            or (within is not None and base.id == within.self_name)
        )
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return (
            node.id in module.functions
            or (node.id in aliases and project.may_be_its_own(aliases[node.id]))
            or (within is not None and bool(within.local_functions))
        )
    return False


def _first_seeding(
    body: list[ast.stmt], project: Project, module: Module, within: Function | None
) -> ast.Call | None:
    """The first seeding call, or call of a project function, in a branch."""
    for statement in body:
        for node in project.syntax.walk(statement):
            if not isinstance(node, ast.Call):
                continue
            name = project.qualified(node.func, module)
            if name in apis.SEEDS or project.resolve_call(node, module, within) is not None:
                return node
    return None


def _omitted(call: ast.Call, target: Function) -> set[str]:
    """The parameters of ``target`` that ``call`` leaves at their default."""
    names = [*target.params, *target.keyword_only]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return set()
    offset = 1 if target.is_method and isinstance(call.func, ast.Attribute) else 0
    given = set(names[: len(call.args) + offset])
    given |= {k.arg for k in call.keywords if k.arg is not None}
    return set(names) - given


def _assigned_settings(module: Module, syntax: Syntax) -> frozenset[str]:
    """The attributes and names a module assigns anywhere, as written (``opt.seed``)."""
    found: set[str] = set()
    targets = [target for node in module.of_kind(ast.Assign) for target in node.targets]
    targets += [node.target for node in module.of_kind(ast.AugAssign)]
    targets += [node.target for node in module.of_kind(ast.AnnAssign) if node.value is not None]
    for target in targets:
        for part in syntax.walk(target):
            if isinstance(part, _NAMES) and isinstance(part.ctx, ast.Store):
                found.add(ast.unparse(part))
    return frozenset(found)


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
