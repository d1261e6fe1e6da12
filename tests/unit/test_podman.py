"""Podman behind the Docker API: how harness tells it apart and where it differs from Docker."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness import config as config_module
from harness.engine import DOCKER, PODMAN, product_of
from harness.images import build, built
from tests.unit.fake_docker import EngineDouble

# What `podman system service` 4.3 and dockerd 20.10 answer to GET /version (trimmed).
PODMAN_VERSION = {
    "Version": "4.3.1",
    "ApiVersion": "1.41",
    "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1"},
        {"Name": "Conmon", "Version": "conmon version 2.1.6"},
    ],
}
DOCKER_VERSION = {
    "Version": "20.10.24+dfsg1",
    "ApiVersion": "1.41",
    "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"}, {"Name": "containerd"}],
}

# What buildah writes through the Docker API for a four-step build, the second time
# (steps 2 and 3 from its cache).
PODMAN_BUILD_OUTPUT = """\
STEP 1/4: FROM harness-base:bookworm-python3.11
STEP 2/4: RUN echo hi > /x
--> Using cache 2c074e3f1638d1b94013924f5ecda1c31ee5b427dc0b06333e53cbdab3947383
--> 2c074e3f163
STEP 3/4: COPY a /a
--> 73c5959ca99
STEP 4/4: RUN echo ho > /y
COMMIT
--> a364ab693d2
a364ab693d263a54db97eefef93819cb577aad57783ed11f0d585ea5958b145d
Successfully built a364ab693d26
"""


def test_the_product_comes_from_the_components_the_engine_lists() -> None:
    assert product_of(PODMAN_VERSION) == PODMAN
    assert product_of(DOCKER_VERSION) == DOCKER
    # An engine that lists nothing is taken for Docker, whose behaviour harness was built on.
    assert product_of({"Version": "x"}) == DOCKER


def test_buildah_s_steps_are_collected_as_the_classic_builder_s_are() -> None:
    steps = build.StepImages()
    for line in PODMAN_BUILD_OUTPUT.splitlines():
        steps.feed(line)
    # Step 2 came from the cache (another build's): never ours to remove.
    assert steps.images == ["73c5959ca99", "a364ab693d2"]


class _InfoEngine(EngineDouble):
    def __init__(self, product: str, info: Mapping[str, Any]) -> None:
        self.product = product
        self._info = info

    def info(self) -> Mapping[str, Any]:
        return self._info


def test_podman_s_build_index_key_is_its_store_not_its_random_id() -> None:
    # Podman answers every /info with a new random ID: keyed by it, no build would ever
    # be found again, and every `harness build` would rebuild.
    first = _InfoEngine(PODMAN, {"ID": "a", "Name": "vm", "DockerRootDir": "/var/lib/c"})
    second = _InfoEngine(PODMAN, {"ID": "b", "Name": "vm", "DockerRootDir": "/var/lib/c"})
    assert built._engine_id(first) == built._engine_id(second)
    rootless = _InfoEngine(PODMAN, {"ID": "c", "Name": "vm", "DockerRootDir": "/home/u/.local"})
    assert built._engine_id(rootless) != built._engine_id(first)
    assert built._engine_id(_InfoEngine(DOCKER, {"ID": "X:Y"})) == "X:Y"


def test_engine_podman_finds_the_service_socket_rootful_and_rootless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "0"\n[tool.harness]\nengine = "podman"\n'
    )
    for name in ("DOCKER_HOST", "HARNESS_DOCKER_HOST", "HARNESS_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(config_module.os, "geteuid", lambda: 0)
    assert config_module.load_config(tmp_path).docker_host == "unix:///run/podman/podman.sock"
    monkeypatch.setattr(config_module.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert (
        config_module.load_config(tmp_path).docker_host
        == "unix:///run/user/1000/podman/podman.sock"
    )
    # An engine named outright wins over the kind.
    monkeypatch.setenv("DOCKER_HOST", "unix:///elsewhere.sock")
    assert config_module.load_config(tmp_path).docker_host == "unix:///elsewhere.sock"
