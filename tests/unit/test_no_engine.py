"""The unit suite's guard (tests/unit/conftest.py): no way to the engine stays open."""

from __future__ import annotations

import docker
import pytest

from harness.engine import Engine


def test_every_way_to_a_docker_client_fails_the_test() -> None:
    with pytest.raises(AssertionError, match="tried to reach the Docker engine"):
        Engine.connect()
    with pytest.raises(AssertionError, match="tried to reach the Docker engine"):
        Engine.connect("unix:///var/run/docker.sock")
    with pytest.raises(AssertionError, match="tried to reach the Docker engine"):
        docker.from_env()
    with pytest.raises(AssertionError, match="tried to reach the Docker engine"):
        docker.DockerClient(base_url="unix:///var/run/docker.sock")
    with pytest.raises(AssertionError, match="tried to reach the Docker engine"):
        docker.APIClient(base_url="tcp://127.0.0.1:2375")
