"""`harness verify --hosts CLUSTER`: reproduced on several nodes of a SLURM cluster.

The nodes are the hosts. The first node SLURM lists as taking jobs in the host's
partition is the control: it runs the control runs and the variations a run without a
container can make, as `verify --executor host` does; at the same time every other node
(up to the host's ``nodes``) runs each experiment once, and is compared with the
control's first run. Each run is pinned to its node (``--nodelist``), and the node a run
counts for is the one ``scontrol`` says it ran on, never a name the job writes: a job
that ran elsewhere counts for no node. The quorum is "k of n" nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from harness.config import Config, Experiment
from harness.errors import ConfigError, HarnessError
from harness.fleet import crosshost
from harness.fleet.hosts import Host
from harness.fleet.slurm import scheduler
from harness.fleet.slurm.jobs import node_of, run_on_slurm
from harness.parallel import Pool, Together
from harness.runs import records
from harness.runs.host_executor import PythonEnvironment
from harness.runs.run import RunRequest, RunResult
from harness.runs.verify import Chosen, Verification, verification_of, verify_experiments
from harness.ui import prefixed

# Jobs submitted at once per node: SLURM queues what the node cannot start yet.
DEFAULT_JOBS = 4


def choose_nodes(host: Host) -> list[str]:
    """The nodes a verification on ``host`` runs on: at most its ``nodes``, idle first."""
    partition = host.slurm.partition if host.slurm else None
    found = scheduler.nodes(partition)
    if not found:
        where = f"partition {partition}" if partition else "the cluster"
        raise scheduler.SchedulerError(
            f"no node of {where} takes jobs now (sinfo lists none idle, mixed or allocated)",
            "check the cluster with `sinfo -N`, or choose another partition",
        )
    return found[: host.slurm.nodes if host.slurm else len(found)]


def on_node(
    config: Config, host: Host, node: str, variant: str | None
) -> Callable[[RunRequest, Callable[[str], None]], RunResult]:
    """How a run is made on one node: a job pinned there, refused if it ran elsewhere."""

    def run(request: RunRequest, tell: Callable[[str], None]) -> RunResult:
        result = run_on_slurm(config, request, host, variant=variant, node=node, say=tell)
        ran_on = node_of(result)
        if ran_on != node:
            error = HarnessError(
                f"run {result.run_id} was asked for node {node} but SLURM ran it on {ran_on}",
                "check the partition's nodes with `sinfo -N`",
            )
            error.run_id = result.run_id
            raise error
        return result

    return run


def verify_on_slurm(
    config: Config,
    host: Host,
    experiments: Sequence[Experiment],
    *,
    variations: Chosen,
    control_runs: int,
    base: Callable[[Experiment], RunRequest],
    variant: str | None = None,
    jobs: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Verification:
    """Verify every experiment on the nodes of ``host``; the first node is the control."""
    nodes = choose_nodes(host)
    wanted = host.slurm.nodes if host.slurm else len(nodes)
    if len(nodes) < wanted:
        say(f"[{host.name}] only {len(nodes)} node(s) take jobs now: {', '.join(nodes)}")
    say(f"[{host.name}] verifying on node(s) {', '.join(nodes)}; {nodes[0]} is the control")
    control, *others = nodes
    requests = [base(experiment) for experiment in experiments]
    runs_at_once = jobs or DEFAULT_JOBS

    def named(text: str) -> str:
        return f"[{control}] {text}"

    with Pool(runs_at_once, control) as pool, Together("nodes") as together:
        mine = together.start(
            partial(
                verify_experiments,
                config,
                pool,
                on_node(config, host, control, variant),
                requests,
                variations=variations,
                control_runs=control_runs,
                say=say,
                named=named,
            )
        )
        theirs = [
            together.start(
                partial(
                    _run_on_node,
                    config,
                    host,
                    node,
                    experiments,
                    requests,
                    variant=variant,
                    jobs=runs_at_once,
                    say=say,
                )
            )
            for node in others
        ]
    results = mine.result()
    references = {r.experiment.name: r.controls[0] for r in results if r.reproducible}
    compared = [crosshost.compared(config, there.result(), references, say=say) for there in theirs]
    first = next((run for result in results for run in result.controls), None)
    described = (first.record.get("python_environment") or {}) if first else {}
    environment = (
        PythonEnvironment(Path(str(described.get("executable"))), described)
        if described.get("digest")
        else None
    )
    return verification_of(
        config,
        results,
        variations=variations,
        control_runs=control_runs,
        control_host=node_host(host, control),
        others=compared,
        environment=environment,
    )


def node_host(host: Host, node: str) -> Host:
    """One node of a SLURM host, as a host of its own (named by SLURM's node name)."""
    return replace(host, name=node)


def _run_on_node(
    config: Config,
    host: Host,
    node: str,
    experiments: Sequence[Experiment],
    requests: Sequence[RunRequest],
    *,
    variant: str | None,
    jobs: int,
    say: Callable[[str], None],
) -> crosshost.HostRuns:
    """Every experiment once on ``node``; trouble is kept, never raised (one node that
    fails never stops the others)."""
    done = crosshost.HostRuns(node_host(host, node))
    run = on_node(config, host, node, variant)

    def attempt(request: RunRequest) -> RunResult | HarnessError:
        try:
            return run(request, prefixed(say, f"[{node}] {request.experiment.name}"))
        except HarnessError as error:
            return error

    with Pool(jobs, node) as pool:
        made = pool.map(
            [partial(attempt, request) for request in requests],
            stop_when=lambda result: isinstance(result, HarnessError),
            seconds=[records.recent_seconds(config.project_root, e.name) for e in experiments],
        )
    for experiment, result in zip(experiments, made, strict=True):
        if isinstance(result, HarnessError):
            done.trouble = (crosshost.FAILED, result.one_line())
            break
        if result is None:
            break
        done.runs.append((experiment, result))
    return done


def refuse_mixed(hosts: Sequence[Host]) -> Host | None:
    """The SLURM host of ``--hosts``, when there is one; refuses it beside other hosts
    (a run in an image and one in a job's environment never share a quorum)."""
    clusters = [host for host in hosts if host.slurm is not None]
    if not clusters:
        return None
    if len(hosts) > 1:
        raise ConfigError(
            f"{clusters[0].name} is a SLURM cluster: its runs are pinned by the environment "
            "its jobs make, not by an image, so it is verified on its own nodes, never "
            "beside other hosts",
            f"give --hosts {clusters[0].name} alone (its nodes are the hosts compared)",
        )
    return clusters[0]
