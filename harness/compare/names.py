"""File names and keys as the reports show them: one line, no terminal control, unambiguous.

A name comes from whoever wrote the artifact. It can hold a newline (which would split a
table row or a one-line error), an escape sequence (which a terminal would obey), a
right-to-left override (which would show ``gpj.exe`` as ``exe.jpg``) or bytes that are not
UTF-8. Every such character is written as a Python-style escape, and the backslash itself
is doubled so that an escaped name never looks like another real one.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

# Categories that are not printed as themselves: controls, format characters (bidi
# overrides, zero-width joiners), surrogates (undecodable bytes of a file name), private
# use, unassigned, and the line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


@lru_cache(maxsize=4096)
def _shown(name: str) -> str:
    out = []
    for char in name:
        if char == "\\":
            out.append("\\\\")
        elif unicodedata.category(char) in _HIDDEN:
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


def shown(name: str) -> str:
    """``name`` with every character that a terminal or a table would not show as itself
    escaped; plain names (the common case) come back unchanged."""
    if name.isascii() and name.isprintable() and "\\" not in name:
        return name
    return _shown(name)


def printable(text: str) -> str:
    """``text`` (a value, a line of a diff) with hidden characters escaped; backslashes
    stay as they are, since a value is shown between quotes or in a diff, not as a name."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _HIDDEN else char for char in text
    )
