"""Podman as the engine: a project made from scratch, built, run and verified on a real
`podman system service` (scripts/podman.sh), as a team without a Docker daemon would.

The service has its own store under the test's folder, so the test never touches another
Podman's images; harness's base image moves in from the Docker engine through harness's
own save and load, as `docker save | podman load` would.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.engine import PODMAN, Engine
from harness.errors import EngineError
from harness.images.base import base_reference
from tests.conftest import REPOSITORY
from tests.integration.conftest import harness, image_name

SCRIPT = REPOSITORY / "scripts" / "podman.sh"
# The open files rootful Podman gives a container when no containers.conf says otherwise.
PODMAN_DEFAULT_NOFILE = 1048576

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
def podman(podman_service: tuple[str, Path]) -> str:
    return podman_service[0]


@pytest.fixture(scope="module")
def podman_service(
    tmp_path_factory: pytest.TempPathFactory, engine: Engine, project: Path
) -> Iterator[tuple[str, Path]]:
    """The service's URL and the folder of its state (its store under ``storage``)."""
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
        yield url, state
        assert other.containers_owned() == []
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("podman-project")
    root.chmod(0o755)  # the container's user reads it; pytest makes folders 0700
    image = image_name("podman")
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


def _doctor_checks(url: str, project: Path) -> dict[str, dict[str, Any]]:
    result = harness("--docker-host", url, "doctor", "--json", cwd=project)
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


@contextmanager
def _service_without_the_fix(state: Path) -> Iterator[str]:
    """A second service on the same store (its images included), reading no
    containers.conf but an empty one: Podman's own defaults, as on a fresh machine."""
    empty = state / "empty.conf"
    empty.write_text("")
    socket = state / "bare.sock"
    url = f"unix://{socket}"
    with (state / "bare.log").open("wb") as log:
        process = subprocess.Popen(
            [
                "podman",
                *("--root", str(state / "storage"), "--runroot", str(state / "run")),
                *("--storage-driver", "overlay", "system", "service", "--time=0", url),
            ],
            env={**os.environ, "CONTAINERS_CONF": str(empty)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        Engine.connect(url)  # answers, or fails the test saying why
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_doctor_tries_a_run_and_names_the_ulimit_fix_only_where_it_is_missing(
    podman_service: tuple[str, Path], project: Path
) -> None:
    url, state = podman_service
    # The service scripts/podman.sh started reads a containers.conf with the fix.
    check = _doctor_checks(url, project)["podman limits"]
    assert check["ok"], check
    assert check["detail"].startswith("a container of ")
    with _service_without_the_fix(state) as bare:
        base = base_reference(load_config(project))
        try:
            Engine.connect(bare).run(base, ["true"], timeout=60)
            failed = False
        except EngineError as error:
            failed = "error setting rlimits" in error.message
        # As root, where root's own limits are below Podman's defaults (these machines and
        # CI), runs fail until containers.conf lets Podman set lower ones.
        low = resource.getrlimit(resource.RLIMIT_NOFILE)[1] < PODMAN_DEFAULT_NOFILE
        assert failed == (os.geteuid() == 0 and low)
        check = _doctor_checks(bare, project)["podman limits"]
    assert check["ok"] is not failed, check
    if failed:
        assert check["required"]
        assert "error setting rlimits" in check["detail"]
        assert 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' in check["fix"]
        assert "/etc/containers/containers.conf" in check["fix"]


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
