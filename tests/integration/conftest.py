"""Integration tests run harness for real: a Docker engine, uv, pip and the frameworks.

They fail (not skip) without an engine: `./dev test` starts one. Each is marked `engine`
here, so that `pytest -m "not engine"` runs the unit tests alone. The CPU image is built
once per session and shared; every test leaves no container behind, no name on an image
of its own, and nothing in this repository's .harness folder that was not there before the
session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import pytest

from harness import owner
from harness.engine import LABEL_OWNER, Engine
from tests.conftest import REPOSITORY


def harness(
    *arguments: str, cwd: Path = REPOSITORY, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `harness` command line."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *arguments],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def build_json(*arguments: str, cwd: Path = REPOSITORY) -> dict[str, Any]:
    result = harness("build", "--json", *arguments, cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest calls this with every item of the session, unit tests included: mark ours.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.connect(os.environ.get("HARNESS_DOCKER_HOST"))


@pytest.fixture(scope="session", autouse=True)
def _no_container_left_behind(engine: Engine) -> Iterator[None]:
    yield
    assert containers_left_behind(engine) == []


def containers_of(engine: Engine, pid: int) -> list[str]:
    """harness's containers that the process ``pid`` (a `harness` a test started) made."""
    return [
        container.name
        for container in engine.owned_containers()
        if (made_by := owner.from_label(container.labels.get(LABEL_OWNER))) is not None
        and made_by.pid == pid
    ]


def containers_left_behind(engine: Engine) -> list[str]:
    """harness's containers that no live process will remove: those this process made
    (the tests' own engine calls) and those whose harness has ended (a `harness` command a
    test ran). Another session's containers, whose harness still runs, are its business."""
    here = owner.current().label()
    left = []
    for container in engine.owned_containers():
        label = container.labels.get(LABEL_OWNER)
        made_by = owner.from_label(label)
        if label == here or made_by is None or made_by.alive() is not True:
            left.append(container.name)
    return left


# Every name the tests give an image (their projects', their shipments', their registries'
# repositories) starts with this session's own prefix: two sessions on one engine then
# remove only their own names at the end, never what the other is using (harness's own
# images, harness:cpu and the base, are kept: the next session and `./dev main` reuse them).
SESSION_PREFIX = f"harness-test-{uuid.uuid4().hex[:8]}-"


def image_name(kind: str) -> str:
    """An image (or registry repository) name of this session's own, for ``kind``."""
    return f"{SESSION_PREFIX}{kind}"


def made_by_this_session(tag: str) -> bool:
    """Whether an image tag is one of this session's names (``NAME:TAG``, or
    ``REGISTRY/NAME/...:TAG`` for the tests' registries on loopback)."""
    return tag.startswith(SESSION_PREFIX) or f"/{SESSION_PREFIX}" in tag


def _test_image_names() -> list[str]:
    client = docker.from_env()
    try:
        tags = [tag for image in client.images.list() for tag in image.tags]
    finally:
        client.close()
    return sorted(tag for tag in tags if made_by_this_session(tag))


@pytest.fixture(scope="session", autouse=True)
def _no_test_image_name_left_behind(engine: Engine) -> Iterator[None]:
    """The names this session gave images go at the end; an image that only the tests
    named goes with its last name, one that harness's own images share stays."""
    yield
    for tag in _test_image_names():
        engine.remove_unused_image(tag)
    assert _test_image_names() == []


# What harness writes into a project's .harness folder. Tests that run the built-in
# examples run them in this repository, as a user would; what they add goes afterwards.
_RECORDS = ("runs", "verifications", "certificates", "provenance")


@pytest.fixture(scope="session", autouse=True)
def _repository_records_kept() -> Iterator[None]:
    """This repository's .harness as it was before the session: records the tests made are
    removed, the developer's own are kept (a record made by hand in this repository while
    the tests run would go too)."""
    state = REPOSITORY / ".harness"
    before = {name: _entries(state / name) for name in _RECORDS}
    existed = {name: (state / name).is_dir() for name in _RECORDS}
    state_existed = state.is_dir()
    yield
    for name in _RECORDS:
        for made in sorted(_entries(state / name) - before[name]):
            path = state / name / made
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if not existed[name] and (state / name).is_dir() and not any((state / name).iterdir()):
            (state / name).rmdir()
    if not state_existed and state.is_dir() and not any(state.iterdir()):
        state.rmdir()


def _entries(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()} if folder.is_dir() else set()


@pytest.fixture(scope="session")
def cpu_image(engine: Engine) -> dict[str, Any]:
    """The CPU image of this repository, built (or found) once for the session."""
    return build_json("--variant", "cpu")


def run_python(engine: Engine, image: str, script: str) -> Any:
    """Run a Python script in a fresh container of ``image``; return the JSON it prints."""
    result = engine.run(image, ["python", "-c", script], timeout=600)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])
