"""A Docker client in memory, for the real :class:`harness.engine.Engine` to drive.

Under it, the engine's own code runs as it does against dockerd: containers are created,
registered for Ctrl-C, waited on, streamed and removed. A container "runs" the experiment
by writing its outputs into the folder bind-mounted at the run's output path; what it
writes depends on the environment it was given (so a variation can move an artifact),
and how long it takes is the test's choice (so runs can finish in any order). Removing a
container (force) ends its wait with 137, as dockerd does.

Tests that need less than an engine subclass :class:`EngineDouble`, the whole of
:class:`harness.engine.ContainerEngine` failing on any call the test did not plan for.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, NoReturn

import docker.errors

from harness.container import OUTPUT, SPEC
from harness.engine import (
    DOCKER,
    CommandResult,
    ContainerEngine,
    ContainerSpec,
    ImageInfo,
    RunOutcome,
    VolumeMount,
)

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
        self.id = f"{name}-id"
        # What inspect says after the start: no process of this machine (pid 0).
        self.attrs: dict[str, Any] = {"State": {"Pid": 0}}

    def reload(self) -> None:
        if self.name not in self.client.containers.live:
            raise docker.errors.NotFound(f"no such container: {self.name}")

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
    def __init__(self, image_id: str, containers: FakeContainers) -> None:
        self.image_id = image_id
        self.tags: list[str] = []
        self._containers = containers

    def containers(
        self, all: bool = False, filters: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The containers that exist, as `docker ps --all --filter label=K=V` lists them
        (what reaping asks every engine a command runs on)."""
        wanted = dict([(filters or {})["label"].split("=", 1)]) if filters else {}
        return [
            {
                "Names": [f"/{c.name}"],
                "Id": c.id,
                "State": "running" if c.started else "created",
                "Labels": c.options.get("labels") or {},
            }
            for c in list(self._containers.live.values())
            if wanted.items() <= (c.options.get("labels") or {}).items()
        ]

    def inspect_image(self, reference: str) -> dict[str, Any]:
        return {"Id": self.image_id, "RepoTags": self.tags, "Config": {"Labels": {}}, "Size": 1}

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.tags.append(f"{repository}:{tag}")


class FakeClient:
    """What :class:`harness.engine.Engine` uses of ``docker.DockerClient``."""

    def __init__(self, behaviour: Behaviour, *, cores: int = 4, image_id: str = "") -> None:
        self.behaviour = behaviour
        self.cores = cores
        self.containers = FakeContainers(self)
        self.api = FakeAPI(image_id or f"sha256:{'ab' * 32}", self.containers)
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        # Released once per container started: a test waits on it for runs to be under way.
        self.started = threading.Semaphore(0)

    def version(self) -> dict[str, Any]:
        return {"Version": "fake"}

    def info(self) -> dict[str, Any]:
        return {"NCPU": self.cores}


def _unplanned(member: str) -> NoReturn:
    raise AssertionError(
        f"the code under test called engine.{member}, which this test's engine does not offer"
    )


class EngineDouble:
    """Every member of :class:`ContainerEngine`, each one failing the test that calls it.

    A test's engine subclasses this and overrides what the code under test should call:
    mypy checks each override against the protocol (through this class), so a fake whose
    method has drifted from the real engine's fails the type check, not a later run.
    """

    where = "fake"
    # The fakes stand for Docker; a test of Podman's paths sets PODMAN.
    product = DOCKER

    def version(self) -> Mapping[str, Any]:
        _unplanned("version")

    def info(self) -> Mapping[str, Any]:
        _unplanned("info")

    def cores(self) -> int:
        _unplanned("cores")

    def has_gpu_runtime(self) -> bool:
        _unplanned("has_gpu_runtime")

    def image(self, reference: str) -> ImageInfo | None:
        _unplanned("image")

    def image_attributes(self, reference: str) -> Mapping[str, Any] | None:
        _unplanned("image_attributes")

    def every_image_attributes(self) -> list[Mapping[str, Any]]:
        _unplanned("every_image_attributes")

    def layers_size(self) -> int:
        _unplanned("layers_size")

    def registry_reachable(self, reference: str) -> bool:
        _unplanned("registry_reachable")

    def tag(self, image_id: str, reference: str) -> None:
        _unplanned("tag")

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        _unplanned("remove_unused_image")

    def history(self, reference: str) -> list[Mapping[str, Any]]:
        _unplanned("history")

    def save(self, reference: str) -> AbstractContextManager[IO[bytes]]:
        _unplanned("save")

    def load(self, data: bytes | Iterable[bytes]) -> list[str]:
        _unplanned("load")

    def push(self, reference: str) -> str:
        _unplanned("push")

    def pull(self, reference: str) -> ImageInfo:
        _unplanned("pull")

    def import_rootfs(self, tarball: Path, reference: str, changes: Sequence[str]) -> str:
        _unplanned("import_rootfs")

    def build(
        self,
        context: Path,
        *,
        tag: str | None = None,
        dockerfile: str = "Dockerfile",
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        nocache: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> str:
        _unplanned("build")

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        _unplanned("run")

    def run_logged(
        self,
        spec: ContainerSpec,
        *,
        log: Path,
        timeout: float | None,
        copy_out: Mapping[str, Path] | None = None,
    ) -> RunOutcome:
        _unplanned("run_logged")

    def volumes(self, count: int) -> AbstractContextManager[list[str]]:
        _unplanned("volumes")

    def fill(
        self, image: str, volumes: Sequence[VolumeMount], path: str, archive: bytes | IO[bytes]
    ) -> None:
        _unplanned("fill")


# The double is a ContainerEngine, and so is every fake made from it: mypy fails here when
# the protocol gains or changes a member the double lacks.
_: type[ContainerEngine] = EngineDouble
