"""Connecting to an engine that does not answer: one error, and nothing left open."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import docker
import docker.api.client
import pytest
import requests.exceptions

from harness import engine as engine_module
from harness.engine import Engine
from harness.errors import EngineUnavailable

# The real connect, taken before the autouse fixture replaces it for every unit test.
_CONNECT: Any = Engine.__dict__["connect"].__func__
# The SDK's client, likewise: one test talks to a socket of its own, no engine.
_API_CLIENT_INIT: Any = docker.api.client.APIClient.__init__


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


def test_an_engine_that_accepts_but_never_answers_is_refused_within_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A socket that takes connections and never says a word, as a hung dockerd does: the
    # SDK asks its API version while the client is made, before any ping.
    monkeypatch.setattr(engine_module, "_PING_TIMEOUT", 1)
    monkeypatch.setattr(docker.api.client.APIClient, "__init__", _API_CLIENT_INIT)
    path = tmp_path / "hung.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(8)
        began = time.monotonic()
        with pytest.raises(EngineUnavailable) as raised:
            _CONNECT(Engine, f"unix://{path}")
        took = time.monotonic() - began
    assert took < 10
    assert raised.value.message == f"the Docker engine at unix://{path} did not answer within 1 s"
    assert "hung or overloaded" in raised.value.hint


class _Stuck:
    """A container whose engine stopped answering: every call waits past any timeout."""

    id = name = "stuck"

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        time.sleep(timeout or 0)
        raise requests.exceptions.ReadTimeout("Read timed out.")

    def kill(self) -> None:
        time.sleep(5)


def test_a_timeout_stops_the_container_by_its_pid_when_the_engine_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "_KILL_TIMEOUT", 0.2)
    killed: list[tuple[str, int | None]] = []
    monkeypatch.setattr(engine_module, "_kill_local", lambda *found: killed.append(found))
    engine = Engine(None, "test")  # type: ignore[arg-type]
    engine._pids["stuck"] = 4242
    status, timed_out = engine._wait(_Stuck(), timeout=0.2)
    assert (status, timed_out) == (-1, True)
    assert killed == [("stuck", 4242)]


def test_an_engine_lost_before_the_timeout_is_not_a_timeout() -> None:
    class _Gone(_Stuck):
        def wait(self, timeout: float | None = None) -> dict[str, int]:
            raise requests.exceptions.ConnectionError("Connection refused")

    with pytest.raises(requests.exceptions.ConnectionError):
        Engine(None, "test")._wait(_Gone(), timeout=30)  # type: ignore[arg-type]


def test_only_a_process_in_the_container_s_own_cgroup_is_killed(tmp_path: Path) -> None:
    # This process is in no container's cgroup: its pid is never signalled.
    engine_module._kill_local("0123456789abcdef", os.getpid())
    engine_module._kill_local("0123456789abcdef", None)
