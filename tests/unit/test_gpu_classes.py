"""GPU results across hosts: bitwise within a device class, a declared tolerance across
classes, host-executor runs never in an image's quorum, and certificates that group hosts
by the GPUs they ran on. Built on records shaped as a GPU run writes them (the fingerprint
is the one recorded on an H200)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner

from harness import config_schema
from harness.cli.main import cli
from harness.compare.report import print_table
from harness.compare.tree import compare_paths
from harness.config import load_config
from harness.errors import ConfigError
from harness.fleet import hosts
from harness.runs import records
from harness.trust import certify

IMAGE = "sha256:" + "ab" * 32
H200 = json.loads(
    (Path(__file__).parent / "data" / "gpu" / "h200-record-switches-on.json").read_text()
)["fingerprint"]
H100 = copy.deepcopy(H200)
H100["gpu"]["devices"][0]["name"] = "NVIDIA H100 80GB HBM3"
H100["gpu"]["class"] = "NVIDIA H100 80GB HBM3 (compute 9.0)"


def gpu_run(
    leg: Path,
    host: str,
    number: int,
    weights: numpy.ndarray[Any, Any],
    *,
    fingerprint: dict[str, Any] | None = None,
    environment: str | None = None,
) -> Path:
    """A run folder as a CI leg uploads it; ``environment`` makes it a host-executor run."""
    run_id = f"20261127-10000{number}-demo-{number:06x}"
    folder = leg / run_id
    (folder / records.ARTIFACTS).mkdir(parents=True)
    numpy.save(folder / records.ARTIFACTS / "weights.npy", weights)
    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "run_id": run_id,
        "status": "succeeded",
        "experiment": "demo",
        "entry": "experiments.demo:main",
        "command": None,
        "parameters": {},
        "seed": 0,
        "profile": "strict",
        "threads": 1,
        "device": "cpu" if fingerprint is None else "cuda",
        "host": host,
        "image": {"reference": "demo:cuda", "id": IMAGE, "digest": IMAGE, "variant": "cuda"},
        "engine": {"where": "default", "version": "20.10"},
        "container": {"files": "bind"},
        "fingerprint": fingerprint or {},
        "timings": {"started_at": "2026-11-27T10:00:00+00:00"},
        "artifacts": records.artifacts(folder / records.ARTIFACTS),
    }
    if environment is not None:
        record.update(
            executor="host",
            image=None,
            engine=None,
            container=None,
            python_environment={"digest": environment, "python": "3.12.3"},
        )
    records.write(folder, record)
    return folder


WEIGHTS = numpy.linspace(-1, 1, 64, dtype=numpy.float32)
# The same weights one unit in the last place away, as another GPU's kernels may leave them.
NUDGED = numpy.nextafter(WEIGHTS, numpy.float32(2))


def collect(project: Path, *folders: Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        cli,
        ["--project", str(project), "collect", "--json", "--allow-unsigned", *map(str, folders)],
    )
    document = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, document, result.stderr


def test_two_gpus_of_one_class_agree_bit_for_bit(project: Path, tmp_path: Path) -> None:
    a = gpu_run(tmp_path / "a", "gpu-a", 1, WEIGHTS, fingerprint=H200)
    b = gpu_run(tmp_path / "b", "gpu-b", 2, WEIGHTS, fingerprint=H200)
    code, document, stderr = collect(project, a.parent, b.parent)
    assert code == 0, stderr
    classes = {host["name"]: host["device_class"] for host in document["hosts"]}
    assert classes == {"gpu-a": "NVIDIA H200 (compute 9.0)", "gpu-b": "NVIDIA H200 (compute 9.0)"}
    assert certify.device_classes(document["hosts"]) == {
        "NVIDIA H200 (compute 9.0)": ["gpu-a", "gpu-b"]
    }


def test_within_one_class_a_single_ulp_is_a_difference(project: Path, tmp_path: Path) -> None:
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text()
        + '\n[tool.harness.policies-across-devices]\n"*.npy" = "ulp:2"\n'
    )
    a = gpu_run(tmp_path / "a", "gpu-a", 1, WEIGHTS, fingerprint=H200)
    b = gpu_run(tmp_path / "b", "gpu-b", 2, NUDGED, fingerprint=H200)
    code, document, _ = collect(project, a.parent, b.parent)
    assert code == 1
    assert document["hosts"][1]["status"] == "differs"


def test_across_classes_without_a_declared_tolerance_the_verdict_names_both_and_the_fix(
    project: Path, tmp_path: Path
) -> None:
    a = gpu_run(tmp_path / "a", "h200", 1, WEIGHTS, fingerprint=H200)
    b = gpu_run(tmp_path / "b", "h100", 2, NUDGED, fingerprint=H100)
    code, document, _ = collect(project, a.parent, b.parent)
    assert code == 1
    reason = document["hosts"][1]["reason"]
    assert "NVIDIA H100 80GB HBM3 (compute 9.0) against the control's NVIDIA H200" in reason
    assert "[tool.harness.policies-across-devices]" in reason


def test_across_classes_the_declared_tolerance_holds(project: Path, tmp_path: Path) -> None:
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text()
        + '\n[tool.harness.policies-across-devices]\n"*.npy" = "ulp:2"\n'
    )
    gpu = gpu_run(tmp_path / "a", "h200", 1, WEIGHTS, fingerprint=H200)
    cpu = gpu_run(tmp_path / "b", "cpu-box", 2, NUDGED)
    code, document, stderr = collect(project, gpu.parent, cpu.parent)
    assert code == 0, stderr
    assert [h["device_class"] for h in document["hosts"]] == ["NVIDIA H200 (compute 9.0)", "cpu"]
    assert certify.device_classes(document["hosts"]) == {
        "NVIDIA H200 (compute 9.0)": ["h200"],
        "cpu": ["cpu-box"],
    }


def test_host_executor_runs_never_join_an_images_quorum(project: Path, tmp_path: Path) -> None:
    image = gpu_run(tmp_path / "a", "ci-gpu", 1, WEIGHTS, fingerprint=H200)
    bare = gpu_run(
        tmp_path / "b", "slurm-node", 2, WEIGHTS, fingerprint=H200, environment="sha256:" + "e" * 64
    )
    code, document, stderr = collect(project, image.parent, bare.parent)
    assert code == 2
    assert document == {} or document["hosts"][1]["status"] == "refused"
    assert "host-executor and image runs never share a quorum" in stderr


def test_the_policies_between_two_classes(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text()
        + '\n[tool.harness.experiments.demo]\nentry = "demo:main"\n'
        + '\n[tool.harness.policies]\n"*.json" = "metric:rtol=0,atol=0"\n'
        + '\n[tool.harness.policies-across-devices]\n"*.npy" = "ulp:64"\n'
    )
    config = load_config(project)
    experiment = config.experiment("demo")
    same = config.policies_between(experiment, "cpu", "cpu")
    assert "*.npy" not in same
    across = config.policies_between(experiment, "cpu", "NVIDIA H200 (compute 9.0)")
    assert across["*.npy"] == "ulp:64"
    assert across["*.json"] == "metric:rtol=0,atol=0"


def test_device_class_of_records() -> None:
    assert records.device_class({"device": "cpu"}) == "cpu"
    assert records.device_class({"device": "cuda", "fingerprint": H200}) == (
        "NVIDIA H200 (compute 9.0)"
    )
    assert records.device_class({"device": "cuda", "fingerprint": {}}) == "unknown GPU"


def test_a_host_executor_verification_is_certified_by_its_environment() -> None:
    verification = {
        "id": "v1",
        "verdict": "reproducible",
        "executor": "host",
        "image": None,
        "python_environment": {"digest": "sha256:" + "e" * 64, "python": "3.12.3"},
        "seed": 0,
        "profile": "strict",
        "threads": 1,
        "variations": [],
        "hosts": [{"name": "node", "status": "control", "device_class": "cpu"}],
        "quorum": {"agreed": ["node"], "of": 1, "text": "1 of 1"},
        "experiments": [],
    }
    statement = certify.statement(verification)
    assert statement["subject"] == [
        {
            "name": "python-environment",
            "digest": {"sha256": "e" * 64},
            "annotations": {"kind": "python-environment", "python": "3.12.3", "isolation": "none"},
        }
    ]
    assert statement["predicate"]["executor"] == "host"
    assert statement["predicate"]["image"] is None
    verified = certify.Verified(statement, ["key"])
    assert verified.environment_digest == "sha256:" + "e" * 64
    assert "no image isolated the runs" in verified.pinned_by
    with pytest.raises(certify.CertificateError, match="host executor"):
        _ = verified.image_id
    with pytest.raises(ConfigError, match="no image"):
        certify.statement(verification, ["registry.example/demo@sha256:" + "f" * 64])


def test_hosts_declare_gpus_and_gpu_runs_go_only_to_them() -> None:
    gpu = hosts._host("gpu-box", {"url": "ssh://gpu-box", "gpus": True})
    plain = hosts._host("laptop", "ssh://laptop")
    assert gpu.gpus and not plain.gpus
    said: list[str] = []
    assert hosts.for_gpus([gpu, plain], True, say=said.append) == [gpu]
    assert said == ["--gpus: leaving out laptop, which declare no GPUs (gpus = true)"]
    assert hosts.for_gpus([gpu, plain], False, say=said.append) == [gpu, plain]
    with pytest.raises(ConfigError, match="gpus: expected true or false"):
        config_schema.validate({"hosts": {"gpu-box": {"url": "ssh://gpu-box", "gpus": "yes"}}})


def test_a_comparison_of_two_runs_says_what_each_computed_on(tmp_path: Path) -> None:
    gpu = gpu_run(tmp_path / "a", "h200", 1, WEIGHTS, fingerprint=H200)
    cpu = gpu_run(tmp_path / "b", "cpu-box", 2, WEIGHTS)
    result = compare_paths(str(gpu), str(cpu))
    assert (result.a.device, result.b.device) == ("NVIDIA H200 (compute 9.0)", "cpu")
    shown = io.StringIO()
    print_table(result, file=shown)
    # The table wraps long lines at the terminal's width.
    assert f"(run {gpu.name} on NVIDIA H200 (compute 9.0))" in " ".join(shown.getvalue().split())
    # Plain folders have no record, so no device.
    plain = compare_paths(str(gpu / "artifacts"), str(cpu / "artifacts"))
    assert plain.a.device is None
