"""One run as one SLURM batch job: staged, submitted, waited for, brought back checked.

The run's record is written here, as for any run, and stays ``running`` only while its
job is pending or running. The job's folder (under the host's workdir, which this
machine and the nodes both see) holds a copy of the project and the inputs, the spec,
the constraints file, a private copy of harness's runtime and the batch script; the job
writes the artifacts, the runtime's report, the log and a description of its
environment there. Nothing the job wrote is trusted: it comes back as an upload does in
`harness collect` (plain files only, no links, bounded sizes and depth, copied without
following links), and what ran where is SLURM's word (``scontrol show job``), never the
job's.

How the job ended decides how the record ends: a script that ran to its end is settled
as any run (its exit code is SLURM's); a job cut short (time limit, cancelled,
pre-empted, node failure, out of memory) ends with that cause and its job id, and
nothing it left counts as an artifact.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness import atomic, project_files, untrusted
from harness.config import Config, Experiment
from harness.digests import sha256_file
from harness.errors import ConfigError
from harness.fleet.hosts import Host
from harness.fleet.slurm import node_keys, scheduler, script
from harness.fleet.slurm.settings import SlurmSettings
from harness.runs import records
from harness.runs.host_executor import (
    PASSED_THROUGH,
    refuse_what_needs_a_container,
    staged_runtime,
)
from harness.runs.run import (
    RunRequest,
    RunResult,
    finish,
    input_digests,
    record_without_image,
    run_spec,
    settle,
    start_folder,
    unfinished,
)
from harness.runtime.determinism import environment as determinism_environment
from harness.trust import keys, node_attestation

# What one job may bring back, all files together (as `harness collect` allows one run).
MAX_BYTES = 8 << 30
_MAX_FILES = 100_000
# What is kept of a job's log: its tail past this.
LOG_LIMIT = 64 << 20
# The environment's description: a few kilobytes per distribution.
_DESCRIPTION_LIMIT = 4 << 20
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# The job's own output folders, as the spec names them.
_OUT, _META = "out", "meta"


def run_on_slurm(
    config: Config,
    request: RunRequest,
    host: Host,
    *,
    variant: str | None = None,
    node: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Run one experiment as a batch job on ``host`` (on ``node`` when given) and write its
    record; the record says how the job ended."""
    settings = _settings(host)
    experiment = request.experiment
    refuse_what_needs_a_container(
        request,
        "a SLURM job",
        'leave out --cpus, or ask SLURM for CPUs with sbatch = ["--cpus-per-task=N"]',
    )
    chosen = config.variant(variant or experiment.variant)
    if request.gpus and chosen.device != "cuda":
        raise ConfigError(
            f"--gpus needs a CUDA variant, not {chosen.name!r}: its constraints hold no CUDA "
            "wheels",
            "add --variant cuda",
        )
    constraints = chosen.constraints
    if not constraints.is_file():
        raise ConfigError(
            f"{constraints.name} does not exist: a SLURM job makes its environment from it",
            "run `harness lock` first",
        )
    device = "cuda" if request.gpus else "cpu"
    # The keys kept here of the nodes that sign (read now: a bad one stops the run unmade).
    node_keys_kept = (
        None if settings.node_key is None else keys.node_public_keys(config.project_root, host.name)
    )
    inputs = input_digests(config, experiment)
    run_id = records.new_run_id(experiment.name)
    folder = records.runs_root(config.project_root) / run_id
    staging = settings.folder(config.project_root)
    job = staging / "jobs" / run_id
    spec = run_spec(
        experiment,
        run_id,
        seed=request.seed,
        profile=request.profile,
        threads=request.threads,
        device=device,
    )
    spec.update(
        {
            "project": str(job / script.PROJECT),
            "project_source": None,
            "output": str(job / _OUT),
            "meta": str(job / _META),
            "inputs": {name: str(job / "inputs" / name) for name in experiment.inputs},
            "switches": True,
        }
    )
    # The environment the job made stands in for the image's digest: null until the job
    # has described it, and for a job cut short before that.
    record = record_without_image(
        config,
        request,
        spec,
        inputs,
        device=device,
        switches=True,
        host=host.name,
        executor="slurm",
    )
    record["constraints_sha256"] = sha256_file(constraints)
    record["slurm"] = {
        "host": host.name,
        "partition": settings.partition,
        "job_id": None,
        "state": None,
        "node": None,
        # The key of the node that signed what it saw (see node_keys); null without.
        **({"node_key": None} if settings.node_key is not None else {}),
    }
    start_folder(folder, spec, record)
    try:
        with unfinished(record, folder, stopped="its SLURM job was never submitted"):
            plan = _plan(
                config, settings, request, job, run_id=run_id, constraints=constraints, node=node
            )
            _stage(
                config, request, job, spec=folder / "spec.json", constraints=constraints, plan=plan
            )
            job_id = scheduler.submit(job / script.SCRIPT, cwd=job)
            record["slurm"]["job_id"] = job_id
            records.write(folder, record)
        say(f"submitted {run_id} as SLURM job {job_id} on {host.name}")

        def tell(info: scheduler.JobInfo) -> None:
            where = f" on {info.node}" if info.node else ""
            say(f"job {job_id} {info.state.lower()}{where}")

        # Ctrl-C cancels the job (see scheduler.wait); the record names it.
        with unfinished(record, folder, stopped=f"SLURM job {job_id} was cancelled (scancel)"):
            submitted = time.monotonic()
            info = scheduler.wait(job_id, on_change=tell)
            # Queueing included: what the run cost in waiting, as the user saw it.
            record["timings"]["job_s"] = round(time.monotonic() - submitted, 3)
            result = _settle_job(
                record,
                folder,
                experiment,
                job,
                info=info,
                constraints=constraints.name,
                node_keys_kept=node_keys_kept,
            )
    finally:
        # What the job left that counts is in the run's folder now; the copies go.
        shutil.rmtree(job, ignore_errors=True)
    say(f"{result.status} ({run_id}, SLURM job {job_id} {info.state} on {info.node or '?'})")
    return result


def _settings(host: Host) -> SlurmSettings:
    if host.slurm is None:
        raise ConfigError(f"host {host.name} is not a SLURM host", 'declare it with kind = "slurm"')
    return host.slurm


def _plan(
    config: Config,
    settings: SlurmSettings,
    request: RunRequest,
    job: Path,
    *,
    run_id: str,
    constraints: Path,
    node: str | None,
) -> script.JobPlan:
    """What the run's batch script says."""
    python = settings.python or config.python or "python3"
    uv_options = script.uv_options(config.find_links, config.index_url)
    # One environment per constraints file, interpreter and index: the same in every job
    # that asks for it, made by the first.
    key = hashlib.sha256(
        "\0".join([sha256_file(constraints), python, *uv_options]).encode()
    ).hexdigest()[:24]
    setup = request.setup
    variables = {
        **determinism_environment(
            request.seed, request.profile, request.threads, "cuda" if request.gpus else "cpu"
        ),
        "HARNESS_RUN_ID": run_id,
        **setup.extra_env,
    }
    for name in setup.unset_env:
        variables.pop(name, None)
    kept = [*PASSED_THROUGH, *(("CUDA_VISIBLE_DEVICES",) if request.gpus else ())]
    return script.JobPlan(
        job_name=f"harness-{request.experiment.name}",
        job=job,
        environment=settings.folder(config.project_root) / "environments" / key,
        uv_cache=settings.folder(config.project_root) / "uv-cache",
        python=python,
        uv=settings.uv,
        uv_options=uv_options,
        sbatch=script.sbatch_options(
            settings,
            job_name=f"harness-{request.experiment.name}",
            job=job,
            gpus=request.gpus,
            timeout_s=request.timeout,
            node=node,
        ),
        variables=variables,
        passed_through=tuple(name for name in kept if name not in setup.unset_env),
        # Every job's copy of the project lies in a folder of its own, so the project's
        # path differs from run to run already (what the workdir variation varies).
        working_dir=job / script.PROJECT,
        one_cpu=setup.cpuset is not None,
        node_key=settings.node_key,
        heading=(
            f"harness run {run_id}: experiment {request.experiment.name}, seed {request.seed}",
        ),
    )


def _stage(
    config: Config,
    request: RunRequest,
    job: Path,
    *,
    spec: Path,
    constraints: Path,
    plan: script.JobPlan,
) -> None:
    """Lay out the job's folder: the project and inputs copied, the spec, the constraints,
    the runtime, the script, and the folders the job writes."""
    job.parent.mkdir(parents=True, exist_ok=True)
    job.mkdir(mode=0o700)
    _copy_tree(config.project_root, job / script.PROJECT, skip_state=True)
    (job / "inputs").mkdir()
    for name, source in request.experiment.inputs.items():
        if source.is_dir():
            _copy_tree(source, job / "inputs" / name, skip_state=False)
        else:
            shutil.copy2(source, job / "inputs" / name)
    shutil.copy2(spec, job / script.SPEC)
    shutil.copy2(constraints, job / script.CONSTRAINTS)
    with staged_runtime() as runtime:
        shutil.copytree(runtime, job / script.RUNTIME)
    for writable in (_OUT, _META, script.HOME):
        (job / writable).mkdir()
    text = script.render(plan)
    atomic.write_text(job / script.SCRIPT, text)
    # The script stays with the run's record: what ran, to read.
    atomic.write_text(spec.parent / script.SCRIPT, text)


def _copy_tree(source: Path, target: Path, *, skip_state: bool) -> None:
    """The files that travel (see :mod:`harness.project_files`), links kept as links."""
    target.mkdir()
    for path in project_files.walk(source, skip_state=skip_state):
        destination = target / path.relative_to(source)
        if path.is_symlink():
            destination.symlink_to(path.readlink())
        elif path.is_dir():
            destination.mkdir()
        else:
            shutil.copy2(path, destination)


def _settle_job(
    record: dict[str, Any],
    folder: Path,
    experiment: Experiment,
    job: Path,
    *,
    info: scheduler.JobInfo,
    constraints: str,
    node_keys_kept: Mapping[str, keys.PublicKey] | None = None,
) -> RunResult:
    """End the record as the job ended, with what it left brought back checked (and the
    node's statement, when the host's nodes sign: ``node_keys_kept`` are their keys kept
    here, by node)."""
    record["host"] = info.node or record["host"]
    record["slurm"].update(state=info.state, node=info.node, exit_code=info.exit_code)
    where = f"SLURM job {info.job_id} {info.state} " + (
        f"on {info.node}" if info.node else "before it started"
    )
    try:
        return _take_in(
            record,
            folder,
            experiment,
            job,
            info=info,
            where=where,
            constraints=constraints,
            node_keys_kept=node_keys_kept,
        )
    except (
        records.CorruptRecord,
        untrusted.UntrustedInputError,
        node_attestation.NodeStatementError,
    ) as refused:
        # What the job left in place of its outputs is an attack, not a result: nothing
        # of it counts, and the run failed.
        for taken in (folder / records.ARTIFACTS, folder / records.META):
            shutil.rmtree(taken, ignore_errors=True)
            taken.mkdir(mode=0o700)
        record.setdefault("refused", []).append(refused.message)
        # What was refused: a file the job left, or the run its node's statement vouches for.
        what = "the run: " if isinstance(refused, node_attestation.NodeStatementError) else ""
        return finish(
            record,
            folder,
            "failed",
            info.exit_code,
            f"harness refused {what}{refused.message} ({where})",
        )


def _take_in(
    record: dict[str, Any],
    folder: Path,
    experiment: Experiment,
    job: Path,
    *,
    info: scheduler.JobInfo,
    where: str,
    constraints: str,
    node_keys_kept: Mapping[str, keys.PublicKey] | None,
) -> RunResult:
    """Bring back what the job left (logs always; outputs only from a script that ran to its
    end) and end the record as the job ended."""
    _check_folder(job)
    _bring_back(job / script.JOB_LOG, folder / script.JOB_LOG)
    _bring_back(job / script.LOG, folder / records.LOG)
    if info.state not in scheduler.RAN_TO_ITS_END:
        status, why = scheduler.CUT_SHORT.get(info.state, ("failed", "it ended early"))
        limit = f" ({info.time_limit})" if info.state == "TIMEOUT" and info.time_limit else ""
        reason = f" [{info.reason}]" if info.reason else ""
        return finish(record, folder, status, info.exit_code, f"{where}: {why}{limit}{reason}")
    if info.node is None:
        raise scheduler.SchedulerError(
            f"{where}: SLURM names no node it ran on", "look for the job in the cluster's logs"
        )
    environment = _environment(job)
    if environment is None:
        return finish(
            record,
            folder,
            "failed",
            info.exit_code,
            f"{where}: the job could not make its Python environment from {constraints}"
            f"{_first_error(folder / script.JOB_LOG)} (read {script.JOB_LOG} in the run's folder)",
        )
    record["python_environment"] = environment
    _bring_back_folder(job / _OUT, folder / records.ARTIFACTS)
    _bring_back_folder(job / _META, folder / records.META)
    exit_code = info.exit_code if info.exit_code is not None else 128 + info.signal
    if node_keys_kept is not None:
        # The node signed what it saw: checked against what came back, before it counts.
        node_keys.take_in(job, folder, record, info=info, exit_code=exit_code, known=node_keys_kept)
    return settle(
        record, folder, experiment, exit_code=exit_code, timed_out=False, timeout=None, where=where
    )


# How much of the job's output an error quotes.
_QUOTED = 300


def _first_error(log: Path) -> str:
    """The lines of the job's output that say what went wrong (uv's "error:" and its
    "cause:"), as ": ..." to add to a reason; empty when there is none to quote."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    start = next((n for n, line in enumerate(lines) if line.lower().startswith("error")), None)
    if start is None:
        return ""
    quoted = " ".join(
        line for line in lines[start : start + 4] if line.lower().startswith(("error", "cause"))
    )
    return ": " + (quoted if len(quoted) <= _QUOTED else quoted[: _QUOTED - 3] + "...")


def _check_folder(job: Path) -> None:
    """The job's folder must still be a folder, not a link the job left in its place."""
    if not job.is_dir() or job.is_symlink():
        raise records.CorruptRecord(
            f"the job's folder {job} is no longer a folder", "rerun the experiment"
        )


def _environment(job: Path) -> dict[str, Any] | None:
    """The environment the job described, read as anything the job wrote; None when it
    wrote none (the environment could not be made)."""
    what = f"the job's {script.ENVIRONMENT}"
    try:
        data = untrusted.read_inside(job, script.ENVIRONMENT, limit=_DESCRIPTION_LIMIT, what=what)
    except FileNotFoundError:
        return None
    if not data.strip():
        return None
    described = untrusted.parse_json(data, what=what)
    if (
        not isinstance(described, dict)
        or not isinstance(described.get("digest"), str)
        or not _DIGEST.fullmatch(described["digest"])
        or not isinstance(described.get("distributions"), list)
    ):
        raise untrusted.UntrustedInputError(what, "is not a description of an environment")
    return dict(described)


def _bring_back(source: Path, target: Path) -> None:
    """One log the job wrote, copied without following a link in any component and never
    from anything but a regular file; past LOG_LIMIT bytes only its tail, which says how
    the job ended. Nothing when there is none."""
    try:
        handle = untrusted.open_inside(source.parent, source.name, what=f"the job's {source.name}")
    except FileNotFoundError:
        return
    with os.fdopen(handle, "rb") as reading:
        status = os.fstat(reading.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise untrusted.UntrustedInputError(
                f"the job's {source.name}", "is not a regular file (a device, pipe or socket)"
            )
        if status.st_size > LOG_LIMIT:
            reading.seek(status.st_size - LOG_LIMIT)
        atomic.write_bytes(target, reading.read(LOG_LIMIT))


def _bring_back_folder(source: Path, target: Path) -> None:
    """A folder the job wrote, as `harness collect` takes in an upload: plain files and
    folders only, at most MAX_BYTES and _MAX_FILES, each file copied without following a
    link and checked against the size it had when counted."""
    if not os.path.lexists(source):
        return
    files = records.regular_files(source, what="file the job wrote")
    if len(files) > _MAX_FILES:
        raise records.CorruptRecord(f"the job wrote more than {_MAX_FILES} files in {source}")
    sizes = {path: path.lstat().st_size for path in files}
    total = sum(sizes.values())
    if total > MAX_BYTES:
        raise records.CorruptRecord(
            f"the job wrote {total} bytes in {source}, more than the {MAX_BYTES} a run may "
            "bring back",
            "write less, or keep large files out of the outputs",
        )
    for path, size in sizes.items():
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        copied = 0
        with os.fdopen(handle, "rb") as reading, destination.open("xb") as writing:
            for block in iter(lambda: reading.read(1 << 20), b""):
                copied += len(block)
                if copied > size:
                    break
                writing.write(block)
        if copied != size:
            raise records.CorruptRecord(
                f"{path} changed while it was brought back", "rerun the experiment"
            )


def node_of(result: RunResult) -> str | None:
    """The node a run of a SLURM host ran on, as SLURM named it."""
    slurm = result.record.get("slurm")
    node = slurm.get("node") if isinstance(slurm, dict) else None
    return node if isinstance(node, str) else None
