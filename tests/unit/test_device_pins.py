"""A CUDA variant's pins must bring CUDA, a CPU variant's must not."""

from __future__ import annotations

from harness.images.device_pins import mismatches
from harness.images.pin import Pin


def pins(*specs: str) -> list[Pin]:
    found = []
    for spec in specs:
        name, version = spec.split("==")
        found.append(Pin(name, version, ("sha256:aa",)))
    return found


CUDA_TORCH = pins("torch==2.13.0", "nvidia-cublas==13.1.1.3", "nvidia-cuda-runtime==13.0.96")


def test_a_cuda_variant_with_pypi_s_torch_and_its_nvidia_wheels_fits() -> None:
    assert mismatches(CUDA_TORCH, "cuda", "cuda", "constraints-cuda.txt") == []


def test_a_local_cpu_build_in_a_cuda_variant_is_named_with_its_fix() -> None:
    (found,) = mismatches(pins("torch==2.13.0+cpu", "numpy==2.4.6"), "cuda", "cuda", "c.txt")
    assert "c.txt pins torch==2.13.0+cpu, a CPU-only build" in found.message
    assert "find-links = false under [tool.harness.variants.cuda]" in found.fix
    assert "torch==2.13.0)" in found.fix


def test_a_cpu_only_distribution_in_a_cuda_variant_is_named() -> None:
    found = mismatches(CUDA_TORCH + pins("tensorflow-cpu==2.21.0"), "cuda", "cuda", "c.txt")
    assert [m.message for m in found] == [
        "c.txt pins tensorflow-cpu, a CPU-only distribution, for the cuda variant"
    ]
    assert "tensorflow[and-cuda]" in found[0].fix


def test_a_framework_without_cuda_runtime_wheels_is_named() -> None:
    (found,) = mismatches(pins("torch==2.13.0", "filelock==3.20.0"), "cuda", "cuda", "c.txt")
    assert "holds no CUDA runtime wheel (nvidia-*): torch==2.13.0" in found.message


def test_a_cuda_variant_of_a_project_that_needs_no_cuda_says_so() -> None:
    (found,) = mismatches(pins("numpy==2.4.6", "scikit-learn==1.8.0"), "cuda", "gpu", "c.txt")
    assert "nothing the gpu variant installs uses CUDA" in found.message
    assert "build the cpu variant" in found.fix


def test_a_framework_s_own_cuda_build_needs_no_nvidia_wheels() -> None:
    assert mismatches(pins("torch==2.1.0+cu118"), "cuda", "cuda", "c.txt") == []


def test_nvidia_wheels_in_a_cpu_variant_name_the_framework_that_pulls_them() -> None:
    (found,) = mismatches(CUDA_TORCH, "cpu", "cpu", "constraints.txt")
    assert found.message.startswith("constraints.txt pins 2 CUDA runtime wheel(s)")
    assert "(pulled in by torch)" in found.message
    assert 'replace = { torch = "torch==2.13.0+cpu" }' in found.fix


def test_nccl_pulled_in_by_xgboost_names_its_cpu_distribution() -> None:
    xgboost = pins("xgboost==3.4.1", "nvidia-nccl-cu13==2.28.9", "numpy==2.4.6")
    (found,) = mismatches(xgboost, "cpu", "cpu", "constraints.txt")
    assert "(pulled in by xgboost)" in found.message
    assert 'replace = { xgboost = "xgboost-cpu==3.4.1" }' in found.fix
    # And the CPU-only distribution is refused in a CUDA variant, naming the other one.
    (refused,) = mismatches(pins("xgboost-cpu==3.4.1"), "cuda", "cuda", "c.txt")
    assert "xgboost-cpu, a CPU-only distribution" in refused.message
    assert 'replace = { xgboost = "xgboost==..." }' in refused.fix


def test_a_cpu_variant_with_cpu_builds_fits() -> None:
    cpu = pins("torch==2.13.0+cpu", "tensorflow-cpu==2.21.0", "xgboost-cpu==3.4.1", "numpy==2.4.6")
    assert mismatches(cpu, "cpu", "cpu", "constraints.txt") == []


def test_pypi_s_torchvision_beside_a_cpu_torch_is_named_with_its_fix() -> None:
    # pytorch/examples' mnist as it locked: PyPI's torchvision, built against the CUDA
    # torch, fails to load beside torch +cpu ("operator torchvision::nms does not exist").
    found = mismatches(
        pins("torch==2.13.0+cpu", "torchvision==0.28.0", "torchaudio==2.13.0+cpu"),
        "cpu",
        "cpu",
        "constraints.txt",
    )
    assert [m.message for m in found] == [
        "constraints.txt pins torchvision==0.28.0, built against PyPI's CUDA torch, beside "
        "torch==2.13.0+cpu for the cpu variant: its operators fail to load there (operator "
        "torchvision::... does not exist)"
    ]
    assert "torchvision==0.28.0+cpu" in found[0].fix
    assert "download.pytorch.org/whl/cpu" in found[0].fix
    # Beside the CUDA torch of the index, the index's torchvision is its own.
    assert mismatches(CUDA_TORCH + pins("torchvision==0.28.0"), "cuda", "cuda", "c.txt") == []
