"""The hardware and software a run saw: what two runs must share for their bytes to agree.

Captured after the experiment, so that it describes the frameworks the experiment
imported without importing any other: package versions come from the installed
distributions' metadata, and torch is asked about GPUs only when the experiment imported it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.runtime import determinism
from harness.runtime.frameworks import threadpools

SCHEMA = "harness.fingerprint/v1"
# The distributions whose versions decide the results, reported as null when absent.
PACKAGES = (
    "harness",
    "numpy",
    "scipy",
    "scikit-learn",
    "threadpoolctl",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    # The CUDA libraries of PyPI's torch: the cuDNN and cuBLAS a CUDA run computed with.
    "nvidia-cudnn-cu12",
    "nvidia-cudnn-cu13",
    "nvidia-cublas-cu12",
    "nvidia-cublas",
)
# The CPU flags that decide which kernels the libraries dispatch to: the vector
# instruction sets and the matrix units.
_RELEVANT_FLAG = re.compile(r"(sse\d.*|ssse3|avx.*|amx.*|fma|f16c|bmi2|vnni)")
_CPUINFO_KEYS = {
    "vendor_id": "vendor",
    "model name": "model",
    "cpu family": "family",
    "model": "model_number",
    "stepping": "stepping",
    "microcode": "microcode",
}


def capture(threads: int | None) -> dict[str, object]:
    """The fingerprint of this process's machine, container and libraries; ``threads`` is
    the thread count the run asked for, None when unknown."""
    cpuinfo = _read("/proc/cpuinfo")
    return {
        "schema": SCHEMA,
        "cpu": {
            **cpu_info(cpuinfo or ""),
            "logical_cores": os.cpu_count(),
            "usable_cores": _usable_cores(),
            "cgroup": cgroup_cpu_limit(Path("/sys/fs/cgroup")),
        },
        "threads": {
            "requested": threads,
            "environment": {
                name: os.environ[name]
                for name in determinism.VARIABLES
                if name.endswith("_THREADS") and name in os.environ
            },
        },
        "threadpools": threadpools(),
        "gpu": gpu_info(),
        "os": {
            "kernel": platform.release(),
            "machine": platform.machine(),
            "libc": " ".join(part for part in platform.libc_ver() if part) or None,
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "compiler": platform.python_compiler(),
        },
        "packages": package_versions(PACKAGES),
        # Which copy of the runtime ran: the image's, or a source tree mounted over it.
        "runtime_path": str(Path(__file__).resolve().parent),
    }


def cpu_info(text: str) -> dict[str, object]:
    """Vendor, model and the relevant ISA flags of the first processor in /proc/cpuinfo."""
    info: dict[str, object] = dict.fromkeys(_CPUINFO_KEYS.values())
    flags: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block ends at the first blank line
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in _CPUINFO_KEYS:
            info[_CPUINFO_KEYS[key]] = value
        elif key in ("flags", "Features"):
            flags = value.split()
    if info["model"] is None:
        info["model"] = platform.processor() or None
    info["flags"] = sorted(flag for flag in flags if _RELEVANT_FLAG.fullmatch(flag))
    return info


def cgroup_cpu_limit(root: Path) -> dict[str, object] | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, else v1 CFS), or None when
    none is readable. ``cpus`` is quota / period, null when unlimited."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.strip().partition(" ")
        return _limit(quota, period, str(root / "cpu.max"))
    for folder in (root / "cpu", root / "cpu,cpuacct"):
        quota_text = _read(folder / "cpu.cfs_quota_us")
        period_text = _read(folder / "cpu.cfs_period_us")
        if quota_text is not None and period_text is not None:
            return _limit(quota_text.strip(), period_text.strip(), str(folder))
    return None


def _limit(quota: str, period: str, source: str) -> dict[str, object] | None:
    try:
        period_us = int(period)
        quota_us = None if quota in ("max", "-1") else int(quota)
    except ValueError:
        return None
    cpus = None if quota_us is None or period_us <= 0 else round(quota_us / period_us, 3)
    return {"quota_us": quota_us, "period_us": period_us, "cpus": cpus, "source": source}


def _usable_cores() -> int | None:
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is None:
        return None
    return len(sched_getaffinity(0))


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Each distribution's installed version, from its metadata: nothing is imported."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_info() -> dict[str, object] | None:
    """GPUs, driver, CUDA, cuDNN and cuBLAS versions: from torch when the experiment imported
    it and CUDA is available to it, else the driver's own NVML library; None without a GPU."""
    torch: Any = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                return _torch_gpus(torch)
    return nvml_gpus()


def _torch_gpus(torch: Any) -> dict[str, object]:
    devices = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        major, minor = torch.cuda.get_device_capability(index)
        devices.append(
            {
                "name": str(properties.name),
                "capability": f"{major}.{minor}",
                "memory_bytes": int(properties.total_memory),
            }
        )
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    nccl: Any = None
    with contextlib.suppress(Exception):
        nccl = ".".join(str(part) for part in torch.cuda.nccl.version())
    return describe_gpus(
        source="torch",
        devices=devices,
        driver=driver_version(),
        cuda=torch.version.cuda,
        cudnn=cudnn,
        cublas=cublas_version(_read("/proc/self/maps") or ""),
        nccl=nccl,
    )


def describe_gpus(
    *,
    source: str,
    devices: list[dict[str, object]],
    driver: str | None,
    cuda: str | None,
    cudnn: int | None,
    cublas: str | None,
    nccl: str | None = None,
) -> dict[str, object]:
    """The GPU part of a fingerprint, from values read off torch (or recorded ones)."""
    return {
        "source": source,
        "count": len(devices),
        "devices": devices,
        "class": gpu_class(devices),
        "driver": driver,
        "cuda": cuda,
        "cudnn": cudnn,
        "cudnn_version": cudnn_text(cudnn),
        "cublas": cublas,
        "nccl": nccl,
    }


def gpu_class(devices: Iterable[Mapping[str, object]]) -> str | None:
    """The class of GPUs a run used: model and compute capability, and the count when more
    than one. Runs agree bit for bit only within a class: another model (or the same model
    with another capability) picks other kernels and other reduction orders."""
    counted: dict[str, int] = {}
    for device in devices:
        name = str(device.get("name") or "unknown GPU")
        capability = device.get("capability")
        key = f"{name} (compute {capability})" if capability else name
        counted[key] = counted.get(key, 0) + 1
    if not counted:
        return None
    return " + ".join(
        key if count == 1 else f"{count}x {key}" for key, count in sorted(counted.items())
    )


def cudnn_text(version: object) -> str | None:
    """cuDNN's version number as text: 9.x reports MAJOR*10000 + MINOR*100 + PATCH (91002 is
    9.10.2); 8.x reported MAJOR*1000 + MINOR*100 + PATCH (8902 is 8.9.2)."""
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        return None
    if version >= 10000:
        major, rest = divmod(version, 10000)
    else:
        major, rest = divmod(version, 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def cublas_version(maps: str) -> str | None:
    """The version of the cuBLAS(Lt) library loaded in this process, asked of the library
    itself: the one the run's matrix products went through, whatever wheel or system folder
    it came from. ``maps`` is /proc/self/maps."""
    paths = sorted({line.split()[-1] for line in maps.splitlines() if "/libcublasLt.so" in line})
    for path in paths:
        try:
            library = ctypes.CDLL(path)
            library.cublasLtGetVersion.restype = ctypes.c_size_t
            number = int(library.cublasLtGetVersion())
        except (OSError, AttributeError):
            continue
        # CUBLAS_VERSION is MAJOR*10000 + MINOR*100 + PATCH.
        major, rest = divmod(number, 10000)
        minor, patch = divmod(rest, 100)
        return f"{major}.{minor}.{patch}"
    return None


# What parse_nvidia_smi reads: nvidia-smi --query-gpu=... --format=csv,noheader,nounits.
NVIDIA_SMI_QUERY = "name,compute_cap,driver_version,memory.total"


def parse_nvidia_smi(text: str) -> list[dict[str, object]]:
    """The GPUs in nvidia-smi's CSV answer to NVIDIA_SMI_QUERY (memory in MiB)."""
    devices: list[dict[str, object]] = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4 or not fields[0]:
            continue
        name, capability, driver, memory = fields
        device: dict[str, object] = {"name": name, "capability": capability, "driver": driver}
        if memory.isdigit():
            device["memory_bytes"] = int(memory) * 1024 * 1024
        devices.append(device)
    return devices


def driver_version() -> str | None:
    """The NVIDIA kernel driver's version, from /proc or from NVML."""
    text = _read("/proc/driver/nvidia/version")
    if text is not None:
        match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]*)", text)
        if match:
            return match.group(1)
    nvml = nvml_gpus()
    return None if nvml is None else str(nvml["driver"])


def nvml_gpus() -> dict[str, object] | None:
    """The GPUs and driver as NVML reports them, None when no NVIDIA driver is loaded."""
    # NVML ships with the driver, and the NVIDIA container runtime mounts it into GPU
    # containers: it names the GPUs and the driver without any Python package.
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        buffer = ctypes.create_string_buffer(96)
        driver = buffer.value.decode() if nvml.nvmlSystemGetDriverVersion(buffer, 96) == 0 else None
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            count.value = 0
        devices = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            name = ctypes.create_string_buffer(96)
            if nvml.nvmlDeviceGetName(handle, name, 96) != 0:
                continue
            device: dict[str, object] = {"name": name.value.decode()}
            major, minor = ctypes.c_int(0), ctypes.c_int(0)
            if (
                nvml.nvmlDeviceGetCudaComputeCapability(
                    handle, ctypes.byref(major), ctypes.byref(minor)
                )
                == 0
            ):
                device["capability"] = f"{major.value}.{minor.value}"
            devices.append(device)
        cuda = ctypes.c_int(0)
        cuda_driver = None
        if nvml.nvmlSystemGetCudaDriverVersion_v2(ctypes.byref(cuda)) == 0:
            cuda_driver = f"{cuda.value // 1000}.{cuda.value % 1000 // 10}"
    finally:
        nvml.nvmlShutdown()
    return {
        "source": "nvml",
        "count": len(devices),
        "devices": devices,
        "class": gpu_class(devices),
        "driver": driver,
        # The newest CUDA the driver supports, not a toolkit's version.
        "cuda_driver": cuda_driver,
    }


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
