"""Policy strings: parsing, canonical spelling, errors that name the bad part."""

from __future__ import annotations

import pytest

from harness.compare.policy import (
    BITWISE,
    Policy,
    PolicySet,
    glob_matches,
    parse_metric_tolerance,
    parse_policy,
)
from harness.errors import EXIT_TROUBLE, ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bitwise", BITWISE),
        ("  Bitwise ", BITWISE),
        ("ulp:0", Policy("ulp", ulp=0)),
        ("ulp:4", Policy("ulp", ulp=4)),
        ("ulp:4,atol=1e-6", Policy("ulp", ulp=4, atol=1e-6)),
        ("ulp: 16 , atol = 0.5", Policy("ulp", ulp=16, atol=0.5)),
        ("close:rtol=1e-5,atol=1e-8", Policy("close", rtol=1e-5, atol=1e-8)),
        ("close:atol=1e-8", Policy("close", atol=1e-8)),
        ("close:atol=1e-8,rtol=0.1", Policy("close", rtol=0.1, atol=1e-8)),
        ("metric:rtol=1e-3", Policy("metric", rtol=1e-3)),
        ("nan-equal", Policy("bitwise", nan_equal=True)),
        ("ulp:4,nan-equal", Policy("ulp", ulp=4, nan_equal=True)),
        ("close:nan-equal,atol=1", Policy("close", atol=1.0, nan_equal=True)),
        (f"ulp:{2**64 - 1}", Policy("ulp", ulp=2**64 - 1)),
    ],
)
def test_good_policies(text: str, expected: Policy) -> None:
    assert parse_policy(text) == expected
    assert parse_policy(expected.text) == expected


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("fuzzy", "'fuzzy'"),
        ("ulp", "''"),
        ("ulp:x", "'x'"),
        ("ulp:-1", "'-1'"),
        ("ulp:1.5", "'1.5'"),
        ("ulp:4,rtol=1", "'rtol=1'"),
        ("ulp:4,atol=abc", "'atol=abc'"),
        ("ulp:4,atol=-1", "'atol=-1'"),
        ("ulp:4,atol=nan", "'atol=nan'"),
        ("close:", "'close:'"),
        ("close:rtol=1e-3,rtol=1e-4", "'rtol=1e-4'"),
        ("close:tol=1", "'tol=1'"),
        ("close:rtol", "'rtol'"),
        ("bitwise:1", "'1'"),
        ("ulp:99999999999999999999", "'99999999999999999999'"),
        ("ulp:4,nan-equal,nan-equal", "'nan-equal'"),
    ],
)
def test_bad_policies_name_the_bad_part(text: str, bad_part: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(text)
    assert bad_part in caught.value.message
    assert repr(text) in caught.value.message
    assert caught.value.exit_code == EXIT_TROUBLE
    assert "ulp:N" in caught.value.hint


def test_metric_tolerance_spellings() -> None:
    assert parse_metric_tolerance("rtol=1e-3") == Policy("metric", rtol=1e-3)
    assert parse_metric_tolerance("rtol=1e-3,atol=1e-9") == Policy("metric", rtol=1e-3, atol=1e-9)
    assert parse_metric_tolerance("close:rtol=0.1") == Policy("close", rtol=0.1)
    with pytest.raises(ConfigError, match="'x=1'"):
        parse_metric_tolerance("x=1")


def test_resolution_order() -> None:
    configured = {"*.npy": "ulp:4", "metrics/*.json": "metric:rtol=1e-3", "*": "bitwise"}
    policies = PolicySet.build(policies=configured)
    assert policies.for_artifact("deep/dir/w.npy") == Policy("ulp", ulp=4)
    assert policies.for_artifact("metrics/eval.json", numbers=True) == Policy("metric", rtol=1e-3)
    assert policies.for_artifact("other.json", numbers=True) == BITWISE
    overall = PolicySet.build("close:rtol=0.1", configured, "rtol=0.5")
    assert overall.for_artifact("w.npy") == Policy("close", rtol=0.1)
    assert overall.for_artifact("metrics/eval.json", numbers=True) == Policy("metric", rtol=0.5)
    assert PolicySet.build().for_artifact("anything") == BITWISE


def test_bad_configured_policy_is_reported() -> None:
    with pytest.raises(ConfigError, match="'ulp:many'"):
        PolicySet.build(policies={"*.npy": "ulp:many"})


def test_glob_matching() -> None:
    assert glob_matches("*.npy", "a/b/c.npy")
    assert glob_matches("a/*.npy", "a/c.npy")
    assert glob_matches("a/*", "a/b/c.npy")
    assert not glob_matches("b/*.npy", "a/c.npy")
    assert glob_matches("model.safetensors", "checkpoints/model.safetensors")
