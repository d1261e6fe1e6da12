"""JSON metrics: numbers within the metric tolerance, everything else exactly equal.

The same value comparison serves every plain value harness meets inside other artifacts
(safetensors metadata, non-tensor entries of a torch checkpoint, a Keras config).
"""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness.compare.model import ArtifactResult, Entry, Status, combine
from harness.compare.names import shown
from harness.compare.policy import Policy
from harness.compare.written import WrittenFloat, as_written, parse_int
from harness.errors import ArtifactError


def _float_key(value: float) -> int:
    """The ordered integer key of a float64 (adjacent floats differ by one)."""
    bits: int = struct.unpack("<q", struct.pack("<d", value))[0]
    return bits if bits >= 0 else -(1 << 63) - bits


def float_ulp(a: float, b: float) -> int:
    """ULP distance between two finite float64 values (+0 and -0 are the same point)."""
    return abs(_float_key(a) - _float_key(b))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _compare_integers(a: int, b: int, policy: Policy) -> tuple[Status, str | None]:
    if a == b:
        return "equal", None
    distance = abs(a - b)
    passed = policy.is_tolerance and distance <= policy.atol
    return ("within" if passed else "differs"), f"integers {distance} apart"


def compare_numbers(
    a: float | Decimal, b: float | Decimal, policy: Policy
) -> tuple[Status, str | None]:
    """The status of two numbers under ``policy``, and how far apart they are.

    ``equal`` means the same type and the same bits: ``1`` and ``1.0``, ``0.0`` and ``-0.0``,
    or two NaNs with different payloads differ under ``bitwise``. A tolerance accepts the
    first two (they are 0 apart); NaN payloads only under ``nan-equal``. Integers are
    exact, or at most ``atol`` apart: ULP counts and ``rtol`` are for floating point.
    """
    if isinstance(a, int) and isinstance(b, int):
        return _compare_integers(a, b, policy)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        # Integers too long for int(): exact, as written.
        return ("equal", None) if a == b else ("differs", "integers differ")
    return _compare_floats(a, b, policy)


def _compare_floats(a: float, b: float, policy: Policy) -> tuple[Status, str | None]:
    try:
        fa, fb = float(a), float(b)
    except OverflowError:
        return "differs", "an integer too large for float64"
    mixed = isinstance(a, int) != isinstance(b, int)
    if not mixed and _bits(fa) == _bits(fb):
        return "equal", None
    if math.isnan(fa) and math.isnan(fb):
        return ("within" if policy.nan_equal else "differs"), "NaN payloads differ"
    if not (math.isfinite(fa) and math.isfinite(fb)):
        return "differs", "NaN/Inf pattern differs"
    absd = abs(fa - fb)
    magnitude = max(abs(fa), abs(fb))
    rel = absd / magnitude if magnitude else 0.0
    ulp = float_ulp(fa, fb)
    note = f"abs {absd:.3g}, rel {rel:.3g}, {ulp} ULP"
    if mixed:
        note = f"an integer vs a float; {note}"
    elif fa == fb:
        note = "signed zeros differ"
    passed = policy.is_tolerance and (
        ulp <= policy.ulp or absd <= policy.atol
        if policy.kind == "ulp"
        else absd <= policy.atol + policy.rtol * magnitude
    )
    return ("within" if passed else "differs"), note


def _jsonable(value: Any) -> Any:
    """Plain values as the report shows them (bytes as a short hex string)."""
    # A plain float where it stands for what was written (the common case), so that
    # --json keeps numbers numbers; the text where float64 loses it.
    if (
        isinstance(value, WrittenFloat)
        and math.isfinite(value)
        and Decimal(repr(float(value))) == Decimal(value.written)
    ):
        return float(value)
    if isinstance(value, Decimal | WrittenFloat):
        text = value.written if isinstance(value, WrittenFloat) else str(value)
        return text if len(text) <= 40 else f"{text[:20]}...{text[-12:]} ({len(text)} characters)"
    if isinstance(value, bytes | bytearray):
        text = bytes(value[:32]).hex()
        return f"<{len(value)} bytes {text}{'...' if len(value) > 32 else ''}>"
    if isinstance(value, dict | list | tuple | set | frozenset):
        return f"<{type(value).__name__} of {len(value)}>"
    return value


def _compare_items(
    pairs: list[tuple[str, Any]],
    a: dict[Any, Any],
    b: dict[Any, Any],
    children: list[tuple[str, Any, Any]],
    result: ArtifactResult,
) -> None:
    for where, key in pairs:
        if key not in b:
            result.add_entry(Entry(where, "removed", a=_jsonable(a[key])))
        elif key not in a:
            result.add_entry(Entry(where, "added", b=_jsonable(b[key])))
        else:
            children.append((where, a[key], b[key]))


def compare_values(where: str, a: Any, b: Any, policy: Policy, result: ArtifactResult) -> None:
    """Compare two plain values (nested dicts and lists included), recording differences.

    The walk keeps its own stack: a document nested a thousand levels deep is as
    comparable as a flat one.
    """
    stack: list[tuple[str, Any, Any]] = [(where, a, b)]
    while stack:
        where, a, b = stack.pop()
        children: list[tuple[str, Any, Any]] = []
        if isinstance(a, dict) and isinstance(b, dict):
            keys = list(a) + [key for key in b if key not in a]
            pairs = [(f"{where}.{key}" if where else str(key), key) for key in keys]
            _compare_items(pairs, a, b, children, result)
        elif isinstance(a, list | tuple) and isinstance(b, list | tuple) and type(a) is type(b):
            pairs = [(f"{where}[{index}]", index) for index in range(max(len(a), len(b)))]
            _compare_items(pairs, dict(enumerate(a)), dict(enumerate(b)), children, result)
        elif _is_number(a) and _is_number(b):
            status, note = compare_numbers(a, b, policy)
            status, note = as_written(a, b, status, note, policy)
            if status != "equal":
                result.add_entry(Entry(where, status, a=_jsonable(a), b=_jsonable(b), note=note))
        elif type(a) is not type(b) or a != b:
            result.add_entry(Entry(where, "differs", a=_jsonable(a), b=_jsonable(b)))
        stack.extend(reversed(children))


# Metrics files are kilobytes; the whole document is held in memory to compare it.
MAX_JSON = 64 << 20


def check_json_size(size: int, what: str) -> None:
    if size > MAX_JSON:
        raise ArtifactError(
            f"{what} is {size} bytes of JSON, more than the {MAX_JSON} harness reads whole",
            hint="keep metrics small; store arrays as .npy or .safetensors artifacts",
        )


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        counts: dict[str, int] = {}
        for key, _ in pairs:
            counts[key] = counts.get(key, 0) + 1
        twice = next(key for key, count in counts.items() if count > 1)
        raise ArtifactError(
            f"a JSON object names the key {shown(twice)!r} twice: loaders disagree on "
            "which value counts (Python keeps the last, others the first)",
            hint="write each key once",
        )
    return found


def _constant(name: str) -> float:
    # NaN, Infinity and -Infinity are not JSON, but Python writes them.
    return float(name)


def loads_json(raw: bytes | str) -> Any:
    """JSON with numbers kept as written and each key once (ValueError or RecursionError
    when malformed, ArtifactError on a repeated key)."""
    return json.loads(
        raw,
        parse_float=WrittenFloat,
        parse_int=parse_int,
        parse_constant=_constant,
        object_pairs_hook=no_duplicates,
    )


def load_json(path: Path) -> Any:
    check_json_size(path.stat().st_size, str(path))
    try:
        with path.open("rb") as handle:
            return loads_json(handle.read())
    except (ValueError, RecursionError) as exc:
        raise ArtifactError(
            f"{path} is not valid JSON: {exc}", hint="fix or regenerate the file"
        ) from None


def compare_json(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    compare_values("$", load_json(a), load_json(b), policy, result)
    result.status = combine(result.entry_statuses())
