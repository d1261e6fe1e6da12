"""Unit tests never reach a container engine: any attempt fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.engine import Engine
from harness.images import wheelcache


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> Engine:
        raise AssertionError("a unit test tried to reach the Docker engine")

    monkeypatch.setattr(Engine, "connect", classmethod(refuse))


@pytest.fixture(autouse=True)
def _own_wheel_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test gets an empty wheel cache of its own, never the user's."""
    root = tmp_path_factory.mktemp("wheel-cache")
    monkeypatch.setenv(wheelcache.ENV, str(root))
    return root
