"""One finding per cause: the uses of one unseeded generator, or of one seed the default
run does not set, are one finding with the uses as related locations.

A script that never seeds torch may build ten layers, shuffle a loader and draw noise:
that is one missing ``torch.manual_seed``, and one fix. So the uses of a global generator
in one file that run unseeded are grouped, reported at the first (the place to seed
before), and counted once; when the file, or the program it belongs to, seeds that
generator only under a condition the default run skips (HR019), the uses are that
finding's related locations instead. A draw whose value reaches no result (it feeds a
print, an assert, the example input of a trace, a timing) is not a use: only writing,
returning, logging as a metric or training on it makes the result differ.

A cause can span files. Scripts that seed through one helper of the project
(``seed_all(0)`` from ``common.py``) share its omissions: when the helper seeds some
generators but not the one a script's uses need, or seeds it only under a condition the
default run skips (HR019), the uses of every script that calls it are one finding, at the
helper, with the uses in each file as related locations. Only where the cause is truly
one: the file calls exactly one seeding helper of another file and never seeds that
generator itself; otherwise each file keeps its own finding.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from harness.lint import apis
from harness.lint.findings import Finding, Location, Raw, finding, location
from harness.lint.project import Function, Module, Project
from harness.lint.rules import BY_ID, ERROR
from harness.lint.seeding import MaybeSeed, SeedWalk, Site, no_seed

GENERATORS = frozenset({apis.PYTHON, apis.NUMPY, apis.TORCH, apis.TENSORFLOW})
_GENERATOR_NAMES = {
    apis.PYTHON: "Python's random",
    apis.NUMPY: "NumPy's global random state",
    apis.TORCH: "torch's global generator",
    apis.TENSORFLOW: "TensorFlow's global seed",
}
_SEED_CALLS = {
    apis.PYTHON: "random.seed(seed)",
    apis.NUMPY: "np.random.seed(seed)",
    apis.TORCH: "torch.manual_seed(seed)",
    apis.TENSORFLOW: "tf.random.set_seed(seed)",
}
# Rules whose sites are draws of a value: a finding only when the value reaches a result.
_DRAWS = frozenset({"HR001", "HR002", "HR004", "HR005"})
MAYBE_SEED = "HR019"
# The cause of a finding placed at a helper that leaves a generator unseeded.
_OMISSION = "omission"
# Project functions followed from a seeding helper to the calls that seed.
_MAX_HELPER_DEPTH = 4
_MAX_RELATED = 20


def needs_a_result(site: Site) -> bool:
    """Whether the site is a draw whose value must reach a result to matter. In-place
    samplers (``.normal_()``, ``nn.init.*_``) initialise weights and always count."""
    if site.rule not in _DRAWS:
        return False
    func = site.call.func
    return not (isinstance(func, ast.Attribute) and func.attr in apis.TORCH_INPLACE_SAMPLERS)


def maybe_seed(maybe: MaybeSeed) -> Raw:
    """The HR019 finding of a seed the default run does not set."""
    names = " and ".join(_GENERATOR_NAMES[g] for g in sorted(maybe.generators))
    detail = f"{names}; {maybe.default.described}"
    fix = (
        "give the seed a fixed default (default=0 for the option or parameter), or seed "
        "unconditionally: torch.manual_seed(0 if args.seed is None else args.seed)"
    )
    return Raw(
        maybe.module, MAYBE_SEED, maybe.node, detail, fix=fix, anchors=frozenset(maybe.generators)
    )


@dataclass(frozen=True, eq=False)
class SeedingHelper:
    """A project function of another file that a file calls to seed the global
    generators: what it seeds, and the seeds it sets only when a setting is given."""

    function: Function
    seeds: frozenset[str]
    # HR019 nodes inside the helper: a seed the default run does not set.
    maybe: tuple[ast.AST, ...]
    # Where a missing seed goes: after its last seeding call (or at its definition).
    place: ast.AST


class SeedingHelpers:
    """Which seeding helper each file relies on, found when a cause asks (most files
    seed themselves, or never call a helper)."""

    def __init__(self, project: Project, walk: SeedWalk) -> None:
        self._project = project
        self._seeds: dict[int, frozenset[str]] = {}
        self._maybe = list(walk.maybe.values())
        self._known: dict[int, SeedingHelper | None] = {}
        self._own_seeds: dict[int, frozenset[str]] = {}

    def of(self, module: Module) -> SeedingHelper | None:
        if id(module) not in self._known:
            self._known[id(module)] = self._find(module)
        return self._known[id(module)]

    def _find(self, module: Module) -> SeedingHelper | None:
        """The one function of another linted file that ``module`` calls and that seeds
        (or seeds only when a setting is given); None for none, or for several."""
        found: dict[int, SeedingHelper] = {}
        for node in module.of_kind(ast.Call):
            target = self._project.resolve_call(node, module, None)
            if not isinstance(target, Function) or target.module is module:
                continue
            if id(target) in found:
                continue
            seeds = self.seeds(target)
            maybe = tuple(m.node for m in self._maybe if _inside(m, target))
            if seeds or maybe:
                found[id(target)] = SeedingHelper(target, seeds, maybe, self._place(target))
        if len(found) != 1:
            return None
        (helper,) = found.values()
        return helper if helper.function.module.linted else None

    def seeds(self, function: Function, depth: int = 0) -> frozenset[str]:
        """The global generators a function seeds, itself or through the project
        functions it calls, whatever was seeded before it ran."""
        if id(function) in self._seeds:
            return self._seeds[id(function)]
        self._seeds[id(function)] = frozenset()  # a call back into it adds nothing
        found: set[str] = set()
        for node in self._project.syntax.walk(function.node):
            if not isinstance(node, ast.Call):
                continue
            name = self._project.qualified(node.func, function.module)
            if name is not None and name in apis.SEEDS:
                if not no_seed(node):
                    found |= apis.SEEDS[name] & GENERATORS
                continue
            target = self._project.resolve_call(node, function.module, function)
            if isinstance(target, Function) and depth < _MAX_HELPER_DEPTH:
                found |= self.seeds(target, depth + 1)
        self._seeds[id(function)] = frozenset(found)
        return self._seeds[id(function)]

    def _place(self, function: Function) -> ast.AST:
        seeding = [
            node
            for node in self._project.syntax.walk(function.node)
            if isinstance(node, ast.Call)
            and self._project.qualified(node.func, function.module) in apis.SEEDS
        ]
        return max(seeding, key=_start) if seeding else function.node

    def seeds_itself(self, module: Module, generator: str) -> bool:
        """Whether the file has its own seeding call for ``generator`` (then its uses are
        its own cause: a use before the seed)."""
        if id(module) not in self._own_seeds:
            seeds: set[str] = set()
            for node in module.of_kind(ast.Call):
                name = self._project.qualified(node.func, module)
                if name is not None and name in apis.SEEDS:
                    seeds |= apis.SEEDS[name]
            self._own_seeds[id(module)] = frozenset(seeds)
        return generator in self._own_seeds[id(module)]


def _start(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0)


def _inside(maybe: MaybeSeed, function: Function) -> bool:
    line = getattr(maybe.node, "lineno", 0)
    node = function.node
    return maybe.module is function.module and node.lineno <= line <= (node.end_lineno or 0)


def grouped(items: Sequence[Raw], helpers: SeedingHelpers | None = None) -> list[Finding]:
    """The findings of ``items``, one per cause (see the module's docstring)."""
    anchors: dict[tuple[int, str], Raw] = {}
    for item in sorted(items, key=_position):
        for generator in item.anchors:
            anchors.setdefault((id(item.module), generator), item)
    # The findings placed at a helper that leaves a generator unseeded, by helper and
    # generator.
    omissions: dict[tuple[int, str], Raw] = {}
    groups: dict[object, list[Raw]] = {}
    for item in sorted(items, key=_position):
        key: object = id(item)
        if item.cause is not None and not item.anchors:
            anchor = anchors.get((id(item.module), item.cause))
            if anchor is None and helpers is not None:
                anchor = _across_files(item, item.cause, helpers, anchors, omissions)
                if anchor is not None and anchor.cause == _OMISSION and id(anchor) not in groups:
                    groups[id(anchor)] = [anchor]
            key = id(anchor) if anchor is not None else (item.module.shown, item.cause)
        groups.setdefault(key, []).append(item)
    findings = [_group_finding(members) for members in groups.values()]
    return _one_per_line(findings)


def _across_files(
    item: Raw,
    generator: str,
    helpers: SeedingHelpers,
    anchors: dict[tuple[int, str], Raw],
    omissions: dict[tuple[int, str], Raw],
) -> Raw | None:
    """The finding at the seeding helper that is the cause of ``item``, if one is."""
    helper = helpers.of(item.module)
    if helper is None or helpers.seeds_itself(item.module, generator):
        return None
    helper_module = helper.function.module
    conditional = anchors.get((id(helper_module), generator))
    if conditional is not None and any(conditional.node is node for node in helper.maybe):
        return conditional
    if generator in helper.seeds or helper.maybe:
        return None
    key = (id(helper.function), generator)
    if key not in omissions:
        omissions[key] = _omission(helper, generator, item.rule)
    return omissions[key]


def _omission(helper: SeedingHelper, generator: str, rule: str) -> Raw:
    """The finding of a helper that seeds other generators but not ``generator``."""
    function = helper.function
    seeded = " and ".join(_GENERATOR_NAMES[g] for g in sorted(helper.seeds))
    detail = f"{function.name}() seeds {seeded}, not {_GENERATOR_NAMES[generator]}"
    fix = f"add {_SEED_CALLS[generator]} to {function.name}()"
    return Raw(
        function.module,
        rule,
        helper.place,
        detail,
        cause=_OMISSION,
        fix=fix,
        anchors=frozenset({generator}),
    )


def _position(item: Raw) -> tuple[str, int, int]:
    return (item.module.shown, getattr(item.node, "lineno", 0), getattr(item.node, "col_offset", 0))


def _group_finding(members: list[Raw]) -> Finding:
    anchors = [m for m in members if m.anchors]
    if anchors:
        anchor = anchors[0]
    else:
        errors = [m for m in members if BY_ID[m.rule].severity == ERROR] or members
        anchor = min(errors, key=_position)
    uses = sorted((m for m in members if m is not anchor), key=_position)
    related: list[Location] = [location(m, n, what) for m, n, what in anchor.related]
    for use in uses:
        related.append(location(use.module, use.node, f"{use.rule} {use.detail}"))
        related.extend(location(m, n, what) for m, n, what in use.related)
    message = None
    if anchor.cause in _GENERATOR_NAMES and uses:
        rule = BY_ID[anchor.rule]
        message = (
            f"{anchor.detail}: {rule.summary}; {len(uses)} more use(s) of "
            f"{_GENERATOR_NAMES[anchor.cause]} here (related locations): seed it once with "
            f"{_SEED_CALLS[anchor.cause]} before the first"
        )
    elif anchor.anchors and uses:
        files = len({use.module.shown for use in uses})
        where = f" in {files} files" if files > 1 else ""
        message = (
            f"{anchor.detail}: {BY_ID[anchor.rule].summary}; {len(uses)} use(s){where} then "
            "run unseeded (related locations)"
        )
    result = finding(anchor, message)
    severity = ERROR if any(BY_ID[m.rule].severity == ERROR for m in members) else result.severity
    return dataclasses.replace(
        result, severity=severity, related=_bounded(_unique(related, result))
    )


def _unique(related: list[Location], owner: Finding) -> list[Location]:
    seen = {(owner.path, owner.line, owner.column, owner.rule)}
    kept: list[Location] = []
    for place in related:
        key = (place.path, place.line, place.column, place.message.split(" ", 1)[0])
        if key not in seen:
            seen.add(key)
            kept.append(place)
    return kept


def _bounded(related: list[Location]) -> tuple[Location, ...]:
    return tuple(related[:_MAX_RELATED])


def _one_per_line(findings: list[Finding]) -> list[Finding]:
    """One finding per line and rule: a second call on the line joins the first's related
    locations (a line is what a reader fixes, and what an ignore comment silences)."""
    first: dict[tuple[str, int, str], Finding] = {}
    for found in sorted(findings):
        key = (found.path, found.line, found.rule)
        known = first.get(key)
        if known is None:
            first[key] = found
            continue
        extra = Location(
            found.path, found.line, found.column, found.end_line, found.end_column, found.message
        )
        merged = _unique([*known.related, extra, *found.related], known)
        first[key] = dataclasses.replace(known, related=_bounded(merged))
    return list(first.values())
