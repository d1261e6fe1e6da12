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
        "devices": [
            {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_bytes": 85_000_000_000}
        ],
        "driver": "570.1",
        "cuda": "12.8",
        "cudnn": 91002,
    }


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
