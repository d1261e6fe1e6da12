"""`harness collect`: gather run records made elsewhere and judge the hosts against each other.

CI legs, remote machines and Kubernetes Jobs each leave run folders (``record.json``,
``artifacts/``, ``log.txt``, ``meta/``) or, for Jobs, what the runtime wrote (see
:func:`harness.k8s.record_from_job_output`). Collecting checks each one (a readable
record, every artifact with the bytes its record names), copies it into
``.harness/runs/`` atomically, and then compares every host's runs with the control
host's, as `harness verify --hosts` does. The result is saved as a verification, which
`harness certify` signs with the hosts that agreed.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import crosshost, k8s, records
from harness.build import BuildResult
from harness.compare.tree import compare_paths
from harness.config import Config, Experiment
from harness.digests import sha256_file
from harness.errors import ConfigError, HarnessError
from harness.hosts import Host
from harness.run import RunResult
from harness.verify import Check, ExperimentVerification, Verification


@dataclass(frozen=True)
class Collected:
    run: RunResult
    # "copied", or "present" when the same record was already here.
    how: str


def collect(project_root: Path, sources: Sequence[Path]) -> list[Collected]:
    """Check and copy every run found under ``sources`` into the project's runs folder."""
    found: list[Collected] = []
    seen: set[str] = set()
    for source in sources:
        if not source.is_dir():
            raise HarnessError(f"{source} is not a folder", "give folders that hold run records")
        for folder in _run_folders(source):
            record = _record_of(folder)
            if record["run_id"] in seen:
                continue
            seen.add(record["run_id"])
            _check_artifacts(folder, record)
            found.append(_copy_in(project_root, folder, record))
    if not found:
        raise HarnessError(
            f"no run record under {', '.join(str(s) for s in sources)}",
            "give the folders CI jobs uploaded (each run is a folder with record.json)",
        )
    return found


def _run_folders(source: Path) -> Iterator[Path]:
    """Run folders and Job outputs under ``source``, in a stable order, without descending
    into one once found."""
    for current, folders, _files in os.walk(source):
        here = Path(current)
        if (here / records.RECORD).is_file() or (here / records.META / "spec.json").is_file():
            folders.clear()
            yield here
            continue
        folders.sort()


def _record_of(folder: Path) -> dict[str, Any]:
    if (folder / records.RECORD).is_file():
        return records.read(folder)
    return k8s.record_from_job_output(folder)


def _check_artifacts(folder: Path, record: Mapping[str, Any]) -> None:
    """Every artifact the record names must have its bytes: a corrupt download is refused."""
    artifacts = folder / records.ARTIFACTS
    for artifact in record.get("artifacts") or ():
        path = artifacts / artifact["path"]
        if not path.is_file() or sha256_file(path) != artifact["sha256"]:
            raise records.CorruptRecord(
                f"run {record['run_id']} in {folder}: artifact {artifact['path']} is missing or "
                f"does not have the sha256 its record names",
                "download the run's records again; do not certify from these",
            )


def _copy_in(project_root: Path, folder: Path, record: Mapping[str, Any]) -> Collected:
    root = records.runs_root(project_root)
    target = root / str(record["run_id"])
    if target.exists():
        if _same_record(target, record):
            return Collected(RunResult(target.name, target, dict(record)), "present")
        raise HarnessError(
            f"run {record['run_id']} is already in {records.RUNS} with another record",
            "the two copies disagree: remove the one you do not trust",
        )
    root.mkdir(parents=True, exist_ok=True)
    # Copied beside its final place, then renamed: a crash leaves no half run behind.
    partial = root / f".{target.name}.partial-{secrets.token_hex(3)}"
    try:
        shutil.copytree(folder, partial, symlinks=True)
        records.write(partial, record)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return Collected(RunResult(target.name, target, dict(record)), "copied")


def _same_record(target: Path, record: Mapping[str, Any]) -> bool:
    try:
        return records.read(target) == dict(record)
    except HarnessError:
        return False


# -- judging ---------------------------------------------------------------------------


def host_of(record: Mapping[str, Any]) -> str:
    """The host a run ran on: its name, or for old records the engine's address."""
    name = record.get("host")
    if isinstance(name, str) and name:
        return name
    return str((record.get("engine") or {}).get("where") or "unknown")


def verification(
    config: Config, runs: Sequence[RunResult], *, control: str | None = None
) -> Verification:
    """Compare every host's runs with the control host's (default: the first run's host)."""
    by_host: dict[str, list[RunResult]] = {}
    for run in runs:
        by_host.setdefault(host_of(run.record), []).append(run)
    control_name = control or host_of(runs[0].record)
    if control_name not in by_host:
        raise ConfigError(
            f"no collected run comes from host {control_name!r}",
            f"choose one of: {', '.join(by_host)}",
        )
    control_runs = by_host.pop(control_name)
    first = control_runs[0].record
    image_id = str(first["image"]["id"])
    image = BuildResult(
        str(first["image"]["reference"]),
        image_id,
        str(first["image"]["variant"]),
        True,
        0.0,
        0,
        {},
    )
    experiments: list[ExperimentVerification] = []
    references: dict[str, RunResult] = {}
    grouped: dict[str, list[RunResult]] = {}
    for run in control_runs:
        grouped.setdefault(str(run.record["experiment"]), []).append(run)
    for name, group in grouped.items():
        result = _control_verification(config, name, group)
        experiments.append(result)
        if result.reproducible and result.controls:
            references[name] = result.controls[0]
    outcomes = [
        crosshost.control_outcome(
            _host(control_name, first), {name: list(group) for name, group in grouped.items()}
        )
    ]
    for name, host_runs in by_host.items():
        outcomes.append(_judge_host(config, name, host_runs, references, image_id))
    return Verification(
        id=f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        image=image,
        variations=[],
        control_runs=max(len(group) for group in grouped.values()),
        experiments=experiments,
        seed=int(first["seed"]),
        profile=str(first["profile"]),
        threads=int(first["threads"]),
        hosts=outcomes,
    )


def _control_verification(
    config: Config, name: str, group: Sequence[RunResult]
) -> ExperimentVerification:
    experiment = config.experiments.get(name) or _experiment_of(group[0].record)
    outcome = ExperimentVerification(experiment)
    succeeded = [run for run in group if run.status == "succeeded"]
    if len(succeeded) < len(group):
        failed = next(run for run in group if run.status != "succeeded")
        outcome.failure = (
            f"the control run {failed.run_id} {failed.status}: {failed.record.get('error')}"
        )
    if not succeeded:
        return outcome
    outcome.controls.append(succeeded[0])
    for number, run in enumerate(succeeded[1:], start=2):
        comparison = compare_paths(
            str(succeeded[0].folder), str(run.folder), policies=config.policies_for(experiment)
        )
        outcome.controls.append(run)
        outcome.checks.append(Check(f"control run {number}", (), run, comparison))
    return outcome


def _judge_host(
    config: Config,
    name: str,
    runs: Sequence[RunResult],
    references: Mapping[str, RunResult],
    image_id: str,
) -> crosshost.HostOutcome:
    outcome = crosshost.HostOutcome(_host(name, runs[0].record), crosshost.AGREED)
    other_image = next((r for r in runs if r.record["image"]["id"] != image_id), None)
    if other_image is not None:
        outcome.status = crosshost.REFUSED
        outcome.reason = (
            f"run {other_image.run_id} used image {str(other_image.record['image']['id'])[:19]}, "
            f"not the control's {image_id[:19]}"
        )
        outcome.runs = {str(r.record["experiment"]): [r] for r in runs}
        return outcome
    for run in runs:
        experiment = str(run.record["experiment"])
        reference = references.get(experiment)
        if reference is None:
            outcome.runs.setdefault(experiment, []).append(run)
            continue  # nothing reproduced on the control to compare with
        policies = config.policies_for(
            config.experiments.get(experiment) or _experiment_of(run.record)
        )
        crosshost.judge(outcome, experiment, reference, run, policies)
    missing = sorted(set(references) - set(outcome.runs))
    if missing and outcome.status == crosshost.AGREED:
        outcome.status = crosshost.FAILED
        outcome.reason = f"no run of {', '.join(missing)} was collected from {name}"
    return outcome


def _host(name: str, record: Mapping[str, Any]) -> Host:
    where = (record.get("engine") or {}).get("where")
    files = (record.get("container") or {}).get("files") or "bind"
    return Host(name, where if isinstance(where, str) else None, ship="never", files=files)


def _experiment_of(record: Mapping[str, Any]) -> Experiment:
    """An experiment this project does not declare, as its record describes it."""
    command = record.get("command")
    return Experiment(
        name=str(record["experiment"]),
        entry=record.get("entry"),
        command=tuple(command) if command else None,
        parameters=dict(record.get("parameters") or {}),
        inputs={},
        outputs={},
        variant=str(record["image"]["variant"]),
    )
