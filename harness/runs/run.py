"""`harness run`: one experiment in a fresh, locked-down container, and its run record.

The container gets no network, a read-only root file system with a private /tmp, the
non-root user of the image, the project source and the inputs read-only, and two writable
folders: the artifacts and the runtime's report. What that container is, environment
included, is :mod:`harness.container`'s plan; this module turns it into the engine's
options, with this machine's folders (or volumes, on a host that cannot see them) behind
its mounts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import harness
from harness import atomic, owner, untrusted, vcs
from harness import container as container_plan
from harness.cleanup import quietly
from harness.config import Config, Experiment
from harness.container import (
    CONTAINER_USER,
    INPUTS,
    META,
    OUTPUT,
    PROJECT,
    PROJECT_SOURCE,
    Source,
)
from harness.engine import ContainerEngine, ContainerSpec, Mount, RunOutcome, VolumeMount
from harness.errors import ConfigError, EngineError, EngineUnavailable, HarnessError
from harness.fleet import hosts
from harness.images.build import LABEL_CONSTRAINTS, LABEL_DOCKERFILE, LABEL_LOCK, BuildResult
from harness.integrations import dvc
from harness.runs import records, run_folder, staging
from harness.runs.variations import CONTROL, Setup
from harness.runtime.determinism import environment as determinism_environment
from harness.trust import attest

RUN_SPEC_SCHEMA = "harness.run-spec/v1"
RUNTIME_REPORT = "runtime.json"
# The runtime's report holds metrics, observations and the environment's fingerprint: a
# few kilobytes. Past this it is an attack, not a report.
REPORT_LIMIT = 4 << 20


@dataclass(frozen=True)
class RunRequest:
    experiment: Experiment
    seed: int
    profile: str
    threads: int
    timeout: int | None = None
    cpus: float | None = None
    gpus: bool = False
    # Hostname, user, working directory, CPU set and environment: the control setup, or
    # one changed by `harness verify`'s variations.
    setup: Setup = CONTROL


@dataclass(frozen=True)
class RunResult:
    run_id: str
    folder: Path
    record: Mapping[str, Any]

    @property
    def status(self) -> str:
        return str(self.record["status"])

    @property
    def digests(self) -> dict[str, str]:
        return {a["path"]: a["sha256"] for a in self.record["artifacts"]}


def run_experiment(
    engine: ContainerEngine,
    config: Config,
    image: BuildResult,
    request: RunRequest,
    *,
    host: hosts.Host | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Run one experiment and write its record; the record says how it ended.

    ``host`` is the engine's place among the hosts (default: this machine's engine, which
    sees the project through bind mounts); a host with ``files = "copy"`` gets the run's
    files copied in and its outputs copied back. ``say`` hears when the run starts and how
    it ended; callers name the run in front (runs may overlap).
    """
    host = host or hosts.local_host(config)
    experiment = request.experiment
    device = "cuda" if request.gpus else "cpu"
    for path in (config.project_root, *experiment.inputs.values()):
        _check_readable_by_others(path)
    inputs = input_digests(config, experiment)
    run_id = records.new_run_id(experiment.name)
    folder = records.runs_root(config.project_root) / run_id
    artifacts, meta = folder / records.ARTIFACTS, folder / records.META
    setup = request.setup
    plan = container_plan.plan(request, image=image.image_id, run_id=run_id, memory=config.memory)
    environment = dict(plan.environment)
    spec = run_spec(
        experiment,
        run_id,
        seed=request.seed,
        profile=request.profile,
        threads=request.threads,
        device=device,
    )
    spec["project"] = plan.working_dir  # the view lies where the experiment stands
    record = {
        **new_record(config, request, spec, inputs, environment=environment, host=host.name),
        "image": {
            "reference": image.reference,
            "id": image.image_id,
            "digest": _image_digest(engine, image),
            "variant": image.variant,
            # "project:Dockerfile" or "harness:Dockerfile": which one built the image.
            "dockerfile": image.labels.get(LABEL_DOCKERFILE),
        },
        "constraints_sha256": image.labels.get(LABEL_CONSTRAINTS),
        "lock_sha256": image.labels.get(LABEL_LOCK),
        "container": {
            "network": "bridge" if plan.confinement.network else "none",
            "read_only_root": plan.confinement.read_only_root,
            "user": plan.user,
            "hostname": plan.hostname,
            "working_dir": plan.working_dir,
            "cpuset": plan.cpuset,
            "variations": list(setup.variations),
            "cpus": request.cpus,
            "gpus": request.gpus,
            "timeout_s": request.timeout,
            "files": host.files,
            # How a later harness finds this run's container (see harness.runs.reconcile).
            "labels": dict(plan.labels),
        },
        "engine": {"where": engine.where, "version": engine.version().get("Version")},
    }
    # The container's user is not the host's: it must be able to write its outputs, and
    # nobody else may (see harness.runs.run_folder).
    writer = None
    if host.files == "bind":
        uid, gid = plan.user_ids
        writer = run_folder.ContainerUser(uid, gid, run_folder.maps_users(engine.info()))
    start_folder(folder, spec, record, writer=writer)

    sources = {
        Source.PROJECT: config.project_root,
        Source.SPEC: folder / "spec.json",
        Source.ARTIFACTS: artifacts,
        Source.META: meta,
    }
    container = engine_spec(
        plan,
        {
            mount: sources[mount.source] if mount.name is None else experiment.inputs[mount.name]
            for mount in plan.mounts
        }
        if host.files == "bind"
        else None,
    )
    say(f"started {run_id} in {image.reference} on {host.name}")
    with unfinished(record, folder, stopped="the container was removed"):
        if host.files == "bind":
            outcome = engine.run_logged(
                container, log=folder / records.LOG, timeout=request.timeout
            )
        else:
            outcome = _run_copied(
                engine, config, container, folder, experiment, timeout=request.timeout
            )
        record["timings"]["container_s"] = round(outcome.seconds, 3)
        result = settle(
            record,
            folder,
            experiment,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            timeout=request.timeout,
        )
    say(ended(result, outcome.seconds))
    full = disk_full(folder) if result.status != "succeeded" else None
    if full is not None:
        # Not an answer about the experiment: the machine's trouble, reported as such.
        raise HarnessError(f"run {run_id} {result.status}: {full}", f"free space under {folder}")
    return result


def engine_spec(
    plan: container_plan.ContainerPlan, sources: Mapping[container_plan.Mount, Path] | None
) -> ContainerSpec:
    """The engine's options for ``plan``: each mount bound to its folder of this machine in
    ``sources``, or none when the files travel by volume (see :func:`_run_copied`)."""
    return ContainerSpec(
        image=plan.image,
        command=plan.command,
        environment=plan.environment,
        mounts=tuple(Mount(sources[m], m.target, read_only=m.read_only) for m in plan.mounts)
        if sources is not None
        else (),
        user=plan.user,
        working_dir=plan.working_dir,
        read_only_root=plan.confinement.read_only_root,
        network=plan.confinement.network,
        tmpfs={t.target: t.docker_options for t in plan.tmpfs},
        cpus=plan.cpus,
        cpuset=plan.cpuset,
        hostname=plan.hostname,
        gpus=plan.gpus,
        labels=plan.labels,
        pids_limit=plan.confinement.pids_limit,
        memory=plan.memory,
    )


@contextlib.contextmanager
def unfinished(record: dict[str, Any], folder: Path, *, stopped: str) -> Iterator[None]:
    """End the record of a run that stops before it is settled, then let the error go on.

    A record is ``running`` only while its run is under way: Ctrl-C makes it ``aborted``,
    an engine that stopped answering ``lost`` (how the experiment ended is unknown), and
    any other error ``failed``, with the error as its reason.
    """
    try:
        yield
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            status, reason = "aborted", f"interrupted (Ctrl-C or SIGTERM); {stopped}"
        elif isinstance(error, HarnessError):
            lost = isinstance(error, EngineUnavailable)
            status, reason = ("lost" if lost else "failed"), error.message
            # Whoever handles the error (verify) can name the run it ended.
            error.run_id = folder.name
        elif isinstance(error, OSError):
            status, reason = "failed", f"harness could not go on: {os_error(error)}"
        else:
            status, reason = "failed", f"harness failed: {type(error).__name__}: {error}"
        # A record that cannot be written (a full disk) must not hide why the run ended.
        quietly(
            f"writing the record of {folder.name}",
            partial(finish, record, folder, status, None, reason),
        )
        raise


def settle(
    record: dict[str, Any],
    folder: Path,
    experiment: Experiment,
    *,
    exit_code: int,
    timed_out: bool,
    timeout: float | None,
    where: str | None = None,
) -> RunResult:
    """Finish a record once the runtime has exited, in a container or on the host: take in
    what the runtime reported, then decide how the run ended. ``where`` (a batch job, say)
    is added to the reason of a run that failed."""
    # The container has stopped: nobody but harness writes its folders from here on.
    run_folder.close((folder / records.ARTIFACTS, folder / records.META), folder)
    refused: list[str] = []
    report = runtime_report(folder, refused=refused)
    # Only what outputs names is an artifact; the rest is set aside before anything is hashed
    # (the runtime did it in the container; this is for images of an older harness). A
    # link the container left where the set-aside files go is refused like any other.
    try:
        records.set_aside_unlisted(folder, experiment.artifact_globs, experiment.exclude)
    except records.CorruptRecord as unsafe:
        refused.append(unsafe.message)
    except OSError:
        pass  # a folder the container made that this user cannot change: finish lists it
    if report is not None:
        take_report(record, report, refused)
    if refused:
        record["refused"] = refused
    if timed_out:
        return finish(record, folder, "timeout", exit_code, f"stopped after {timeout} s")
    if refused:
        # What the container left in place of its report is an attack, not a result.
        return finish(record, folder, "failed", exit_code, f"harness refused {refused[0]}")
    if exit_code != 0:
        error = (report or {}).get("error")
        reason = _one_line(error) if isinstance(error, str) and error.strip() else None
        reason = reason or f"the experiment exited with {exit_code}"
        if where:
            reason = f"{reason} ({where})"
        full = disk_full(folder)
        if full is not None:
            reason = f"{reason} ({full})"
        return finish(record, folder, "failed", exit_code, reason)
    missing = _missing_outputs(experiment, folder / records.ARTIFACTS)
    if missing:
        return finish(
            record,
            folder,
            "failed",
            0,
            missing_output(experiment, missing[0], folder / records.ARTIFACTS),
        )
    return finish(record, folder, "succeeded", 0, None)


def start_folder(
    folder: Path,
    spec: Mapping[str, Any],
    record: Mapping[str, Any],
    *,
    writer: run_folder.ContainerUser | None = None,
) -> None:
    """Make the run's folder (outputs, spec, first record), all or nothing: private to the
    invoking user, its outputs writable by ``writer`` (the container's user) alone, or by
    nobody but harness when None (the host executor, a host that gets copies).

    Everything that can fail before a run starts (the source's state, the engine's
    answers) is asked before this; should this fail too, the folder goes, as `runs list`
    shows only folders with a record and nothing would ever remove it.
    """
    run_folder.make_private(folder)
    try:
        for writable in (folder / records.ARTIFACTS, folder / records.META):
            run_folder.open_to(writable, writer)
        atomic.write_text(folder / "spec.json", json.dumps(spec, indent=2, sort_keys=True) + "\n")
        records.write(folder, record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def input_digests(config: Config, experiment: Experiment) -> dict[str, dict[str, Any]]:
    """Each input's digest, with its DVC version where DVC tracks it. Data that DVC tracks
    must still be the version dvc.lock names: checked before anything is written, so a
    mismatch costs no run."""
    inputs = {name: records.digest_path(path) for name, path in experiment.inputs.items()}
    for name, tracked in dvc.check_inputs(config.project_root, experiment.inputs).items():
        inputs[name].update(tracked)
    return inputs


def new_record(
    config: Config,
    request: RunRequest,
    spec: Mapping[str, Any],
    inputs: Mapping[str, Mapping[str, Any]],
    *,
    environment: Mapping[str, str],
    host: str,
) -> dict[str, Any]:
    """The fields every run's record starts with, in a container or on the host: what ran,
    with which seed and settings, from which source, on which inputs, where and when."""
    experiment = request.experiment
    source = vcs.source_state(config.project_root)
    return {
        "schema": records.SCHEMA,
        "run_id": spec["run_id"],
        "status": "running",
        "experiment": experiment.name,
        "entry": experiment.entry,
        "command": spec["command"],
        "parameters": spec["parameters"],
        "seed": request.seed,
        "profile": request.profile,
        "threads": request.threads,
        "device": spec["device"],
        "source": {
            "commit": source.commit,
            "dirty": source.dirty,
            "diff_sha256": source.diff_sha256,
        },
        "inputs": {
            name: {"path": _relative(path, config), **inputs[name]}
            for name, path in experiment.inputs.items()
        },
        "environment": dict(environment),
        "harness_version": harness.__version__,
        # Who runs it: a later harness that finds this record still running and this
        # process gone ends it as lost (see harness.runs.reconcile).
        "harness_process": owner.current().as_dict(),
        "host": host,
        "timings": {"started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "log": records.LOG,
        "artifacts": [],
    }


def record_without_image(
    config: Config,
    request: RunRequest,
    spec: Mapping[str, Any],
    inputs: Mapping[str, Mapping[str, Any]],
    *,
    device: str,
    switches: bool,
    host: str,
    executor: str,
) -> dict[str, Any]:
    """The record of a run no image isolated (the host executor's, a SLURM job's): the
    Python environment it ran in stands in for the image's digest, and the executor fills
    ``python_environment`` (and its own fields) in."""
    determinism = determinism_environment(
        request.seed, request.profile, request.threads, device, switches=switches
    )
    return {
        **new_record(
            config,
            request,
            spec,
            inputs,
            environment={**determinism, **request.setup.extra_env},
            host=host,
        ),
        "executor": executor,
        "switches": switches,
        "image": None,
        "python_environment": None,
        "constraints_sha256": None,
        "lock_sha256": None,
        "container": None,
        "engine": None,
        # What a container run's record keeps under container: the variations of `harness
        # verify` this run was made under, which a certificate states.
        "variations": list(request.setup.variations),
    }


def ended(result: RunResult, seconds: float) -> str:
    """The progress line of a run that ended: how, and after how long."""
    return f"{result.status} after {seconds:.1f} s ({result.run_id})"


def run_spec(
    experiment: Experiment, run_id: str, *, seed: int, profile: str, threads: int, device: str
) -> dict[str, Any]:
    """What the runtime inside the container reads: the experiment and where things are."""
    return {
        "schema": RUN_SPEC_SCHEMA,
        "run_id": run_id,
        "experiment": experiment.name,
        "entry": experiment.entry,
        "command": list(experiment.command) if experiment.command else None,
        "parameters": dict(experiment.parameters),
        "seed": seed,
        "profile": profile,
        "threads": threads,
        "device": device,
        "project": PROJECT,
        "project_source": PROJECT_SOURCE,
        "project_outputs": experiment.artifact_globs,
        "output": OUTPUT,
        "meta": META,
        "inputs": {name: f"{INPUTS}/{name}" for name in experiment.inputs},
        # What the runtime sets aside as not artifacts (see harness.runtime.outputs).
        "outputs": experiment.artifact_globs,
        "exclude": list(experiment.exclude),
        "stdout": experiment.stdout,
    }


def _run_copied(
    engine: ContainerEngine,
    config: Config,
    container: ContainerSpec,
    folder: Path,
    experiment: Experiment,
    *,
    timeout: float | None,
) -> RunOutcome:
    """Run on an engine that cannot see this machine: files in by volume, outputs back by copy.

    One volume holds /harness (project, spec, inputs), mounted read-only like the bind
    mounts it replaces; the output and meta folders get a writable volume each.
    """
    packed = staging.archive(
        config.project_root,
        folder / "spec.json",
        experiment.inputs,
        harness_state=records.RUNS.parts[0],
    )
    with packed, engine.volumes(3) as (files, output, meta):
        engine.fill(
            container.image,
            (VolumeMount(files, "/harness"), VolumeMount(output, OUTPUT), VolumeMount(meta, META)),
            "/harness",
            packed,
        )
        staged = replace(
            container,
            volumes=(
                VolumeMount(files, "/harness", read_only=True),
                VolumeMount(output, OUTPUT),
                VolumeMount(meta, META),
            ),
        )
        return engine.run_logged(
            staged,
            log=folder / records.LOG,
            timeout=timeout,
            copy_out={OUTPUT: folder / records.ARTIFACTS, META: folder / records.META},
        )


def finish(
    record: dict[str, Any], folder: Path, status: str, exit_code: int | None, error: str | None
) -> RunResult:
    """Write the record's final state: how it ended, its artifacts, and the log's tail."""
    record["status"] = status
    record["exit_code"] = exit_code
    record["error"] = error
    record["timings"]["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    artifacts = folder / records.ARTIFACTS
    # The container has stopped (or never started): its output folders are harness's again.
    run_folder.close((artifacts, folder / records.META), folder)
    try:
        # A run stopped at its timeout may have written on (an engine slow to stop it):
        # nothing it left is an artifact.
        listed = artifacts.is_dir() and status != "timeout"
        record["artifacts"] = records.artifacts(artifacts) if listed else []
        record["unlisted"] = records.unlisted(folder)
    except records.CorruptRecord as unsafe:
        # A link among the outputs would make the record vouch for a file of this machine.
        record.update(artifacts=[], status="failed", error=unsafe.message)
        record.setdefault("refused", []).append(unsafe.message)
    if record["status"] != "succeeded":
        record["log_tail"] = records.log_tail(folder / records.LOG)
    records.write(folder, record)
    # This host vouches for the run it made, when it has a key (see harness.trust.attest).
    attest.sign_finished(folder, record)
    return RunResult(record["run_id"], folder, record)


def os_error(error: OSError) -> str:
    """An OS error in words: what it is, and on which file."""
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or error}{where}"


# Below this many bytes free, a failed run is taken to have failed for want of space.
_FULL_BYTES = 1 << 20


def disk_full(folder: Path) -> str | None:
    """Why the run's folder cannot take more, when its file system is (nearly) full."""
    try:
        found = os.statvfs(folder)
    except OSError:
        return None
    free = found.f_bavail * found.f_frsize
    if free >= _FULL_BYTES:
        return None
    return f"the file system of {folder} is full ({free} bytes free)"


def _check_readable_by_others(path: Path) -> None:
    """The container's user is not the host's: what it mounts must be readable by others."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise HarnessError(f"{path} cannot be read: {error.strerror}", "fix the path") from None
    needed = 0o005 if stat.S_ISDIR(mode) else 0o004
    if mode & needed != needed:
        raise HarnessError(
            f"{path} (mode {stat.S_IMODE(mode):04o}) is not readable by the container's user "
            f"{CONTAINER_USER.split(':', maxsplit=1)[0]}",
            f"chmod o+r{'x' if stat.S_ISDIR(mode) else ''} {path}",
        )


def runtime_report(folder: Path, *, refused: list[str] | None = None) -> dict[str, Any] | None:
    """What the runtime reported in the run's meta/runtime.json, or None.

    The container wrote that file, so it is read as anything from there is: never through
    a link (in meta/ or in the path to it), only a regular file, at most
    ``REPORT_LIMIT`` bytes, without blocking on a pipe, JSON within bounds. A file refused
    is one line in ``refused`` (the record's), and the run goes on as one that reported
    nothing.
    """
    relative = f"{records.META}/{RUNTIME_REPORT}"
    try:
        data = untrusted.read_inside(folder, relative, limit=REPORT_LIMIT, what="the report")
        document = untrusted.parse_json(data, what=relative)
    except FileNotFoundError:
        return None  # a runtime that crashed before writing: the log says why
    except untrusted.UntrustedInputError as error:
        if refused is not None:
            refused.append(f"{relative} {_one_line(error.reason)}")
        return None
    if not isinstance(document, dict):
        if refused is not None:
            refused.append(f"{relative} is not a JSON object")
        return None
    return document


# Lines of what a run's MLflow store set aside that the record keeps (one per kind).
_SET_ASIDE_LINES = 100


def take_report(record: dict[str, Any], report: Mapping[str, Any], refused: list[str]) -> None:
    """Copy into the record what the runtime reported, each field only in the shape the
    record gives it (the report comes from the container, like everything in meta/), and
    never over harness's own timings."""
    for key, kind, empty in (
        ("metrics", dict, None),
        ("observed", dict, {}),
        ("violations", list, []),
        ("fingerprint", dict, {}),
    ):
        value = report.get(key, empty)
        if isinstance(value, kind) or value is empty:
            record[key] = value
        else:
            record[key] = empty
            refused.append(
                f"{records.META}/{RUNTIME_REPORT}: its {key} is not a JSON {kind.__name__}"
            )
    set_aside = report.get("set_aside")
    if isinstance(set_aside, list) and all(isinstance(line, str) for line in set_aside):
        if set_aside:
            record["set_aside"] = [_one_line(line) for line in set_aside[:_SET_ASIDE_LINES]]
    elif set_aside is not None:
        refused.append(f"{records.META}/{RUNTIME_REPORT}: its set_aside is not a list of lines")
    seeding = report.get("seeding")
    if isinstance(seeding, dict):
        record["seeding"] = seeding
    elif seeding is not None:
        refused.append(f"{records.META}/{RUNTIME_REPORT}: its seeding is not a JSON dict")
    timings = report.get("timings")
    if isinstance(timings, dict):
        own = set(record["timings"]) | {"container_s", "process_s", "finished_at"}
        record["timings"].update(
            (name, value)
            for name, value in timings.items()
            if name not in own
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        )


def _one_line(text: str, limit: int = 500) -> str:
    """A message from elsewhere as one line of bounded length."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _missing_outputs(experiment: Experiment, artifacts: Path) -> list[str]:
    try:
        written = [path.relative_to(artifacts).as_posix() for path in records.entries(artifacts)]
    except (OSError, records.CorruptRecord):
        written = []  # no folder, or one finish refuses
    return [
        glob
        for glob in experiment.outputs
        if not any(records.is_artifact(path, [glob], experiment.exclude) for path in written)
    ]


def missing_output(experiment: Experiment, glob: str, artifacts: Path) -> str:
    """One line for a declared output that matched nothing: what was written instead, and
    the two ways to fix it."""
    # What the outputs did not name was set aside; it is still what the experiment wrote.
    written = sorted(
        path.relative_to(where).as_posix()
        for where in (artifacts, artifacts.parent / records.UNLISTED)
        for path in where.rglob("*")
        if path.is_file() and not path.is_symlink()
    )
    if written:
        more = f" and {len(written) - 3} more" if len(written) > 3 else ""
        instead = f"it wrote {', '.join(written[:3])}{more}"
    else:
        instead = "it wrote no file at all"
    return (
        f"declared output {glob!r} matches no file the experiment wrote ({instead}) "
        f"(fix: write it into the output folder the experiment is given (output=, or "
        f"$HARNESS_OUTPUT for a command), or correct outputs under "
        f"[tool.harness.experiments.{experiment.name}])"
    )


def _image_digest(engine: ContainerEngine, image: BuildResult) -> str:
    info = engine.image(image.image_id)
    if info is not None and info.repo_digests:
        return info.repo_digests[0].split("@", 1)[1]
    return image.image_id  # never pushed: its ID is its content digest (of the config)


def _relative(path: Path, config: Config) -> str:
    try:
        return path.relative_to(config.project_root).as_posix()
    except ValueError:
        return str(path)


def check_gpu_request(engine: ContainerEngine, variant: str, gpus: bool) -> None:
    """Refuse --gpus before anything starts when it cannot work."""
    if not gpus:
        return
    if variant != "cuda":
        raise ConfigError(f"--gpus needs the cuda variant, not {variant!r}", "add --variant cuda")
    if not engine.has_gpu_runtime():
        raise EngineError(
            f"the engine at {engine.where} has no NVIDIA runtime, so no GPU can be passed in",
            "install the NVIDIA Container Toolkit on this host, or run without --gpus",
        )
