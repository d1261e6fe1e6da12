"""The compare table as rich draws it for a pipe or a file, without importing rich.

Where no terminal reads the output (CI logs, scripts, ``| tee``), rich draws the table with
no colour: columns as wide as their widest cell, three spaces between them, a rule of
``─`` under the header. Importing rich costs more than comparing two identical files, and
a gate may call ``harness compare`` many times a job, so those characters are written here
directly, but only where they are known to be exactly rich's: ASCII text that fits the
width, no markup, no colour asked for through the environment. Anything else (a wide or
non-ASCII name, a terminal, FORCE_COLOR) returns None and rich draws it. A unit test holds
this module's output to rich's on generated tables.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

# A plain string cell is rich markup to rich; only these characters read as themselves
# whatever surrounds them (no "[" of a tag, no ":" of an emoji code).
_LITERAL = re.compile(r"[A-Za-z0-9_.+\- ]*")
_RULE = "\u2500"  # the header rule of rich's SIMPLE_HEAD box
_SEPARATOR = "   "  # right padding, the (blank) column divider, left padding


@dataclass(frozen=True, slots=True)
class Styled:
    """A cell shown as written (a rich ``Text``), in a style a terminal would colour."""

    text: str
    style: str = ""


def _colour_asked(out: IO[str]) -> bool:
    """Whether rich would treat ``out`` as a terminal (and so colour or size it)."""
    environ = os.environ
    if environ.get("TTY_COMPATIBLE") == "1" or environ.get("FORCE_COLOR"):
        return True
    if hasattr(builtins, "get_ipython"):  # a notebook: rich writes HTML there
        return True
    try:
        return out.isatty()
    except ValueError:  # closed
        return True


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()


def plain_table(
    out: IO[str],
    header: Sequence[str],
    rows: Sequence[Sequence[Styled | str]],
    before: Sequence[str],
    after: str,
    *,
    width: int,
) -> str | None:
    """The lines ``before``, the table and the line ``after``, as rich would print them
    on ``out`` at ``width`` columns; None where only rich can say how they look."""
    encoding = (getattr(out, "encoding", None) or "utf-8").lower()
    if not encoding.startswith("utf") or _colour_asked(out):
        return None
    for line in (*before, after):
        # One colon at most: two could enclose an emoji code, which rich replaces.
        if not _plain(line) or len(line) > width or line.count(":") > 1:
            return None
    table: list[list[str]] = [list(header)]
    for row in rows:
        cells: list[str] = []
        for cell in row:
            if isinstance(cell, Styled):
                text = cell.text
                # Leading or doubled spaces are kept by rich; trailing ones are not
                # everywhere: leave those to rich.
                if not _plain(text) or text != text.rstrip():
                    return None
            else:
                text = cell
                if _LITERAL.fullmatch(text) is None or text != text.strip():
                    return None
            cells.append(text)
        table.append(cells)
    widths = [max(len(cells[column]) for cells in table) for column in range(len(header))]
    if sum(widths) + len(_SEPARATOR) * (len(widths) - 1) > width:
        return None
    lines = list(before)
    for index, cells in enumerate(table):
        lines.append(_SEPARATOR.join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)))
        if index == 0:
            lines.append(_RULE * len(lines[-1]))
    lines.append(after)
    return "".join(f"{line}\n" for line in lines)
