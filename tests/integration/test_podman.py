"""Podman as the engine: a project made from scratch, built, run and verified on a real
`podman system service` (scripts/podman.sh), as a team without a Docker daemon would.

The service has its own store under the test's folder, so the test never touches another
Podman's images; harness's base image moves in from the Docker engine through harness's
own save and load, as `docker save | podman load` would.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.engine import PODMAN, Engine
from harness.images.base import base_reference
from tests.conftest import REPOSITORY
from tests.integration.conftest import harness

SCRIPT = REPOSITORY / "scripts" / "podman.sh"

# The experiment reports what it sees where harness hides the project's state folder (in
# the read-only mount of the project the runtime lays the writable view out from): Podman
# copies a mount point's contents into a tmpfs unless told not to.
TRAIN = """\
import os

import numpy as np


def fit(output, seed, inputs):
    weights = np.random.default_rng(seed).standard_normal(1000)
    np.save(output / "weights.npy", weights)
    hidden = "/harness/source/.harness"
    return {"mean": float(weights.mean()), "state_entries": len(os.listdir(hidden))}
"""


@pytest.fixture(scope="module")
def podman(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, project: Path
) -> Iterator[str]:
    state = tmp_path_factory.mktemp("podman")
    started = subprocess.run(
        [str(SCRIPT), "start", str(state)], capture_output=True, text=True, check=False
    )
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    try:
        other = Engine.connect(url)
        with engine.save(base_reference(load_config(project))) as stream:
            other.load(iter(lambda: stream.read(1 << 20), b""))
        yield url
        assert other.containers_owned() == []
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("podman-project")
    root.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    image = f"harness-test-podman-{uuid.uuid4().hex[:8]}"
    (root / "pyproject.toml").write_text(
        '[project]\nname = "weights"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["numpy"]\n\n[dependency-groups]\nexperiments = ["numpy"]\n\n'
        f'[tool.harness]\nimage = "{image}"\n\n'
        '[tool.harness.experiments.train]\nentry = "weights_train:fit"\n'
        'outputs = ["weights.npy"]\n'
    )
    (root / "weights_train.py").write_text(TRAIN)
    # A past run's folder where the container must not see it.
    (root / ".harness" / "runs" / "planted").mkdir(parents=True)
    identity = ["-c", "user.name=Owner", "-c", "user.email=owner@example.com"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".harness/\n")
    subprocess.run(["git", *identity, "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", *identity, "-C", str(root), "commit", "-qm", "work"], check=True)
    return root


def _ok(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = harness(*arguments, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def test_doctor_names_podman(podman: str, project: Path) -> None:
    result = harness("--docker-host", podman, "doctor", "--json", cwd=project)
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["engine"]["ok"]
    assert checks["engine"]["detail"].startswith(f"{PODMAN} ")


def test_a_project_builds_runs_and_verifies_on_podman(podman: str, project: Path) -> None:
    _ok("lock", cwd=project)
    built: dict[str, Any] = json.loads(
        _ok("--docker-host", podman, "build", "--json", cwd=project).stdout
    )
    other = Engine.connect(podman)
    assert other.product == PODMAN
    assert other.image(built["image_id"]) is not None
    # A second build is found in harness's index of what it built on this engine.
    again = json.loads(_ok("--docker-host", podman, "build", "--json", cwd=project).stdout)
    assert again["image_id"] == built["image_id"]
    assert again["cached"] is True
    # Docker, writing its layers the way harness writes Podman's, makes the same image.
    on_docker = json.loads(_ok("build", "--rewrite-layers", "--json", cwd=project).stdout)
    assert on_docker["image_id"] == built["image_id"]

    verified = json.loads(
        _ok(
            "--docker-host", podman, "verify", "--json", "--vary", "cpus,env,workdir", cwd=project
        ).stdout
    )
    assert [experiment["reproducible"] for experiment in verified["experiments"]] == [True]
    records = [
        json.loads(path.read_text())
        for path in (project / ".harness" / "runs").glob("*/record.json")
    ]
    # Two control runs and one under the variations, each in the image Podman built.
    assert [record["status"] for record in records] == ["succeeded"] * 3
    assert {record["image"]["id"] for record in records} == {built["image_id"]}
    # The tmpfs over the project's .harness hid the planted run (no copy-up).
    assert {record["metrics"]["state_entries"] for record in records} == {0}
    # Podman's build leaves no raw step image beside the finished one.
    leftovers = [
        attributes["Id"]
        for attributes in other.every_image_attributes()
        if not attributes.get("RepoTags") and attributes["Id"] != built["image_id"]
    ]
    assert leftovers == []
