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
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Sequence

from harness.lint import apis
from harness.lint.findings import Finding, Location, Raw, finding, location
from harness.lint.rules import BY_ID, ERROR
from harness.lint.seeding import MaybeSeed, Site

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


def grouped(items: Sequence[Raw]) -> list[Finding]:
    """The findings of ``items``, one per cause (see the module's docstring)."""
    anchors: dict[tuple[int, str], Raw] = {}
    for item in sorted(items, key=_position):
        for generator in item.anchors:
            anchors.setdefault((id(item.module), generator), item)
    groups: dict[object, list[Raw]] = {}
    for item in items:
        key: object = id(item)
        if item.cause is not None and not item.anchors:
            anchor = anchors.get((id(item.module), item.cause))
            key = id(anchor) if anchor is not None else (item.module.shown, item.cause)
        groups.setdefault(key, []).append(item)
    findings = [_group_finding(members) for members in groups.values()]
    return _one_per_line(findings)


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
    if anchor.cause is not None and uses:
        rule = BY_ID[anchor.rule]
        message = (
            f"{anchor.detail}: {rule.summary}; {len(uses)} more use(s) of "
            f"{_GENERATOR_NAMES[anchor.cause]} here (related locations): seed it once with "
            f"{_SEED_CALLS[anchor.cause]} before the first"
        )
    elif anchor.anchors and uses:
        message = (
            f"{anchor.detail}: {BY_ID[anchor.rule].summary}; {len(uses)} use(s) then run "
            "unseeded (related locations)"
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
