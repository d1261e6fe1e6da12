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
import math
from typing import Any

from harness import untrusted


class NotCanonical(ValueError):
    """A document that JSON parsers would read differently; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def dumps(document: Any) -> bytes:
    """The canonical bytes of ``document``, refusing what could be read two ways."""
    _check_strings(document)
    try:
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
        document = json.loads(
            text,
            parse_constant=refuse_constant,
            object_pairs_hook=_no_repeated_keys,
        )
        _check_strings(document)
    except NotCanonical as error:
        raise untrusted.UntrustedInputError(what, error.reason) from None
    except RecursionError:
        raise untrusted.UntrustedInputError(what, "nests too deep") from None
    except (UnicodeDecodeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise untrusted.UntrustedInputError(what, f"is not valid JSON: {reason}") from None
    if untrusted.nesting(document, untrusted.DEPTH_LIMIT) > untrusted.DEPTH_LIMIT:
        raise untrusted.UntrustedInputError(
            what, f"nests deeper than {untrusted.DEPTH_LIMIT} levels"
        )
    return document


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise NotCanonical(f"names the key {key!r} twice")
        document[key] = value
    return document


def _check_strings(document: Any) -> None:
    """Refuse a lone surrogate in any key or string, without recursion."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key)
                pending.append(item)
        elif isinstance(value, list | tuple):
            pending.extend(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise NotCanonical("holds NaN or Infinity, which JSON has no way to say")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotCanonical(
            "holds a lone UTF-16 surrogate, which JSON parsers read differently"
        ) from None
