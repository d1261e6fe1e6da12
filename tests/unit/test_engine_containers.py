"""How the engine confines every container it creates (no engine needed: a recording client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import engine as engine_module
from harness.engine import ContainerSpec, Engine


class _Container:
    def __init__(self, chunks: list[bytes] = []) -> None:  # noqa: B006 - never mutated
        self.chunks = chunks
        self.removed = False

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
    def __init__(self) -> None:
        self.containers = _Containers()


def created_with(spec: ContainerSpec) -> dict[str, Any]:
    client = _Client()
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
