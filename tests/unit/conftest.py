"""Unit tests never reach a container engine: any attempt fails loudly."""

from __future__ import annotations

import pytest

from harness.engine import Engine


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> Engine:
        raise AssertionError("a unit test tried to reach the Docker engine")

    monkeypatch.setattr(Engine, "connect", classmethod(refuse))
