"""What an experiment container is: the options a run gives the engine, and its record.

The expected options were taken from `harness run` as it was before the container's
settings moved into one module; they must not change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.config import Config, load_config
from harness.engine import Engine
from harness.images.build import BuildResult
from harness.runs import records, run
from harness.runs.variations import BY_NAME, setup_for
from harness.runtime import determinism
from tests.unit.fake_docker import FakeClient, Ran

PYPROJECT = """\
[project]
name = "plan"
version = "0"

[tool.harness]
image = "plan"
memory = "6g"

[tool.harness.experiments.fit]
entry = "plan:fit"
outputs = ["weights.bin"]
inputs = { data = "data.csv" }
"""
IMAGE = BuildResult("plan:cpu", f"sha256:{'ab' * 32}", "cpu", True, 0.0, 1)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    project = tmp_path / "project"
    project.mkdir()
    project.chmod(0o755)  # the container's user reads it
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "data.csv").write_text("1\n")
    return load_config(project)


def _writes(_experiment: str, _environment: Mapping[str, str]) -> Ran:
    return 0.0, {"weights.bin": b"w"}


def _created(config: Config, request: run.RunRequest) -> tuple[dict[str, Any], run.RunResult]:
    """The create() options a run gave the engine, with this run's paths and id made
    stable, and the run's result."""
    client = FakeClient(_writes)
    result = run.run_experiment(Engine(client, "fake"), config, IMAGE, request)  # type: ignore[arg-type]
    (created,) = client.containers.created
    options = {k: v for k, v in created.options.items() if k != "name"}
    text = json.dumps(options, sort_keys=True)
    text = text.replace(str(config.project_root), "PROJECT").replace(result.run_id, "RUN")
    return json.loads(text), result


def _mount(source: str, target: str, read_only: bool) -> dict[str, Any]:
    return {
        "Source": source,
        "Target": target,
        "Type": "bind",
        "ReadOnly": read_only,
    }


def test_a_run_gives_the_engine_the_same_options_as_before(config: Config) -> None:
    request = run.RunRequest(config.experiment("fit"), seed=3, profile="strict", threads=2)
    options, result = _created(config, request)
    environment = {
        **determinism.environment(3, "strict", 2, "cpu"),
        "HOME": "/tmp",
        "HARNESS_RUN_ID": "RUN",
    }
    runs = "PROJECT/.harness/runs/RUN"
    assert options == {
        "cap_drop": ["ALL"],
        "environment": environment,
        "labels": {"io.harness.owned": "true", "io.harness.run-id": "RUN"},
        "log_config": {"Config": {"max-file": "1", "max-size": str(64 << 20)}, "Type": "json-file"},
        "mem_limit": "6g",
        "memswap_limit": "6g",
        "mounts": [
            _mount("PROJECT", "/harness/project", True),
            _mount(f"{runs}/spec.json", "/harness/spec.json", True),
            _mount(f"{runs}/{records.ARTIFACTS}", "/harness/out", False),
            _mount(f"{runs}/{records.META}", "/harness/meta", False),
            _mount("PROJECT/data.csv", "/harness/inputs/data", True),
        ],
        "network_mode": "none",
        "pids_limit": 4096,
        "read_only": True,
        "security_opt": ["no-new-privileges:true"],
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=4g", "/harness/project/.harness": "ro,size=1k"},
        "user": "10001:10001",
        "hostname": "harness",
        "working_dir": "/harness/project",
    }
    assert result.status == "succeeded", result.record["error"]
    assert result.record["environment"] == {**environment, "HARNESS_RUN_ID": result.run_id}
    assert result.record["container"] == {
        "network": "none",
        "read_only_root": True,
        "user": "10001:10001",
        "hostname": "harness",
        "working_dir": "/harness/project",
        "cpuset": None,
        "variations": [],
        "cpus": None,
        "gpus": False,
        "timeout_s": None,
        "files": "bind",
    }


def test_variations_reach_the_engine_as_before(config: Config) -> None:
    setup = setup_for(BY_NAME[name] for name in ("cpus", "user", "workdir", "env", "hashseed"))
    request = run.RunRequest(
        config.experiment("fit"), seed=3, profile="strict", threads=2, cpus=1.5, setup=setup
    )
    options, result = _created(config, request)
    assert (options["user"], options["working_dir"], options["cpuset_cpus"]) == (
        "10002:10002",
        "/tmp",
        "0",
    )
    assert options["nano_cpus"] == 1_500_000_000
    assert "PYTHONHASHSEED" not in options["environment"]
    assert options["environment"]["HARNESS_NOISE"] == "1"
    assert result.record["container"]["variations"] == [
        "cpus",
        "user",
        "workdir",
        "env",
        "hashseed",
    ]
