"""A Docker client in memory, for the real :class:`harness.engine.Engine` to drive.

Under it, the engine's own code runs as it does against dockerd: containers are created,
registered for Ctrl-C, waited on, streamed and removed. A container "runs" the experiment
by writing its outputs into the folder bind-mounted at the run's output path; what it
writes depends on the environment it was given (so a variation can move an artifact),
and how long it takes is the test's choice (so runs can finish in any order). Removing a
container (force) ends its wait with 137, as dockerd does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors

from harness.container import OUTPUT, SPEC

# How a run went: the seconds it takes, and what it writes ({output name: bytes}).
Ran = tuple[float, dict[str, bytes]]
# What a run of an experiment does, given its environment.
Behaviour = Callable[[str, Mapping[str, str]], Ran]


class FakeContainer:
    def __init__(self, client: FakeClient, name: str, options: Mapping[str, Any]) -> None:
        self.client = client
        self.name = name
        self.options = options
        self.started = False
        self.removed = threading.Event()

    def start(self) -> None:
        if self.removed.is_set():
            raise docker.errors.NotFound(f"no such container: {self.name}")
        self.started = True
        with self.client.lock:
            self.client.running += 1
            self.client.most_at_once = max(self.client.most_at_once, self.client.running)
        self.client.started.release()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        spec = json.loads(self._bound(SPEC).read_text())
        seconds, outputs = self.client.behaviour(spec["experiment"], self.options["environment"])
        try:
            if self.removed.wait(seconds):
                return {"StatusCode": 137}
            output = self._bound(OUTPUT)
            for name, data in outputs.items():
                (output / name).write_bytes(data)
            return {"StatusCode": 0}
        finally:
            with self.client.lock:
                self.client.running -= 1

    def logs(self, **_: Any) -> Iterator[bytes]:
        return iter([b"fake run\n"])

    def kill(self) -> None:
        self.removed.set()

    def remove(self, force: bool = False) -> None:
        if self.removed.is_set() and self.name not in self.client.containers.live:
            raise docker.errors.NotFound(f"no such container: {self.name}")
        self.removed.set()
        self.client.containers.live.pop(self.name, None)

    def _bound(self, target: str) -> Path:
        for mount in self.options["mounts"]:
            if mount["Target"] == target:
                return Path(mount["Source"])
        raise AssertionError(f"nothing is mounted at {target}")


class FakeContainers:
    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.live: dict[str, FakeContainer] = {}
        self.created: list[FakeContainer] = []

    def create(self, image: str, command: list[str], **options: Any) -> FakeContainer:
        container = FakeContainer(self.client, options["name"], options)
        with self.client.lock:
            self.live[container.name] = container
            self.created.append(container)
        return container


class FakeAPI:
    def __init__(self, image_id: str) -> None:
        self.image_id = image_id
        self.tags: list[str] = []

    def inspect_image(self, reference: str) -> dict[str, Any]:
        return {"Id": self.image_id, "RepoTags": self.tags, "Config": {"Labels": {}}, "Size": 1}

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.tags.append(f"{repository}:{tag}")


class FakeClient:
    """What :class:`harness.engine.Engine` uses of ``docker.DockerClient``."""

    def __init__(self, behaviour: Behaviour, *, cores: int = 4, image_id: str = "") -> None:
        self.behaviour = behaviour
        self.cores = cores
        self.api = FakeAPI(image_id or f"sha256:{'ab' * 32}")
        self.containers = FakeContainers(self)
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        # Released once per container started: a test waits on it for runs to be under way.
        self.started = threading.Semaphore(0)

    def version(self) -> dict[str, Any]:
        return {"Version": "fake"}

    def info(self) -> dict[str, Any]:
        return {"NCPU": self.cores}
