"""Comparison policies: what counts as "the same" for an artifact.

Grammar (one policy per string)::

    bitwise                     every bit equal (the default)
    ulp:N                       floats at most N units in the last place apart
    ulp:N,atol=A                ... or at most A apart in absolute terms (the floor that
                                keeps values near zero from failing on huge ULP counts)
    close:rtol=R,atol=A         |a - b| <= A + R * max(|a|, |b|)  (symmetric in a and b)
    metric:rtol=R,atol=A        the same test, named for JSON/CSV metrics
    ...,nan-equal               any NaN equals any NaN at the same place (payload and sign
                                ignored); ``nan-equal`` alone is bitwise with that one pardon

A tolerance that does not name ``nan-equal`` fails two NaNs whose bits differ: a gate must
not pass bytes that differ unless its policy says why. Infinities must match exactly.

Tolerances describe floating-point rounding, so ULP counts apply to floating types only.
Integers are equal, or at most ``atol`` apart when the policy names one (``rtol`` and ULP
counts do not apply to them); booleans are always compared exactly.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness.errors import ConfigError

PolicyKind = Literal["bitwise", "ulp", "close", "metric"]

_FORMS = (
    "bitwise, ulp:N, ulp:N,atol=A, close:rtol=R,atol=A or metric:rtol=R,atol=A "
    "(any of them with ,nan-equal)"
)
NAN_EQUAL = "nan-equal"
# The largest ULP distance there is: float64 from -max to +max, which fits uint64.
MAX_ULP = (1 << 64) - 1
POLICY_HINT = f"write a policy as one of: {_FORMS}"


@dataclass(frozen=True)
class Policy:
    """A parsed policy; ``text`` is its canonical spelling, used to name the tier."""

    kind: PolicyKind
    ulp: int = 0
    rtol: float = 0.0
    atol: float = 0.0
    nan_equal: bool = False

    @property
    def text(self) -> str:
        if self.kind == "bitwise":
            return NAN_EQUAL if self.nan_equal else "bitwise"
        if self.kind == "ulp":
            text = f"ulp:{self.ulp}" + (f",atol={self.atol!r}" if self.atol else "")
        else:
            text = f"{self.kind}:rtol={self.rtol!r},atol={self.atol!r}"
        return text + (f",{NAN_EQUAL}" if self.nan_equal else "")

    @property
    def is_bitwise(self) -> bool:
        """Every bit must be equal (``nan-equal`` alone is not: it pardons NaN payloads)."""
        return self.kind == "bitwise" and not self.nan_equal

    @property
    def is_tolerance(self) -> bool:
        """Values may differ by an amount (ULP, rtol, atol), not only in NaN payloads."""
        return self.kind != "bitwise"

    def __str__(self) -> str:
        return self.text


BITWISE = Policy("bitwise")


def _bad(text: str, part: str, why: str) -> ConfigError:
    return ConfigError(f"bad policy {text!r}: {part!r} {why}", hint=POLICY_HINT)


_WHOLE = re.compile(r"[0-9]+\Z")
_DECIMAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def _number(text: str, part: str, value: str) -> float:
    if not _DECIMAL.match(value):
        raise _bad(text, part, "is not a number (ASCII digits, like 1e-6)")
    try:
        number = float(value)
    except ValueError:
        raise _bad(text, part, "is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise _bad(text, part, "must be a finite number >= 0")
    return number


def _options(text: str, body: str, allowed: tuple[str, ...]) -> dict[str, float]:
    found: dict[str, float] = {}
    for part in body.split(","):
        item = part.strip()
        if item.lower() == NAN_EQUAL:
            continue  # taken by parse_policy
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in allowed:
            expected = " or ".join(f"{key}=<number>" for key in allowed)
            raise _bad(text, item, f"is not one of {expected}")
        if name in found:
            raise _bad(text, item, "repeats an option")
        found[name] = _number(text, item, value.strip())
    return found


def _without_nan_equal(text: str, spelled: str) -> tuple[str, bool]:
    """The policy without its ``nan-equal`` modifier, and whether it had one."""
    head, colon, body = spelled.partition(":")
    listed = body if colon else head
    parts = [part.strip() for part in listed.split(",")]
    named = [part for part in parts if part.lower() == NAN_EQUAL]
    if len(named) > 1:
        raise _bad(text, NAN_EQUAL, "repeats an option")
    rest = ",".join(part for part in parts if part.lower() != NAN_EQUAL)
    return (f"{head}:{rest}" if colon else rest), bool(named)


def parse_policy(text: str) -> Policy:
    """Parse a policy string; a ConfigError names the part that is wrong."""
    spelled, nan_equal = _without_nan_equal(text, text.strip())
    head, colon, body = spelled.partition(":")
    head = head.strip().lower()
    if head in ("bitwise", "") and nan_equal and not colon:
        return Policy("bitwise", nan_equal=True)
    if head == "bitwise":
        if colon:
            raise _bad(text, body, "follows 'bitwise', which takes no options")
        return BITWISE
    if head == "ulp":
        count, _, rest = body.partition(",")
        count = count.strip()
        # str.isdigit() takes "²" and "٣"; int() takes "1_000": only ASCII digits count.
        if not _WHOLE.match(count):
            raise _bad(text, count, "is not a whole number of ULPs (ulp:N)")
        if len(count) > 20 or int(count) > MAX_ULP:
            raise _bad(text, count, f"is more ULPs than any two floats are apart (<= {MAX_ULP})")
        atol = _options(text, rest, ("atol",)).get("atol", 0.0) if rest.strip() else 0.0
        return Policy("ulp", ulp=int(count), atol=atol, nan_equal=nan_equal)
    if head in ("close", "metric"):
        if not body.strip():
            raise _bad(text, spelled, "needs rtol=<number> and/or atol=<number>")
        found = _options(text, body, ("rtol", "atol"))
        kind: PolicyKind = "close" if head == "close" else "metric"
        return Policy(
            kind, rtol=found.get("rtol", 0.0), atol=found.get("atol", 0.0), nan_equal=nan_equal
        )
    raise _bad(text, head, f"is not a policy ({_FORMS})")


def parse_metric_tolerance(text: str) -> Policy:
    """``rtol=R,atol=A`` (or any full policy string) for JSON and CSV numbers."""
    spelled = text.strip()
    if spelled.split(":", 1)[0].strip().lower() in ("bitwise", "ulp", "close", "metric"):
        return parse_policy(spelled)
    return parse_policy(f"metric:{spelled}")


@dataclass(frozen=True)
class PolicySet:
    """The policies of one call: per-artifact globs, the whole-call override, metrics."""

    overall: Policy | None = None
    per_artifact: tuple[tuple[str, Policy], ...] = ()
    metric: Policy | None = None

    @classmethod
    def build(
        cls,
        policy: str | Policy | None = None,
        policies: Mapping[str, str] | None = None,
        metric_tolerance: str | Policy | None = None,
    ) -> PolicySet:
        overall = parse_policy(policy) if isinstance(policy, str) else policy
        metric = (
            parse_metric_tolerance(metric_tolerance)
            if isinstance(metric_tolerance, str)
            else metric_tolerance
        )
        patterns = tuple((glob, parse_policy(text)) for glob, text in (policies or {}).items())
        return cls(overall, patterns, metric)

    def for_artifact(self, path: str, *, numbers: bool = False) -> Policy:
        """The policy for an artifact at ``path`` (relative, ``/``-separated).

        The command line beats configuration: a metric tolerance wins for artifacts made of
        numbers (JSON, CSV), then ``--policy``, then the first glob that matches.
        """
        if numbers and self.metric is not None:
            return self.metric
        if self.overall is not None:
            return self.overall
        for glob, policy in self.per_artifact:
            if glob_matches(glob, path):
                return policy
        return BITWISE


def glob_matches(glob: str, path: str) -> bool:
    """fnmatch on the relative path; a pattern without ``/`` also matches the file name."""
    if fnmatch.fnmatchcase(path, glob):
        return True
    return "/" not in glob and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], glob)
