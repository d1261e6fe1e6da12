"""What `harness lint` reports: a finding at the place to fix its cause, with the other
places the cause shows as related locations.

Positions are 1-based lines and columns (columns count characters), as ruff, flake8 and
pylint report them and SARIF requires; an end column is one past the last character.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from harness.lint.project import Module
from harness.lint.rules import BY_ID

# Related locations named in the one-line text form; JSON and SARIF list them all.
_SHOWN_RELATED = 6


@dataclass(eq=False)
class Raw:
    """A finding before grouping: the node it is at, and what groups it with others.

    ``cause`` is the global generator an unseeded use needs (uses of one generator in one
    file are one cause); ``related`` the other places this one shows (results reached)."""

    module: Module
    rule: str
    node: ast.AST
    detail: str
    cause: str | None = None
    related: list[tuple[Module, ast.AST, str]] = field(default_factory=list)
    fix: str | None = None
    # HR019: the generators whose unseeded uses are this finding's related locations.
    anchors: frozenset[str] = frozenset()


@dataclass(frozen=True, order=True)
class Location:
    """Another place one finding's cause shows: a use of the unseeded generator, the
    result a value reaches. Lines and columns are 1-based, as in :class:`Finding`."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
        }


@dataclass(frozen=True, order=True)
class Finding:
    """One cause, at the place to fix it. Lines and columns are 1-based (the column counts
    characters, as ruff and flake8 report them); the end column is one past the last
    character. ``related`` holds the other places the same cause shows."""

    path: str
    line: int
    column: int
    rule: str
    message: str
    fix: str
    end_line: int = 0
    end_column: int = 0
    severity: str = "error"
    related: tuple[Location, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line or self.line,
            "end_column": self.end_column,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "related": [location.as_dict() for location in self.related],
        }

    def one_line(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        also = ""
        if self.related:
            # Each line once, in order: two uses on one line are one place to look.
            lines = list(
                dict.fromkeys(
                    f"{r.line}" if r.path == self.path else f"{r.path}:{r.line}"
                    for r in self.related
                )
            )
            places = lines[:_SHOWN_RELATED]
            more = len(lines) - _SHOWN_RELATED
            tail = f" and {more} more" if more > 0 else ""
            # Lines of this file alone read "at line 7, 9"; places in other files carry
            # their path ("at train.py:7").
            at = "at line" if all(r.path == self.path for r in self.related) else "at"
            also = f" [also {at} {', '.join(places)}{tail}]"
        return f"{where}: {self.rule} {self.message}{also} (fix: {self.fix})"


def finding(item: Raw, message: str | None = None) -> Finding:
    rule = BY_ID[item.rule]
    line, column, end_line, end_column = span(item.module, item.node)
    if message is None:
        message = f"{item.detail}: {rule.summary}" if item.detail else rule.summary
    return Finding(
        item.module.shown,
        line,
        column,
        rule.id,
        message,
        item.fix or rule.fix,
        end_line,
        end_column,
        rule.severity,
    )


def span(module: Module, node: ast.AST) -> tuple[int, int, int, int]:
    """1-based line and column of a node's start, and of one past its end."""
    line = getattr(node, "lineno", 1)
    end_line = getattr(node, "end_lineno", None) or line
    lines = module.lines()
    column = _characters(lines, line, getattr(node, "col_offset", 0))
    end_column = _characters(lines, end_line, getattr(node, "end_col_offset", None) or 0)
    return line, column + 1, end_line, end_column + 1


def location(module: Module, node: ast.AST, message: str) -> Location:
    line, column, end_line, end_column = span(module, node)
    return Location(module.shown, line, column, end_line, end_column, message)


def _characters(lines: list[str], line: int, offset: int) -> int:
    """The parser's UTF-8 byte offset on a line, as a count of characters."""
    if not 0 < line <= len(lines):
        return offset
    return len(lines[line - 1].encode("utf-8")[:offset].decode("utf-8", "replace"))
