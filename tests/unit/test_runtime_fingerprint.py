"""The fingerprint: CPU, cgroup quota, GPUs, versions, parsed from what the machine shows."""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy
import pytest

from harness.runtime import fingerprint

CPUINFO = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8480+
stepping	: 8
microcode	: 0x2b000590
flags		: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c bmi2 avx512f avx512_bf16 \
avx512_vnni amx_bf16 amx_tile amx_int8 hypervisor

processor	: 1
vendor_id	: GenuineIntel
model name	: Some Other CPU
flags		: fpu sse sse2
"""


def test_cpu_info_keeps_the_first_processor_and_the_isa_flags() -> None:
    info = fingerprint.cpu_info(CPUINFO)
    assert info == {
        "vendor": "GenuineIntel",
        "model": "Intel(R) Xeon(R) Platinum 8480+",
        "family": "6",
        "model_number": "143",
        "stepping": "8",
        "microcode": "0x2b000590",
        "flags": sorted(
            [
                "sse2",
                "ssse3",
                "sse4_1",
                "sse4_2",
                "avx",
                "avx2",
                "fma",
                "f16c",
                "bmi2",
                "avx512f",
                "avx512_bf16",
                "avx512_vnni",
                "amx_bf16",
                "amx_tile",
                "amx_int8",
            ]
        ),
    }


def test_cpu_info_of_nothing_is_empty_not_an_error() -> None:
    info = fingerprint.cpu_info("")
    assert info["flags"] == []
    assert info["vendor"] is None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, {"quota_us": 150000, "period_us": 100000, "cpus": 1.5}),
        ({"cpu.max": "max 100000\n"}, {"quota_us": None, "period_us": 100000, "cpus": None}),
        (
            {"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"},
            {"quota_us": 50000, "period_us": 100000, "cpus": 0.5},
        ),
        (
            {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
            {"quota_us": None, "period_us": 100000, "cpus": None},
        ),
    ],
)
def test_cgroup_cpu_limit_reads_v2_and_v1(
    tmp_path: Path, files: dict[str, str], expected: dict[str, object]
) -> None:
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    limit = fingerprint.cgroup_cpu_limit(tmp_path)
    assert limit is not None
    assert {key: limit[key] for key in expected} == expected
    assert str(limit["source"]).startswith(str(tmp_path))


def test_cgroup_cpu_limit_is_none_when_unreadable_or_malformed(tmp_path: Path) -> None:
    assert fingerprint.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("lots\n")
    assert fingerprint.cgroup_cpu_limit(tmp_path) is None


@pytest.mark.parametrize(
    "text",
    [
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build\n",
    ],
)
def test_the_driver_version_is_read_from_proc(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(fingerprint, "_read", lambda _: text)
    assert fingerprint.driver_version() == "550.54.15"


def test_without_nvml_there_is_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(_: str) -> None:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert fingerprint.gpu_info() is None


def test_gpus_come_from_torch_when_the_experiment_imported_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    properties = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_000_000_000)
    torch = SimpleNamespace(
        cuda=SimpleNamespace(
            is_available=lambda: True,
            device_count=lambda: 1,
            get_device_properties=lambda _: properties,
            get_device_capability=lambda _: (9, 0),
        ),
        backends=SimpleNamespace(
            cudnn=SimpleNamespace(is_available=lambda: True, version=lambda: 91002)
        ),
        version=SimpleNamespace(cuda="12.8"),
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(
        fingerprint, "_read", lambda _: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.1\n"
    )
    assert fingerprint.gpu_info() == {
        "source": "torch",
        "count": 1,
        "devices": [
            {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_bytes": 85_000_000_000}
        ],
        "class": "NVIDIA H100 80GB HBM3 (compute 9.0)",
        "driver": "570.1",
        "cuda": "12.8",
        "cudnn": 91002,
        "cudnn_version": "9.10.2",
        # No cuBLAS is loaded in this process, and the fake torch has no NCCL.
        "cublas": None,
        "nccl": None,
    }


GPU_DATA = Path(__file__).parent / "data" / "gpu"


def test_nvidia_smi_output_recorded_on_an_h200_is_parsed() -> None:
    devices = fingerprint.parse_nvidia_smi((GPU_DATA / "h200-nvidia-smi.csv").read_text())
    assert devices == [
        {
            "name": "NVIDIA H200",
            "capability": "9.0",
            "driver": "580.159.04",
            "memory_bytes": 143771 * 1024 * 1024,
        }
    ]
    assert fingerprint.gpu_class(devices) == "NVIDIA H200 (compute 9.0)"


def test_nvidia_smi_lines_that_are_not_gpus_are_skipped() -> None:
    text = "No devices were found\n\nNVIDIA A100-SXM4-40GB, 8.0, 550.54.15, [N/A]\n"
    assert fingerprint.parse_nvidia_smi(text) == [
        {"name": "NVIDIA A100-SXM4-40GB", "capability": "8.0", "driver": "550.54.15"}
    ]


def test_what_torch_reported_on_an_h200_makes_its_gpu_class() -> None:
    recorded = json.loads((GPU_DATA / "h200-torch.json").read_text())
    described = fingerprint.describe_gpus(
        source="torch",
        devices=recorded["devices"],
        driver="580.159.04",
        cuda=recorded["cuda"],
        cudnn=recorded["cudnn"],
        cublas="13.1.0",
    )
    assert described["class"] == "NVIDIA H200 (compute 9.0)"
    assert described["count"] == 1
    assert described["cudnn_version"] == "9.19.0"


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        ([], None),
        (
            [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}] * 2,
            "2x NVIDIA H100 80GB HBM3 (compute 9.0)",
        ),
        (
            [{"name": "NVIDIA L4", "capability": "8.9"}, {"name": "NVIDIA A10"}],
            "NVIDIA A10 + NVIDIA L4 (compute 8.9)",
        ),
    ],
)
def test_a_gpu_class_names_model_capability_and_count(
    devices: list[dict[str, object]], expected: str | None
) -> None:
    assert fingerprint.gpu_class(devices) == expected


@pytest.mark.parametrize(
    ("number", "text"),
    [(91900, "9.19.0"), (91002, "9.10.2"), (8902, "8.9.2"), (0, None), (None, None), (True, None)],
)
def test_cudnn_version_numbers_read_as_text(number: object, text: str | None) -> None:
    assert fingerprint.cudnn_text(number) == text


def test_without_cublas_loaded_its_version_is_unknown() -> None:
    maps = "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    assert fingerprint.cublas_version(maps) is None
    # A library that is named like cuBLAS but cannot be loaded is skipped, not raised.
    assert fingerprint.cublas_version("7f00-7f01 r-xp 0 0 1 /nowhere/libcublasLt.so.13\n") is None


def test_a_record_made_on_an_h200_carries_the_fingerprint_and_the_switches() -> None:
    record = json.loads((GPU_DATA / "h200-record-switches-on.json").read_text())
    gpu = record["fingerprint"]["gpu"]
    assert gpu["class"] == "NVIDIA H200 (compute 9.0)"
    assert (gpu["cuda"], gpu["cudnn_version"], gpu["cublas"]) == ("13.0", "9.19.0", "13.1.0")
    torch = record["observed"]["torch"]
    assert torch["cudnn_deterministic"] is True
    assert torch["cudnn_benchmark"] is False
    assert torch["deterministic_algorithms"] is True
    assert torch["cublas_workspace_config"] == ":4096:8"
    assert record["violations"] == []
    off = json.loads((GPU_DATA / "h200-record-switches-off.json").read_text())
    assert off["observed"]["torch"]["cudnn_deterministic"] is False
    assert off["violations"] == ["the determinism switches were left off on purpose"]


def test_package_versions_come_from_metadata_with_null_for_the_absent() -> None:
    versions = fingerprint.package_versions(["numpy", "no-such-distribution-here"])
    assert versions == {"numpy": numpy.__version__, "no-such-distribution-here": None}


def test_capture_is_json_and_imports_no_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = set(sys.modules)
    captured = fingerprint.capture(2)
    assert not {"torch", "tensorflow", "sklearn"} & (set(sys.modules) - before)
    assert json.loads(json.dumps(captured)) == captured
    assert captured["schema"] == "harness.fingerprint/v1"
    cpu = captured["cpu"]
    assert isinstance(cpu, dict)
    assert cpu["logical_cores"] == os.cpu_count()
    assert cpu["usable_cores"] == len(os.sched_getaffinity(0))
    assert captured["threads"] == {"requested": 2, "environment": {"OMP_NUM_THREADS": "2"}}
    packages = captured["packages"]
    assert isinstance(packages, dict)
    assert set(packages) == set(fingerprint.PACKAGES)
    assert packages["numpy"] == numpy.__version__
    assert captured["python"] == {
        "version": ".".join(map(str, sys.version_info[:3])),
        "implementation": "CPython",
        "compiler": captured["python"]["compiler"],  # type: ignore[index]
    }
