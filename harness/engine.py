"""The only module that talks to the container engine (through the Docker SDK).

Everything else receives an :class:`Engine` and calls its few verbs: build, import, run,
inspect, tag, remove, save, load. Each verb turns the SDK's exceptions into harness errors that say
what failed and how to fix it, and every container it creates is removed before the verb
returns, whether the command inside succeeded, failed or was interrupted. While runs
overlap, Ctrl-C reaches only the main thread: each container is registered with
:mod:`harness.interrupt` for its lifetime, so that the main thread removes it, on whichever
engine it runs, and the thread that waits on it raises KeyboardInterrupt in turn.

An engine can fail harness too: it may never answer (a hung daemon), die mid-run, or be slow
to stop a container. Its first answer is bounded to a few seconds, whatever it stops answering
becomes :class:`EngineUnavailable` ("lost"), and a container that must stop now (a timeout,
Ctrl-C) is killed through its first process when the engine does not do it in time. Every
container is labelled with the harness process that made it, so that what a killed harness
leaves is found and removed later (see :mod:`harness.runs.reconcile`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import os
import re
import signal
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol

import docker
import docker.context
import docker.errors
import docker.types
import requests.exceptions

from harness import copy_out, interrupt, owner
from harness.cleanup import cleanup, quietly
from harness.container import CONFINED
from harness.errors import BuildError, EngineError, EngineUnavailable

# Lines of build output kept to show when a step fails.
_TAIL_LINES = 25
# A build step's first line: "Step 2/9 : RUN ..." (Docker), "STEP 2/9: RUN ..." (Podman).
_STEP = re.compile(r"^step (\d+)/(\d+) ?: (.*)", re.IGNORECASE)
# docker load reports each image it loaded on a line of its own.
_LOADED = re.compile(r"^Loaded image(?: ID)?: (\S+)")
# An import's answer names the image it made by its content-addressed ID.
_IMPORTED = re.compile(r"sha256:[0-9a-f]{64}")
# Seconds an engine has to answer its first request (the SDK asks for its API version
# while the client is made): an engine that accepts connections but never answers must
# not hold harness for the long timeout builds need. ssh:// pays for a handshake first.
_PING_TIMEOUT = 5
_SSH_PING_TIMEOUT = 15
# Seconds a kill or a removal gets when a run ends on its own terms (a timeout, Ctrl-C):
# past that, the engine is not answering, and a local container is killed by its pid.
_KILL_TIMEOUT = 5
# Every container harness creates carries these: what owns it, which process started it
# (see harness.owner), and the run it belongs to, when it is one.
LABEL_OWNED = "io.harness.owned"
LABEL_OWNER = "io.harness.owner"
# Seconds a removal that another thread started gets to finish (Ctrl-C while runs overlap).
_GONE_TIMEOUT = 30
# Chunks of `docker save` output read at a time: large enough to keep the socket busy.
_SAVE_CHUNK = 1 << 20
# What the engine keeps of a container's output, and what harness copies into a run's log.
LOG_LIMIT = CONFINED.log_limit
# Once a container has exited, how long its log may go without a byte arriving before
# harness stops waiting for the rest (and says in the log that it was cut).
LOG_IDLE_S = 30.0


# What :attr:`Engine.product` says.
DOCKER = "Docker"
PODMAN = "Podman"


# Podman as root cannot raise a container's limits past its own unless told it may; the
# error it gives, and the configuration that ends it.
_RLIMITS = "error setting rlimits"
PODMAN_ULIMITS_FIX = (
    "let Podman set the limits: write a containers.conf holding [containers] "
    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"], point CONTAINERS_CONF '
    "at it and restart `podman system service`"
)


def _podman_tmpfs(options: str) -> str:
    """Docker's tmpfs options as Podman takes them (see Engine._tmpfs_options)."""
    kept = [option for option in options.split(",") if option]
    owned = [option for option in kept if option.startswith(("uid=", "gid="))]
    kept = [option for option in kept if option not in owned]
    return ",".join([*kept, *(["U"] if owned else []), "notmpcopyup"])


def product_of(version: Mapping[str, Any]) -> str:
    """``PODMAN`` when a ``version`` answer names Podman's engine, else ``DOCKER``."""
    components = version.get("Components") or ()
    names = [str(part.get("Name", "")) for part in components if isinstance(part, Mapping)]
    return PODMAN if any(name.startswith("Podman") for name in names) else DOCKER


def layer_ids(attributes: Mapping[str, Any]) -> list[str]:
    """The diff IDs of an image's layers, bottom first, from what ``docker image inspect`` says."""
    return list((attributes.get("RootFS") or {}).get("Layers") or [])


@dataclass(frozen=True)
class ImageInfo:
    """What harness needs to know of an image the engine holds."""

    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    size: int
    repo_digests: tuple[str, ...] = ()

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> ImageInfo:
        config = attrs.get("Config") or {}
        return cls(
            id=attrs["Id"],
            tags=tuple(attrs.get("RepoTags") or ()),
            labels=dict(config.get("Labels") or {}),
            size=int(attrs.get("Size") or 0),
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
        )


@dataclass(frozen=True)
class OwnedContainer:
    """A container harness created, as the engine lists it."""

    name: str
    id: str
    # created, running, exited, ... as the engine says; status is its own words.
    state: str
    status: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class VolumeMount:
    """A named volume of the engine, for hosts that cannot see this machine's files."""

    name: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """How to start one container. The defaults are the safe ones: no network."""

    image: str
    command: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    user: str | None = None
    working_dir: str | None = None
    read_only_root: bool = False
    network: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    cpus: float | None = None
    # CPUs the container may run on ("0", "0-1"): where its threads are placed.
    cpuset: str | None = None
    hostname: str | None = None
    gpus: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    # Processes and threads the container may hold (see harness.container).
    pids_limit: int = CONFINED.pids_limit
    # Memory limit as Docker reads it ("8g"), swap included (none added), or None.
    memory: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int
    timed_out: bool
    seconds: float


@dataclass
class BuildLog:
    """The build's progress: the current step and the last lines, for error reports."""

    step: str = ""
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=_TAIL_LINES)
    )

    def add(self, line: str) -> None:
        match = _STEP.match(line)
        if match:
            self.step = line
        self.tail.append(line)


class ContainerEngine(Protocol):
    """What the rest of harness uses of an engine: exactly the members of :class:`Engine`
    that other modules call, and nothing else (connecting is :meth:`Engine.connect`'s).

    Code that only drives an engine takes this, not :class:`Engine`, so that the tests'
    in-memory engines are checked against it: a fake that drifts from it fails mypy.
    """

    @property
    def where(self) -> str:
        """The engine's address as the user gave it ("default" for the environment's)."""
        ...

    def version(self) -> Mapping[str, Any]: ...

    def info(self) -> Mapping[str, Any]: ...

    @property
    def product(self) -> str:
        """Which engine answers the Docker API: ``DOCKER`` or ``PODMAN``."""
        ...

    def cores(self) -> int: ...

    def has_gpu_runtime(self) -> bool: ...

    def image(self, reference: str) -> ImageInfo | None: ...

    def image_attributes(self, reference: str) -> Mapping[str, Any] | None: ...

    def every_image_attributes(self) -> list[Mapping[str, Any]]: ...

    def layers_size(self) -> int: ...

    def registry_reachable(self, reference: str) -> bool: ...

    def tag(self, image_id: str, reference: str) -> None: ...

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool: ...

    def history(self, reference: str) -> list[Mapping[str, Any]]: ...

    def save(self, reference: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def load(self, data: bytes | Iterable[bytes]) -> list[str]: ...

    def push(self, reference: str) -> str: ...

    def pull(self, reference: str) -> ImageInfo: ...

    def import_rootfs(self, tarball: Path, reference: str, changes: Sequence[str]) -> str: ...

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
    ) -> str: ...

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult: ...

    def run_logged(
        self,
        spec: ContainerSpec,
        *,
        log: Path,
        timeout: float | None,
        copy_out: Mapping[str, Path] | None = None,
    ) -> RunOutcome: ...

    def volumes(self, count: int) -> contextlib.AbstractContextManager[list[str]]: ...

    def fill(
        self, image: str, volumes: Sequence[VolumeMount], path: str, archive: bytes | IO[bytes]
    ) -> None: ...


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient, where: str) -> None:
        self._client = client
        self.where = where
        # Container ID -> the process ID of its first process on this machine, for the
        # containers this engine started, while they exist (see _stop).
        self._pids: dict[str, int] = {}

    @classmethod
    def connect(cls, host: str | None = None, timeout: int = 600) -> Engine:
        """Connect to ``host`` (a Docker URL) or the environment's default engine."""
        where = host or "the default Docker socket (or $DOCKER_HOST)"
        client: docker.DockerClient | None = None
        ssh = (host or "").startswith("ssh://")
        short = min(timeout, _SSH_PING_TIMEOUT if ssh else _PING_TIMEOUT)
        try:
            # A host that is down or hung must not hold a command for the long timeout
            # that builds and pulls need: the client is made (the SDK asks the engine its
            # API version then) and pinged with a short one, then given the long one.
            client = _client_for(host, short) if host else docker.from_env(timeout=short)
            client.ping()
            client.api.timeout = timeout
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
        ) as error:
            if client is not None:
                # Its connection pool (and, for ssh://, the ssh process) goes with it.
                quietly(f"closing the Docker client for {where}", client.close)
            reason = _short_reason(error)
            if "timed out" in reason.lower():
                raise EngineUnavailable(
                    f"the Docker engine at {where} did not answer within {short} s",
                    "the engine accepts connections but is hung or overloaded: check it "
                    "with `docker info`, restart its daemon, or point DOCKER_HOST / "
                    "HARNESS_DOCKER_HOST at another engine",
                ) from None
            raise EngineUnavailable(
                f"cannot reach the Docker engine at {where}: {reason}"
            ) from None
        return cls(client, host or "default")

    # -- facts ------------------------------------------------------------------------

    def version(self) -> Mapping[str, Any]:
        return self._call(self._client.version)  # type: ignore[no-any-return]

    def info(self) -> Mapping[str, Any]:
        return self._call(self._client.info)  # type: ignore[no-any-return]

    @functools.cached_property
    def product(self) -> str:
        """Which engine answers the Docker API, from the components its version lists.

        Podman serves the same API (``podman system service``) but differs where harness
        relies on Docker's particulars: its ``load`` wants every layer's file in the
        archive, and as root it needs ulimits that a ``containers.conf`` allows.
        """
        return product_of(self.version())

    def cores(self) -> int:
        """The CPUs of the engine's machine, as the engine reports them."""
        return max(1, int(self.info().get("NCPU") or 1))

    def has_gpu_runtime(self) -> bool:
        """Whether the engine can pass NVIDIA GPUs into containers."""
        runtimes = self.info().get("Runtimes") or {}
        return "nvidia" in runtimes

    def image(self, reference: str) -> ImageInfo | None:
        """The image ``reference`` names (tag, digest or ID), or None when absent."""
        attrs = self.image_attributes(reference)
        return ImageInfo.from_attrs(attrs) if attrs is not None else None

    def registry_reachable(self, reference: str) -> bool:
        """Whether the engine can read ``reference``'s manifest from its registry."""
        try:
            self._client.api.inspect_distribution(reference)  # type: ignore[no-untyped-call]
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        return True

    # -- images -----------------------------------------------------------------------

    def tag(self, image_id: str, reference: str) -> None:
        repository, _, tag = reference.rpartition(":")
        self._call(self._client.api.tag, image_id, repository, tag or "latest")

    def remove_image(self, reference: str) -> None:
        try:
            self._client.api.remove_image(reference, force=True)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as error:
            raise EngineError(f"cannot remove image {reference}: {_short_reason(error)}") from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        """Remove an image only if nothing needs it: no other tag, no child, no container.

        Removing a tag that is not the image's last one only untags. With ``prune``,
        untagged parents that served only this image go with it (an untagged base image
        too, so only for images whose every parent the caller made). Returns whether
        anything was removed; an image still in use is left as it is, never an error.
        """
        try:
            self._client.api.remove_image(reference, force=False, noprune=not prune)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as error:
            # In use (409); or gone already, which Podman says with a 500 for the step
            # images its builder did not keep.
            if error.status_code == 409 or self.image_attributes(reference) is None:
                return False
            raise EngineError(f"cannot remove image {reference}: {_short_reason(error)}") from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None
        return True

    def image_attributes(self, reference: str) -> Mapping[str, Any] | None:
        """Everything the engine says of an image (``docker image inspect``), or None."""
        try:
            return self._client.api.inspect_image(reference)  # type: ignore[no-any-return,no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as error:
            if error.status_code == 404:
                return None
            raise EngineError(f"cannot inspect image {reference}: {_short_reason(error)}") from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None

    def every_image_attributes(self) -> list[Mapping[str, Any]]:
        """What ``docker image inspect`` says of every image ``docker images`` lists:
        tagged or not, build steps' images left out."""
        found = []
        for summary in self._call(self._client.api.images):
            attributes = self.image_attributes(summary["Id"])
            if attributes is not None:  # removed since it was listed
                found.append(attributes)
        return found

    def layers_size(self) -> int:
        """Bytes the engine's image layers take on disk (``docker system df``), each layer
        once however many images share it: what removing images frees is its change."""
        usage = self._call(self._client.df)
        return int((usage or {}).get("LayersSize") or 0)

    def history(self, reference: str) -> list[Mapping[str, Any]]:
        """The image's history, newest step first, as ``docker history`` shows it."""
        return list(self._call(self._client.api.history, reference))

    @contextmanager
    def save(self, reference: str) -> Iterator[IO[bytes]]:
        """The image as ``docker save`` writes it, as a stream read while the engine writes.

        Nothing is held in memory beyond one chunk: a multi-gigabyte image streams through.
        """
        chunks = self._call(self._client.api.get_image, reference, chunk_size=_SAVE_CHUNK)
        raw = _ChunkReader(chunks, f"saving {reference} from the engine at {self.where}")
        stream = io.BufferedReader(raw, buffer_size=_SAVE_CHUNK)
        try:
            yield stream
        finally:
            stream.close()

    def load(self, data: bytes | Iterable[bytes]) -> list[str]:
        """Load a ``docker save`` archive (bytes, or chunks streamed as they come).

        Returns what the engine reports it loaded: image IDs for archives without tags,
        references for the others. Layers the engine already holds are not read again.
        """
        loaded: list[str] = []
        try:
            for chunk in self._client.api.load_image(data):  # type: ignore[no-untyped-call]
                interrupt.check()
                if "error" in chunk:
                    raise EngineError(f"the engine refused the image: {chunk['error']}")
                for line in str(chunk.get("stream", "")).splitlines():
                    match = _LOADED.match(line.strip())
                    if match:
                        loaded.append(match.group(1))
        except docker.errors.DockerException as error:
            raise EngineError(f"cannot load the image: {_short_reason(error)}") from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None
        return loaded

    def push(self, reference: str) -> str:
        """Push ``reference`` to its registry; returns the manifest digest the registry names.

        Layers the registry already holds are not sent again, so pushing an unchanged
        image costs a few requests.
        """
        repository, _, tag = reference.rpartition(":")
        digest = ""
        try:
            for chunk in self._client.api.push(repository, tag=tag, stream=True, decode=True):
                interrupt.check()
                if "error" in chunk:
                    raise EngineError(
                        f"the registry refused the push of {reference}: "
                        f"{' '.join(str(chunk['error']).split())}",
                        "check the registry's address, that it accepts pushes and your "
                        "credentials (`docker login`), or leave registry unset to stream "
                        "images between engines",
                    )
                digest = str((chunk.get("aux") or {}).get("Digest") or digest)
        except docker.errors.DockerException as error:
            raise EngineError(
                f"cannot push {reference}: {_short_reason(error)}",
                "check the registry's address and your credentials (`docker login`)",
            ) from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None
        if not digest:
            raise EngineError(f"the registry named no digest for {reference}")
        return digest

    def pull(self, reference: str) -> ImageInfo:
        try:
            self._client.api.pull(reference)
        except docker.errors.APIError as error:
            raise EngineError(
                f"cannot pull {reference}: {_short_reason(error)}",
                "check the registry is reachable (`harness doctor`) or use base = 'bootstrap'",
            ) from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None
        info = self.image(reference)
        if info is None:
            raise EngineError(f"pulled {reference} but the engine does not list it")
        return info

    def import_rootfs(self, tarball: Path, reference: str, changes: Sequence[str]) -> str:
        """Import a root file system tarball as a one-layer image; returns its ID."""
        repository, _, tag = reference.rpartition(":")
        answer = self._call(
            self._client.api.import_image_from_file,
            str(tarball),
            repository=repository,
            tag=tag,
            changes=list(changes),
        )
        # Podman's Docker API ignores the repository and tag of an import (the image is
        # named `latest`); both engines answer with the new image's ID, so tag by that.
        imported = _IMPORTED.search(str(answer))
        if imported is not None:
            self.tag(imported.group(0), reference)
        info = self.image(reference)
        if info is None:
            raise EngineError(f"imported {reference} but the engine does not list it")
        return info.id

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
        """Build ``context`` with the engine's builder; returns the image ID.

        ``forcerm`` removes the intermediate containers of failed steps too, so a failed or
        interrupted build leaves nothing running behind. Without ``tag`` the image is left
        untagged, for the caller to finish and name.
        """
        log = BuildLog()
        image_id = ""
        try:
            stream = self._client.api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                buildargs=dict(buildargs or {}),
                labels=dict(labels or {}),
                nocache=nocache,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise BuildError(
                        _failed_step_message(log, chunk["error"]),
                        "read the lines above; `harness build -v` shows the whole log",
                    ) from None
                image_id = chunk.get("aux", {}).get("ID", image_id)
                for line in str(chunk.get("stream", "")).splitlines():
                    log.add(line)
                    if on_line is not None:
                        on_line(line)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise BuildError(
                _failed_step_message(log, _short_reason(error)),
                "check the engine with `harness doctor`",
            ) from None
        if not image_id:
            image_id = _built_id(log)
        if not image_id:
            raise BuildError(
                _failed_step_message(log, "the engine reported no image ID"),
                "rerun with -v and read the build log",
            )
        return image_id

    # -- containers -------------------------------------------------------------------

    def run(
        self,
        image: str,
        command: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run ``command`` in a fresh container (no network) and return its exit code and output."""
        spec = ContainerSpec(image, tuple(command), environment=dict(environment or {}))
        with self.container(spec) as container:
            self._start(container)
            status, timed_out = self._wait(container, timeout)
            interrupt.check()
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        if timed_out:
            raise EngineError(
                f"{' '.join(command)} ran longer than {timeout} s in {image}",
                "raise the timeout or look for a hang",
            )
        return CommandResult(status, output)

    def run_logged(
        self,
        spec: ContainerSpec,
        *,
        log: Path,
        timeout: float | None,
        copy_out: Mapping[str, Path] | None = None,
    ) -> RunOutcome:
        """Run a container to its end, streaming its output into ``log`` as it comes.

        A run past ``timeout`` seconds is killed. ``copy_out`` maps folders of the container
        to local folders their contents are copied into once it has stopped (how results
        come back from an engine that cannot see this machine's files). Whatever happens,
        Ctrl-C included, the container is removed before this returns or raises.
        """
        with self.container(spec) as container:
            started = time.monotonic()
            self._start(container)
            pump = _LogPump(container, log)
            pump.start()
            status, timed_out = self._wait(container, timeout)
            seconds = time.monotonic() - started
            # The container has exited: its log is read to its end, however long that
            # takes while it moves, and a log that stops short says so in its last line.
            # After a timeout the log is cut anyway: an engine slow to stop the container
            # gets no more than the kill's few seconds to send the rest.
            pump.finish(_KILL_TIMEOUT if timed_out else LOG_IDLE_S)
            # A container removed by Ctrl-C ends its wait like a killed one: not a result.
            interrupt.check()
            for inside, local in (copy_out or {}).items():
                self._copy_out(container, inside, local)
        return RunOutcome(status, timed_out, seconds)

    def _copy_out(self, container: Any, inside: str, local: Path) -> None:
        try:
            chunks, _ = container.get_archive(inside)
            raw = _ChunkReader(iter(chunks), f"copying {inside} out of the container")
            with io.BufferedReader(raw, buffer_size=_SAVE_CHUNK) as stream:
                copy_out.extract_outputs(stream, local)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise EngineError(
                f"cannot copy {inside} out of the container on {self.where}: {_short_reason(error)}"
            ) from None
        except (tarfile.TarError, OSError) as error:
            raise EngineError(
                f"the engine at {self.where} sent an unreadable archive of {inside}: {error}",
                "check the engine's disk and rerun",
            ) from None

    # -- volumes, for engines on other machines ---------------------------------------

    @contextmanager
    def volumes(self, count: int) -> Iterator[list[str]]:
        """``count`` fresh named volumes, removed on exit whatever happened."""
        names: list[str] = []
        try:
            for _ in range(count):
                name = f"harness-{uuid.uuid4().hex[:12]}"
                self._call(self._client.api.create_volume, name, labels={LABEL_OWNED: "true"})
                names.append(name)
            yield names
        finally:
            # A volume left behind is named, never an error: `harness doctor` lists what
            # harness owns, and the run's own outcome (or error) is what matters here.
            for name in names:
                quietly(
                    f"removing volume {name} on {self.where}",
                    partial(self._client.api.remove_volume, name, force=True),
                )

    def fill(
        self, image: str, volumes: Sequence[VolumeMount], path: str, archive: bytes | IO[bytes]
    ) -> None:
        """Unpack a tar ``archive`` at ``path`` of a container that mounts ``volumes``.

        The container is created, never started: the engine copies into its mounts, so
        the volumes can then be mounted read-only by the container that runs.
        """
        spec = ContainerSpec(image, ("true",), volumes=tuple(volumes))
        with self.container(spec) as container:
            try:
                ok = container.put_archive(path, archive)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
                raise EngineError(
                    f"cannot copy the run's files to the engine at {self.where}: "
                    f"{_short_reason(error)}"
                ) from None
            if not ok:
                raise EngineError(f"the engine at {self.where} refused the run's files")

    def volumes_owned(self) -> list[str]:
        """Names of volumes harness created that still exist (should be none)."""
        found = self._call(self._client.api.volumes, filters={"label": f"{LABEL_OWNED}=true"})
        return [str(item["Name"]) for item in (found or {}).get("Volumes") or []]

    def _start(self, container: Any) -> None:
        """Start the container and note its first process's ID, to stop it by that when
        the engine no longer answers (see :meth:`_stop`)."""
        container.start()
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.Timeout):
            container.reload()
            pid = int(((container.attrs or {}).get("State") or {}).get("Pid") or 0)
            if pid > 0:
                self._pids[container.id] = pid

    def _wait(self, container: Any, timeout: float | None) -> tuple[int, bool]:
        """Wait for the container's end: its exit status, and whether ``timeout`` ended it.

        At the timeout the container is stopped whether the engine answers or not (see
        :meth:`_stop`); its status is then -1 when the engine cannot say it in time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return int(container.wait(timeout=timeout).get("StatusCode", -1)), False
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            # The SDK's read timeout comes as either (requests wraps it when it retried).
            # Before the run's time was up, it is the engine that stopped answering.
            if deadline is None or time.monotonic() < deadline - 1:
                raise
        self._stop(container, partial(container.kill))
        try:
            return int(container.wait(timeout=_KILL_TIMEOUT).get("StatusCode", -1)), True
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return -1, True

    def _stop(self, container: Any, how: Callable[[], object]) -> None:
        """Stop a container now (kill or remove it, by ``how``), even when the engine is slow.

        The engine gets a few seconds to do it; past that, a container of an engine on this
        machine is killed through its first process, found by the ID the engine gave at its
        start and checked against the container's cgroup (so that a reused ID is never hit).
        ``how`` goes on in the background and finishes whenever the engine answers again.
        """
        worker = threading.Thread(target=partial(quietly, f"stopping {container.name}", how))
        worker.daemon = True
        worker.start()
        worker.join(_KILL_TIMEOUT)
        if worker.is_alive():
            _kill_local(container.id, self._pids.get(container.id))

    @contextmanager
    def container(self, spec: ContainerSpec) -> Iterator[Any]:
        """A created (not started) container, removed on exit whatever happened.

        Every container is locked down the same way, whatever runs in it: no capabilities
        (an experiment needs none; the Kubernetes Jobs drop them too), no privilege gained
        through setuid files, a bounded process count and log.
        """
        name = f"harness-{uuid.uuid4().hex[:12]}"
        host_config: dict[str, Any] = {
            **security_options(spec),
            "network_mode": "bridge" if spec.network else "none",
            "read_only": spec.read_only_root,
            "tmpfs": self._tmpfs_options(spec.tmpfs),
            "mounts": [
                *(
                    docker.types.Mount(m.target, str(m.source), type="bind", read_only=m.read_only)
                    for m in spec.mounts
                ),
                *(
                    docker.types.Mount(v.target, v.name, type="volume", read_only=v.read_only)
                    for v in spec.volumes
                ),
            ],
        }
        if spec.cpus is not None:
            host_config["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.cpuset is not None:
            host_config["cpuset_cpus"] = spec.cpuset
        if spec.hostname is not None:
            host_config["hostname"] = spec.hostname
        if spec.gpus:
            host_config["device_requests"] = [
                docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
            ]
        try:
            container = self._client.containers.create(
                spec.image,
                list(spec.command),
                name=name,
                environment=dict(spec.environment),
                user=spec.user,
                working_dir=spec.working_dir,
                labels={
                    LABEL_OWNED: "true",
                    LABEL_OWNER: owner.current().label(),
                    **spec.labels,
                },
                **host_config,
            )
        except docker.errors.DockerException as error:
            raise EngineError(
                f"cannot create a container from {spec.image}: {_short_reason(error)}"
            ) from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None
        # Removed whatever happened; a removal that fails after an error is a warning, so
        # that the error that ended the container is what is shown, and none at all when
        # that error says the engine is gone (the next `harness run`, `verify` or `doctor`
        # removes what is left, see harness.runs.reconcile).
        with (
            cleanup(f"removing container {name}", partial(self._remove_after, container)),
            interrupt.stoppable(
                lambda: self._stop(container, partial(container.remove, force=True))
            ),
        ):
            try:
                yield container
            except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
                # Removed under it by Ctrl-C, the container's calls fail (no such
                # container): what ended it was the interrupt, not the engine.
                interrupt.check()
                # Otherwise the engine failed the container, or stopped answering: the
                # run's record says which (lost or failed), never a traceback of the SDK.
                # (The SDK's APIError is an HTTP error too, but an answer: the engine's.)
                if not isinstance(error, docker.errors.DockerException):
                    raise self._lost(error) from None
                reason = _short_reason(error)
                raise EngineError(
                    f"the engine at {self.where} failed the container of {spec.image}: {reason}",
                    PODMAN_ULIMITS_FIX
                    if _RLIMITS in reason
                    else "check the engine with `harness doctor`, then run again",
                ) from None
            except Exception:
                interrupt.check()
                raise

    def _tmpfs_options(self, tmpfs: Mapping[str, str]) -> dict[str, str]:
        """Each tmpfs's mount options as this engine needs them.

        Podman fills a tmpfs with what lies beneath its mount point ("tmpcopyup"): the
        tmpfs that hides the project's `.harness` would then carry the runs it hides. Its
        `notmpcopyup` keeps a tmpfs empty, as Docker's always is (Docker refuses the option).
        Podman 4 knows no `uid=`/`gid=`: its `U` gives the tmpfs to the container's user,
        which is the user those options name (the project's writable view).
        """
        if self.product != PODMAN:
            return dict(tmpfs)
        return {target: _podman_tmpfs(options) for target, options in tmpfs.items()}

    def containers_owned(self) -> list[str]:
        """Names of containers harness created that still exist (should be none)."""
        return [found.name for found in self.owned_containers()]

    def owned_containers(self) -> list[OwnedContainer]:
        """Every container harness created that still exists, with what its labels say."""
        found = self._call(
            self._client.api.containers, all=True, filters={"label": f"{LABEL_OWNED}=true"}
        )
        return [
            OwnedContainer(
                name=str((item.get("Names") or ["?"])[0]).lstrip("/"),
                id=str(item.get("Id") or ""),
                state=str(item.get("State") or "unknown"),
                status=str(item.get("Status") or ""),
                labels=dict(item.get("Labels") or {}),
            )
            for item in found
        ]

    def remove_container(self, name: str) -> None:
        """Remove a container (running or not) that harness created; gone already is fine."""
        try:
            self._client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            raise EngineError(
                f"cannot remove container {name} on {self.where}: {_short_reason(error)}",
                f"remove it by hand: docker rm -f {name}",
            ) from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None

    def _lost(self, error: BaseException) -> EngineUnavailable:
        """The error for an engine that stopped answering in the middle of something."""
        return EngineUnavailable(
            f"lost the Docker engine at {self.where}: {_short_reason(error)}",
            "check the engine (`docker info`) and start it again if it is down; the next "
            "`harness run`, `verify` or `doctor` removes the containers it left",
        )

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except docker.errors.DockerException as error:
            raise EngineError(f"the Docker engine refused: {_short_reason(error)}") from None
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None

    def _remove_after(self, container: Any) -> None:
        """Remove the container at the end of its block; when the error that ends the block
        already says the engine is lost, a removal that fails for the same reason adds
        nothing to it (cleanup calls this while that error is being handled)."""
        on_its_way = sys.exc_info()[1]
        try:
            self._remove(container)
        except EngineUnavailable:
            if not isinstance(on_its_way, EngineUnavailable):
                raise

    def _remove(self, container: Any) -> None:
        self._pids.pop(container.id, None)
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            # Ctrl-C's removal from the main thread may still be under way ("removal in
            # progress"): that one finishes the job, and the caller waits for it, as the
            # run's volumes can only go once no container holds them.
            if not interrupt.stopped():
                raise EngineError(
                    f"cannot remove container {container.name} on {self.where}: "
                    f"{_short_reason(error)}",
                    f"remove it by hand: docker rm -f {container.name}",
                ) from None
            _wait_gone(container)
        except requests.exceptions.RequestException as error:
            raise self._lost(error) from None


def _kill_local(container_id: str, pid: int | None) -> None:
    """SIGKILL a container's first process on this machine, which ends the container:
    only when that process is in the container's own cgroup (an engine on another machine
    gives IDs that mean nothing here, and an ID may have been reused)."""
    if not pid or not container_id:
        return
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # gone already, or not on this machine
    if container_id not in cgroups:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _wait_gone(container: Any) -> None:
    deadline = time.monotonic() + _GONE_TIMEOUT
    while time.monotonic() < deadline:
        try:
            container.reload()
        except docker.errors.NotFound:
            return
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return  # the engine is gone too: nothing more to wait for
        time.sleep(0.2)


def security_options(spec: ContainerSpec) -> dict[str, Any]:
    """The SDK's create() arguments that confine a container (see :meth:`Engine.container`)."""
    options: dict[str, Any] = {
        "cap_drop": list(CONFINED.drop_capabilities),
        "security_opt": [f"no-new-privileges:{str(CONFINED.no_new_privileges).lower()}"],
        "pids_limit": spec.pids_limit,
        "log_config": docker.types.LogConfig(
            type="json-file", config={"max-size": str(LOG_LIMIT), "max-file": "1"}
        ),
    }
    if spec.memory is not None:
        options["mem_limit"] = spec.memory
        options["memswap_limit"] = spec.memory
    return options


def _client_for(host: str, timeout: int) -> docker.DockerClient:
    """A client for a Docker URL, or for a named Docker context (``docker context ls``)."""
    if "://" not in host:
        context = docker.context.ContextAPI.get_context(host)
        if context is None:
            raise docker.errors.DockerException(f"no Docker context named {host!r}")
        endpoint = str(context.Host)
        tls = context.TLSConfig or False
        if endpoint.startswith("ssh://"):
            return docker.DockerClient(base_url=endpoint, timeout=timeout, use_ssh_client=True)
        return docker.DockerClient(base_url=endpoint, timeout=timeout, tls=tls)
    # The ssh binary honours the user's ~/.ssh/config, agent and known hosts, as the
    # docker CLI does.
    return docker.DockerClient(
        base_url=host, timeout=timeout, use_ssh_client=host.startswith("ssh://")
    )


def _short_reason(error: BaseException) -> str:
    """The useful last part of the SDK's nested exception messages."""
    if isinstance(error, docker.errors.APIError) and error.explanation:
        return str(error.explanation)
    text = str(error)
    # requests wraps socket errors several levels deep; the last clause names the cause.
    for marker in ("Caused by ", "Error while fetching server API version: "):
        if marker in text:
            text = text.rsplit(marker, maxsplit=1)[-1]
    # ... and the innermost exception's own words, as repr() left them: say only those.
    innermost = _INNER_REASON.findall(text)
    if innermost:
        return str(innermost[-1])
    return " ".join(text.split()).strip("()'\"")


# An exception as repr() writes it: RemoteDisconnected('...'), ConnectionRefusedError(111, '...').
_INNER_REASON = re.compile(r"[A-Za-z]+(?:Error|Exception|Disconnected)\((?:\d+, )?'([^']+)'\)")


def _failed_step_message(log: BuildLog, error: str) -> str:
    error = " ".join(str(error).split())
    where = f" at {log.step}" if log.step else ""
    tail = " | ".join(line for line in list(log.tail)[-8:] if line.strip())
    return f"build failed{where}: {error}" + (f" -- last lines: {tail}" if tail else "")


def _built_id(log: BuildLog) -> str:
    for line in reversed(log.tail):
        if line.startswith("Successfully built "):
            return line.split()[-1]
    return ""


class _ChunkReader(io.RawIOBase):
    """A readable stream over the SDK's generator of chunks, with engine errors translated."""

    def __init__(self, chunks: Iterator[bytes], doing: str) -> None:
        self._chunks = chunks
        self._doing = doing
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Images are streamed in the threads of other hosts: Ctrl-C ends the stream.
        interrupt.check()
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
                raise EngineError(f"{self._doing} failed: {_short_reason(error)}") from None
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        # Closing the generator closes the HTTP response, so an early stop frees the engine.
        close = getattr(self._chunks, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        super().close()


def _pump_logs(container: Any, log: Path) -> None:
    """Copy the container's output into ``log`` to its end, in the calling thread."""
    _LogPump(container, log).run()


class _LogPump:
    """Copies a container's output into its log as it is produced (both streams, in
    order), in a thread of its own; whatever cuts the log short is written at its end."""

    def __init__(self, container: Any, log: Path) -> None:
        self._container = container
        self._log = log
        # Held while a chunk is written, so that the log's last line is the last one.
        self._lock = threading.Lock()
        self._ended = False
        self._received = 0
        self._thread = threading.Thread(target=self.run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        # A log that cannot be opened (a full or read-only disk): the record says why.
        with contextlib.suppress(OSError):
            self._copy()

    def _copy(self) -> None:
        written = 0
        # Unbuffered: a write that fails (the disk is full) fails now, never at close.
        with self._log.open("ab", buffering=0) as stream:
            try:
                for chunk in self._container.logs(
                    stdout=True, stderr=True, stream=True, follow=True
                ):
                    with self._lock:
                        if self._ended:
                            return
                        self._received += len(chunk)
                        if written >= LOG_LIMIT:
                            continue  # keep reading, so the container never blocks on output
                        kept = chunk[: LOG_LIMIT - written]
                        try:
                            stream.write(kept)
                            written += len(kept)
                            if written >= LOG_LIMIT:
                                cut = f"\n[harness: log cut at {LOG_LIMIT} bytes]\n"
                                stream.write(cut.encode())
                        except OSError:
                            # The disk is full: the rest is read (the container must not
                            # block on its output) and dropped.
                            written = LOG_LIMIT
            except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
                self._end(f"the engine stopped sending it: {_short_reason(error)}")

    def finish(self, idle: float) -> bool:
        """Wait for the log's end while bytes keep arriving; after ``idle`` seconds without
        one, end the log with a line saying it was cut. Returns whether it is whole."""
        seen = -1
        while True:
            self._thread.join(timeout=idle)
            if not self._thread.is_alive():
                return not self._ended
            with self._lock:
                if self._received == seen:
                    break
                seen = self._received
        self._end(f"nothing more came from the engine for {idle:g} s after the container exited")
        return False

    def _end(self, why: str) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            with contextlib.suppress(OSError), self._log.open("ab", buffering=0) as stream:
                stream.write(f"\n[harness: log cut: {why}]\n".encode())
