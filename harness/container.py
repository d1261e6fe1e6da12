"""What an experiment's container is, in one place, whoever starts it.

A run's container is described once, by :func:`plan`, as a :class:`ContainerPlan`: the
image and command, the user, what is mounted where and how (read-only or not), the
private tmpfs and its size, the read-only root, no network, the confinement (no
capabilities, no privilege gained through setuid files, bounded processes and log), the
limits, the environment, the working directory and the labels. `harness run` turns the
plan into the engine's create options (:mod:`harness.runs.run`); `harness k8s render`
turns the same plan into a pod spec (:mod:`harness.fleet.k8s.manifests`). A Job on a
cluster and a container on a host are then locked down alike by construction, not by
two copies of the same numbers that drift apart.

The plan is pure data, built without an engine or a cluster, so it is tested as it is
(as cibuildwheel tests its build steps without a container). It names what is mounted
by its role (:class:`Source`), not by a path of this machine: a bind mount, a volume
filled on another engine and a Kubernetes volume each supply the role their own way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from harness.config import STATE_FOLDER
from harness.runtime.determinism import environment as determinism_environment

# The image's non-root user: not this machine's, so what it reads must be readable by all.
CONTAINER_USER = "10001:10001"
# Where the runtime finds what it needs, inside the container.
# The project as the experiment sees it (its working directory): a writable view laid out
# by the runtime from the read-only mount of the project at PROJECT_SOURCE, in a tmpfs of
# PROJECT_VIEW_SIZE at most (see harness.runtime.project_view).
PROJECT = "/harness/project"
# Where verify's workdir variation lays the view out instead: another depth, other names.
MOVED_PROJECT = "/harness/elsewhere/moved-project"
PROJECT_SOURCE = "/harness/source"
PROJECT_VIEW_SIZE = "8g"
SPEC = "/harness/spec.json"
OUTPUT = "/harness/out"
META = "/harness/meta"
INPUTS = "/harness/inputs"
TMP = "/tmp"  # noqa: S108 - the container's own tmpfs, never the host's
# Docker's notation (binary units): 4 GiB of memory-backed /tmp at most.
TMP_SIZE = "4g"
# -P: the project folder (the working directory) must not shadow the harness runtime
# installed in the image; the runtime appends it to sys.path itself.
COMMAND = ("python", "-P", "-m", "harness.runtime", SPEC)
HOSTNAME = "harness"
LABEL_RUN_ID = "io.harness.run-id"
# Processes and threads a container may hold: a fork bomb stops here, far above what
# frameworks start (one per core for each pool at most).
PIDS_LIMIT = 4096
# What the engine keeps of a container's output (its json-file log, rotated away past
# this) and what harness copies into a run's log.txt: a runaway print loop fills neither
# disk.
LOG_LIMIT = 64 << 20


class Source(enum.Enum):
    """What a mount holds; each way of starting a container supplies it its own way."""

    PROJECT = "project"
    SPEC = "spec"
    ARTIFACTS = "artifacts"
    META = "meta"
    INPUT = "input"


@dataclass(frozen=True)
class Mount:
    source: Source
    target: str
    read_only: bool = True
    # The input's name, for Source.INPUT.
    name: str | None = None


@dataclass(frozen=True)
class Tmpfs:
    """A memory-backed folder: its size in Docker's notation ("4g") and mount options."""

    target: str
    size: str
    options: tuple[str, ...] = ("rw", "nosuid", "nodev")

    @property
    def docker_options(self) -> str:
        return ",".join((*self.options, f"size={self.size}"))


@dataclass(frozen=True)
class Confinement:
    """What locks a container down, whatever runs in it: the engine applies it to every
    container it creates, and the Kubernetes manifests to every pod."""

    read_only_root: bool = True
    network: bool = False
    drop_capabilities: tuple[str, ...] = ("ALL",)
    no_new_privileges: bool = True
    pids_limit: int = PIDS_LIMIT
    log_limit: int = LOG_LIMIT


CONFINED = Confinement()


@dataclass(frozen=True)
class ContainerPlan:
    """One experiment's container, before anything starts it."""

    image: str
    command: tuple[str, ...]
    user: str
    working_dir: str
    hostname: str
    environment: Mapping[str, str]
    mounts: tuple[Mount, ...]
    tmpfs: tuple[Tmpfs, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    confinement: Confinement = CONFINED
    memory: str | None = None
    cpus: float | None = None
    cpuset: str | None = None
    gpus: bool = False

    def mount(self, source: Source) -> Mount:
        """The one mount of ``source`` (not for inputs, of which there may be several)."""
        (found,) = (m for m in self.mounts if m.source is source)
        return found

    def tmpfs_at(self, target: str) -> Tmpfs:
        (found,) = (t for t in self.tmpfs if t.target == target)
        return found

    @property
    def user_ids(self) -> tuple[int, int]:
        return user_ids(self.user)


def user_ids(user: str) -> tuple[int, int]:
    """A container user ("10001:10001") as the numbers Kubernetes wants."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


class ContainerSetup(Protocol):
    """What a run's setup says about its container (``harness.runs.variations.Setup``:
    the control's, or one that a variation changed)."""

    @property
    def hostname(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def cpuset(self) -> str | None: ...
    @property
    def extra_env(self) -> Mapping[str, str]: ...
    @property
    def unset_env(self) -> frozenset[str]: ...


class WithInputs(Protocol):
    @property
    def inputs(self) -> Mapping[str, object]: ...


class ContainerRequest(Protocol):
    """What a run request (``harness.runs.run.RunRequest``) says about its container.

    A protocol rather than the class, so that this module stays below the runs that use
    it: run, variations and the k8s manifests all import it, and it imports none of them.
    """

    @property
    def experiment(self) -> WithInputs: ...
    @property
    def seed(self) -> int: ...
    @property
    def profile(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def cpus(self) -> float | None: ...
    @property
    def gpus(self) -> bool: ...
    @property
    def setup(self) -> ContainerSetup: ...


def environment(request: ContainerRequest, run_id: str) -> dict[str, str]:
    """The container's environment: the runtime's determinism environment (so the host and
    the container agree on it by construction), then the run's variations."""
    device = "cuda" if request.gpus else "cpu"
    setup = request.setup
    values = {
        **determinism_environment(request.seed, request.profile, request.threads, device),
        # The root file system is read-only; libraries that cache under HOME get the tmpfs.
        "HOME": TMP,
        "HARNESS_RUN_ID": run_id,
        **setup.extra_env,
    }
    for name in setup.unset_env:
        values.pop(name, None)
    return values


def _owned_by(user: str) -> tuple[str, ...]:
    uid, gid = user_ids(user)
    return ("rw", "exec", "nosuid", "nodev", f"uid={uid}", f"gid={gid}")


def plan(
    request: ContainerRequest, *, image: str, run_id: str, memory: str | None
) -> ContainerPlan:
    """The container that runs ``request``: a pure function of the request."""
    setup = request.setup
    return ContainerPlan(
        image=image,
        command=COMMAND,
        user=setup.user,
        working_dir=setup.working_dir,
        hostname=setup.hostname,
        environment=environment(request, run_id),
        mounts=(
            Mount(Source.PROJECT, PROJECT_SOURCE),
            Mount(Source.SPEC, SPEC),
            Mount(Source.ARTIFACTS, OUTPUT, read_only=False),
            Mount(Source.META, META, read_only=False),
            *(
                Mount(Source.INPUT, f"{INPUTS}/{name}", name=name)
                for name in request.experiment.inputs
            ),
        ),
        tmpfs=(
            Tmpfs(TMP, TMP_SIZE),
            # Code that writes next to itself (./mlruns, ./outputs) writes here; the view
            # holds scripts the experiment may run, hence exec. The mount point is not in
            # the image and is the working directory, which the engine makes root's 0755
            # whatever mode is asked: owned by the container's user (whichever a
            # variation chose), the runtime can lay it out.
            Tmpfs(setup.working_dir, PROJECT_VIEW_SIZE, _owned_by(setup.user)),
            # Other runs' records and artifacts are no experiment's business.
            Tmpfs(f"{PROJECT_SOURCE}/{STATE_FOLDER}", "1k", ("ro",)),
        ),
        labels={LABEL_RUN_ID: run_id},
        memory=memory,
        cpus=request.cpus,
        cpuset=setup.cpuset,
        gpus=request.gpus,
    )
