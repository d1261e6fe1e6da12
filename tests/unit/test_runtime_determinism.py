"""determinism.environment: the variables the host sets before the interpreter starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.runtime import determinism
from harness.runtime.determinism import check_environment, environment

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
ISA_PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
}


@pytest.mark.parametrize("threads", [1, 2, 16])
def test_strict_pins_seeds_switches_and_every_thread_pool(threads: int) -> None:
    variables = environment(7, "strict", threads, "cpu")
    assert variables["PYTHONHASHSEED"] == "7"
    for name in THREAD_VARIABLES:
        assert variables[name] == str(threads), name
    assert variables["TF_DETERMINISTIC_OPS"] == "1"
    assert variables["TF_CUDNN_DETERMINISTIC"] == "1"
    assert variables["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert variables["TORCHINDUCTOR_DETERMINISTIC"] == "1"
    assert variables["MKL_DYNAMIC"] == "FALSE"
    assert not ISA_PINS.keys() & variables.keys(), "strict must not pin the CPU code paths"


@pytest.mark.parametrize("threads", [1, 4])
def test_portable_is_strict_plus_the_isa_pins(threads: int) -> None:
    strict = environment(3, "strict", threads, "cpu")
    portable = environment(3, "portable", threads, "cpu")
    assert portable == {**strict, **ISA_PINS}


def test_a_cpu_run_hides_gpus_and_a_cuda_run_does_not() -> None:
    assert environment(0, "strict", 1, "cpu")["CUDA_VISIBLE_DEVICES"] == ""
    for device in ("cuda", "cuda:1"):
        variables = environment(0, "strict", 1, device)
        assert "CUDA_VISIBLE_DEVICES" not in variables
        assert variables["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_every_value_is_a_string_and_the_order_is_stable() -> None:
    variables = environment(0, "portable", 2, "cpu")
    assert all(isinstance(value, str) for value in variables.values())
    assert list(variables) == sorted(variables)
    assert set(variables) <= set(determinism.VARIABLES)


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown determinism profile 'fast'") as raised:
        environment(0, "fast", 1, "cpu")
    assert "strict" in str(raised.value)
    assert "portable" in str(raised.value)


@pytest.mark.parametrize(
    ("seed", "threads", "device", "message"),
    [
        (-1, 1, "cpu", "seed"),
        (2**32, 1, "cpu", "seed"),
        (True, 1, "cpu", "seed"),
        (0, 0, "cpu", "threads"),
        (0, 1.5, "cpu", "threads"),
        (0, 1, "gpu", "device"),
        (0, 1, "cuda:x", "device"),
    ],
)
def test_out_of_range_arguments_are_refused(
    seed: object, threads: object, device: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        environment(seed, "strict", threads, device)  # type: ignore[arg-type]


def test_the_largest_seed_is_one_python_accepts_as_hash_seed() -> None:
    variables = environment(2**32 - 1, "strict", 1, "cpu")
    hashes = {
        subprocess.run(
            [sys.executable, "-c", "print(hash('harness'))"],
            env={"PYTHONHASHSEED": variables["PYTHONHASHSEED"]},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    }
    assert len(hashes) == 1


def test_importing_it_imports_nothing_beyond_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import harness.runtime.determinism; "
        "new = set(sys.modules) - before; "
        "print(sorted(n for n in new if n.split('.')[0] not in sys.stdlib_module_names))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "['harness', 'harness.runtime', 'harness.runtime.determinism']"


def test_check_environment_names_missing_and_different_values() -> None:
    expected = {"A": "1", "B": "", "C": "x"}
    assert check_environment(expected, {"A": "1", "B": "", "C": "x", "D": "extra"}) == []
    assert check_environment(expected, {"A": "2", "C": "x"}) == [
        "A was '2' (expected '1')",
        "B was not set (expected '')",
    ]
