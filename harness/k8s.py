"""`harness k8s render`: Kubernetes manifests that run experiments in a pinned image on chosen
nodes, and the run record of what such a Job wrote.

A render is one multi-document YAML file:

1. a ConfigMap with the project's source (a deterministic gzip tar of the files git tracks)
   and, for each Job, its run spec (what `harness run` mounts at /harness/spec.json) and its
   job facts (what a record needs that the runtime inside cannot know: the image, the node,
   the source state, the environment harness set);
2. a NetworkPolicy that cuts the runs off the network, as `harness run` does with Docker's
   network "none";
3. one Job per node and experiment, pinned to its node, locked down like a `harness run`
   container, writing its artifacts and the runtime's report to a PersistentVolumeClaim
   under JOB-NAME/;
4. a Pod that mounts the claim read-only, to copy the Jobs' folders back with `kubectl cp`.

`record_from_job_output` turns one gathered JOB-NAME/ folder into a run record, for
`harness collect`.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import harness
from harness import atomic, commands, records, untrusted, vcs
from harness.config import Config, Experiment
from harness.dvc import literal_dumper, yaml_module
from harness.errors import ConfigError, HarnessError
from harness.run import META, OUTPUT, RUNTIME_REPORT, SPEC, run_spec
from harness.runtime import spec as runtime_spec
from harness.runtime.determinism import environment as determinism_environment
from harness.variations import CONTAINER_USER, PROJECT

if TYPE_CHECKING:
    from harness.cli import State

TABLE = "[tool.harness.k8s]"
JOB_SCHEMA = "harness.k8s-job/v1"
JOB_FACTS = "job.json"
SPEC_FILE = "spec.json"
ARCHIVE = "project.tar.gz"
DEFAULT_CLAIM = "harness-records"
GATHER_POD = "harness-gather"
GATHER_MOUNT = "/records"
NETWORK_POLICY = "harness-no-network"
# Where the initContainer sees the ConfigMap's keys as files.
CONFIG_MOUNT = "/harness/config"
HOSTNAME_LABEL = "kubernetes.io/hostname"
MANAGED_BY = {"app.kubernetes.io/managed-by": "harness"}
LABEL_EXPERIMENT = "harness.dev/experiment"
LABEL_NODE = "harness.dev/node"
LABEL_RENDER = "harness.dev/render"
LABEL_ROLE = "harness.dev/role"
ANNOTATION_RUN_ID = "harness.dev/run-id"
USER_ID = int(CONTAINER_USER.split(":", maxsplit=1)[0])
GROUP_ID = int(CONTAINER_USER.split(":", maxsplit=1)[1])
# Kubernetes refuses a ConfigMap whose data and binaryData add up to more than 1 MiB.
CONFIGMAP_LIMIT = 1024 * 1024
TMP_SIZE = "4Gi"  # the size of `harness run`'s /tmp tmpfs
_KEYS = frozenset({"nodes", "selectors", "claim", "namespace", "gpus"})
_DIGEST_REFERENCE = re.compile(r"[^\s@]+@sha256:[0-9a-f]{64}")
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
# Never shipped: harness's own records, git's database, virtual environments (found by
# their pyvenv.cfg), bytecode and tool caches, which are large and differ between machines.
_SKIPPED_FOLDERS = frozenset(
    {".harness", ".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)

# The initContainer, run by the image's own Python (3.11, standard library only). It unpacks
# the project into the emptyDir the run reads it from, and copies the spec and the job
# facts (with the node the pod landed on and the time it started) into the Job's meta
# folder, so that the gathered folder is self-describing. The archive is harness's own
# (files and folders only), checked member by member; the "data" filter is used where the
# interpreter has it (Python 3.11.4 and later, and distributions that backported PEP 706).
INIT_SCRIPT = """\
import datetime, json, os, shutil, sys, tarfile
config, project, meta, job = sys.argv[1:]
with tarfile.open(os.path.join(config, "project.tar.gz")) as archive:
    for member in archive.getmembers():
        parts = member.name.split("/")
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            sys.exit(f"harness: refusing archive member {member.name!r}")
    if hasattr(tarfile, "data_filter"):
        archive.extractall(project, filter="data")
    else:
        archive.extractall(project)
shutil.copyfile(os.path.join(config, job + ".spec.json"), os.path.join(meta, "spec.json"))
with open(os.path.join(config, job + ".job.json"), encoding="utf-8") as stream:
    facts = json.load(stream)
facts["node_name"] = os.environ.get("HARNESS_NODE_NAME") or None
facts["started_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
with open(os.path.join(meta, "job.json"), "w", encoding="utf-8") as stream:
    json.dump(facts, stream, indent=2, sort_keys=True)
    stream.write("\\n")
"""


class RenderError(HarnessError):
    """The manifests cannot be rendered as asked."""


@dataclass(frozen=True)
class Settings:
    """Where and how the Jobs run: the command line over [tool.harness.k8s]."""

    image: str
    image_id: str | None = None
    variant: str | None = None
    nodes: tuple[str, ...] = ()
    selectors: Mapping[str, str] = field(default_factory=dict)
    gpus: int = 0
    claim: str = DEFAULT_CLAIM
    namespace: str | None = None

    @property
    def digest(self) -> str:
        return self.image.rsplit("@", 1)[1]


@dataclass(frozen=True)
class JobPlan:
    """One run: an experiment on a node."""

    name: str
    run_id: str
    node: str
    experiment: Experiment
    variant: str


@dataclass(frozen=True)
class Rendered:
    documents: list[dict[str, Any]]
    jobs: list[JobPlan]
    render_id: str
    archive_files: int
    archive_size: int

    def yaml(self, settings: Settings, output: Path | None) -> str:
        """The documents as one YAML stream, after a header that says how to use them."""
        namespace = f" -n {settings.namespace}" if settings.namespace else ""
        source = str(output) if output else "FILE"
        where = f"{settings.namespace}/" if settings.namespace else ""
        header = [
            f"# Generated by `harness k8s render` (harness {harness.__version__}): "
            f"{len(self.jobs)} Job(s) in {settings.image}.",
            "# Render again rather than editing: the run ids and job facts must stay consistent.",
            f"# Needs the PersistentVolumeClaim {settings.claim!r} "
            "(ReadWriteMany when the nodes differ).",
            f"# Apply:  kubectl apply --server-side{namespace} -f {source}",
            f"# Watch:  kubectl get jobs{namespace} -l {LABEL_RENDER}={self.render_id} --watch",
            f"# Gather: kubectl cp {where}{GATHER_POD}:{GATHER_MOUNT} ./collected",
            "#         harness collect collected/*",
            f"# Logs:   kubectl logs{namespace} job/JOB > collected/JOB/{records.LOG}  (optional)",
        ]
        body = yaml_module().dump_all(
            self.documents,
            Dumper=literal_dumper(),
            explicit_start=True,
            sort_keys=False,
            default_flow_style=False,
            width=100,
        )
        return "\n".join(header) + "\n" + str(body)


# -- settings ------------------------------------------------------------------------------


def settings_from(
    table: Mapping[str, Any],
    *,
    image: str,
    image_id: str | None = None,
    variant: str | None = None,
    nodes: Sequence[str] = (),
    selectors: Sequence[str] = (),
    gpus: int | None = None,
    claim: str | None = None,
    namespace: str | None = None,
) -> Settings:
    """Validate [tool.harness.k8s] and the command line; the command line wins."""
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(
            f"unknown key {sorted(unknown)[0]!r} in {TABLE}",
            f"remove it or use one of: {', '.join(sorted(_KEYS))}",
        )
    if not _DIGEST_REFERENCE.fullmatch(image):
        raise ConfigError(
            f"image {image!r} is not pinned by digest, so nodes could pull different bytes",
            "push it (docker push REF) and pass REF@sha256:<digest> "
            "(`docker buildx imagetools inspect REF` shows the digest)",
        )
    if image_id is not None and not _IMAGE_ID.fullmatch(image_id):
        raise ConfigError(
            f"--image-id {image_id!r} is not sha256:<64 hex digits>",
            "pass the output of `docker image inspect --format '{{.Id}}' REF`",
        )
    configured_nodes = table.get("nodes", [])
    if not isinstance(configured_nodes, list) or not all(
        isinstance(n, str) for n in configured_nodes
    ):
        raise ConfigError(f"{TABLE} nodes must be a list of strings", 'write nodes = ["node-a"]')
    chosen = _check_nodes(list(dict.fromkeys(nodes or configured_nodes)))
    configured_selectors = table.get("selectors", {})
    if not isinstance(configured_selectors, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in configured_selectors.items()
    ):
        raise ConfigError(
            f"{TABLE} selectors must map label names to values",
            'write selectors = { "nvidia.com/gpu.product" = "NVIDIA-H100-80GB-HBM3" }',
        )
    merged = {**configured_selectors, **_key_values(selectors)}
    for key, value in merged.items():
        _check_selector(key, value)
    configured_gpus = table.get("gpus", 0)
    if isinstance(configured_gpus, bool) or not isinstance(configured_gpus, int):
        raise ConfigError(f"{TABLE} gpus must be a whole number", "write gpus = 1")
    chosen_gpus = configured_gpus if gpus is None else gpus
    if chosen_gpus < 0:
        raise ConfigError(f"{TABLE} gpus must not be negative", "write gpus = 0 or more")
    chosen_claim = claim if claim is not None else table.get("claim", DEFAULT_CLAIM)
    if not (
        isinstance(chosen_claim, str)
        and len(chosen_claim) <= 253
        and _DNS_SUBDOMAIN.fullmatch(chosen_claim)
    ):
        raise ConfigError(
            f"claim {chosen_claim!r} is not a valid PersistentVolumeClaim name",
            "use lowercase letters, digits, '-' and '.', as in harness-records",
        )
    chosen_namespace = namespace if namespace is not None else table.get("namespace")
    if chosen_namespace is not None and not (
        isinstance(chosen_namespace, str)
        and len(chosen_namespace) <= 63
        and _DNS_LABEL.fullmatch(chosen_namespace)
    ):
        raise ConfigError(
            f"namespace {chosen_namespace!r} is not a valid namespace name",
            "use lowercase letters, digits and '-', as in ml-runs",
        )
    return Settings(
        image=image,
        image_id=image_id,
        variant=variant,
        nodes=tuple(chosen),
        selectors=merged,
        gpus=chosen_gpus,
        claim=chosen_claim,
        namespace=chosen_namespace,
    )


def _check_nodes(nodes: list[str]) -> list[str]:
    if not nodes:
        raise ConfigError(
            "no node to run on",
            f'pass --node NODE (see `kubectl get nodes`) or set nodes = ["NODE"] in {TABLE}',
        )
    for node in nodes:
        if not (len(node) <= 63 and _LABEL_VALUE.fullmatch(node)):
            raise ConfigError(
                f"node {node!r} is not a valid {HOSTNAME_LABEL} label value",
                "give the node's kubernetes.io/hostname label "
                "(`kubectl get nodes -L kubernetes.io/hostname`)",
            )
    return nodes


def _key_values(pairs: Iterable[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ConfigError(
                f"--selector {pair!r} is not KEY=VALUE", "write --selector disktype=ssd"
            )
        values[key] = value
    return values


def _check_selector(key: str, value: str) -> None:
    if key == HOSTNAME_LABEL:
        raise ConfigError(
            f"the selector {HOSTNAME_LABEL} is set by the node of each Job",
            "choose the nodes with --node (or nodes in [tool.harness.k8s])",
        )
    prefix, slash, name = key.rpartition("/")
    valid_prefix = not slash or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix)))
    if not (valid_prefix and len(name) <= 63 and _LABEL_NAME.fullmatch(name)):
        raise ConfigError(
            f"selector key {key!r} is not a valid label name",
            "write it as NAME or PREFIX/NAME, as in nvidia.com/gpu.product",
        )
    if not (len(value) <= 63 and _LABEL_VALUE.fullmatch(value)):
        raise ConfigError(
            f"selector value {value!r} of {key} is not a valid label value",
            "use at most 63 letters, digits, '-', '_' and '.'",
        )


# -- the project archive -----------------------------------------------------------------


def project_files(root: Path, say: Callable[[str], None] = lambda _: None) -> list[str]:
    """The project's files to ship, as sorted POSIX paths relative to ``root``: those git
    tracks when the project is in a git work tree (as they are in the work tree, so that
    the record's dirty flag and diff hash describe them), else every file but the skipped
    folders. Links are shipped as the file they point to when it is inside the project."""
    tracked = _tracked_files(root)
    if tracked is None:
        candidates = _walk(root)
    else:
        candidates = [
            path
            for path in tracked
            if not any(part in _SKIPPED_FOLDERS for part in Path(path).parts)
        ]
    shipped = []
    resolved_root = root.resolve()
    for relative in sorted(candidates):
        path = root / relative
        if path.is_symlink():
            target = path.resolve()
            if not (target.is_file() and target.is_relative_to(resolved_root)):
                say(f"not shipping {relative}: a link to a folder, or to outside the project")
                continue
        elif not path.is_file():
            continue  # deleted in the work tree, or a submodule
        shipped.append(relative)
    return sorted(shipped)


def _tracked_files(root: Path) -> list[str] | None:
    """The files git tracks under ``root``, or None when it is not in a git work tree."""
    try:
        result = commands.call(
            ["git", "ls-files", "-z", "--cached"],
            cwd=root,
            timeout=commands.GIT_S,
            hint=f"check the repository with `git status` in {root}",
        )
    except commands.CommandMissing:
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def _walk(root: Path) -> list[str]:
    found = []
    for folder, folders, names in os.walk(root):
        here = Path(folder)
        kept = [
            name
            for name in folders
            if name not in _SKIPPED_FOLDERS and not (here / name / "pyvenv.cfg").exists()
        ]
        linked = [name for name in kept if (here / name).is_symlink()]
        folders[:] = sorted(name for name in kept if name not in linked)
        # Linked folders are listed, not entered, so that project_files can name them.
        found += [(here / name).relative_to(root).as_posix() for name in names]
        found += [(here / name).relative_to(root).as_posix() for name in linked]
    return found


def project_archive(root: Path, files: Sequence[str]) -> bytes:
    """A gzip tar of ``files`` that depends only on their paths, contents and executable
    bits: sorted, every time 0, owner 0:0 without names, modes 0755 or 0644, and a gzip
    header without name or time. Rendering twice gives the same bytes."""
    folders = sorted({parent for name in files for parent in _parents(name)})
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in folders:
            archive.addfile(_member(name, tarfile.DIRTYPE, 0o755, 0))
        for name in sorted(files):
            data = (root / name).read_bytes()
            executable = (root / name).stat().st_mode & 0o111
            info = _member(name, tarfile.REGTYPE, 0o755 if executable else 0o644, len(data))
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def _member(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


# -- rendering -----------------------------------------------------------------------------


def render(
    config: Config,
    experiments: Sequence[Experiment],
    settings: Settings,
    *,
    say: Callable[[str], None] = lambda _: None,
    now: dt.datetime | None = None,
) -> Rendered:
    """Every document of a render; raises before anything is written when one cannot be."""
    if not experiments:
        raise ConfigError(
            "no experiment is declared", "add [tool.harness.experiments.NAME] to pyproject.toml"
        )
    variants = {}
    for experiment in experiments:
        if experiment.inputs:
            raise ConfigError(
                f"experiment {experiment.name!r} has inputs "
                f"({', '.join(sorted(experiment.inputs))}), which are not shipped to clusters yet",
                "run it with `harness run`, or name only experiments without inputs",
            )
        variant = config.variant(settings.variant or experiment.variant).name
        if settings.gpus and variant != "cuda":
            raise ConfigError(
                f"GPUs need the cuda variant; experiment {experiment.name!r} uses {variant!r}",
                "add --variant cuda (and pass the cuda image)",
            )
        variants[experiment.name] = variant
    moment = now or dt.datetime.now(dt.UTC)
    files = project_files(config.project_root, say)
    if not files:
        raise RenderError(
            f"the project {config.project_root} has no files to ship",
            "track the project's files in git (git add), or pass the right --project",
        )
    archive = project_archive(config.project_root, files)
    say(f"packed {len(files)} project files into {len(archive)} bytes")
    jobs = _plan_jobs(experiments, settings.nodes, variants, moment)
    render_id = hashlib.sha256("\0".join(j.name for j in jobs).encode()).hexdigest()[:12]
    source = vcs.source_state(config.project_root)
    data: dict[str, str] = {}
    device = "cuda" if settings.gpus else "cpu"
    for job in jobs:
        environment = _environment(config, device, job.run_id)
        data[f"{job.name}.{SPEC_FILE}"] = _json(_spec(config, job.experiment, job.run_id, device))
        data[f"{job.name}.{JOB_FACTS}"] = _json(
            {
                "schema": JOB_SCHEMA,
                "job": job.name,
                "namespace": settings.namespace,
                "node": job.node,
                "claim": settings.claim,
                "render": render_id,
                "rendered_at": moment.isoformat(timespec="seconds"),
                "harness_version": harness.__version__,
                "image": {
                    "reference": settings.image,
                    # The image ID when given; else the registry digest stands in for it.
                    "id": settings.image_id or settings.digest,
                    "digest": settings.digest,
                    "variant": job.variant,
                },
                "outputs": list(job.experiment.outputs),
                "source": {
                    "commit": source.commit,
                    "dirty": source.dirty,
                    "diff_sha256": source.diff_sha256,
                    "archive_sha256": hashlib.sha256(archive).hexdigest(),
                },
                "environment": environment,
                "container": _container_facts(config, settings, job),
            }
        )
    size = len(archive) + sum(len(value.encode()) for value in data.values())
    if size > CONFIGMAP_LIMIT:
        raise RenderError(
            f"the ConfigMap would hold {size} bytes (the project archive {len(archive)}), "
            f"over Kubernetes' limit of {CONFIGMAP_LIMIT} bytes",
            "keep data and large files out of the project's tracked files "
            "(name fewer experiments or nodes when the specs are what is large)",
        )
    config_map = f"harness-{render_id}"
    documents = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(config_map, settings, {**MANAGED_BY, LABEL_RENDER: render_id}),
            "data": data,
            "binaryData": {ARCHIVE: base64.b64encode(archive).decode("ascii")},
        },
        _network_policy(settings),
        *(
            _job(config, settings, job, config_map=config_map, render_id=render_id, device=device)
            for job in jobs
        ),
        _gather_pod(settings),
    ]
    return Rendered(documents, jobs, render_id, len(files), len(archive))


def _plan_jobs(
    experiments: Sequence[Experiment],
    nodes: Sequence[str],
    variants: Mapping[str, str],
    moment: dt.datetime,
) -> list[JobPlan]:
    jobs: list[JobPlan] = []
    names: set[str] = set()
    for experiment in experiments:
        for node in nodes:
            while True:  # run ids end in random hex: draw again on the rarest collision
                run_id = records.new_run_id(experiment.name, moment)
                name = job_name(experiment.name, node, run_id)
                if name not in names:
                    break
            names.add(name)
            jobs.append(JobPlan(name, run_id, node, experiment, variants[experiment.name]))
    return jobs


def job_name(experiment: str, node: str, run_id: str) -> str:
    """A DNS-1123 label: the experiment and node, shortened to fit, and a hash of the run."""
    suffix = hashlib.sha256(f"{run_id}\0{node}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9]+", "-", f"{experiment}-{node}".lower()).strip("-")
    stem = stem[: 63 - len(suffix) - 1].strip("-") or "harness"
    return f"{stem}-{suffix}"


def _label_value(text: str) -> str:
    """``text`` as a label value (the exact value goes into an annotation)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def _spec(config: Config, experiment: Experiment, run_id: str, device: str) -> dict[str, Any]:
    """The run spec, with the keys `harness run` writes and the same paths in the container."""
    spec = run_spec(
        experiment,
        run_id,
        seed=config.seed,
        profile=config.profile,
        threads=config.threads,
        device=device,
    )
    try:
        runtime_spec.parse(spec)
    except runtime_spec.SpecError as error:
        raise ConfigError(
            f"experiment {experiment.name!r} makes an invalid run spec: {error}",
            f"fix [tool.harness.experiments.{experiment.name}]",
        ) from None
    return spec


def _environment(config: Config, device: str, run_id: str) -> dict[str, str]:
    return {
        **determinism_environment(config.seed, config.profile, config.threads, device),
        # The root file system is read-only; libraries that cache under HOME get the /tmp
        # emptyDir, as `harness run` gives them its tmpfs.
        "HOME": "/tmp",  # noqa: S108 - a private emptyDir inside the pod
        "HARNESS_RUN_ID": run_id,
    }


def _container_facts(config: Config, settings: Settings, job: JobPlan) -> dict[str, Any]:
    """The container as the manifest sets it up, in the keys of `harness run`'s records."""
    return {
        "network": "none",
        "read_only_root": True,
        "user": CONTAINER_USER,
        "hostname": "harness",
        "working_dir": PROJECT,
        "cpuset": None,
        "variations": [],
        "cpus": None,
        "gpus": settings.gpus > 0,
        "gpu_count": settings.gpus,
        "timeout_s": config.timeout or None,
        "orchestrator": "kubernetes",
        "namespace": settings.namespace,
        "job": job.name,
        "node": job.node,
        "claim": settings.claim,
    }


def _metadata(
    name: str,
    settings: Settings,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def _network_policy(settings: Settings) -> dict[str, Any]:
    # Both policy types and no rules: nothing in, nothing out, not even DNS. Enforced by
    # network plugins that implement NetworkPolicy (Calico, Cilium, ...).
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(NETWORK_POLICY, settings, MANAGED_BY),
        "spec": {
            "podSelector": {"matchLabels": dict(MANAGED_BY)},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsUser": USER_ID,
        "runAsGroup": GROUP_ID,
        "runAsNonRoot": True,
        # The claim's subPath folders are made group-writable for this group.
        "fsGroup": GROUP_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def kubernetes_quantity(memory: str) -> str:
    """Docker's memory amount ("8g": binary units) as a Kubernetes quantity ("8Gi")."""
    amount, unit = memory[:-1], memory[-1].lower()
    suffix = {"k": "Ki", "m": "Mi", "g": "Gi"}.get(unit)
    if suffix is None:
        return memory.rstrip("bB")
    return f"{amount}{suffix}"


def _job(
    config: Config,
    settings: Settings,
    job: JobPlan,
    *,
    config_map: str,
    render_id: str,
    device: str,
) -> dict[str, Any]:
    labels = {
        **MANAGED_BY,
        LABEL_ROLE: "run",
        LABEL_RENDER: render_id,
        LABEL_EXPERIMENT: _label_value(job.experiment.name) or "unnamed",
        LABEL_NODE: job.node,
    }
    annotations = {
        ANNOTATION_RUN_ID: job.run_id,
        LABEL_EXPERIMENT: job.experiment.name,
        LABEL_NODE: job.node,
    }
    environment = _environment(config, device, job.run_id)
    init = {
        "name": "unpack",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "python",
            "-I",
            "-c",
            INIT_SCRIPT,
            CONFIG_MOUNT,
            PROJECT,
            META,
            job.name,
        ],
        "env": [
            {"name": "HARNESS_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ],
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "project", "mountPath": PROJECT},
            {"name": "records", "mountPath": META, "subPath": f"{job.name}/{records.META}"},
        ],
    }
    main: dict[str, Any] = {
        "name": "run",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        # -P: the project folder (the working directory) must not shadow the harness
        # runtime installed in the image; the runtime appends it to sys.path itself.
        "command": ["python", "-P", "-m", "harness.runtime", SPEC],
        "workingDir": PROJECT,
        "env": [{"name": name, "value": value} for name, value in sorted(environment.items())],
        "securityContext": _container_security(),
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": SPEC,
                "subPath": f"{job.name}.{SPEC_FILE}",
                "readOnly": True,
            },
            {"name": "project", "mountPath": PROJECT, "readOnly": True},
            {"name": "records", "mountPath": OUTPUT, "subPath": f"{job.name}/{records.ARTIFACTS}"},
            {"name": "records", "mountPath": META, "subPath": f"{job.name}/{records.META}"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }
    limits: dict[str, Any] = {}
    if settings.gpus:
        limits["nvidia.com/gpu"] = settings.gpus
    if config.memory:
        # The same limit as a local run's container. Process counts and log sizes have no
        # per-pod field: the kubelet's podPidsLimit and containerLogMaxSize bound them.
        limits["memory"] = kubernetes_quantity(config.memory)
    if limits:
        main["resources"] = {"limits": limits}
    spec: dict[str, Any] = {"backoffLimit": 0}
    if config.timeout > 0:
        # Counted from the Job's start, image pull and unpacking included.
        spec["activeDeadlineSeconds"] = config.timeout
    spec["template"] = {
        "metadata": {"labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {HOSTNAME_LABEL: job.node, **settings.selectors},
            # Every run sees the same host name, whatever its pod is called.
            "hostname": "harness",
            "automountServiceAccountToken": False,
            # Service links put one variable per Service of the namespace into the
            # environment (HARNESS_* among them for a Service called harness): a run's
            # environment must not depend on its namespace.
            "enableServiceLinks": False,
            "securityContext": _pod_security(),
            "initContainers": [init],
            "containers": [main],
            "volumes": [
                {"name": "config", "configMap": {"name": config_map}},
                {"name": "project", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}},
                {"name": "records", "persistentVolumeClaim": {"claimName": settings.claim}},
            ],
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job.name, settings, labels, annotations),
        "spec": spec,
    }


def _gather_pod(settings: Settings) -> dict[str, Any]:
    labels = {**MANAGED_BY, LABEL_ROLE: "gather"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(GATHER_POD, settings, labels),
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            # sleep ignores SIGTERM as PID 1: no point waiting for it on delete.
            "terminationGracePeriodSeconds": 1,
            "securityContext": _pod_security(),
            "containers": [
                {
                    "name": "gather",
                    "image": settings.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "infinity"],
                    "securityContext": _container_security(),
                    "volumeMounts": [
                        {"name": "records", "mountPath": GATHER_MOUNT, "readOnly": True}
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "records",
                    "persistentVolumeClaim": {"claimName": settings.claim, "readOnly": True},
                }
            ],
        },
    }


def _json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# -- gathered Job output -> run record -----------------------------------------------------


def record_from_job_output(folder: Path) -> dict[str, Any]:
    """The run record of one Job's gathered folder (JOB-NAME/ with artifacts/ and meta/).

    The status is "succeeded" only when the runtime says so and every declared output
    exists; "failed" with the runtime's error otherwise, or "aborted" when the runtime was
    stopped by a signal (a deleted pod, or a Job past its deadline).
    """
    meta = folder / records.META
    spec_document = _read_json(meta / SPEC_FILE, folder)
    report = _read_json(meta / RUNTIME_REPORT, folder)
    facts = _read_json(meta / JOB_FACTS, folder)
    try:
        spec = runtime_spec.parse(spec_document)
    except runtime_spec.SpecError as error:
        raise records.CorruptRecord(
            f"{meta / SPEC_FILE} is not a valid run spec: {error}", _NOT_A_JOB_HINT
        ) from None
    if facts.get("schema") != JOB_SCHEMA:
        raise records.CorruptRecord(
            f"{meta / JOB_FACTS} is not a {JOB_SCHEMA} document (schema: {facts.get('schema')!r})",
            _NOT_A_JOB_HINT,
        )
    if report.get("run_id") != spec.run_id:
        raise records.CorruptRecord(
            f"{meta / RUNTIME_REPORT} is the report of run {report.get('run_id')!r}, "
            f"not of {spec.run_id!r}",
            _NOT_A_JOB_HINT,
        )
    image = facts.get("image")
    node = facts.get("node")
    if not (
        isinstance(image, dict)
        and isinstance(image.get("id"), str)
        and _IMAGE_ID.fullmatch(image["id"])
        and isinstance(node, str)
        and isinstance(facts.get("source"), dict)
        and isinstance(facts.get("environment"), dict)
        and isinstance(facts.get("container"), dict)
    ):
        raise records.CorruptRecord(
            f"{meta / JOB_FACTS} lacks the image, node, source, environment or container",
            _NOT_A_JOB_HINT,
        )
    artifacts = folder / records.ARTIFACTS
    status, exit_code, reason = _outcome(report, facts, artifacts)
    timings: dict[str, Any] = {
        "started_at": facts.get("started_at") or facts.get("rendered_at") or "",
    }
    runtime_timings = report.get("timings")
    if isinstance(runtime_timings, dict):
        timings.update({k: v for k, v in runtime_timings.items() if v is not None})
    record: dict[str, Any] = {
        "schema": records.SCHEMA,
        "run_id": spec.run_id,
        "status": status,
        "exit_code": exit_code,
        "error": reason,
        "experiment": spec.experiment,
        "entry": spec.entry,
        "command": None if spec.command is None else list(spec.command),
        "parameters": dict(spec.parameters),
        "seed": spec.seed,
        "profile": spec.profile,
        "threads": spec.threads,
        "device": spec.device,
        "image": {
            "reference": str(image.get("reference", "")),
            "id": image["id"],
            "digest": str(image.get("digest", image["id"])),
            "variant": str(image.get("variant", "")),
        },
        # Known only from the image's labels, which a render does not read.
        "constraints_sha256": None,
        "lock_sha256": None,
        "source": facts["source"],
        "inputs": {},
        "environment": facts["environment"],
        "container": {**facts["container"], "node_name": facts.get("node_name")},
        "harness_version": str(facts.get("harness_version", harness.__version__)),
        "engine": {"where": "kubernetes", "version": None},
        "timings": timings,
        # Kubernetes keeps the log (`kubectl logs job/NAME`); saved beside meta/, it is read.
        "log": records.LOG,
        "artifacts": records.artifacts(artifacts) if artifacts.is_dir() else [],
        "metrics": report.get("metrics"),
        "observed": report.get("observed") or {},
        "violations": report.get("violations") or [],
        "fingerprint": report.get("fingerprint") or {},
        "host": node,
    }
    if status != "succeeded":
        record["log_tail"] = records.log_tail(folder / records.LOG)
    return record


_NOT_A_JOB_HINT = "pass one Job's folder as gathered from the claim (JOB-NAME/ with meta/)"


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        document = untrusted.load_json(path, what="it", follow_symlinks=False)
    except FileNotFoundError:
        missing = path.relative_to(folder).as_posix()
        hint = (
            "the run has not finished, or its container was killed before the runtime "
            "could report: see `kubectl describe job` and `kubectl logs job/NAME`"
            if path.name == RUNTIME_REPORT
            else _NOT_A_JOB_HINT
        )
        raise records.CorruptRecord(f"{folder} is not a Job's output: no {missing}", hint) from None
    except untrusted.UntrustedInputError as error:
        raise records.CorruptRecord(
            f"{path} cannot be read: it {error.reason}", _NOT_A_JOB_HINT
        ) from None
    if not isinstance(document, dict):
        raise records.CorruptRecord(f"{path} is not a JSON object", _NOT_A_JOB_HINT)
    return document


def _outcome(
    report: Mapping[str, Any], facts: Mapping[str, Any], artifacts: Path
) -> tuple[str, int | None, str | None]:
    exit_code = report.get("exit_code")
    code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
    error = report.get("error") if isinstance(report.get("error"), str) else None
    status = report.get("status")
    if status == "interrupted":
        return "aborted", code, error or "the runtime was interrupted"
    if status != "succeeded":
        return "failed", code, error or f"the runtime reported {status!r}"
    outputs = facts.get("outputs") or []
    missing = [
        glob
        for glob in outputs
        if isinstance(glob, str) and not (artifacts.is_dir() and any(artifacts.glob(glob)))
    ]
    if missing:
        return "failed", code, f"declared output {missing[0]!r} was not written"
    return "succeeded", code, None


# -- the command ---------------------------------------------------------------------------


@click.group("k8s")
def k8s_group() -> None:
    """Run experiments on Kubernetes nodes in a pinned image.

    `harness k8s render` writes the manifests (one Job per node and experiment);
    `kubectl apply --server-side -f FILE` starts them; `kubectl cp` copies their folders
    off the claim and `harness collect` turns each into a run record.
    """


@k8s_group.command("render")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--image",
    required=True,
    metavar="REF@sha256:DIGEST",
    help="The pushed image, by digest (every node must pull the same bytes).",
)
@click.option(
    "--image-id",
    metavar="sha256:HEX",
    help="The image's ID (`docker image inspect --format '{{.Id}}' REF`), for the records; "
    "without it they carry the registry digest in its place.",
)
@click.option(
    "--variant",
    metavar="NAME",
    help="The image's variant, for the records (default: each experiment's own).",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="NODE",
    help="Run on this node, by its kubernetes.io/hostname label (repeatable; one Job per node "
    "and experiment).",
)
@click.option(
    "--selector",
    "selectors",
    multiple=True,
    metavar="KEY=VALUE",
    help="Another node label every Job's node must have (repeatable).",
)
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    metavar="N",
    help="GPUs per Job (nvidia.com/gpu; the cuda variant; device cuda). Default 0: CPU.",
)
@click.option(
    "--claim",
    metavar="PVC",
    help=f"PersistentVolumeClaim the Jobs write to (default {DEFAULT_CLAIM}).",
)
@click.option("--namespace", metavar="NS", help="Namespace of everything rendered.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifests to this file (default: stdout).",
)
@click.pass_obj
def render_command(
    state: State,
    *,
    names: tuple[str, ...],
    image: str,
    image_id: str | None,
    variant: str | None,
    nodes: tuple[str, ...],
    selectors: tuple[str, ...],
    gpus: int | None,
    claim: str | None,
    namespace: str | None,
    output: Path | None,
) -> None:
    """Write Kubernetes manifests that run experiments on chosen nodes in a pinned image.

    One YAML file holds: a ConfigMap with the project's source (the files git tracks, as a
    gzip tar that is the same bytes every time; never .harness or virtual environments)
    and each Job's run spec; a NetworkPolicy that cuts the runs off the network; one Job
    per node and experiment (NAMEs, or every declared one), pinned to its node, run as
    user 10001 with a read-only root, no service account token, the determinism
    environment of `harness run` and the config's seed, profile, threads and timeout,
    writing its artifacts and report to the claim under JOB-NAME/; and a Pod
    harness-gather that mounts the claim read-only to copy those folders back.

    The image must be pushed and named by digest. The claim must exist (ReadWriteMany
    when the nodes differ). Experiments with inputs are refused: inputs are not shipped
    to clusters yet. Apply with --server-side: the archive makes the ConfigMap too large
    for the annotation that client-side apply keeps.

    \b
      harness k8s render --image REGISTRY/harness@sha256:DIGEST \\
          --node node-a --node node-b -o runs.yaml
      harness k8s render torch --image REF@sha256:DIGEST --variant cuda --gpus 1 \\
          --node gpu-1 --selector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 -o gpu.yaml
      kubectl apply --server-side -f runs.yaml
      kubectl get jobs -l harness.dev/render=ID --watch     (ID: see the file's header)
      kubectl cp harness-gather:/records ./collected
      harness collect collected/*

    Defaults come from [tool.harness.k8s]: nodes (list), selectors (table), claim,
    namespace, gpus.
    """
    config = state.config()
    settings = settings_from(
        config.table("k8s"),
        image=image,
        image_id=image_id,
        variant=variant,
        nodes=nodes,
        selectors=selectors,
        gpus=gpus,
        claim=claim,
        namespace=namespace,
    )
    experiments = [config.experiment(name) for name in dict.fromkeys(names)] or list(
        config.experiments.values()
    )
    rendered = render(config, experiments, settings, say=state.ui.say)
    text = rendered.yaml(settings, output)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic.write_text(output, text)
    state.ui.result(
        f"wrote {output}: {len(rendered.jobs)} Job(s), render {rendered.render_id}; "
        f"apply with `kubectl apply --server-side -f {output}`"
    )


__all__ = ["k8s_group", "record_from_job_output", "render", "settings_from"]
