"""`harness run --hosts CLUSTER` and `harness verify --hosts CLUSTER` for SLURM hosts.

A SLURM host takes over the whole command: its runs are batch jobs in an environment the
job makes from the constraints, so no image is built and no other host takes part. The
commands ask here whether ``--hosts`` names one, and hand over when it does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from harness.config import Config, Experiment
from harness.errors import ConfigError
from harness.fleet import hosts as hosts_module
from harness.fleet.slurm import across
from harness.fleet.slurm.jobs import run_on_slurm
from harness.runs import host_executor
from harness.runs.run import RunRequest, RunResult
from harness.runs.variations import NEEDS_A_CONTAINER, Choice, without
from harness.runs.verify import Verification

Say = Callable[[str], None]


def cluster_of(config: Config, host_names: Sequence[str]) -> hosts_module.Host | None:
    """The SLURM host ``--hosts`` names, if it names one (and nothing else)."""
    if not host_names:
        return None
    return across.refuse_mixed(hosts_module.resolve(config, host_names))


def _check(host: hosts_module.Host, *, gpus: bool, refused: Sequence[str]) -> None:
    given = [flag for flag in refused if flag]
    if given:
        raise ConfigError(
            f"{given[0]} does not apply to the SLURM host {host.name}: its jobs make their "
            "environment from the constraints, with no image",
            f"leave out {given[0]}",
        )
    if gpus and not host.gpus:
        raise ConfigError(
            f"--gpus: the SLURM host {host.name} declares no GPUs",
            f'add gres = "gpu:1" (or gpus = true) under [tool.harness.hosts.{host.name}]',
        )


def runner(
    config: Config,
    host: hosts_module.Host,
    *,
    variant: str | None,
    jobs: int | None,
    gpus: bool,
    refused: Sequence[str] = (),
    say: Say,
) -> tuple[Callable[[RunRequest, Say], RunResult], int]:
    """How `harness run` makes each run on the cluster (one job each, wherever SLURM
    puts it), and how many jobs it submits at once. ``refused``: the command's flags that
    do not apply (empty strings for those not given)."""
    _check(host, gpus=gpus, refused=refused)
    say(f"SLURM host {host.name}: each run is a batch job")

    def run_once(request: RunRequest, tell: Say) -> RunResult:
        return run_on_slurm(config, request, host, variant=variant, say=tell)

    return run_once, jobs or across.DEFAULT_JOBS


def verify_on(
    config: Config,
    host: hosts_module.Host,
    experiments: Sequence[Experiment],
    *,
    variations: Mapping[str, Choice],
    control_runs: int,
    base: Callable[[Experiment], RunRequest],
    variant: str | None,
    jobs: int | None,
    gpus: bool,
    say: Say,
) -> Verification:
    """`verify --hosts CLUSTER`: across the cluster's nodes, with the variations a run
    without a container can make."""
    _check(host, gpus=gpus, refused=())
    possible, left_out = without(variations, host_executor.NEEDS_A_CONTAINER, NEEDS_A_CONTAINER)
    if left_out:
        say(f"SLURM host: leaving out {', '.join(left_out)} (they need a container)")
    return across.verify_on_slurm(
        config,
        host,
        experiments,
        variations=possible,
        control_runs=control_runs,
        base=base,
        variant=variant,
        jobs=jobs,
        say=say,
    )
