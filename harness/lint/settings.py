"""``[tool.harness.lint]``: which rules run and which paths are linted by default.

Keys: ``select`` (rule ids or prefixes, default every rule), ``ignore`` (ids or prefixes
taken out of the selection), ``paths`` (files or folders linted when no PATH is given,
relative to the project root). Ids match as prefixes, as in ruff: ``HR00`` selects HR001 to
HR009, ``ALL`` selects everything. HR000 (a file that cannot be parsed) is always on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.lint.rules import PARSE_ERROR, RULES

TABLE = "[tool.harness.lint]"
_KEYS = ("ignore", "paths", "select")
ALL = "ALL"


@dataclass(frozen=True)
class LintSettings:
    select: tuple[str, ...] = (ALL,)
    ignore: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def enabled(self) -> frozenset[str]:
        """The ids of the rules that run (HR000 always does)."""
        return enabled_rules(self.select, self.ignore)


def settings_from_table(table: Mapping[str, Any]) -> LintSettings:
    """Validate ``[tool.harness.lint]``; errors name the table and the key."""
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {TABLE}", f"use one of: {', '.join(_KEYS)}"
        )
    values: dict[str, tuple[str, ...]] = {}
    for key in _KEYS:
        if key not in table:
            continue
        raw = table[key]
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ConfigError(
                f"{TABLE} {key} must be a list of strings", f'write it as {key} = ["HR001"]'
            )
        values[key] = tuple(raw)
    for key in ("select", "ignore"):
        check_selectors(values.get(key, ()), f"{TABLE} {key}")
    return LintSettings(
        select=values.get("select", (ALL,)),
        ignore=values.get("ignore", ()),
        paths=values.get("paths", ()),
    )


def check_selectors(selectors: Iterable[str], where: str) -> None:
    """Refuse a selector that matches no rule, or one that would turn HR000 off."""
    for selector in selectors:
        if selector.upper() == PARSE_ERROR:
            raise ConfigError(
                f"{where} names {PARSE_ERROR}, which is always on",
                "remove it: a file that cannot be parsed was not checked and must not pass",
            )
        if not _matching(selector):
            known = ", ".join(rule.id for rule in RULES if rule.id != PARSE_ERROR)
            raise ConfigError(
                f"{where} names {selector!r}, which matches no rule",
                f"use {ALL}, a rule id or a prefix of one: {known}",
            )


def enabled_rules(select: Sequence[str], ignore: Sequence[str]) -> frozenset[str]:
    chosen = {rule for selector in select for rule in _matching(selector)}
    dropped = {rule for selector in ignore for rule in _matching(selector)}
    return frozenset(chosen - dropped) | {PARSE_ERROR}


def _matching(selector: str) -> set[str]:
    wanted = selector.strip().upper()
    if wanted == ALL:
        return {rule.id for rule in RULES if rule.id != PARSE_ERROR}
    if not wanted.startswith("HR"):
        return set()
    return {rule.id for rule in RULES if rule.id != PARSE_ERROR and rule.id.startswith(wanted)}
