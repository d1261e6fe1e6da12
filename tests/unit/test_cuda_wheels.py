"""A wheel is CUDA runtime by what it holds, not by NVIDIA's name prefix."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from harness.config import load_config
from harness.images import cuda_wheels, device_pins, lock, wheelcache, wheelindex
from harness.images.pin import Pin

PYNVML_BINDINGS = "nvidia_ml_py-13.615.71-py3-none-any.whl"
CUBLAS = "nvidia_cublas-13.1.0.3-py3-none-manylinux_2_27_x86_64.whl"


def wheel(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def cached_pin(
    cache: wheelcache.WheelCache, tmp_path: Path, name: str, members: dict[str, bytes]
) -> Pin:
    """A pin whose one wheel lies in the wheel cache, as a build leaves it."""
    built = wheel(tmp_path, name, members)
    digest = hashlib.sha256(built.read_bytes()).hexdigest()
    entry = cache.entry(digest)
    entry.mkdir(parents=True)
    built.rename(entry / name)
    distribution, version = name.split("-")[:2]
    return Pin(distribution.replace("_", "-"), version, (f"sha256:{digest}",))


@pytest.fixture
def content(monkeypatch: pytest.MonkeyPatch) -> cuda_wheels.CudaContent:
    def offline(*_: object, **__: object) -> list[wheelindex.Offered]:
        raise wheelindex.WheelSourceError("no network in this test")

    monkeypatch.setattr(wheelindex, "read_listing", offline)
    return cuda_wheels.CudaContent(wheelcache.open_cache(), "https://pypi.invalid/simple")


def test_pure_python_nvml_bindings_are_no_cuda_runtime(
    content: cuda_wheels.CudaContent, tmp_path: Path
) -> None:
    pin = cached_pin(content.cache, tmp_path, PYNVML_BINDINGS, {"pynvml.py": b"# NVML\n"})
    assert content(pin) is False
    # The case of the issue: pynvml pulls nvidia-ml-py into a CPU project.
    assert device_pins.mismatches([pin], "cpu", "cpu", "constraints.txt", holds_cuda=content) == []


def test_a_wheel_holding_cuda_libraries_is_cuda_runtime(
    content: cuda_wheels.CudaContent, tmp_path: Path
) -> None:
    pin = cached_pin(
        content.cache,
        tmp_path,
        CUBLAS,
        {"nvidia/cublas/lib/libcublas.so.13": b"\x7fELF", "nvidia/cublas/__init__.py": b""},
    )
    assert content(pin) is True
    (found,) = device_pins.mismatches([pin], "cpu", "cpu", "constraints.txt", holds_cuda=content)
    assert "CUDA runtime wheel(s) (nvidia-cublas==13.1.0.3" in found.message


def test_a_platform_wheel_without_cuda_libraries_is_not(
    content: cuda_wheels.CudaContent, tmp_path: Path
) -> None:
    name = "nvidia_nat-1.0-cp314-cp314-manylinux_2_28_x86_64.whl"
    pin = cached_pin(content.cache, tmp_path, name, {"nat/_speedups.so": b"\x7fELF"})
    assert content(pin) is False


def test_the_index_listing_clears_a_pure_wheel_without_downloading_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = "a" * 64
    listed = [
        wheelindex.Offered(PYNVML_BINDINGS, "https://x/" + PYNVML_BINDINGS, digest),
        wheelindex.Offered("nvidia_ml_py-13.615.71.tar.gz", "https://x/sdist", "b" * 64),
    ]
    monkeypatch.setattr(wheelindex, "read_listing", lambda *_, **__: listed)
    content = cuda_wheels.CudaContent(wheelcache.open_cache(), "https://pypi.invalid/simple")
    assert content(Pin("nvidia-ml-py", "13.615.71", (f"sha256:{digest}",))) is False
    platform = "c" * 64
    listed.append(wheelindex.Offered(CUBLAS, "https://x/" + CUBLAS, platform))
    assert content(Pin("nvidia-cublas", "13.1.0.3", (f"sha256:{platform}",))) is True


def test_where_no_file_can_be_read_the_name_decides(content: cuda_wheels.CudaContent) -> None:
    assert content(Pin("nvidia-cudnn-cu12", "9.1", ("sha256:" + "d" * 64,))) is True
    assert content(Pin("numpy", "2.4", ("sha256:" + "e" * 64,))) is False
    # A hash that names no file is not looked up anywhere.
    assert content(Pin("nvidia-cudnn-cu12", "9.1", ("sha256:zz",))) is True


def test_an_unreadable_wheel_is_not_cleared(tmp_path: Path) -> None:
    broken = tmp_path / CUBLAS
    broken.write_bytes(b"not a zip")
    assert cuda_wheels.holds_cuda_libraries(broken)


def test_lock_check_accepts_nvml_bindings_in_the_cpu_variant(
    project: Path, tmp_path: Path, content: cuda_wheels.CudaContent
) -> None:
    # A constraints file as `harness lock` writes it for a project that depends on pynvml.
    pin = cached_pin(content.cache, tmp_path, PYNVML_BINDINGS, {"pynvml.py": b""})
    config = load_config(project, environ={})
    variant = config.variant("cpu")
    expected = lock.variant_input(config, variant)
    variant.constraints.write_text(
        expected.header() + f"nvidia-ml-py==13.615.71 --hash={pin.hashes[0]}\n"
    )
    assert lock.device_mismatches(variant, config) == []
