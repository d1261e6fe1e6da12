"""Unit tests never reach a container engine: any attempt fails loudly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import docker.api.client
import pytest

from harness.engine import Engine
from harness.images import layers, wheelcache
from harness.trust import attest, keys


def _refuse(*_: object, **__: object) -> NoReturn:
    raise AssertionError("a unit test tried to reach the Docker engine")


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # harness's own door to the engine, and under it the SDK's: every client the docker
    # package makes (docker.from_env, docker.DockerClient, a context's client) starts
    # with an APIClient, so code that goes around Engine.connect fails just the same.
    monkeypatch.setattr(Engine, "connect", classmethod(_refuse))
    monkeypatch.setattr(docker.api.client.APIClient, "__init__", _refuse)


@pytest.fixture(autouse=True)
def _own_wheel_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets an empty wheel cache of its own, never the user's."""
    root = tmp_path_factory.mktemp("wheel-cache")
    monkeypatch.setenv(wheelcache.ENV, str(root))
    # The frameworks' layer cache too: `cache prune --all` empties it.
    monkeypatch.setenv(layers.ENV, str(tmp_path_factory.mktemp("layer-cache")))
    return root


@pytest.fixture(autouse=True)
def _no_host_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Runs are signed only where a test gives a key: never with the user's own, and a key
    one test's command chose never signs another test's runs."""
    monkeypatch.delenv(keys.HOST_KEY_ENV, raising=False)
    monkeypatch.delenv(keys.KEYS_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    yield
    attest.use(None)
