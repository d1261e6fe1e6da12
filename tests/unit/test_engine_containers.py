"""How the engine confines every container it creates (no engine needed: a recording client)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests.exceptions

from harness import engine as engine_module
from harness.engine import ContainerSpec, Engine


class _Container:
    def __init__(self, chunks: list[bytes] = []) -> None:  # noqa: B006 - never mutated
        self.chunks = chunks
        self.removed = False
        self.id = self.name = "container"
        self.attrs: dict[str, Any] = {"State": {"Pid": 0}}

    def reload(self) -> None:
        pass

    def remove(self, force: bool) -> None:
        self.removed = True

    def logs(self, **_: Any) -> Any:
        return iter(self.chunks)


class _Containers:
    def __init__(self) -> None:
        self.created: dict[str, Any] = {}

    def create(self, image: str, command: list[str], **options: Any) -> _Container:
        self.created = options
        return _Container()


class _Client:
    def __init__(self, product: str = "Docker Engine - Community") -> None:
        self.containers = _Containers()
        self.product = product

    def version(self) -> dict[str, Any]:
        return {"Version": "test", "Components": [{"Name": self.product}]}


def created_with(spec: ContainerSpec, product: str = "Docker Engine - Community") -> dict[str, Any]:
    client = _Client(product)
    with Engine(client, "test").container(spec):  # type: ignore[arg-type]
        pass
    return client.containers.created


def test_every_container_drops_capabilities_and_privilege_and_is_bounded() -> None:
    options = created_with(ContainerSpec("image", ("true",)))
    assert options["cap_drop"] == ["ALL"]
    assert options["security_opt"] == ["no-new-privileges:true"]
    assert options["pids_limit"] == 4096
    assert options["log_config"]["Type"] == "json-file"
    assert options["log_config"]["Config"] == {
        "max-size": str(engine_module.LOG_LIMIT),
        "max-file": "1",
    }
    assert options["network_mode"] == "none"
    assert "mem_limit" not in options


def test_a_memory_limit_includes_swap() -> None:
    options = created_with(ContainerSpec("image", ("true",), memory="8g"))
    assert options["mem_limit"] == options["memswap_limit"] == "8g"


def test_the_run_log_stops_growing_at_the_limit(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(engine_module, "LOG_LIMIT", 10)
    log = tmp_path / "log.txt"
    engine_module._pump_logs(_Container([b"0123456", b"789abcdef", b"more"]), log)
    assert log.read_bytes() == b"0123456789\n[harness: log cut at 10 bytes]\n"


class _Exited(_Container):
    """A container that has exited, whose log the engine sends at its own pace."""

    def __init__(self, chunks: list[bytes], pause: float, then_stall: bool) -> None:
        super().__init__(chunks)
        self.pause = pause
        self.then_stall = then_stall

    def start(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self, **_: Any) -> Any:
        for chunk in self.chunks:
            time.sleep(self.pause)
            yield chunk
        while self.then_stall and not self.removed:
            time.sleep(0.05)  # the engine keeps the stream open and sends nothing


def _run_logged(container: _Exited, log: Path) -> None:
    client = _Client()
    client.containers.create = lambda *_, **__: container  # type: ignore[method-assign]
    Engine(client, "test").run_logged(ContainerSpec("image", ("true",)), log=log, timeout=None)  # type: ignore[arg-type]


def test_a_log_that_keeps_coming_is_read_to_its_end(tmp_path: Path, monkeypatch: Any) -> None:
    # The whole log takes three times the idle limit to arrive, but never pauses that long.
    monkeypatch.setattr(engine_module, "LOG_IDLE_S", 0.3)
    chunks = [f"line {n}\n".encode() for n in range(9)]
    _run_logged(_Exited(chunks, pause=0.1, then_stall=False), tmp_path / "log.txt")
    assert (tmp_path / "log.txt").read_bytes() == b"".join(chunks)


def test_a_log_that_stops_coming_says_it_was_cut(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(engine_module, "LOG_IDLE_S", 0.3)
    _run_logged(_Exited([b"epoch 1\n"], pause=0.0, then_stall=True), tmp_path / "log.txt")
    assert (tmp_path / "log.txt").read_bytes() == (
        b"epoch 1\n\n[harness: log cut: nothing more came from the engine for 0.3 s after "
        b"the container exited]\n"
    )


def test_a_log_the_engine_stops_sending_says_why(tmp_path: Path) -> None:
    class _Broken(_Container):
        def logs(self, **_: Any) -> Any:
            yield b"epoch 1\n"
            raise requests.exceptions.ConnectionError("Connection reset by peer")

    log = tmp_path / "log.txt"
    engine_module._pump_logs(_Broken(), log)
    assert log.read_bytes() == (
        b"epoch 1\n\n[harness: log cut: the engine stopped sending it: Connection reset by peer]\n"
    )


def test_podman_keeps_each_tmpfs_empty_as_docker_does() -> None:
    # Podman copies what lies under a tmpfs's mount point into it unless told not to: the
    # tmpfs that hides the project's .harness from a run would carry the runs it hides.
    tmpfs = {
        "/tmp": "size=64m",
        "/harness/project/.harness": "",
        "/harness/project": "rw,exec,uid=10001,gid=10001",
    }
    spec = ContainerSpec(image="i", command=("true",), tmpfs=tmpfs)
    assert created_with(spec, "Podman Engine")["tmpfs"] == {
        "/tmp": "size=64m,notmpcopyup",
        "/harness/project/.harness": "notmpcopyup",
        # Podman 4 refuses uid=/gid=; U gives the tmpfs to the container's user.
        "/harness/project": "rw,exec,U,notmpcopyup",
    }
    # Docker's tmpfs is always empty, and it refuses the option.
    assert created_with(spec)["tmpfs"] == tmpfs
