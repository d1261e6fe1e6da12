"""The syntax-tree checks behind `harness lint`; rules.py says what each rule matches.

One file at a time: its imports give the qualified name of every call (``np.random.rand``
is ``numpy.random.rand`` whatever numpy was imported as), a first pass collects the seeding
calls the file makes, and a second reports each match with its line. Nothing is imported or
executed, so linting is safe on any code and takes milliseconds per file.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.lint.rules import BY_ID, PARSE_ERROR

_PY_RANDOM = frozenset(
    {
        "random",
        "randint",
        "randrange",
        "choice",
        "choices",
        "sample",
        "shuffle",
        "uniform",
        "triangular",
        "gauss",
        "normalvariate",
        "lognormvariate",
        "expovariate",
        "vonmisesvariate",
        "gammavariate",
        "betavariate",
        "paretovariate",
        "weibullvariate",
        "binomialvariate",
        "getrandbits",
        "randbytes",
    }
)
_NUMPY_GLOBAL = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "random_integers",
        "random_sample",
        "random",
        "ranf",
        "sample",
        "choice",
        "bytes",
        "shuffle",
        "permutation",
        "beta",
        "binomial",
        "chisquare",
        "dirichlet",
        "exponential",
        "f",
        "gamma",
        "geometric",
        "gumbel",
        "hypergeometric",
        "laplace",
        "logistic",
        "lognormal",
        "logseries",
        "multinomial",
        "multivariate_normal",
        "negative_binomial",
        "noncentral_chisquare",
        "noncentral_f",
        "normal",
        "pareto",
        "poisson",
        "power",
        "rayleigh",
        "standard_cauchy",
        "standard_exponential",
        "standard_gamma",
        "standard_normal",
        "standard_t",
        "triangular",
        "uniform",
        "vonmises",
        "wald",
        "weibull",
        "zipf",
    }
)
_UNSEEDED_CONSTRUCTORS = frozenset(
    {
        "numpy.random.default_rng",
        "numpy.random.RandomState",
        "numpy.random.SeedSequence",
        "numpy.random.PCG64",
        "numpy.random.PCG64DXSM",
        "numpy.random.MT19937",
        "numpy.random.Philox",
        "numpy.random.SFC64",
        "random.Random",
    }
)
_TORCH_GENERATOR = "torch.Generator"
_TORCH_SAMPLERS = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "randperm",
        "rand_like",
        "randn_like",
        "randint_like",
        "normal",
        "bernoulli",
        "multinomial",
        "poisson",
    }
)
_TORCH_INPLACE_SAMPLERS = frozenset(
    {
        "uniform_",
        "normal_",
        "random_",
        "bernoulli_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "cauchy_",
    }
)
_TF_RANDOM = frozenset(
    {"normal", "uniform", "truncated_normal", "shuffle", "categorical", "gamma", "poisson"}
)
# Seeding calls, and which global generators each one seeds.
_ALL_SEEDS = frozenset(
    {
        "keras.utils.set_random_seed",
        "tensorflow.keras.utils.set_random_seed",
        "lightning.seed_everything",
        "lightning.pytorch.seed_everything",
        "lightning.fabric.seed_everything",
        "lightning_fabric.seed_everything",
        "pytorch_lightning.seed_everything",
        "transformers.set_seed",
        "accelerate.utils.set_seed",
    }
)
_PY_SEEDS = frozenset({"random.seed"}) | _ALL_SEEDS
_NUMPY_SEEDS = frozenset({"numpy.random.seed"}) | _ALL_SEEDS
_TORCH_SEEDS = (
    frozenset(
        {
            "torch.manual_seed",
            "torch.random.manual_seed",
            "torch.cuda.manual_seed",
            "torch.cuda.manual_seed_all",
        }
    )
    | _ALL_SEEDS
)
_TF_SEEDS = (
    frozenset(
        {
            "tensorflow.random.set_seed",
            "tensorflow.set_random_seed",
            "tensorflow.compat.v1.set_random_seed",
            "tensorflow.compat.v1.random.set_random_seed",
        }
    )
    | _ALL_SEEDS
)
_NONDETERMINISTIC = frozenset(
    {
        "index_add_",
        "index_add",
        "scatter_add_",
        "scatter_add",
        "scatter_reduce",
        "scatter_reduce_",
        "bincount",
        "histc",
        "kthvalue",
    }
)
_ACCUMULATING = frozenset({"index_put_", "index_put", "put_"})
_TF_SEGMENT = frozenset(
    {
        "unsorted_segment_sum",
        "unsorted_segment_mean",
        "unsorted_segment_prod",
        "unsorted_segment_sqrt_n",
    }
)
_TF_OPS = frozenset(
    {f"tensorflow.random.{name}" for name in sorted(_TF_RANDOM)} | {"tensorflow.nn.dropout"}
)
_DETERMINISM_VARIABLES = frozenset({"TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC"})
_OFF_VALUES = frozenset({"0", "false", "False", "FALSE", "no"})
# Clock and host reads; the value is the number of positional arguments that pass an
# explicit time, which makes the call deterministic (time.gmtime(0) reads no clock).
_CLOCK_OR_HOST: Mapping[str, int | None] = {
    "time.time": None,
    "time.time_ns": None,
    "time.ctime": 1,
    "time.localtime": 1,
    "time.gmtime": 1,
    "time.asctime": 1,
    "time.strftime": 2,
    "datetime.datetime.now": None,
    "datetime.datetime.utcnow": None,
    "datetime.datetime.today": None,
    "datetime.date.today": None,
    "socket.gethostname": None,
    "socket.getfqdn": None,
    "platform.node": None,
    "platform.uname": None,
    "os.uname": None,
    "getpass.getuser": None,
}
_OS_ENTROPY = frozenset(
    {"os.urandom", "os.getrandom", "uuid.uuid1", "uuid.uuid4", "random.SystemRandom"}
)
_SECRETS = frozenset(
    {"token_bytes", "token_hex", "token_urlsafe", "choice", "randbelow", "randbits", "SystemRandom"}
)
# Calls whose result keeps the order of the iterable they are given.
_ORDER_KEEPING = frozenset({"list", "tuple", "enumerate", "iter", "next"})
_SET_METHODS = frozenset({"union", "intersection", "difference", "symmetric_difference"})
_IGNORE = re.compile(r"#\s*harness:\s*ignore(?:\[(?P<ids>[^\]]*)\])?")


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    rule: str
    message: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "message": self.message,
            "fix": self.fix,
        }

    def one_line(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.rule} {self.message} (fix: {self.fix})"


def check_source(source: str, path: str) -> list[Finding]:
    """Every finding of every rule in ``source``, inline ignores applied, sorted by line.

    ``path`` is only used to name the file in the findings.
    """
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        return [_parse_error(path, error.lineno or 1, (error.offset or 1) - 1, error.msg)]
    except ValueError as error:  # source code string cannot contain null bytes
        return [_parse_error(path, 1, 0, str(error))]
    ignores = _inline_ignores(source)
    visitor = _Visitor(path, tree)
    visitor.visit(tree)
    visitor.finish()
    return sorted(f for f, span in visitor.findings if not _ignored(f.rule, span, ignores))


def check_file(path: Path, shown: str | None = None) -> list[Finding]:
    """Check one file; a file that is not UTF-8 is an HR000 finding, an unreadable one raises
    OSError for the caller to report as trouble."""
    name = shown if shown is not None else str(path)
    data = path.read_bytes()
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return [_parse_error(name, line, 0, f"not UTF-8: {error.reason}")]
    return check_source(source, name)


def _parse_error(path: str, line: int, column: int, reason: str) -> Finding:
    rule = BY_ID[PARSE_ERROR]
    return Finding(path, line, max(column, 0), rule.id, f"{rule.summary}: {reason}", rule.fix)


def _inline_ignores(source: str) -> dict[int, frozenset[str] | None]:
    """Line -> the rule ids its ``# harness: ignore[...]`` comment names (None: every rule)."""
    found: dict[int, frozenset[str] | None] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = _IGNORE.search(token.string)
            if match is None:
                continue
            ids = match.group("ids")
            found[token.start[0]] = (
                None
                if ids is None
                else frozenset(part.strip().upper() for part in ids.split(",") if part.strip())
            )
    except (tokenize.TokenError, SyntaxError):
        pass  # the parser accepted the file; a tokenizer quirk only loses the comments
    return found


def _ignored(
    rule: str, span: tuple[int, int], ignores: Mapping[int, frozenset[str] | None]
) -> bool:
    # A comment on the first or the last line of the flagged expression counts, so that a
    # call formatted over several lines can be silenced where a formatter leaves the comment.
    for line in (span[0], span[1]):
        if line in ignores:
            ids = ignores[line]
            if ids is None or rule in ids:
                return True
    return False


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.findings: list[tuple[Finding, tuple[int, int]]] = []
        self.aliases = _aliases(tree)
        self.uses_torch = any(
            value == "torch" or value.startswith("torch.") for value in self.aliases.values()
        )
        # random.seed() with no argument seeds from the OS: only a seed that is given counts.
        calls = {
            name
            for node in ast.walk(tree)
            if (name := self._called(node)) and isinstance(node, ast.Call) and not _no_seed(node)
        }
        self.seeded_python = bool(calls & _PY_SEEDS)
        self.seeded_numpy = bool(calls & _NUMPY_SEEDS)
        self.seeded_torch = bool(calls & _TORCH_SEEDS)
        self.seeded_tensorflow = bool(calls & _TF_SEEDS)
        # Expressions whose .manual_seed(...) the file calls: a generator assigned to one of
        # them is seeded, wherever the call is.
        self.manual_seeded = {
            ast.unparse(node.func.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "manual_seed"
        }
        self.seeded_generators: set[int] = set()
        self.generators: list[ast.Call] = []
        self.set_names: list[frozenset[str]] = [_set_names(tree.body)]

    # -- helpers ---------------------------------------------------------------------

    def qualified(self, node: ast.expr) -> str | None:
        """``np.random.rand`` -> ``numpy.random.rand``; None unless rooted in an import."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def _called(self, node: ast.AST) -> str | None:
        return self.qualified(node.func) if isinstance(node, ast.Call) else None

    def report(self, rule_id: str, node: ast.expr | ast.stmt, detail: str = "") -> None:
        rule = BY_ID[rule_id]
        message = f"{detail}: {rule.summary}" if detail else rule.summary
        line = node.lineno
        end = getattr(node, "end_lineno", None) or line
        finding = Finding(self.path, line, node.col_offset, rule.id, message, rule.fix)
        self.findings.append((finding, (line, end)))

    def is_set(self, node: ast.expr) -> bool:
        """Whether ``node`` evidently evaluates to a set (see HR012's scope)."""
        if isinstance(node, ast.Set | ast.SetComp):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.set_names[-1]
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, ast.BitOr | ast.BitAnd | ast.Sub | ast.BitXor
        ):
            return self.is_set(node.left) or self.is_set(node.right)
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("set", "frozenset"):
            return func.id not in self.aliases
        return (
            isinstance(func, ast.Attribute)
            and func.attr in _SET_METHODS
            and self.is_set(func.value)
        )

    # -- scopes ----------------------------------------------------------------------

    def _visit_scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        body = node.body if isinstance(node.body, list) else []
        self.set_names.append(_set_names(body))
        self.generic_visit(node)
        self.set_names.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_scope(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_scope(node)

    # -- statements ------------------------------------------------------------------

    def visit_For(self, node: ast.For) -> None:
        if self.is_set(node.iter):
            self.report("HR012", node.iter, "a for loop over a set")
        self.generic_visit(node)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        if self.is_set(node.iter):
            self.report("HR012", node.iter, "an async for loop over a set")
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if self.is_set(node.iter):
            self.report("HR012", node.iter, "a comprehension over a set")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_assignment(target, node.value)
        if isinstance(node.value, ast.Call) and self._called(node.value) == _TORCH_GENERATOR:
            names = {ast.unparse(target) for target in node.targets}
            if names & self.manual_seeded:
                self.seeded_generators.add(id(node.value))
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._check_assignment(node.target, node.value)
            if (
                isinstance(node.value, ast.Call)
                and self._called(node.value) == _TORCH_GENERATOR
                and ast.unparse(node.target) in self.manual_seeded
            ):
                self.seeded_generators.add(id(node.value))
        self.generic_visit(node)

    def _check_assignment(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Attribute) and isinstance(value, ast.Constant):
            owner = target.value
            owner_name = (
                owner.attr
                if isinstance(owner, ast.Attribute)
                else owner.id
                if isinstance(owner, ast.Name)
                else None
            )
            if owner_name == "cudnn":
                if target.attr == "benchmark" and value.value is True:
                    self.report("HR007", target, "cudnn.benchmark = True")
                if target.attr == "deterministic" and value.value is False:
                    self.report("HR007", target, "cudnn.deterministic = False")
        if (
            isinstance(target, ast.Subscript)
            and self.qualified(target.value) == "os.environ"
            and _constant_str(target.slice) in _DETERMINISM_VARIABLES
            and _is_off(value)
        ):
            self.report("HR008", target, f"{_constant_str(target.slice)} set off")

    # -- calls -----------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualified(node.func)
        keywords = {k.arg for k in node.keywords if k.arg is not None}
        spread = any(k.arg is None for k in node.keywords)  # **kwargs: arguments unknown
        if name is not None:
            self._check_qualified(node, name, keywords, spread)
        if isinstance(node.func, ast.Attribute):
            self._check_method(node, node.func, name, keywords)
            if (
                node.func.attr == "manual_seed"
                and isinstance(node.func.value, ast.Call)
                and self._called(node.func.value) == _TORCH_GENERATOR
            ):
                self.seeded_generators.add(id(node.func.value))
        self._check_dataloader(node, name, keywords, spread)
        self._check_order(node)
        self.generic_visit(node)

    def _check_qualified(self, node: ast.Call, name: str, keywords: set[str], spread: bool) -> None:
        if not self._check_randomness(node, name, keywords, spread):
            self._check_switches_and_reads(node, name)

    def _check_randomness(
        self, node: ast.Call, name: str, keywords: set[str], spread: bool
    ) -> bool:
        """HR001 to HR005, and HR011; whether the call was one of theirs."""
        module, _, function = name.rpartition(".")
        rule, detail = None, f"{name}()"
        if module == "random" and function in _PY_RANDOM:
            rule = None if self.seeded_python else "HR001"
        elif module == "numpy.random" and function in _NUMPY_GLOBAL:
            rule, detail = (None if self.seeded_numpy else "HR002"), f"np.random.{function}()"
        elif name in _UNSEEDED_CONSTRUCTORS:
            rule = "HR003" if not spread and _no_seed(node) else None
            detail = f"{name}() without a seed"
        elif name == _TORCH_GENERATOR:
            self.generators.append(node)  # decided once the whole file is seen: finish()
        elif module == "torch" and function in _TORCH_SAMPLERS:
            unseeded = not (keywords & {"generator"} or spread or self.seeded_torch)
            rule, detail = ("HR004" if unseeded else None), f"torch.{function}() without generator="
        elif name in _TF_OPS:
            unseeded = not ("seed" in keywords or spread or self.seeded_tensorflow)
            short = name.removeprefix("tensorflow.")
            rule, detail = ("HR005" if unseeded else None), f"tf.{short}() without seed="
        elif name in _OS_ENTROPY or (module == "secrets" and function in _SECRETS):
            rule = "HR011"
        else:
            return False
        if rule is not None:
            self.report(rule, node, detail)
        return True

    def _check_switches_and_reads(self, node: ast.Call, name: str) -> None:
        """HR008 and HR010."""
        if name == "torch.use_deterministic_algorithms":
            self._check_deterministic_algorithms(node)
        elif name == "torch.set_deterministic_debug_mode":
            if node.args and _constant(node.args[0]) in (0, "default"):
                self.report("HR008", node, "torch.set_deterministic_debug_mode(0)")
        elif name in ("os.putenv", "os.environ.setdefault"):
            if (
                len(node.args) == 2
                and _constant_str(node.args[0]) in _DETERMINISM_VARIABLES
                and _is_off(node.args[1])
            ):
                self.report("HR008", node, f"{_constant_str(node.args[0])} set off")
        elif name in _CLOCK_OR_HOST:
            explicit = _CLOCK_OR_HOST[name]
            if explicit is None or len(node.args) < explicit:
                self.report("HR010", node, f"{name}()")

    def _check_deterministic_algorithms(self, node: ast.Call) -> None:
        mode = node.args[0] if node.args else _keyword(node, "mode")
        warn_only = _keyword(node, "warn_only")
        if mode is not None and _constant(mode) is False:
            self.report("HR008", node, "torch.use_deterministic_algorithms(False)")
        elif warn_only is not None and _constant(warn_only) is True:
            self.report("HR008", node, "torch.use_deterministic_algorithms(warn_only=True)")

    def _check_method(
        self, node: ast.Call, func: ast.Attribute, name: str | None, keywords: set[str]
    ) -> None:
        attr = func.attr
        on_numpy = name is not None and (name == "numpy" or name.startswith("numpy."))
        if attr in _NONDETERMINISTIC and not on_numpy:
            self.report("HR009", node, f"{attr}()")
        elif attr in _ACCUMULATING and _accumulates(node):
            self.report("HR009", node, f"{attr}(accumulate=True)")
        elif attr in _TF_SEGMENT and (name is None or name.startswith("tensorflow.")):
            self.report("HR009", node, f"{attr}()")
        elif (
            attr in _TORCH_INPLACE_SAMPLERS
            and self.uses_torch
            and "generator" not in keywords
            and not self.seeded_torch
        ):
            self.report("HR004", node, f".{attr}() without generator=")
        elif attr == "join" and node.args and self.is_set(node.args[0]):
            self.report("HR012", node, "str.join over a set")

    def _check_dataloader(
        self, node: ast.Call, name: str | None, keywords: set[str], spread: bool
    ) -> None:
        func = node.func
        short = (
            name.rpartition(".")[2]
            if name
            else func.attr
            if isinstance(func, ast.Attribute)
            else func.id
            if isinstance(func, ast.Name)
            else None
        )
        if short != "DataLoader" or spread:
            return
        workers = _keyword(node, "num_workers")
        if workers is None and len(node.args) > 5:
            workers = node.args[5]  # DataLoader's sixth positional parameter
        if workers is None or _constant(workers) == 0:
            return
        if not keywords & {"generator", "worker_init_fn"}:
            self.report("HR006", node, "DataLoader(num_workers=...)")

    def _check_order(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in _ORDER_KEEPING
            and func.id not in self.aliases
            and node.args
            and self.is_set(node.args[0])
        ):
            self.report("HR012", node, f"{func.id}() of a set")

    # -- end of file -----------------------------------------------------------------

    def finish(self) -> None:
        """Report what needs the whole file: generators that nothing seeded."""
        for call in self.generators:
            if id(call) not in self.seeded_generators:
                self.report("HR003", call, "torch.Generator() never given manual_seed()")


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the module or object it was imported as, for every import in the file."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".", 1)[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _set_names(body: Iterable[ast.stmt]) -> frozenset[str]:
    """Names every assignment of which, in this scope (not nested functions), is a set."""
    kinds: dict[str, bool] = {}
    for node in _scope_nodes(body):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and value is not None:
                is_set = _looks_like_set(value)
                kinds[target.id] = kinds.get(target.id, True) and is_set
    return frozenset(name for name, is_set in kinds.items() if is_set)


def _looks_like_set(node: ast.expr) -> bool:
    if isinstance(node, ast.Set | ast.SetComp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("set", "frozenset")
    )


def _scope_nodes(body: Iterable[ast.stmt]) -> Iterator[ast.AST]:
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.append(child)


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _constant(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else ...


def _constant_str(node: ast.expr) -> str | None:
    value = _constant(node)
    return value if isinstance(value, str) else None


def _is_off(node: ast.expr) -> bool:
    value = _constant(node)
    return value in _OFF_VALUES or (value == 0 and not isinstance(value, bool))


def _no_seed(node: ast.Call) -> bool:
    given = [*node.args, *(k.value for k in node.keywords)]
    return all(_constant(value) is None for value in given)


def _accumulates(node: ast.Call) -> bool:
    accumulate = _keyword(node, "accumulate")
    if accumulate is None and len(node.args) >= 3:
        accumulate = node.args[2]
    return accumulate is not None and _constant(accumulate) is True
