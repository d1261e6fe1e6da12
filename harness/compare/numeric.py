"""The numeric core: ULP distance and difference statistics, one chunk at a time.

Only elements whose bit patterns differ are looked at closely: equal elements add nothing
to any statistic, so a chunk costs one vectorised ``!=`` over its bits and the rest of
the work scales with the number of differences, not with the size of the array.

Definitions (per element pair a, b that differ in their bits):

* ULP distance: the number of representable values between a and b, counting +0 and -0
  as the same point (the ordering ``numpy.testing.nulp_diff`` uses), computed exactly in
  64-bit integers. For integer dtypes it is |a - b|.
* abs = |a - b| and rel = |a - b| / max(|a|, |b|) (0 when both are zero), over pairs where
  both values are finite; the values at the largest ULP and largest abs difference are
  kept, since a huge ULP count between two tiny numbers is a different story from the
  same count between large ones.
* NaN/Inf pattern: positions where exactly one side is NaN, or where an infinity faces
  anything other than the same infinity. These always fail. NaN facing NaN with another
  payload fails too, unless the policy names ``nan-equal``.
* Booleans and opaque types (float8, records) are compared exactly; integers exactly or
  within ``atol``. ULP distances, and their histogram, exist for floating types only.
* Histograms count the differing pairs by binary order of magnitude of their ULP distance
  and of |a - b|: cheap enough for every element, and what a reader needs to tell one
  rounding step from a real change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from harness.compare.dtypes import DType
from harness.compare.model import MAX_LISTED, Bin, Location, Status, TensorResult
from harness.compare.policy import Policy
from harness.compare.streams import CHUNK_BYTES, Order, Source

Array = np.ndarray[Any, Any]

CHUNK_ELEMENTS = 1 << 20
BATCH = 1 << 16

_UINT: dict[int, Any] = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT: dict[int, Any] = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}
_FLOAT: dict[int, Any] = {2: np.float16, 4: np.float32, 8: np.float64}


def ordered_keys(bits: Array, width: int) -> Array:
    """Map IEEE bit patterns (unsigned ints of ``width`` bytes) to ordered int64 keys.

    Sign-magnitude becomes two's complement, so adjacent floats get adjacent keys and both
    zeros map to 0.
    """
    wide = bits.view(_INT[width]).astype(np.int64)
    minimum = np.int64(-(1 << (8 * width - 1)))
    keys: Array = np.where(wide < 0, minimum - wide, wide)
    return keys


def narrow_keys(bits: Array, width: int) -> Array:
    """:func:`ordered_keys` for 16- and 32-bit patterns, in their own signed width.

    Branch-free: for a negative pattern (sign s = -1) ``(i ^ 0x7f..f) + 1`` is minus its
    magnitude, which cannot overflow; a positive one is unchanged.
    """
    signed = bits.view(_INT[width])
    sign = signed >> (8 * width - 1)
    magnitude_mask = sign & _INT[width]((1 << (8 * width - 1)) - 1)
    keys: Array = np.bitwise_xor(signed, magnitude_mask)
    keys -= sign
    return keys


def key_distance(keys_a: Array, keys_b: Array) -> Array:
    """|a - b| of int64 or uint64 keys, exact as uint64 (no overflow at the extremes)."""
    ua = keys_a.view(np.uint64)
    ub = keys_b.view(np.uint64)
    distance: Array = np.where(keys_a >= keys_b, ua - ub, ub - ua)
    return distance


def ulp_distance(a: Array, b: Array) -> Array:
    """Elementwise ULP distance of two float16/float32/float64 arrays, as uint64.

    Meaningful where neither value is NaN.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    width = a.dtype.itemsize
    if a.dtype != b.dtype or a.dtype.kind != "f" or width not in _FLOAT:
        raise ValueError(f"ulp_distance needs two float16/32/64 arrays, got {a.dtype}, {b.dtype}")
    bits_a = np.ascontiguousarray(a).view(_UINT[width])
    bits_b = np.ascontiguousarray(b).view(_UINT[width])
    return key_distance(ordered_keys(bits_a, width), ordered_keys(bits_b, width))


def bfloat16_to_float32(bits: Array) -> Array:
    """bfloat16 bit patterns (uint16) as float32 values (exact: bfloat16 is float32's top half)."""
    wide: Array = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return wide


def _first_of_runs(values: Array) -> Array:
    """The distinct values of a sorted array."""
    if values.size < 2:
        return values
    keep = np.empty(values.size, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    distinct: Array = values[keep]
    return distinct


# The worst locations a tensor keeps for the report.
TOP = 10
# Below this share of differing elements a chunk gathers them by index; above it, it works
# through the chunk in place (a gather would copy nearly everything, at twice the cost).
SPARSE = 8
# Histogram bins are binary exponents: a float64's biased exponent field (0 for zero).
_EXPONENTS = 2048
_FLOAT_BITS = np.int64(52)


def _exponents(values: Array) -> Array:
    """The biased binary exponent of each non-negative float64 (0 for 0, 2047 for inf)."""
    shifted: Array = values.view(np.int64) >> _FLOAT_BITS
    return shifted


class Accumulator:
    """Statistics of one tensor pair, fed chunk by chunk."""

    def __init__(self, dtype: DType, policy: Policy) -> None:
        self.dtype = dtype
        self.policy = policy
        self.components = 2 if dtype.kind == "complex" else 1
        self.width = dtype.itemsize // self.components
        self.floating = dtype.kind in ("float", "complex", "bfloat16")
        self.differing = 0
        self.failing = 0
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.max_ulp = 0
        self.worst_ulp: tuple[int, float, float] | None = None
        self.worst_abs: tuple[int, float, float] | None = None
        self.nan_mismatch = 0
        self.inf_mismatch = 0
        self.nan_payload = 0
        self.first: list[int] = []
        # (distance, flat position, a, b), largest distance first.
        self.worst: list[tuple[int, int, float, float]] = []
        self.ulp_exponents = np.zeros(_EXPONENTS, dtype=np.int64)
        self.abs_exponents = np.zeros(_EXPONENTS, dtype=np.int64)
        self.ulp_fail_exponents = np.zeros(_EXPONENTS, dtype=np.int64)
        self.abs_fail_exponents = np.zeros(_EXPONENTS, dtype=np.int64)
        self.measured = 0

    def add(self, a: Array, b: Array, base: int) -> None:
        """Account for elements ``base .. base + len(a)`` (flat, in storage order)."""
        with np.errstate(all="ignore"):
            if self.dtype.kind in ("opaque", "bool"):
                self._add_exact(a, b, base)
            else:
                self._add_numeric(a, b, base)

    def _note_first(self, elements: Array, base: int) -> None:
        room = MAX_LISTED - len(self.first)
        if room > 0:
            self.first.extend(int(base + e) for e in elements[:room])

    def _add_exact(self, a: Array, b: Array, base: int) -> None:
        """Booleans and opaque types: any change of bits fails, whatever the policy."""
        rows_a = a.view(np.uint8).reshape(-1, self.dtype.itemsize)
        rows_b = b.view(np.uint8).reshape(-1, self.dtype.itemsize)
        elements = np.flatnonzero((rows_a != rows_b).any(axis=1))
        self._note_first(elements, base)
        self.differing += int(elements.size)
        self.failing += int(elements.size)

    def _add_numeric(self, a: Array, b: Array, base: int) -> None:
        if self.components == 2:
            a = a.view(_FLOAT[self.width])
            b = b.view(_FLOAT[self.width])
        bits_a = a.view(_UINT[self.width])
        bits_b = b.view(_UINT[self.width])
        differ = bits_a != bits_b
        count = int(np.count_nonzero(differ))
        if not count:
            return
        if self.components == 2:
            self._add_complex(bits_a, bits_b, np.flatnonzero(differ), base)
            return
        self.differing += count
        if len(self.first) < MAX_LISTED:
            self._note_first(np.flatnonzero(differ)[:MAX_LISTED], base)
        if count * SPARSE < differ.size:
            idx = np.flatnonzero(differ)
            for start in range(0, idx.size, BATCH):
                part = idx[start : start + BATCH]
                failing = self._account(bits_a[part], bits_b[part], base + part)
                self.failing += int(np.count_nonzero(failing))
            return
        # Dense differences (every weight of a GPU run against a CPU run) are worked through
        # in place, in batches small enough for the temporaries to stay in cache.
        for start in range(0, differ.size, BATCH):
            stop = min(start + BATCH, differ.size)
            mask = differ[start:stop]
            slice_a, slice_b = bits_a[start:stop], bits_b[start:stop]
            if mask.all():
                positions: Array | int = base + start
                failing = self._account(slice_a, slice_b, positions)
            else:
                positions = base + start + np.flatnonzero(mask)
                failing = self._account(slice_a[mask], slice_b[mask], positions)
            self.failing += int(np.count_nonzero(failing))

    def _add_complex(self, bits_a: Array, bits_b: Array, idx: Array, base: int) -> None:
        """Complex numbers: two floats each; an element differs or fails if either part does."""
        elements = _first_of_runs(idx // 2)
        self.differing += int(elements.size)
        self._note_first(elements, base)
        start = 0
        while start < idx.size:
            stop = min(start + BATCH, idx.size)
            if stop < idx.size and idx[stop] // 2 == idx[stop - 1] // 2:
                stop += 1  # both parts of a complex number in the same batch
            part = idx[start:stop]
            failing = self._account(bits_a[part], bits_b[part], 2 * base + part)
            if failing.any():
                self.failing += int(_first_of_runs(part[failing] // 2).size)
            start = stop

    def _values(self, bits: Array) -> Array:
        kind = self.dtype.kind
        if kind == "bfloat16":
            return bfloat16_to_float32(bits).astype(np.float64)
        stored = _FLOAT[self.width] if kind in ("float", "complex") else None
        if stored is None:
            stored = _INT[self.width] if kind == "int" else _UINT[self.width]
        values: Array = bits.view(stored).astype(np.float64)
        return values

    def _distance(self, bits_a: Array, bits_b: Array) -> Array:
        """ULP distance (floats) or |a - b| (integers), exact, as int64 or uint64."""
        kind = self.dtype.kind
        if not self.floating:
            wide = np.uint64 if kind == "uint" else np.int64
            signed = _INT[self.width] if kind == "int" else _UINT[self.width]
            return key_distance(bits_a.view(signed).astype(wide), bits_b.view(signed).astype(wide))
        if self.width == 8:
            return key_distance(ordered_keys(bits_a, 8), ordered_keys(bits_b, 8))
        # Keys of 16- and 32-bit floats are formed in their own width (the hot loop of a
        # comparison where every element differs); their difference fits int64.
        distance: Array = np.subtract(
            narrow_keys(bits_a, self.width), narrow_keys(bits_b, self.width), dtype=np.int64
        )
        return np.abs(distance, out=distance)

    def _account(self, bits_a: Array, bits_b: Array, positions: Array | int) -> Array:
        """Account for pairs whose bits differ; returns which of them fail the policy.

        ``positions`` are their flat storage positions (in float parts for complex), or
        the position of the first when the pairs are consecutive.
        """
        va, vb = self._values(bits_a), self._values(bits_b)
        failing = np.zeros(va.size, dtype=bool)
        if self.floating:
            finite = np.isfinite(va) & np.isfinite(vb)
            if not finite.all():
                self._special(va, vb, finite, failing)
                keep = np.flatnonzero(finite)
                bits_a, bits_b, va, vb = bits_a[keep], bits_b[keep], va[keep], vb[keep]
                positions = _take(positions, keep)
                finite_failing = np.zeros(keep.size, dtype=bool)
            else:
                keep, finite_failing = None, failing
        else:
            keep, finite_failing = None, failing
        if not va.size:
            return failing
        distance = self._distance(bits_a, bits_b)
        absd = np.abs(va - vb)
        magnitude = np.maximum(np.abs(va), np.abs(vb))
        self.max_rel = max(self.max_rel, float(np.fmax.reduce(absd / magnitude)))
        np.logical_not(self._passing(distance, absd, magnitude), out=finite_failing)
        if keep is not None:
            failing[keep] = finite_failing
        self.measured += int(va.size)
        ulp_bins = _exponents(distance.astype(np.float64)) if self.floating else None
        abs_bins = _exponents(absd)
        if ulp_bins is not None:
            self.ulp_exponents += np.bincount(ulp_bins, minlength=_EXPONENTS)
        self.abs_exponents += np.bincount(abs_bins, minlength=_EXPONENTS)
        if self.policy.is_tolerance:
            self._count_failing(finite_failing, ulp_bins, abs_bins)
        self._track_extremes(positions, (va, vb), absd=absd, distance=distance)
        return failing

    def _count_failing(self, failing: Array, ulp_bins: Array | None, abs_bins: Array) -> None:
        """The histogram of the values that fail, so that a bar never mixes the two.
        Under ``bitwise`` every differing value fails and nothing extra is counted."""
        count = int(np.count_nonzero(failing))
        if not count:
            return
        if count < failing.size:
            abs_bins = abs_bins[failing]
            ulp_bins = None if ulp_bins is None else ulp_bins[failing]
        if ulp_bins is not None:
            self.ulp_fail_exponents += np.bincount(ulp_bins, minlength=_EXPONENTS)
        self.abs_fail_exponents += np.bincount(abs_bins, minlength=_EXPONENTS)

    def _special(self, va: Array, vb: Array, finite: Array, failing: Array) -> None:
        """NaN and infinity patterns: they never pass a tolerance; NaN payloads only under
        a policy that names ``nan-equal``."""
        nan_a, nan_b = np.isnan(va), np.isnan(vb)
        both = nan_a & nan_b
        self.nan_mismatch += int(np.count_nonzero(nan_a ^ nan_b))
        self.inf_mismatch += int(np.count_nonzero(~finite & ~(nan_a | nan_b)))
        self.nan_payload += int(np.count_nonzero(both))
        pardoned = both if self.policy.nan_equal else np.zeros_like(both)
        failing |= ~finite & ~pardoned

    def _passing(self, distance: Array, absd: Array, magnitude: Array) -> Array:
        policy = self.policy
        if not policy.is_tolerance:
            return np.zeros(distance.size, dtype=bool)
        if not self.floating:
            # Integers: exact, or within atol; ULP counts and rtol are for floating point.
            exact: Array = absd <= policy.atol
            return exact
        if policy.kind == "ulp":
            # Distances are uint64 for float64 and int64 (far from overflow) otherwise.
            bound = np.uint64(policy.ulp) if self.width == 8 else min(policy.ulp, (1 << 62))
            passing: Array = distance <= bound
            if policy.atol:
                passing |= absd <= policy.atol
            return passing
        close: Array = absd <= policy.atol + policy.rtol * magnitude
        return close

    def _track_extremes(
        self, positions: Array | int, values: tuple[Array, Array], *, absd: Array, distance: Array
    ) -> None:
        va, vb = values
        j = int(np.argmax(absd))
        if self.worst_abs is None or float(absd[j]) > self.max_abs:
            self.max_abs = float(absd[j])
            self.worst_abs = (self._element(positions, j), float(va[j]), float(vb[j]))
        j = int(np.argmax(distance))
        if self.worst_ulp is None or int(distance[j]) > self.max_ulp:
            self.max_ulp = int(distance[j])
            self.worst_ulp = (self._element(positions, j), float(va[j]), float(vb[j]))
        threshold = self.worst[-1][0] if len(self.worst) >= TOP else -1
        if int(distance[j]) <= threshold:
            return
        candidates = np.flatnonzero(distance > threshold) if threshold >= 0 else None
        if candidates is None:
            candidates = np.arange(distance.size)
        if candidates.size > TOP:
            # The TOP largest; among equals the earliest, so that chunking never matters.
            found = distance[candidates]
            kth = np.partition(found, -TOP)[-TOP]
            above = candidates[found > kth]
            ties = candidates[found == kth][: TOP - above.size]
            candidates = np.concatenate((above, ties))
        for c in candidates.tolist():
            self.worst.append(
                (int(distance[c]), self._element(positions, c), float(va[c]), float(vb[c]))
            )
        self.worst.sort(key=lambda item: (-item[0], item[1]))
        del self.worst[TOP:]

    def _element(self, positions: Array | int, j: int) -> int:
        flat = positions + j if isinstance(positions, int) else int(positions[j])
        return flat // self.components

    def _split(self, make: Callable[[Array], list[Bin]], every: Array, failing: Array) -> list[Bin]:
        """One bar per bin and verdict: the values that pass, then those that fail."""
        largest = float(self.max_ulp) if make is _ulp_bins else self.max_abs
        if not self.policy.is_tolerance:
            return _clamped(make(every), largest, False)
        passing = _clamped(make(every - failing), largest, True)
        failed = _clamped(make(failing), largest, False)
        if make is _ulp_bins and self.policy.kind == "ulp" and not self.policy.atol:
            # A pure ULP limit splits a bin exactly: at most N on one side, above on the other.
            limit = float(self.policy.ulp)
            passing = [replace(found, high=min(found.high, limit)) for found in passing]
            failed = [replace(found, low=max(found.low, limit + 1)) for found in failed]
        merged = passing + failed
        merged.sort(key=lambda found: (found.low, found.passed is False))
        return merged

    def finish(self, name: str, shape: tuple[int, ...], order: Order) -> TensorResult:
        def where(flat: int) -> tuple[int, ...]:
            if not shape:
                return ()
            return tuple(int(i) for i in np.unravel_index(flat, shape, order=order))

        def location(found: tuple[int, float, float] | None) -> Location | None:
            return None if found is None else Location(where(found[0]), found[1], found[2])

        elements = int(np.prod(shape, dtype=np.int64)) if shape else 1
        status: Status
        if not self.differing:
            status = "identical"
        elif self.failing:
            status = "differs"
        else:
            status = "within"
        numeric = self.dtype.kind not in ("opaque", "bool")
        note = None
        if not numeric and self.policy.is_tolerance and self.differing:
            note = f"{self.dtype.name} values are compared exactly, whatever the policy"
        elif numeric and not self.floating and self.policy.is_tolerance and self.differing:
            note = "integers are compared exactly, or within atol; ULPs and rtol do not apply"
        worst = [
            Location(where(flat), a, b, ulp=distance if self.floating else None)
            for distance, flat, a, b in self.worst
        ]
        return TensorResult(
            name=name,
            status=status,
            dtype_a=self.dtype.name,
            dtype_b=self.dtype.name,
            shape_a=shape,
            shape_b=shape,
            elements=elements,
            differing=self.differing,
            failing=self.failing,
            max_abs=self.max_abs if numeric else None,
            max_rel=self.max_rel if numeric else None,
            max_ulp=self.max_ulp if self.floating else None,
            worst_ulp=location(self.worst_ulp) if self.floating else None,
            worst_abs=location(self.worst_abs),
            nan_mismatch=self.nan_mismatch,
            inf_mismatch=self.inf_mismatch,
            nan_payload=self.nan_payload,
            first_differences=[where(flat) for flat in self.first],
            worst=worst,
            ulp_histogram=self._split(_ulp_bins, self.ulp_exponents, self.ulp_fail_exponents)
            if self.floating
            else [],
            abs_histogram=self._split(_abs_bins, self.abs_exponents, self.abs_fail_exponents),
            note=note,
        )


def _clamped(bins: list[Bin], largest: float, passed: bool | None) -> list[Bin]:
    """Bins whose upper bound is never above the largest value seen (a percentile read
    off them then never exceeds the maximum), marked as passing or failing."""
    return [
        Bin(found.low, min(found.high, max(largest, found.low)), found.count, passed)
        for found in bins
    ]


def _take(positions: Array | int, keep: Array) -> Array:
    if isinstance(positions, int):
        taken: Array = positions + keep
        return taken
    kept: Array = positions[keep]
    return kept


def _ulp_bins(exponents: Array) -> list[Bin]:
    """ULP distance bins: 0, then [2^k, 2^(k+1) - 1] (integers, so each bound is exact)."""
    bins: list[Bin] = []
    for biased in np.flatnonzero(exponents).tolist():
        count = int(exponents[biased])
        if biased == 0:
            bins.append(Bin(0, 0, count))
        else:
            power = biased - 1023
            bins.append(Bin(2**power, 2 ** (power + 1) - 1, count))
    return bins


def _abs_bins(exponents: Array) -> list[Bin]:
    """Absolute difference bins: 0, then [2^k, 2^(k+1)), and infinity (an overflow)."""
    bins: list[Bin] = []
    for biased in np.flatnonzero(exponents).tolist():
        count = int(exponents[biased])
        if biased == 0:
            bins.append(Bin(0.0, 0.0, count))  # zero, or a float64 subnormal difference
        elif biased == _EXPONENTS - 1:
            bins.append(Bin(math.inf, math.inf, count))
        else:
            power = biased - 1023
            high = math.ldexp(1.0, power + 1) if power < 1023 else math.inf
            bins.append(Bin(math.ldexp(1.0, power), high, count))
    return bins


def mismatch(name: str, a: Source, b: Source) -> TensorResult | None:
    """A verdict when the two arrays cannot be compared element by element."""
    problems = []
    if not a.dtype.same_type(b.dtype):
        problems.append(f"dtype {a.dtype.name} vs {b.dtype.name}")
    if a.shape != b.shape:
        problems.append(f"shape {list(a.shape)} vs {list(b.shape)}")
    if not problems:
        return None
    return TensorResult(
        name=name,
        status="differs",
        dtype_a=a.dtype.name,
        dtype_b=b.dtype.name,
        shape_a=a.shape,
        shape_b=b.shape,
        elements=a.count,
        note="; ".join(problems),
    )


def compare_sources(
    name: str,
    a: Source,
    b: Source,
    policy: Policy,
    equal_prefix: tuple[Any, Any, int] | None = None,
) -> TensorResult:
    """Compare two arrays in one chunked pass.

    ``equal_prefix`` is (file A, file B, n): the first n bytes of the two files are known
    to be equal, so elements stored there at the same offsets need not be read again.
    """
    found = mismatch(name, a, b)
    if found is not None:
        return found
    total = a.count
    itemsize = a.dtype.itemsize
    skip = 0
    offset_a, offset_b = a.file_offset, b.file_offset
    if (
        equal_prefix is not None
        and offset_a is not None
        and offset_b is not None
        and a.order == b.order
        and (offset_a[0], offset_b[0]) == equal_prefix[:2]
        and offset_a[1] == offset_b[1]
    ):
        skip = min(total, max(0, equal_prefix[2] - offset_a[1]) // itemsize)
    if a.order == b.order:
        order: Order = a.order
        open_a, open_b = a.open(), b.open()
    else:
        order = "C"
        open_a, open_b = a.open_c_order(), b.open_c_order()
    accumulator = Accumulator(a.dtype, policy)
    step = max(1, min(CHUNK_ELEMENTS, CHUNK_BYTES // itemsize))
    with open_a as reader_a, open_b as reader_b:
        if skip:
            reader_a.skip(skip)
            reader_b.skip(skip)
        position = skip
        while position < total:
            count = min(step, total - position)
            accumulator.add(reader_a.read(count), reader_b.read(count), position)
            position += count
    return accumulator.finish(name, a.shape, order)
