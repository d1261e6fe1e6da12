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
    """``[tool.harness.lint]``, whose shape the schema checked; each selector must match a
    rule, which only the rules know."""
    settings = LintSettings(
        select=tuple(table.get("select", (ALL,))),
        ignore=tuple(table.get("ignore", ())),
        paths=tuple(table.get("paths", ())),
    )
    check_selectors(settings.select, f"{TABLE} select")
    check_selectors(settings.ignore, f"{TABLE} ignore")
    return settings


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
