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
  anything other than the same infinity. These always fail a tolerance; NaN facing NaN
  (any payload) passes one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.compare.dtypes import DType
from harness.compare.model import MAX_LISTED, Location, Status, TensorResult
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


class Accumulator:
    """Statistics of one tensor pair, fed chunk by chunk."""

    def __init__(self, dtype: DType, policy: Policy) -> None:
        self.dtype = dtype
        self.policy = policy
        self.components = 2 if dtype.kind == "complex" else 1
        self.width = dtype.itemsize // self.components
        self.differing = 0
        self.failing = 0
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.max_ulp = 0
        self.worst_ulp: tuple[int, float, float] | None = None
        self.worst_abs: tuple[int, float, float] | None = None
        self.nan_mismatch = 0
        self.inf_mismatch = 0
        self.first: list[int] = []

    def add(self, a: Array, b: Array, base: int) -> None:
        """Account for elements ``base .. base + len(a)`` (flat, in storage order)."""
        with np.errstate(all="ignore"):
            if self.dtype.kind == "opaque":
                self._add_opaque(a, b, base)
            else:
                self._add_numeric(a, b, base)

    def _note_differing(self, elements: Array, base: int) -> None:
        self.differing += int(elements.size)
        room = MAX_LISTED - len(self.first)
        if room > 0:
            self.first.extend(int(base + e) for e in elements[:room])

    def _add_opaque(self, a: Array, b: Array, base: int) -> None:
        rows_a = a.view(np.uint8).reshape(-1, self.dtype.itemsize)
        rows_b = b.view(np.uint8).reshape(-1, self.dtype.itemsize)
        elements = np.flatnonzero((rows_a != rows_b).any(axis=1))
        self._note_differing(elements, base)
        self.failing += int(elements.size)

    def _add_numeric(self, a: Array, b: Array, base: int) -> None:
        if self.dtype.kind == "complex":
            a = a.view(_FLOAT[self.width])
            b = b.view(_FLOAT[self.width])
        bits_a = a.view(_UINT[self.width])
        bits_b = b.view(_UINT[self.width])
        idx = np.flatnonzero(bits_a != bits_b)
        if idx.size == 0:
            return
        self._note_differing(idx if self.components == 1 else _first_of_runs(idx // 2), base)
        # Dense differences (every weight of a GPU run against a CPU run) are worked through
        # in batches small enough for the temporaries to stay in cache.
        start = 0
        while start < idx.size:
            stop = min(start + BATCH, idx.size)
            if self.components == 2 and stop < idx.size and idx[stop] // 2 == idx[stop - 1] // 2:
                stop += 1  # both parts of a complex number in the same batch
            self._add_batch((a, b), (bits_a, bits_b), idx[start:stop], base)
            start = stop

    def _add_batch(
        self, values: tuple[Array, Array], bits: tuple[Array, Array], idx: Array, base: int
    ) -> None:
        """Account for the differing positions ``idx`` of one chunk."""
        kind = self.dtype.kind
        if kind in ("float", "complex", "bfloat16"):
            if kind == "bfloat16":
                va = bfloat16_to_float32(bits[0][idx]).astype(np.float64)
                vb = bfloat16_to_float32(bits[1][idx]).astype(np.float64)
            else:
                va = values[0][idx].astype(np.float64)
                vb = values[1][idx].astype(np.float64)
            nan_a, nan_b = np.isnan(va), np.isnan(vb)
            inf_a, inf_b = np.isinf(va), np.isinf(vb)
            any_nan = nan_a | nan_b
            finite = ~(any_nan | inf_a | inf_b)
            bad_pattern = ~finite & ~(nan_a & nan_b)
            if finite.all():
                fa, fb, fidx = va, vb, idx
            else:
                self.nan_mismatch += int(np.count_nonzero(nan_a ^ nan_b))
                self.inf_mismatch += int(np.count_nonzero((inf_a | inf_b) & ~any_nan))
                fa, fb, fidx = va[finite], vb[finite], idx[finite]
            dist = key_distance(
                ordered_keys(bits[0][fidx], self.width), ordered_keys(bits[1][fidx], self.width)
            )
            absd = np.abs(fa - fb)
        else:
            keys_type = np.uint64 if kind == "uint" else np.int64
            ka = values[0][idx].astype(keys_type)
            kb = values[1][idx].astype(keys_type)
            fa, fb, fidx = ka.astype(np.float64), kb.astype(np.float64), idx
            dist = key_distance(ka, kb)
            absd = dist.astype(np.float64)
            bad_pattern = np.zeros(idx.size, dtype=bool)

        magnitude = np.maximum(np.abs(fa), np.abs(fb))
        rel = np.divide(absd, magnitude, out=np.zeros_like(absd), where=magnitude > 0)
        self._track_extremes(base, fidx, (fa, fb), absd=absd, rel=rel, dist=dist)

        passing = self._passing(dist, absd, magnitude)
        if self.components == 1:
            failing_finite = fidx.size - int(np.count_nonzero(passing))
            self.failing += int(np.count_nonzero(bad_pattern)) + failing_finite
            return
        failing = np.concatenate((idx[bad_pattern], fidx[~passing]))
        if failing.size:
            failing.sort()
            self.failing += int(_first_of_runs(failing // 2).size)

    def _passing(self, dist: Array, absd: Array, magnitude: Array) -> Array:
        policy = self.policy
        if policy.kind == "bitwise":
            return np.zeros(dist.size, dtype=bool)
        if policy.kind == "ulp":
            passing: Array = (dist <= np.uint64(policy.ulp)) | (absd <= policy.atol)
            return passing
        close: Array = absd <= policy.atol + policy.rtol * magnitude
        return close

    def _track_extremes(
        self,
        base: int,
        fidx: Array,
        values: tuple[Array, Array],
        *,
        absd: Array,
        rel: Array,
        dist: Array,
    ) -> None:
        if not fidx.size:
            return
        fa, fb = values
        self.max_rel = max(self.max_rel, float(rel.max()))
        j = int(np.argmax(absd))
        if self.worst_abs is None or float(absd[j]) > self.max_abs:
            self.max_abs = float(absd[j])
            self.worst_abs = (base + int(fidx[j]) // self.components, float(fa[j]), float(fb[j]))
        j = int(np.argmax(dist))
        if self.worst_ulp is None or int(dist[j]) > self.max_ulp:
            self.max_ulp = int(dist[j])
            self.worst_ulp = (base + int(fidx[j]) // self.components, float(fa[j]), float(fb[j]))

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
        numeric = self.dtype.numeric
        note = None
        if not numeric and not self.policy.is_bitwise and self.differing:
            note = f"{self.dtype.name} values are compared bit for bit"
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
            max_ulp=self.max_ulp if numeric else None,
            worst_ulp=location(self.worst_ulp),
            worst_abs=location(self.worst_abs),
            nan_mismatch=self.nan_mismatch,
            inf_mismatch=self.inf_mismatch,
            first_differences=[where(flat) for flat in self.first],
            note=note,
        )


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
