"""Strict JSON for signed payloads: one meaning for every reader, or a refusal.

A signature covers bytes, but whoever checks it acts on what a parser makes of them.
JSON parsers disagree on three things harness could otherwise sign or accept: ``NaN`` and
``Infinity`` (not JSON at all; Python writes and reads them, most other parsers refuse
them or read null), a lone UTF-16 surrogate such as ``"\\ud800"`` (Python keeps it, others
replace it or refuse the document), and an object naming one key twice (the last value
wins here, the first elsewhere). A payload holding any of them is refused both when
harness signs it and when it verifies one, so that a signed statement cannot say one
thing to harness and another to cosign or securesystemslib.

What harness signs is written in one canonical form (keys sorted, no spaces, ASCII with
``\\u`` escapes), so that the same statement always gives the same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness import untrusted


class NotCanonical(ValueError):
    """A document that JSON parsers would read differently; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def dumps(document: Any) -> bytes:
    """The canonical bytes of ``document``, refusing what could be read two ways."""
    try:
        _check_unicode(document)
        text = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except ValueError:
        raise NotCanonical("holds NaN or Infinity, which JSON has no way to say") from None
    return text.encode("ascii")


def loads(payload: bytes, *, what: str) -> Any:
    """Parse a signed payload: no NaN or Infinity, no lone surrogate, no repeated key, and
    nesting within bounds (an :class:`untrusted.UntrustedInputError` names ``what``)."""

    def refuse_constant(name: str) -> Any:
        raise NotCanonical(f"holds {name}, which JSON has no way to say")

    try:
        text = payload.decode("utf-8")
        _check_depth(text)
        document = json.loads(
            text,
            parse_constant=refuse_constant,
            object_pairs_hook=_no_repeated_keys,
        )
        _check_unicode(document)
    except NotCanonical as error:
        raise untrusted.UntrustedInputError(what, error.reason) from None
    except RecursionError:
        raise untrusted.UntrustedInputError(what, "nests too deep") from None
    except (UnicodeDecodeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise untrusted.UntrustedInputError(what, f"is not valid JSON: {reason}") from None
    return document


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise NotCanonical(f"names the key {key!r} twice")
        document[key] = value
    return document


# String literals (escapes included), then the brackets left outside them.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _check_depth(text: str) -> None:
    """Refuse JSON ``text`` nesting deeper than the limit, counted on its brackets outside
    strings, before any parser or walk could recurse that deep."""
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > untrusted.DEPTH_LIMIT:
            raise NotCanonical(f"nests deeper than {untrusted.DEPTH_LIMIT} levels")


def _check_unicode(document: Any) -> None:
    """Refuse a lone surrogate in any key or string: UTF-8 cannot encode one, and the C
    encoder finds it in one pass (a NaN is left to the caller's ``allow_nan``)."""
    try:
        json.dumps(document, ensure_ascii=False, check_circular=False).encode("utf-8")
    except UnicodeEncodeError:
        raise NotCanonical(
            "holds a lone UTF-16 surrogate, which JSON parsers read differently"
        ) from None
