"""Connecting to an engine that does not answer: one error, and nothing left open."""

from __future__ import annotations

from typing import Any

import docker
import pytest
import requests.exceptions

from harness.engine import Engine
from harness.errors import EngineUnavailable

# The real connect, taken before the autouse fixture replaces it for every unit test.
_CONNECT: Any = Engine.__dict__["connect"].__func__


class _API:
    timeout = 600


class _Client:
    def __init__(self) -> None:
        self.api = _API()
        self.closed = False

    def ping(self) -> bool:
        raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")

    def close(self) -> None:
        self.closed = True


def test_a_client_whose_engine_does_not_answer_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _Client()
    monkeypatch.setattr(docker, "from_env", lambda timeout: client)
    with pytest.raises(EngineUnavailable, match="Connection refused"):
        _CONNECT(Engine)
    assert client.closed


def test_a_client_that_cannot_be_made_has_nothing_to_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_socket(timeout: int) -> _Client:
        raise docker.errors.DockerException("Error while fetching server API version: refused")

    monkeypatch.setattr(docker, "from_env", no_socket)
    with pytest.raises(EngineUnavailable, match="refused"):
        _CONNECT(Engine)
