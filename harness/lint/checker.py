"""Run every `harness lint` rule over a set of files, read together as one program.

The files are parsed into a :class:`~harness.lint.project.Project`; the state rules are
decided by walking it in execution order (:mod:`harness.lint.seeding`), the flow rules by
following values to results (:mod:`harness.lint.flow`), and the local rules here, one
statement at a time. Findings are reported only for the files asked for (modules read for
context are not), with inline and file-level ignores applied. Nothing is imported or
executed, so linting is safe on any code.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import io
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.lint import apis
from harness.lint.causes import (
    GENERATORS,
    SeedingHelpers,
    grouped,
    maybe_seed,
    needs_a_result,
)
from harness.lint.findings import Finding, Raw, finding
from harness.lint.flow import Flow
from harness.lint.project import MAX_DEPTH, Module, Project, deepest_beyond
from harness.lint.rules import BY_ID, PARSE_ERROR
from harness.lint.seeding import SeedWalk, constant, keyword, no_seed
from harness.lint.workers import analyse_programs

# Kinds of nodes tested together, as tuples: ``isinstance(node, A | B)`` builds the
# union at each test, which costs more than the test in the loops over every node.
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign)

_DETERMINISM_VARIABLES = frozenset({"TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC"})
_OFF_VALUES = frozenset({"0", "false", "False", "FALSE", "no"})
_RECURSION_LIMIT = 20_000
_IGNORE = re.compile(r"#\s*harness:\s*ignore(?P<file>-file)?(?:\[(?P<ids>[^\]]*)\])?")


def check_source(source: str, path: str) -> list[Finding]:
    """Every finding of every rule in ``source`` alone, ignores applied, sorted by line.

    ``path`` names the file in the findings (and its folder is where imports are sought).
    """
    return check_sources([(Path(path), path, source)])


def check_file(path: Path, shown: str | None = None) -> list[Finding]:
    """Check one file; a file that is not UTF-8 is an HR000 finding, an unreadable one raises
    OSError for the caller to report as trouble."""
    return check_files([(path, shown if shown is not None else str(path))])


def check_files(
    files: Sequence[tuple[Path, str]],
    roots: Sequence[Path] = (),
    managed: Mapping[Path, frozenset[str]] | None = None,
    rules: frozenset[str] | None = None,
    jobs: int | None = None,
) -> list[Finding]:
    """Check files together (a seed in one counts for the code another calls); each is
    ``(path, shown name)``. ``roots`` are folders where imported project modules are
    sought besides each file's own folder and package; ``managed`` names what harness runs
    (see :class:`~harness.lint.seeding.SeedWalk`); ``jobs`` how many processes analyse
    the programs (None: see :mod:`harness.lint.workers`)."""
    sources: list[tuple[Path, str, str]] = []
    findings: list[Finding] = []
    for path, shown in files:
        data = path.read_bytes()
        try:
            sources.append((path, shown, data.decode("utf-8-sig")))
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            findings.append(_parse_error(shown, line, 1, f"not UTF-8: {error.reason}"))
    return sorted(findings + check_sources(sources, roots, managed, rules, jobs))


def check_sources(
    sources: Sequence[tuple[Path, str, str]],
    roots: Sequence[Path] = (),
    managed: Mapping[Path, frozenset[str]] | None = None,
    rules: frozenset[str] | None = None,
    jobs: int | None = None,
) -> list[Finding]:
    """Every finding in ``sources`` of the ``rules`` (default: all), one per cause."""
    with _no_collections():
        return _check_sources(sources, roots, managed, rules, jobs)


def _check_sources(
    sources: Sequence[tuple[Path, str, str]],
    roots: Sequence[Path],
    managed: Mapping[Path, frozenset[str]] | None,
    rules: frozenset[str] | None,
    jobs: int | None,
) -> list[Finding]:
    project = Project(roots)
    findings: list[Finding] = []
    for path, shown, source in sources:
        parsed = _parse(source, shown, project)
        if isinstance(parsed, Finding):
            findings.append(parsed)
            continue
        tree, nodes = parsed
        project.add(path, shown, source, tree, nodes, linted=True)
    project.link()
    findings.extend(analyse_programs(project.programs(), managed, rules, analyse, jobs))
    project.release()
    return sorted(findings)


def analyse(
    project: Project,
    managed: Mapping[Path, frozenset[str]] | None,
    rules: frozenset[str] | None,
) -> list[Finding]:
    """The findings of one program (modules joined by imports, linked), one per cause."""
    raw: list[Raw] = []
    with _deep_recursion():
        walk = SeedWalk(project, managed)
        walk.run()
        flow = Flow(project, walk, walk.called)
        flowed = flow.run()
        # Draws that become a seed are HR018's cause, reported there.
        seeding = {id(found.cause) for found in flowed if found.cause is not None}
        for site in walk.sites.values():
            if not site.unmet or id(site.call) in seeding:
                continue
            sink = flow.reached_draws.get(id(site.call))
            if needs_a_result(site) and sink is None:
                continue  # the drawn value only feeds a print, an assert, a trace
            related = [] if sink is None else [(sink.module, sink.node, f"reaches {sink.what}")]
            cause = site.needs if site.needs in GENERATORS else None
            raw.append(Raw(site.module, site.rule, site.call, site.detail, cause, related))
        for maybe in walk.maybe.values():
            raw.append(maybe_seed(maybe))
        for found in flowed:
            raw.append(Raw(found.module, found.rule, found.node, found.detail, None, found.related))
    for module in project.modules:
        if module.linted:
            raw.extend(
                Raw(module, rule, node, detail)
                for rule, node, detail in _local_rules(module, project)
            )
    ignores = {id(m): _ignores(m.source) for m in project.modules if m.linted}
    kept = [
        item
        for item in raw
        if item.module.linted
        and (rules is None or item.rule in rules)
        and not _ignored(finding(item), ignores[id(item.module)])
    ]
    # A finding placed at a helper another file relies on is silenced where it is shown.
    by_path = {m.shown: ignores[id(m)] for m in project.modules if m.linted}
    return [
        found
        for found in grouped(kept, SeedingHelpers(project, walk))
        if not _ignored(found, by_path[found.path])
    ]


def _parse(source: str, shown: str, project: Project) -> tuple[ast.Module, list[ast.AST]] | Finding:
    """The syntax tree and its nodes (recorded in the project's one walk), or the HR000
    finding that says why there is none to check."""
    try:
        tree = ast.parse(source, filename=shown)
    except SyntaxError as error:
        return _parse_error(shown, error.lineno or 1, error.offset or 1, error.msg)
    except ValueError as error:  # source code string cannot contain null bytes
        return _parse_error(shown, 1, 1, str(error))
    except (RecursionError, MemoryError):
        return _parse_error(shown, 1, 1, "nested too deeply for Python's parser")
    nodes = project.syntax.read(tree, MAX_DEPTH)
    if nodes is None:
        deepest = deepest_beyond(tree, MAX_DEPTH)
        reason = f"nested more than {MAX_DEPTH} levels deep, too deep to analyse"
        return _parse_error(shown, getattr(deepest, "lineno", 1), 1, reason)
    return tree, nodes


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """Python's cyclic collector, off while linting: the trees, their recorded children
    and the analyses' facts are hundreds of thousands of objects that all live until the
    end, so each collection traverses them again and frees almost nothing (a few hundred
    objects on a few hundred files, against a seventh of the time spent collecting). The
    project's links are released after the analyses, so that what the lint leaves holds
    no cycle and reference counting frees it as it goes: a collection after the lint
    would otherwise traverse every tree once more to free them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _deep_recursion() -> Iterator[None]:
    """Room for the analyses to follow long chains of calls between project functions
    (each level of a chain is a few Python frames)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, _RECURSION_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _parse_error(path: str, line: int, column: int, reason: str) -> Finding:
    rule = BY_ID[PARSE_ERROR]
    return Finding(
        path,
        line,
        max(column, 1),
        rule.id,
        f"{rule.summary}: {reason}",
        rule.fix,
        line,
        1,
        rule.severity,
    )


# -- ignores ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ignores:
    lines: Mapping[int, frozenset[str] | None]
    # Rules ignored in the whole file; None inside means every rule.
    file: frozenset[str] | None


def _ignores(source: str) -> _Ignores:
    """``# harness: ignore[...]`` by line, and ``# harness: ignore-file[...]`` comments."""
    lines: dict[int, frozenset[str] | None] = {}
    whole: set[str] = set()
    everything = False
    if "harness" not in source:
        return _Ignores(lines, frozenset())
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type != tokenize.COMMENT:
                continue
            match = _IGNORE.search(token.string)
            if match is None:
                continue
            raw = match.group("ids")
            ids = (
                None
                if raw is None
                else frozenset(p.strip().upper() for p in raw.split(",") if p.strip())
            )
            if match.group("file"):
                if ids is None:
                    everything = True
                else:
                    whole |= ids
            else:
                lines[token.start[0]] = ids
    except (tokenize.TokenError, SyntaxError):
        pass  # the parser accepted the file; a tokenizer quirk only loses the comments
    return _Ignores(lines, None if everything else frozenset(whole))


def _ignored(finding: Finding, ignores: _Ignores) -> bool:
    if finding.rule == PARSE_ERROR:
        return False
    if ignores.file is None or finding.rule in ignores.file:
        return True
    # A comment on the first or the last line of the flagged expression counts, so that a
    # call formatted over several lines can be silenced where a formatter leaves the comment.
    for line in (finding.line, finding.end_line or finding.line):
        if line in ignores.lines:
            ids = ignores.lines[line]
            if ids is None or finding.rule in ids:
                return True
    return False


# -- local rules -----------------------------------------------------------------------


def _local_rules(module: Module, project: Project) -> Iterable[tuple[str, ast.AST, str]]:
    """HR003 (generators created without a seed), HR007 (cuDNN) and HR008 (switches off)."""
    nodes = module.nodes
    # Expressions whose .manual_seed(...) the file calls: a torch.Generator assigned to one
    # of them is seeded, wherever the call is.
    calls = module.of_kind(ast.Call)
    manual_seeded = {
        ast.unparse(node.func.value)
        for node in calls
        if isinstance(node.func, ast.Attribute) and node.func.attr == "manual_seed"
    }
    seeded_generators: set[int] = set()
    for node in nodes:
        if isinstance(node, _ASSIGNMENTS) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (
                manual_seeded
                and isinstance(node.value, ast.Call)  # only a call can make a generator
                and {ast.unparse(t) for t in targets} & manual_seeded
            ):
                seeded_generators.add(id(node.value))
            for target in targets:
                yield from _assignment(target, node.value, module, project)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "manual_seed"
            and isinstance(node.func.value, ast.Call)
        ):
            seeded_generators.add(id(node.func.value))
    for call in calls:
        name = project.qualified(call.func, module)
        if name is not None:
            yield from _local_call(call, name, seeded_generators)


def _local_call(
    node: ast.Call, name: str, seeded_generators: set[int]
) -> Iterable[tuple[str, ast.AST, str]]:
    spread = any(k.arg is None for k in node.keywords)
    if name in apis.UNSEEDED_CONSTRUCTORS and not spread and no_seed(node):
        yield "HR003", node, f"{name}() without a seed"
    elif name == apis.TORCH_GENERATOR and id(node) not in seeded_generators:
        yield "HR003", node, "torch.Generator() never given manual_seed()"
    elif name == "torch.use_deterministic_algorithms":
        mode = node.args[0] if node.args else keyword(node, "mode")
        warn_only = keyword(node, "warn_only")
        if mode is not None and constant(mode) is False:
            yield "HR008", node, "torch.use_deterministic_algorithms(False)"
        elif warn_only is not None and constant(warn_only) is True:
            yield "HR008", node, "torch.use_deterministic_algorithms(warn_only=True)"
    elif name == "torch.set_deterministic_debug_mode":
        if node.args and constant(node.args[0]) in (0, "default"):
            yield "HR008", node, "torch.set_deterministic_debug_mode(0)"
    elif (
        name in ("os.putenv", "os.environ.setdefault")
        and len(node.args) == 2
        and _constant_str(node.args[0]) in _DETERMINISM_VARIABLES
        and _is_off(node.args[1])
    ):
        yield "HR008", node, f"{_constant_str(node.args[0])} set off"


def _assignment(
    target: ast.expr, value: ast.expr, module: Module, project: Project
) -> Iterable[tuple[str, ast.AST, str]]:
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
                yield "HR007", target, "cudnn.benchmark = True"
            if target.attr == "deterministic" and value.value is False:
                yield "HR007", target, "cudnn.deterministic = False"
    if (
        isinstance(target, ast.Subscript)
        and project.qualified(target.value, module) == "os.environ"
        and _constant_str(target.slice) in _DETERMINISM_VARIABLES
        and _is_off(value)
    ):
        yield "HR008", target, f"{_constant_str(target.slice)} set off"


def _constant_str(node: ast.expr) -> str | None:
    value = constant(node)
    return value if isinstance(value, str) else None


def _is_off(node: ast.expr) -> bool:
    value = constant(node)
    return value in _OFF_VALUES or (value == 0 and not isinstance(value, bool))
