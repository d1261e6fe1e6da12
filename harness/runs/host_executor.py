"""`harness run --executor host`: the same runtime, without a container.

GPU machines and cluster nodes often have no Docker engine (a SLURM job, a lab
workstation). There the experiment runs in a Python environment the user names, through
the very runtime an image carries: the same seeds, determinism switches, read-back and
fingerprint, the same spec and the same ``runtime.json``. What it cannot give is
isolation, and the record says so: ``executor`` is ``host``, ``image`` and ``container``
are null, and ``python_environment`` names every installed distribution with the digest
of its files in place of an image digest.

The runtime is put on the environment's path from a private copy of harness's own
``runtime`` package (standard library only), so the environment needs no harness of its
own, and an older harness installed there cannot answer for this one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness import commands, interrupt
from harness.config import Config
from harness.container import PROJECT
from harness.errors import ConfigError, HarnessError
from harness.runs import records
from harness.runs.run import (
    RunRequest,
    RunResult,
    ended,
    input_digests,
    record_without_image,
    run_spec,
    settle,
    start_folder,
    unfinished,
)
from harness.runtime import fingerprint
from harness.runtime.determinism import environment as determinism_environment

EXECUTORS = ("container", "host")
# The runtime needs what the container's Python has: 3.10 for its type syntax.
MINIMUM_PYTHON = (3, 10)
# Variables of this machine that a host run keeps: where programs and the CUDA libraries
# are, and which GPUs this job was given. Everything else is left behind, as a container
# would, so that a stray variable of the user's shell cannot change a result.
PASSED_THROUGH = (
    "PATH",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
    "NVIDIA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
)
# Variations of `harness verify` that only a container can make: a host run keeps this
# machine's host name and the user running harness.
NEEDS_A_CONTAINER = ("hostname", "user")
# How long the runtime gets to write its record after SIGTERM before it is killed.
_GRACE_S = 10.0
# Describing an environment imports nothing beyond the standard library.
_DESCRIBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class PythonEnvironment:
    """An interpreter and what it can import, as ``harness.runtime.environment`` saw it."""

    executable: Path
    description: Mapping[str, Any]

    @property
    def digest(self) -> str:
        return str(self.description["digest"])

    def as_record(self) -> dict[str, Any]:
        return {"requested": str(self.executable), **self.description}


def resolve_python(requested: str | None, project_root: Path) -> Path:
    """The interpreter a host run uses: ``--python``, else the active virtual environment,
    else the project's ``.venv``, else ``python3`` on PATH."""
    if requested:
        found = shutil.which(requested) if os.sep not in requested else requested
        if found is None or not Path(found).is_file():
            raise ConfigError(
                f"--python {requested}: no such interpreter",
                "give the path of the environment's python (e.g. .venv/bin/python)",
            )
        return Path(found)
    candidates = []
    if os.environ.get("VIRTUAL_ENV"):
        candidates.append(Path(os.environ["VIRTUAL_ENV"]) / "bin" / "python")
    candidates.append(project_root / ".venv" / "bin" / "python")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which("python3")
    if found is None:
        raise ConfigError(
            "no Python environment for a host run: no virtual environment is active, the "
            "project has no .venv and no python3 is on PATH",
            "name one with --python",
        )
    return Path(found)


def inspect_python(executable: Path) -> PythonEnvironment:
    """Ask the interpreter what it holds; refuse one the runtime cannot run in."""
    with staged_runtime() as runtime:
        try:
            completed = commands.call(
                [str(executable), "-P", "-m", "harness.runtime.environment"],
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(runtime)},
                timeout=_DESCRIBE_TIMEOUT_S,
                hint="give a working interpreter with --python",
            )
        except commands.CommandError as error:
            raise ConfigError(
                f"{executable} could not be started: {error.message}", error.hint
            ) from None
    if completed.returncode != 0:
        last = (completed.err.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(
            f"{executable} cannot run harness's runtime: {last}",
            f"use Python {'.'.join(map(str, MINIMUM_PYTHON))} or newer with --python",
        )
    try:
        description = json.loads(completed.out)
        version = tuple(int(part) for part in str(description["python"]).split(".")[:2])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{executable} did not describe its environment",
            "give the environment's python with --python",
        ) from None
    if version < MINIMUM_PYTHON:
        raise ConfigError(
            f"{executable} is Python {description['python']}; the runtime needs "
            f"{'.'.join(map(str, MINIMUM_PYTHON))} or newer",
            "give a newer interpreter with --python",
        )
    return PythonEnvironment(executable, description)


def check_gpus(gpus: bool) -> dict[str, object] | None:
    """With --gpus, the GPUs this machine's driver reports; refuse when there are none."""
    if not gpus:
        return None
    found = fingerprint.nvml_gpus() or _nvidia_smi_gpus()
    if found is None or not found.get("devices"):
        raise HarnessError(
            "--gpus: no NVIDIA GPU is visible on this machine (neither the driver's NVML "
            "library nor nvidia-smi reports one)",
            "run on a machine with an NVIDIA GPU and its driver, or leave out --gpus",
        )
    return found


def _nvidia_smi_gpus() -> dict[str, object] | None:
    """The GPUs as nvidia-smi lists them: for drivers whose NVML is not on the loader's path."""
    program = shutil.which("nvidia-smi")
    if program is None:
        return None
    try:
        listed = commands.call(
            [
                program,
                f"--query-gpu={fingerprint.NVIDIA_SMI_QUERY}",
                "--format=csv,noheader,nounits",
            ],
            timeout=30,
            hint="check the NVIDIA driver with nvidia-smi",
        )
    except commands.CommandError:
        return None  # a driver that does not answer shows no GPU: --gpus is then refused
    devices = fingerprint.parse_nvidia_smi(listed.out)
    driver = devices[0].get("driver") if devices else None
    return {
        "source": "nvidia-smi",
        "count": len(devices),
        "devices": devices,
        "class": fingerprint.gpu_class(devices),
        "driver": driver,
    }


@contextlib.contextmanager
def staged_runtime() -> Iterator[Path]:
    """A folder holding a copy of ``harness/runtime`` (and the two modules it imports), to
    put on an environment's path; removed afterwards."""
    package = Path(harness.__file__).parent
    with tempfile.TemporaryDirectory(prefix="harness-runtime-") as folder:
        target = Path(folder) / "harness"
        shutil.copytree(
            package / "runtime", target / "runtime", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy2(package / "__init__.py", target / "__init__.py")
        shutil.copy2(package / "atomic.py", target / "atomic.py")
        yield Path(folder)


def refuse_what_needs_a_container(request: RunRequest, run: str, cpus_fix: str) -> None:
    """Refuse what only a container can do (``--cpus``, the hostname and user variations)
    for ``run`` ("a host run", "a SLURM job"), which has none."""
    if request.cpus is not None:
        raise ConfigError(f"--cpus limits a container; {run} has none", cpus_fix)
    unsupported = [name for name in request.setup.variations if name in NEEDS_A_CONTAINER]
    if unsupported:
        raise ConfigError(
            f"the variation {unsupported[0]!r} needs a container",
            f"leave it out with --vary all,-{unsupported[0]}",
        )


def run_on_host(
    config: Config,
    request: RunRequest,
    python: PythonEnvironment,
    *,
    switches: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Run one experiment in ``python``'s environment on this machine and write its record."""
    experiment = request.experiment
    refuse_what_needs_a_container(
        request,
        "a host run",
        "leave out --cpus, or limit the job with its scheduler (taskset, SLURM)",
    )
    device = "cuda" if request.gpus else "cpu"
    inputs = input_digests(config, experiment)
    run_id = records.new_run_id(experiment.name)
    folder = records.runs_root(config.project_root) / run_id
    artifacts, meta = folder / records.ARTIFACTS, folder / records.META
    spec = run_spec(
        experiment,
        run_id,
        seed=request.seed,
        profile=request.profile,
        threads=request.threads,
        device=device,
    )
    # As in a container, the experiment runs in a writable view of the project, laid out
    # by the runtime (see harness.runtime.project_view), so what it writes next to its code
    # (./mlruns, ./outputs) never changes the user's checkout; the view goes afterwards.
    # The workdir variation lays it out at another depth, under other names.
    view_folder = tempfile.TemporaryDirectory(prefix="harness-view-")
    moved = request.setup.working_dir != PROJECT
    view = Path(view_folder.name) / ("elsewhere/moved-project" if moved else "project")
    view.mkdir(mode=0o700, parents=True)
    spec.update(
        {
            "project": str(view),
            "project_source": str(config.project_root),
            "output": str(artifacts),
            "meta": str(meta),
            "inputs": {name: str(path) for name, path in experiment.inputs.items()},
            "switches": switches,
        }
    )
    setup = request.setup
    determinism = determinism_environment(
        request.seed, request.profile, request.threads, device, switches=switches
    )
    record = record_without_image(
        config,
        request,
        spec,
        inputs,
        device=device,
        switches=switches,
        host=config.host_name,
        executor="host",
    )
    record["python_environment"] = python.as_record()
    start_folder(folder, spec, record)
    say(f"started {run_id} on this machine with {python.executable}")
    with (
        view_folder,
        staged_runtime() as runtime,
        tempfile.TemporaryDirectory(prefix="harness-home-") as home,
    ):
        environment = _environment(determinism, runtime, Path(home), run_id, request)
        with unfinished(record, folder, stopped="the process was stopped"):
            exit_code, timed_out, seconds = _execute(
                [str(python.executable), "-P", "-m", "harness.runtime", str(folder / "spec.json")],
                environment=environment,
                cwd=view,  # as in a container: the experiment stands in the project's view
                log=folder / records.LOG,
                timeout=request.timeout,
                cpus=_cpus(setup.cpuset),
            )
            record["timings"]["process_s"] = round(seconds, 3)
            result = settle(
                record,
                folder,
                experiment,
                exit_code=exit_code,
                timed_out=timed_out,
                timeout=request.timeout,
            )
    say(ended(result, seconds))
    return result


def _environment(
    determinism: Mapping[str, str], runtime: Path, home: Path, run_id: str, request: RunRequest
) -> dict[str, str]:
    """What the runtime's process starts with: nothing of this shell but PASSED_THROUGH."""
    passed = [*PASSED_THROUGH, *(("CUDA_VISIBLE_DEVICES",) if request.gpus else ())]
    environment = {name: os.environ[name] for name in passed if name in os.environ}
    environment.update(determinism)
    environment.update(
        {
            "HOME": str(home),
            "TMPDIR": str(home),
            "PYTHONPATH": str(runtime),
            "HARNESS_RUN_ID": run_id,
            **request.setup.extra_env,
        }
    )
    for name in request.setup.unset_env:
        environment.pop(name, None)
    return environment


def _execute(
    command: list[str],
    *,
    environment: Mapping[str, str],
    cwd: Path,
    log: Path,
    timeout: float | None,
    cpus: frozenset[int] | None = None,
) -> tuple[int, bool, float]:
    """Run ``command`` with its output in ``log``; returns (exit code, timed out, seconds).

    The process gets a session of its own, so a signal meant for harness reaches it only
    as harness passes it on: SIGTERM, which the runtime answers by writing its record.
    """
    started = dt.datetime.now(dt.UTC)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=dict(environment),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The affinity is set in the child before the interpreter starts, so that every
            # thread pool the run creates inherits it (as a container's cpuset would).
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),  # noqa: PLW1509
        )
        timed_out = False
        try:
            # Ctrl-C reaches only the main thread; a run waited for in another one is
            # sent SIGTERM from there (through harness.interrupt) and ends as aborted.
            with interrupt.stoppable(lambda: _terminate(process)):
                process.wait(timeout=timeout or None)
            interrupt.check()
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(process)
        except BaseException:
            _stop(process)
            raise
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return process.returncode, timed_out, seconds


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the run's process group, then SIGKILL when it has not ended in time."""
    _signal(process, signal.SIGTERM)
    try:
        process.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL)
        process.wait()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM now and SIGKILL after the grace period, without waiting (Ctrl-C's stop: the
    main thread stops every run before it waits for any)."""
    _signal(process, signal.SIGTERM)
    killer = threading.Timer(_GRACE_S, _kill_if_running, (process,))
    killer.daemon = True
    killer.start()


def _kill_if_running(process: subprocess.Popen[bytes]) -> None:
    # A process already reaped has given up its id, which another group may now hold.
    if process.poll() is None:
        _signal(process, signal.SIGKILL)


def _signal(process: subprocess.Popen[bytes], number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, number)


def _cpus(cpuset: str | None) -> frozenset[int] | None:
    """A container cpuset ("0", "0-3", "0,2") as the CPUs of an affinity mask."""
    if cpuset is None:
        return None
    cpus: set[int] = set()
    for part in cpuset.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)
