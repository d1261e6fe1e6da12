"""The numeric core against numpy.testing and an independent pure-Python reference."""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.compare import dtypes
from harness.compare.dtypes import DType
from harness.compare.jsonmetrics import compare_numbers, float_ulp
from harness.compare.model import TensorResult
from harness.compare.numeric import BATCH, Accumulator, bfloat16_to_float32, ulp_distance
from harness.compare.policy import parse_policy

Array = np.ndarray[Any, Any]
FLOATS = {np.float16: dtypes.FLOAT16, np.float32: dtypes.FLOAT32, np.float64: dtypes.FLOAT64}
_PACK = {2: "<e", 4: "<f", 8: "<d"}
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def accumulate(a: Array, b: Array, dtype: DType, policy: str, step: int = 0) -> TensorResult:
    accumulator = Accumulator(dtype, parse_policy(policy))
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    step = step or max(flat_a.size, 1)
    for start in range(0, flat_a.size, step):
        accumulator.add(flat_a[start : start + step], flat_b[start : start + step], start)
    return accumulator.finish("t", a.shape, "C")


def key(bits: int, width: int) -> int:
    """Ordered key of an IEEE bit pattern, written independently of the code under test."""
    sign = 1 << (8 * width - 1)
    return -(bits & (sign - 1)) if bits & sign else bits


def reference_ulp(x: float, y: float, width: int) -> int:
    fmt = _PACK[width]
    unsigned = {2: "<H", 4: "<I", 8: "<Q"}[width]
    bx = struct.unpack(unsigned, struct.pack(fmt, x))[0]
    by = struct.unpack(unsigned, struct.pack(fmt, y))[0]
    return abs(key(bx, width) - key(by, width))


def special_pair(rng: np.random.Generator, ftype: Any, n: int) -> tuple[Array, Array]:
    """Arrays rich in NaN, +-0, infinities, subnormals, near neighbours and far values."""
    info = np.finfo(ftype)
    pool = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny, info.smallest_subnormal,
         -info.smallest_subnormal, info.max, -info.max, 1.0, -1.0, info.eps],
        dtype=ftype,
    )  # fmt: skip
    a = rng.standard_normal(n).astype(ftype)
    specials = rng.random(n) < 0.2
    a[specials] = rng.choice(pool, int(specials.sum()))
    b = a.copy()
    bits = b.view(_UINT[np.dtype(ftype).itemsize])
    nudged = rng.random(n) < 0.3
    steps = rng.integers(-5, 6, n).astype(np.int64)
    with np.errstate(all="ignore"):
        for i in np.flatnonzero(nudged):
            value = b[i]
            for _ in range(abs(int(steps[i]))):
                value = np.nextafter(value, ftype(np.inf) if steps[i] > 0 else ftype(-np.inf))
            b[i] = value
        swapped = rng.random(n) < 0.05
        b[swapped] = rng.choice(pool, int(swapped.sum()))
        zeros = (a == 0) & (rng.random(n) < 0.5)
        b[zeros] = -b[zeros]
        payload = np.isnan(a) & (rng.random(n) < 0.5)
        bits[payload] ^= 1  # another NaN payload (or, where b became inf, a signalling NaN)
    return a, b


def reference_stats(a: Array, b: Array, policy: str) -> dict[str, Any]:
    with np.errstate(all="ignore"):
        return _reference_stats(a, b, policy)


def _reference_stats(a: Array, b: Array, policy: str) -> dict[str, Any]:
    width = a.dtype.itemsize
    parsed = parse_policy(policy)
    bits_differ = a.view(_UINT[width]) != b.view(_UINT[width])
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    inf_a, inf_b = np.isinf(a64), np.isinf(b64)
    finite = ~(nan_a | nan_b | inf_a | inf_b) & bits_differ
    ulps = [
        reference_ulp(float(x), float(y), width) for x, y in zip(a[finite], b[finite], strict=True)
    ]
    absd = np.abs(a64[finite] - b64[finite])
    if parsed.kind == "ulp":
        passing = (np.array(ulps, dtype=np.float64) <= parsed.ulp) | (absd <= parsed.atol)
    elif parsed.kind == "close":
        close = np.isclose(a64, b64, rtol=parsed.rtol, atol=parsed.atol, equal_nan=True)
        close |= np.isclose(b64, a64, rtol=parsed.rtol, atol=parsed.atol, equal_nan=True)
        passing = close[finite]
    else:
        passing = np.zeros(int(finite.sum()), dtype=bool)
    pardoned = nan_a & nan_b if parsed.nan_equal else np.zeros_like(nan_a)
    bad_pattern = bits_differ & ~finite & ~pardoned
    return {
        "differing": int(bits_differ.sum()),
        "failing": int(bad_pattern.sum() + (~passing).sum()),
        "max_ulp": max(ulps, default=0),
        "max_abs": float(absd.max()) if absd.size else 0.0,
        "nan_mismatch": int((nan_a ^ nan_b).sum()),
        "inf_mismatch": int(((inf_a | inf_b) & ~(nan_a | nan_b) & bits_differ).sum()),
        "nan_payload": int((nan_a & nan_b & bits_differ).sum()),
        "first": [int(i) for i in np.flatnonzero(bits_differ)[:5]],
    }


@pytest.mark.parametrize("ftype", list(FLOATS))
@pytest.mark.parametrize(
    "policy",
    [
        "bitwise",
        "nan-equal",
        "ulp:0",
        "ulp:3",
        "ulp:3,nan-equal",
        "ulp:2,atol=1e-3",
        "close:rtol=1e-3,atol=1e-6",
    ],
)
def test_statistics_match_an_independent_reference(ftype: Any, policy: str) -> None:  # fmt: skip
    rng = np.random.default_rng(zlib.crc32(f"{ftype.__name__} {policy}".encode()))
    a, b = special_pair(rng, ftype, 600)
    found = accumulate(a, b, FLOATS[ftype], policy, step=64)
    expected = reference_stats(a, b, policy)
    assert found.differing == expected["differing"]
    assert found.failing == expected["failing"]
    assert found.max_ulp == expected["max_ulp"]
    assert found.max_abs == pytest.approx(expected["max_abs"], rel=1e-12)
    assert found.nan_mismatch == expected["nan_mismatch"]
    assert found.inf_mismatch == expected["inf_mismatch"]
    assert found.nan_payload == expected["nan_payload"]
    assert [i[0] for i in found.first_differences] == expected["first"]
    assert found.status == ("differs" if expected["failing"] else "within")


@pytest.mark.parametrize("ftype", list(FLOATS))
@pytest.mark.parametrize("maxulp", [0, 1, 4, 50])
def test_ulp_verdict_agrees_with_assert_array_max_ulp(ftype: Any, maxulp: int) -> None:
    rng = np.random.default_rng(maxulp)
    a, b = special_pair(rng, ftype, 400)
    # numpy counts an infinity as one ULP past the largest float; harness calls any
    # change in the Inf pattern a difference, so compare where that rule does not bite.
    same_inf_pattern = ~(np.isinf(a) ^ np.isinf(b))
    a, b = a[same_inf_pattern], b[same_inf_pattern]
    for count in (5, 40, a.size):
        part_a, part_b = a[:count], b[:count]
        try:
            np.testing.assert_array_max_ulp(part_a, part_b, maxulp=maxulp)
        except AssertionError:
            numpy_passes = False
        else:
            numpy_passes = True
        found = accumulate(part_a, part_b, FLOATS[ftype], f"ulp:{maxulp}")
        assert (found.status != "differs") == numpy_passes


@pytest.mark.parametrize("ftype", list(FLOATS))
def test_ulp_distance_matches_numpy_nulp_where_numpy_is_exact(ftype: Any) -> None:
    rng = np.random.default_rng(7)
    a, b = special_pair(rng, ftype, 500)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    ours = ulp_distance(a, b)
    for count in (1, 2, 3, 10, 1000):
        close = ours <= count
        for x, y in zip(a[close], b[close], strict=True):
            np.testing.assert_array_max_ulp(x, y, maxulp=count)


@pytest.mark.parametrize("ftype", list(FLOATS))
def test_close_policy_matches_isclose_both_ways(ftype: Any) -> None:
    rng = np.random.default_rng(11)
    a, b = special_pair(rng, ftype, 800)
    with np.errstate(all="ignore"):
        b[::7] = (a[::7].astype(np.float64) * (1 + 1e-4)).astype(ftype)
    rtol, atol = 1e-3, 1e-5
    # isclose(equal_nan=True) forgives NaN payloads, which only nan-equal does here.
    found = accumulate(a, b, FLOATS[ftype], f"close:rtol={rtol},atol={atol},nan-equal")
    with np.errstate(all="ignore"):  # signalling NaNs among the specials
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        ok = np.isclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True)
        ok |= np.isclose(b64, a64, rtol=rtol, atol=atol, equal_nan=True)
    assert found.failing == int((~ok).sum())
    assert (found.status != "differs") == bool(ok.all())


def test_allclose_verdict_on_arrays_without_specials() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal(1000)
    for scale in (1e-9, 1e-6, 1e-3):
        b = a + scale * rng.standard_normal(1000)
        found = accumulate(a, b, dtypes.FLOAT64, "close:rtol=1e-5,atol=1e-8")
        both = np.allclose(a, b, rtol=1e-5, atol=1e-8) and np.allclose(b, a, rtol=1e-5, atol=1e-8)
        if both:
            assert found.status == "within"
        if found.status == "within":
            assert np.all(np.isclose(a, b, 1e-5, 1e-8) | np.isclose(b, a, 1e-5, 1e-8))


def test_ulp_floor_rescues_values_near_zero() -> None:
    # The GPU-vs-CPU story: tiny absolute differences near zero are huge in ULPs.
    a = np.array([1e-30, 0.5, 3.0], dtype=np.float32)
    b = np.array([3.4e-7, 0.5, 3.0], dtype=np.float32)
    strict = accumulate(a, b, dtypes.FLOAT32, "ulp:4")
    floored = accumulate(a, b, dtypes.FLOAT32, "ulp:4,atol=1e-6")
    assert strict.status == "differs"
    assert strict.max_ulp is not None and strict.max_ulp > 100_000
    assert strict.worst_ulp is not None
    assert strict.worst_ulp.index == (0,)
    assert strict.worst_ulp.a == pytest.approx(1e-30)
    assert strict.worst_ulp.b == pytest.approx(3.4e-7)
    assert floored.status == "within"


def test_signed_zero_and_nan_payloads() -> None:
    a = np.array([0.0, np.nan, 1.0], dtype=np.float32)
    b = np.array([-0.0, np.nan, 1.0], dtype=np.float32)
    b.view(np.uint32)[1] ^= 1
    bitwise = accumulate(a, b, dtypes.FLOAT32, "bitwise")
    assert (bitwise.status, bitwise.failing) == ("differs", 2)
    # A tolerance forgives the signed zero (0 ULP apart), not the NaN payload ...
    strict = accumulate(a, b, dtypes.FLOAT32, "ulp:0")
    assert (strict.status, strict.failing, strict.nan_payload) == ("differs", 1, 1)
    # ... unless it names nan-equal; nan-equal alone still fails the signed zero.
    within = accumulate(a, b, dtypes.FLOAT32, "ulp:0,nan-equal")
    assert within.status == "within"
    assert within.differing == 2
    assert within.max_ulp == 0
    assert within.nan_mismatch == 0
    pardoned = accumulate(a, b, dtypes.FLOAT32, "nan-equal")
    assert (pardoned.status, pardoned.failing) == ("differs", 1)


@pytest.mark.parametrize(
    ("policy", "pardoning"),
    [
        ("bitwise", "nan-equal"),
        ("ulp:0", "ulp:0,nan-equal"),
        ("close:atol=1", "close:atol=1,nan-equal"),
    ],
)
def test_nan_payloads_differ_unless_the_policy_names_nan_equal(policy: str, pardoning: str) -> None:
    a = np.full(4, np.nan, dtype=np.float64)
    b = a.copy()
    b.view(np.uint64)[:] ^= np.uint64(1)
    assert accumulate(a, b, dtypes.FLOAT64, policy).status == "differs"
    assert accumulate(a, b, dtypes.FLOAT64, pardoning).status == "within"


def test_a_flipped_bool_fails_any_ulp_policy() -> None:
    a = np.array([True, False, True])
    b = np.array([True, True, True])
    found = accumulate(a, b, dtypes.BOOL, "ulp:1")
    assert (found.status, found.failing, found.max_ulp) == ("differs", 1, None)
    assert accumulate(a, b, dtypes.BOOL, "close:rtol=1,atol=1").status == "differs"


def test_integers_are_exact_or_within_atol_never_in_ulps() -> None:
    a = np.array([10, 20, 30], dtype=np.int64)
    b = np.array([11, 20, 30], dtype=np.int64)
    assert accumulate(a, b, dtypes.INT64, "ulp:5").status == "differs"
    assert accumulate(a, b, dtypes.INT64, "close:rtol=0.5,atol=0").status == "differs"
    found = accumulate(a, b, dtypes.INT64, "ulp:0,atol=1")
    assert (found.status, found.max_ulp, found.max_abs) == ("within", None, 1.0)


def test_histograms_percentiles_and_worst_locations() -> None:
    a = np.ones(1000, dtype=np.float32)
    b = a.copy()
    bits = b.view(np.uint32)
    bits[:900] += 1  # 1 ULP
    bits[900:990] += 3  # 3 ULP: the [2, 3] bin
    bits[990:] += 100  # [64, 127]
    found = accumulate(a, b, dtypes.FLOAT32, "ulp:4", step=128)
    assert [(int(x.low), int(x.high), x.count) for x in found.ulp_histogram] == [
        (1, 1, 900),
        (2, 3, 90),
        (64, 100, 10),  # the bin [64, 127] ends at the largest distance seen
    ]
    assert sum(x.count for x in found.abs_histogram) == 1000
    # Never above the maximum (100 ULP), though the bin's bound would be 127.
    assert found.ulp_percentiles == {"p50": 1, "p90": 1, "p99": 3, "p99.9": 100}
    assert found.max_ulp == 100
    assert len(found.worst) == 10
    assert {w.index[0] for w in found.worst} == set(range(990, 1000))
    assert all(w.ulp == 100 for w in found.worst)


def test_nan_and_inf_patterns_always_fail_a_tolerance() -> None:
    a = np.array([np.nan, np.inf, 1.0, -np.inf], dtype=np.float64)
    b = np.array([1.0, np.finfo(np.float64).max, np.nan, np.inf], dtype=np.float64)
    found = accumulate(a, b, dtypes.FLOAT64, "close:rtol=1,atol=1e300")
    assert found.failing == 4
    assert found.nan_mismatch == 2
    assert found.inf_mismatch == 2


def test_bfloat16_by_bit_pattern() -> None:
    values = np.array([1.0, -2.5, 3.0e-39, 0.0, np.inf, np.nan, 65504.0], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    widened = bfloat16_to_float32(bits)
    assert widened[[0, 1, 3, 4]].tolist() == [1.0, -2.5, 0.0, np.inf]
    assert 0 < widened[2] < 3.0e-39
    assert np.isnan(widened[5])
    other = bits.copy()
    other[0] += 1  # next bfloat16 after 1.0 is 1.0078125
    other[1] += 3
    found = accumulate(bits, other, dtypes.BFLOAT16, "ulp:2")
    assert found.differing == 2
    assert found.max_ulp == 3
    assert found.worst_abs is not None
    assert found.worst_abs.a == -2.5
    assert found.max_abs == pytest.approx(3 * 2**-6)
    assert found.status == "differs"
    assert found.failing == 1
    assert accumulate(bits, other, dtypes.BFLOAT16, "ulp:3").status == "within"


def test_bfloat16_values_are_the_top_half_of_float32() -> None:
    rng = np.random.default_rng(5)
    values = rng.standard_normal(1000).astype(np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    truncated = (values.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    assert np.array_equal(bfloat16_to_float32(bits), truncated)


@pytest.mark.parametrize(
    ("itype", "dtype"),
    [(np.int8, dtypes.INT8), (np.int64, dtypes.INT64), (np.uint64, dtypes.UINT64),
     (np.uint16, dtypes.UINT16), (np.bool_, dtypes.BOOL)],
)  # fmt: skip
def test_integers_measure_distance_exactly(itype: Any, dtype: DType) -> None:
    info = np.iinfo(itype) if itype is not np.bool_ else None
    if info is None:
        a = np.array([True, False, True])
        b = np.array([True, True, False])
        found = accumulate(a, b, dtype, "ulp:1")
        assert (found.differing, found.max_ulp, found.status) == (2, None, "differs")
        return
    a = np.array([info.min, info.max, 5, 0], dtype=itype)
    b = np.array([info.max, info.min, 7, 0], dtype=itype)
    found = accumulate(a, b, dtype, "ulp:0,atol=2")
    assert found.max_ulp is None
    assert found.max_abs == float(int(info.max) - int(info.min))
    assert found.differing == 3
    assert found.failing == 2


def test_complex_counts_elements_not_components() -> None:
    a = np.array([1 + 1j, 2 + 2j, 3 + 3j], dtype=np.complex64)
    b = a.copy()
    b[1] = np.complex64(complex(np.nextafter(np.float32(2), np.float32(3)), 2.5))
    found = accumulate(a, b, dtypes.COMPLEX64, "ulp:1")
    assert found.differing == 1
    assert found.failing == 1
    assert found.first_differences == [(1,)]


def test_opaque_types_compare_bit_patterns() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.uint8)
    b = np.array([1, 9, 3, 4], dtype=np.uint8)
    found = accumulate(a, b, dtypes.opaque("float8_e4m3fn", 1), "ulp:100")
    assert (found.differing, found.failing, found.max_ulp) == (1, 1, None)
    assert found.note is not None


def test_first_differences_unravel_in_memory_order() -> None:
    a = np.zeros((3, 4), dtype=np.float32)
    b = a.copy()
    b[2, 1] = 1
    b[0, 3] = 1
    accumulator = Accumulator(dtypes.FLOAT32, parse_policy("bitwise"))
    accumulator.add(a.reshape(-1, order="F"), b.reshape(-1, order="F"), 0)
    found = accumulator.finish("t", (3, 4), "F")
    assert found.first_differences == [(2, 1), (0, 3)]


float_arrays = st.sampled_from([np.float16, np.float32, np.float64]).flatmap(
    lambda ftype: st.tuples(
        hnp.arrays(
            ftype, st.integers(1, 40), elements=st.floats(width=np.dtype(ftype).itemsize * 8)
        ),
        hnp.arrays(
            ftype, st.integers(1, 40), elements=st.floats(width=np.dtype(ftype).itemsize * 8)
        ),
    )
)


@settings(max_examples=60, deadline=None)
@given(pair=float_arrays, step=st.integers(1, 9), n=st.integers(0, 8))
def test_property_chunking_never_changes_the_result(
    pair: tuple[Array, Array], step: int, n: int
) -> None:
    a, b = pair
    size = min(a.size, b.size)
    a, b = a[:size], b[:size]
    dtype = FLOATS[a.dtype.type]
    whole = accumulate(a, b, dtype, f"ulp:{n}")
    chunked = accumulate(a, b, dtype, f"ulp:{n}", step=step)
    assert whole == chunked
    expected = reference_stats(a, b, f"ulp:{n}")
    assert whole.failing == expected["failing"]
    assert whole.max_ulp == expected["max_ulp"]


@settings(max_examples=60, deadline=None)
@given(x=st.floats(width=32, allow_nan=False), y=st.floats(width=32, allow_nan=False))
def test_property_ulp_distance_is_a_metric(x: float, y: float) -> None:
    a = np.array([x], dtype=np.float32)
    b = np.array([y], dtype=np.float32)
    forward, backward = int(ulp_distance(a, b)[0]), int(ulp_distance(b, a)[0])
    assert forward == backward == reference_ulp(x, y, 4)
    assert (forward == 0) == (x == y)
    if np.isfinite(x) and abs(x) < np.finfo(np.float32).max:
        step = np.nextafter(a, np.float32(np.inf))
        assert int(ulp_distance(a, step)[0]) == 1


@settings(max_examples=80, deadline=None)
@given(
    x=st.floats(allow_nan=False, allow_infinity=False),
    y=st.floats(allow_nan=False, allow_infinity=False),
)
@example(x=0.0, y=-0.0)  # equal as numbers, not as values: "within" (signed zeros differ)
def test_property_json_numbers_agree_with_the_array_core(x: float, y: float) -> None:
    assert float_ulp(x, y) == reference_ulp(x, y, 8)
    status, _ = compare_numbers(x, y, parse_policy("ulp:4"))
    found = accumulate(np.array([x]), np.array([y]), dtypes.FLOAT64, "ulp:4")
    if x == y and math.copysign(1.0, x) == math.copysign(1.0, y):
        assert status == "equal"
    else:
        assert status == ("within" if found.failing == 0 else "differs")


def test_ulp_distance_refuses_non_floats() -> None:
    with pytest.raises(ValueError, match="float16/32/64"):
        ulp_distance(np.array([1]), np.array([2]))


def test_dense_differences_are_batched_without_double_counting() -> None:
    rng = np.random.default_rng(21)
    count = BATCH + BATCH // 2 + 1
    real = rng.standard_normal(count).astype(np.float32)
    a = (real + 1j * real).astype(np.complex64)
    b = a.copy()
    b.real = np.nextafter(b.real, np.float32(9))
    b.imag[::2] = np.nextafter(b.imag[::2], np.float32(9))
    found = accumulate(a, b, dtypes.COMPLEX64, "bitwise")
    assert (found.differing, found.failing) == (count, count)
    dense_a = rng.standard_normal(3 * BATCH).astype(np.float32)
    dense_b = dense_a + np.float32(1e-3) * rng.standard_normal(3 * BATCH).astype(np.float32)
    dense_b[5] = np.nan
    found = accumulate(dense_a, dense_b, dtypes.FLOAT32, "close:rtol=1e-3,atol=1e-4")
    expected = reference_stats(dense_a, dense_b, "close:rtol=1e-3,atol=1e-4")
    assert (found.differing, found.failing, found.max_ulp, found.nan_mismatch) == (
        expected["differing"],
        expected["failing"],
        expected["max_ulp"],
        expected["nan_mismatch"],
    )


@pytest.mark.parametrize("policy", ["ulp:5", "ulp:5,atol=1e-30", "close:rtol=1e-7,atol=0"])
def test_histogram_bars_split_passing_from_failing_values(policy: str) -> None:
    # 4..7 ULP share one bin; under ulp:5, 4 and 5 pass, 6 and 7 fail.
    a = np.ones(400, dtype=np.float32)
    b = a.copy()
    bits = b.view(np.uint32)
    for index, distance in enumerate((4, 5, 6, 7)):
        bits[index * 100 : (index + 1) * 100] += distance
    found = accumulate(a, b, dtypes.FLOAT32, policy)
    bars = found.ulp_histogram
    assert found.max_ulp == 7
    assert sum(bar.count for bar in bars if bar.passed) == 400 - found.failing
    assert sum(bar.count for bar in bars if bar.passed is False) == found.failing
    assert all(bar.high <= 7 for bar in bars)
    if policy == "ulp:5":
        assert [(bar.low, bar.high, bar.count, bar.passed) for bar in bars] == [
            (4, 5, 200, True),
            (6, 7, 200, False),
        ]
    assert all(value <= 7 for value in found.ulp_percentiles.values())
