"""Numbers as text files write them, compared as written where float64 would lose them.

A JSON or CSV number is a decimal string. Read as a float64 it may lose what told two
results apart: ``1e400`` and ``7e999`` both overflow to infinity, ``1e-400`` and ``2e-400``
both underflow to zero, and two 20-digit decimals can round to the same double. So every
number keeps the text it was read from; when the doubles agree but the decimals do not,
the verdict is never ``equal``. Only plain ASCII decimals are numbers: ``1_000`` and
``١٢٣`` (Arabic-Indic digits), which Python's ``int()`` and ``float()`` accept, are text.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from harness.compare.model import Status
from harness.compare.policy import Policy

_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "infinity": math.inf}
# Python refuses to turn longer digit strings into int (CVE-2020-10735); past this they
# are compared as exact decimals.
_INT_DIGITS = 4000


class WrittenFloat(float):
    """A float64 that remembers the decimal text it was read from."""

    written: str

    def __new__(cls, text: str) -> WrittenFloat:
        value = super().__new__(cls, text)
        value.written = text
        return value


def parse_int(text: str) -> int | Decimal:
    """A JSON integer: an int, or an exact Decimal when it is too long for ``int()``."""
    digits = len(text) - (text[:1] in "+-")
    return int(text) if digits <= _INT_DIGITS else Decimal(text)


def parse_cell(cell: str) -> int | float | Decimal | None:
    """The number a CSV cell holds, or None when it is text."""
    text = cell.strip()
    if _INTEGER.match(text):
        return parse_int(text)
    if _DECIMAL.match(text):
        return WrittenFloat(text)
    lowered = text.lower().lstrip("+")
    if lowered.lstrip("-") in _SPECIAL:
        value = _SPECIAL[lowered.lstrip("-")]
        return -value if lowered.startswith("-") else value
    return None


def _exact(value: Any) -> Decimal:
    written = getattr(value, "written", None)
    try:
        return Decimal(written) if written is not None else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        return Decimal("NaN")


def _beyond_float(value: Any) -> bool:
    """Written as a finite decimal, but read as an infinity (or a huge Decimal)."""
    if isinstance(value, Decimal):
        return True
    return getattr(value, "written", None) is not None and not math.isfinite(value)


def as_written(
    a: Any, b: Any, status: Status, note: str | None, policy: Policy
) -> tuple[Status, str | None]:
    """Correct a float64 verdict on two numbers with what their text says."""
    if not any(hasattr(x, "written") or isinstance(x, Decimal) for x in (a, b)):
        return status, note
    exact_a, exact_b = _exact(a), _exact(b)
    if exact_a == exact_b:
        return status, note
    if _beyond_float(a) or _beyond_float(b):
        return "differs", "numbers beyond float64 differ as written"
    if status in ("equal", "within"):
        # The doubles agree, or nearly: decide on the decimals as written.
        found = _tolerated(exact_a, exact_b, policy)
        return found, note or "the same float64, written as different decimals"
    return status, note


def _tolerated(a: Decimal, b: Decimal, policy: Policy) -> Status:
    """Two decimals that one float64 stands for: within a ULP tolerance (0 ULP apart), and
    within a relative or absolute one only if the exact decimals are."""
    if not policy.is_tolerance:
        return "differs"
    if policy.kind == "ulp":
        return "within"
    with localcontext() as context:
        context.prec = 60
        bound = Decimal(policy.atol) + Decimal(policy.rtol) * max(abs(a), abs(b))
        return "within" if abs(a - b) <= bound else "differs"
