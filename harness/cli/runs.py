"""`harness run` and `harness runs`: start experiments (in containers, on this machine's
Python, on several hosts) and read their records."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import click

from harness.cli.options import (
    RunOptions,
    hosts_option,
    json_option,
    mlproject_options,
    run_options,
    selected_experiments,
)
from harness.cli.state import State
from harness.cli.trust import conclude
from harness.compare.tree import compare_paths
from harness.config import Config, Experiment
from harness.engine import ContainerEngine
from harness.errors import EXIT_DIFFERS, ConfigError
from harness.fleet import hosts as hosts_module
from harness.fleet.slurm import commands as slurm_commands
from harness.images import build as build_module
from harness.integrations import mlflow_tracking
from harness.parallel import Pool, available_cores, default_jobs
from harness.runs import host_executor, reconcile, records
from harness.runs import run as run_module
from harness.runs import verify as verify_module
from harness.trust import attest, certify, gate, keys, provenance
from harness.ui import UI, prefixed

Say = Callable[[str], None]


@dataclass(frozen=True)
class Runner:
    """How `harness run` makes one run (the request, where its progress goes), and how many
    it makes at once."""

    run: Callable[[run_module.RunRequest, Say], run_module.RunResult]
    jobs: int


@click.command("run")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@run_options
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs of each experiment; their artifacts must agree under the compare policies.",
)
@click.option(
    "--require-certificate",
    is_flag=True,
    help="Refuse an image whose certificate does not verify "
    "(also: [tool.harness.certify] require).",
)
@click.option(
    "--mlflow/--no-mlflow",
    "mlflow_flag",
    default=None,
    help="Log each run to MLflow (default: [tool.harness.mlflow] enabled / HARNESS_MLFLOW).",
)
@mlproject_options
@click.option(
    "--unsafe-no-determinism",
    "switches_off",
    is_flag=True,
    hidden=True,
    help="Leave the determinism switches off (seeds stay set): only to measure what they "
    "are worth; such runs say so in their record and are never verified or certified.",
)
@hosts_option
@json_option("the run records")
@click.pass_obj
def run_command(
    state: State,
    *,
    names: tuple[str, ...],
    run_options: RunOptions,
    repeat: int,
    require_certificate: bool,
    mlflow_flag: bool | None,
    mlproject_entry: str | None,
    mlproject_params: tuple[str, ...],
    switches_off: bool,
    host_names: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run experiments in fresh containers of their pinned image and record each run.

    With no NAME, runs every experiment under [tool.harness.experiments]. Each run gets no
    network, a read-only root file system, the inputs read-only, its own output folder
    and fixed thread counts; seeds and determinism switches are set before the experiment
    starts and read back after it. Records go to .harness/runs/RUN_ID/record.json.

    \b
      harness run                      every experiment, once
      harness run torch --repeat 2     twice; exit 1 if the artifacts differ
      harness run --profile portable   pin CPU code paths too (hosts with other CPUs)
      harness run --mlflow             also log each run to MLflow
      harness run --mlproject main -P alpha=0.5   an MLproject entry point, in the image
      harness run --hosts local,gpu-box      the same image on both, compared
      harness run torch --executor host --gpus --python .venv/bin/python
                                       on this machine's GPU, without Docker

    Runs overlap, up to --jobs at once (default: the cores divided by --threads); their
    records and results come out in the order asked for, whichever ended first. Ctrl-C
    stops and removes every container and records each run as aborted.

    With --hosts, the first host builds the image; every other host gets the image by
    digest and runs each experiment once, at the same time as the first host, and is
    compared with the first host's run. The outcome is saved as a verification, so
    `harness certify` can sign it.

    With --executor host, no image and no container: the runtime runs in the named Python
    environment with the same seeds, switches and read-back, and the record names the
    environment's distributions (and their files' digest) instead of an image.

    Exit 0 when every run succeeded (and repeats and hosts agree), 1 when one failed,
    timed out or differs, 2 on trouble (a host unreachable or holding another image).
    """
    config = state.config(**run_options.config_overrides())
    attest.use(
        keys.host_key(config.project_root, run_options.sign_key),
        keys.engine_keys(config.project_root),
    )
    experiments = selected_experiments(config, names, mlproject_entry, mlproject_params)
    use_mlflow = mlflow_tracking.enabled(config, mlflow_flag)
    if use_mlflow:
        # Before any build or run, so that a missing mlflow costs nothing.
        mlflow_tracking.require(config)

    request_for = functools.partial(run_options.request, config)

    cluster = slurm_commands.cluster_of(config, host_names)
    if cluster is not None:
        runner = Runner(
            *slurm_commands.runner(
                config,
                cluster,
                variant=run_options.variant,
                jobs=run_options.jobs,
                gpus=run_options.gpus,
                refused=(
                    "--require-certificate" if require_certificate else "",
                    "--unsafe-no-determinism" if switches_off else "",
                ),
                say=state.ui.say,
            )
        )
    elif run_options.on_host:
        if host_names or require_certificate:
            raise ConfigError(
                "--executor host runs on this machine, without an image: it takes neither "
                "--hosts nor --require-certificate",
                "leave those out, or use the container executor",
            )
        runner = _host_runner(config, run_options, switches=not switches_off, say=state.ui.say)
    else:
        if switches_off:
            raise ConfigError(
                "--unsafe-no-determinism is for measuring the switches on a GPU machine",
                "use it with --executor host",
            )
        container_runner = _container_runner(
            state,
            config,
            experiments,
            run_options,
            host_names=host_names,
            require_certificate=require_certificate,
            repeat=repeat,
            request_for=request_for,
            as_json=as_json,
        )
        if container_runner is None:
            return  # ran on several hosts, and concluded there
        runner = container_runner
    _run_each(
        state,
        config,
        experiments,
        runner,
        request_for=request_for,
        repeat=repeat,
        use_mlflow=use_mlflow,
        mlproject_entry=mlproject_entry,
        as_json=as_json,
    )


def _container_runner(
    state: State,
    config: Config,
    experiments: list[Experiment],
    options: RunOptions,
    *,
    host_names: tuple[str, ...],
    require_certificate: bool,
    repeat: int,
    request_for: Callable[[Experiment], run_module.RunRequest],
    as_json: bool,
) -> Runner | None:
    """Build (or find) the images, then run each request in a container of its image.
    With other hosts, runs everything there as a verification and returns None."""
    variants = {e.name: options.variant or e.variant for e in experiments}
    plans = {v: build_module.plan(config, v) for v in sorted(set(variants.values()))}
    control, *others = hosts_module.resolve(config, host_names)
    others = hosts_module.for_gpus(others, options.gpus, say=state.ui.say)
    if others and len(plans) != 1:
        raise ConfigError(
            "these experiments use several variants; across hosts run one at a time",
            "add --variant",
        )
    engine = control.connect()
    # What a killed harness left here: its records end, its containers go.
    reconcile.tidy(config.project_root, engine, state.ui.say)
    images = _images(state, config, engine, plans, gpus=options.gpus, require=require_certificate)
    if others:
        _run_on_hosts(
            state,
            config,
            engine,
            next(iter(images.values())),
            experiments,
            control=control,
            others=others,
            repeat=repeat,
            request_for=request_for,
            jobs=options.jobs,
            as_json=as_json,
        )
        return None

    def run_once(request: run_module.RunRequest, say: Say) -> run_module.RunResult:
        image = images[variants[request.experiment.name]]
        return run_module.run_experiment(engine, config, image, request, host=control, say=say)

    jobs = options.jobs or default_jobs(engine.cores(), config.threads, gpus=options.gpus)
    return Runner(run_once, jobs)


def _run_each(
    state: State,
    config: Config,
    experiments: list[Experiment],
    runner: Runner,
    *,
    request_for: Callable[[Experiment], run_module.RunRequest],
    repeat: int,
    use_mlflow: bool,
    mlproject_entry: str | None,
    as_json: bool,
) -> None:
    """Run each experiment ``repeat`` times, up to ``runner.jobs`` runs at once; then print
    and log the runs and judge the repeats, in the order asked for."""

    def run(experiment: Experiment, number: int) -> run_module.RunResult:
        name = experiment.name if repeat == 1 else f"{experiment.name}, run {number} of {repeat}"
        return runner.run(request_for(experiment), prefixed(state.ui.say, name))

    if len(experiments) * repeat > 1:
        state.ui.say(f"up to {runner.jobs} run(s) at once")
    planned = [(e, n) for e in experiments for n in range(1, repeat + 1)]
    expected = {e.name: records.recent_seconds(config.project_root, e.name) for e in experiments}
    with Pool(runner.jobs) as pool:
        made = pool.map(
            [partial(run, e, n) for e, n in planned],
            seconds=[expected[e.name] for e, _ in planned],
        )
    every = [result for result in made if result is not None]
    results: list[run_module.RunResult] = []
    differing: list[str] = []
    for index, experiment in enumerate(experiments):
        mine = every[index * repeat : (index + 1) * repeat]
        for result in mine:
            if not as_json:
                _print_run(state.ui, result)
            if use_mlflow:
                logged = mlflow_tracking.log_run(
                    config, result.folder, result.record, entry_point=mlproject_entry
                )
                state.ui.say(f"{result.run_id}: logged to MLflow run {logged}")
        results += mine
        moved = repeats_differ(config, experiment, mine)
        if moved:
            differing.append(experiment.name)
            state.ui.say(f"{experiment.name}: its {len(mine)} runs differ in {', '.join(moved)}")
    if as_json:
        state.ui.json([r.record for r in results])
    failed = [r for r in results if r.status != "succeeded"]
    for result in failed:
        state.ui.say(f"{result.run_id}: {result.status}: {result.record.get('error')}")
    if failed or differing:
        raise click.exceptions.Exit(EXIT_DIFFERS)


def _host_runner(config: Config, options: RunOptions, *, switches: bool, say: Say) -> Runner:
    """`--executor host`: check the interpreter and the GPUs once, then run each request."""
    python = host_executor.inspect_python(
        host_executor.resolve_python(options.python, config.project_root)
    )
    host_executor.check_gpus(options.gpus)
    say(
        f"host executor: {python.executable} (Python {python.description['python']}, "
        f"environment {python.digest[:19]})"
    )

    def run_once(request: run_module.RunRequest, tell: Say) -> run_module.RunResult:
        return host_executor.run_on_host(config, request, python, switches=switches, say=tell)

    jobs = options.jobs or default_jobs(available_cores(), config.threads, gpus=options.gpus)
    return Runner(run_once, jobs)


def repeats_differ(
    config: Config, experiment: Experiment, runs: list[run_module.RunResult]
) -> list[str]:
    """The artifacts on which repeated runs disagree, judged as `harness verify` judges:
    each succeeded run against the first, under the experiment's compare policies."""
    succeeded = [r for r in runs if r.status == "succeeded"]
    policies = config.policies_for(experiment)
    moved: list[str] = []
    for other in succeeded[1:]:
        comparison = compare_paths(str(succeeded[0].folder), str(other.folder), policies=policies)
        moved += [a.path for a in comparison.artifacts if not a.passed and a.path not in moved]
    return moved


def _images(
    state: State,
    config: Config,
    engine: ContainerEngine,
    plans: dict[str, build_module.BuildPlan],
    *,
    gpus: bool,
    require: bool,
) -> dict[str, build_module.BuildResult]:
    """Build (or find) each variant's image, refusing what cannot run before any run starts."""
    for name in plans:
        run_module.check_gpu_request(engine, name, gpus)
    images = {
        v: build_module.build(engine, p, say=state.ui.say, on_line=state.ui.build_line)
        for v, p in plans.items()
    }
    for image in images.values():
        provenance.record_build(config.project_root, image.provenance, state.ui.say)
    if require or certify.settings(config.table("certify"), config.project_root).require:
        gate.require_certificates(config, images)
    return images


def _run_on_hosts(
    state: State,
    config: Config,
    engine: ContainerEngine,
    image: build_module.BuildResult,
    experiments: list[Experiment],
    *,
    control: hosts_module.Host,
    others: list[hosts_module.Host],
    repeat: int,
    request_for: Callable[[Experiment], run_module.RunRequest],
    jobs: int | None,
    as_json: bool,
) -> None:
    """`harness run --hosts`: a verification without variations, saved for `certify`."""
    verification = verify_module.verify(
        engine,
        config,
        image,
        experiments,
        variations=[],
        control_runs=repeat,
        base=request_for,
        control_host=control,
        other_hosts=others,
        jobs=jobs,
        say=state.ui.say,
    )
    runs = [
        run for outcome in verification.hosts for group in outcome.runs.values() for run in group
    ]
    if not as_json:
        for run in runs:
            _print_run(state.ui, run)
        for result in verification.experiments:
            if not result.reproducible:
                why = result.failure or "its runs on the control host differ"
                state.ui.result(f"{result.experiment.name:<14} NOT reproducible: {why}")
    conclude(state, config, verification, as_json=as_json, document=[run.record for run in runs])


def _print_run(ui: UI, result: run_module.RunResult) -> None:
    record = result.record
    timings = record["timings"]
    seconds = timings.get("container_s", timings.get("process_s", timings.get("job_s")))
    took = f"{seconds:.1f} s" if isinstance(seconds, float) else "-"
    flags = (
        f", {len(record.get('violations') or [])} switch(es) turned off"
        if record.get("violations")
        else ""
    )
    if (record.get("seeding") or {}).get("how") == "environment only":
        flags += ", no Python process reached: seeded by the environment only"
    if record["status"] == "succeeded" and not record["artifacts"]:
        flags += (
            ", nothing to verify: write results into $HARNESS_OUTPUT, or keep what it prints "
            'with stdout = "stdout.txt" under '
            f"[tool.harness.experiments.{record.get('experiment')}]"
            if record.get("command")
            else ", nothing to verify: write results into output="
        )
    ui.result(
        f"{result.run_id}  {record['status']:<9} "
        f"{len(record['artifacts'])} artifacts  {took}{flags}"
    )


def _end_abandoned(state: State, config: Config) -> None:
    """Records still ``running`` whose harness was killed end ``lost`` before they are
    shown, each said on one line (with what became of its container)."""
    for line in reconcile.end_stale(config.project_root, reconcile.connect):
        state.ui.say(line)


@click.group("runs")
def runs_group() -> None:
    """Read the run records under .harness/runs."""


@runs_group.command("list")
@click.option("--experiment", help="Only the runs of this experiment.")
@click.option("--last", type=click.IntRange(min=1), help="Only the newest N runs.")
@click.option("--ids", is_flag=True, help="Print only the run ids, one a line (for scripts).")
@json_option("one summary per run")
@click.pass_obj
def runs_list(
    state: State, *, experiment: str | None, last: int | None, ids: bool, as_json: bool
) -> None:
    """List recorded runs, oldest first.

    A run's status is succeeded, failed, timeout, aborted (Ctrl-C or SIGTERM), lost (its
    engine stopped answering during the run, or its harness process was killed outright:
    such a run is found and ended here), or running (still under way).

    \b
      harness compare $(harness runs list --experiment torch --last 2 --ids)
    """
    config = state.config()
    _end_abandoned(state, config)
    rows: list[dict[str, Any]] = []
    for folder, record in records.all_records(config.project_root):
        if experiment is not None and (record is None or record["experiment"] != experiment):
            continue
        if record is None:
            rows.append({"run_id": folder.name, "status": "unreadable"})
            continue
        rows.append(
            {
                "run_id": record["run_id"],
                "experiment": record["experiment"],
                "status": record["status"],
                "seed": record["seed"],
                "profile": record["profile"],
                # None for the host executor, whose runs no image isolated.
                "image": (record.get("image") or {}).get("id"),
                "host": record.get("host"),
                "artifacts": len(record["artifacts"]),
                "started_at": record["timings"].get("started_at"),
            }
        )
    rows = rows[-last:] if last else rows
    if as_json:
        state.ui.json(rows)
        return
    if ids:
        for row in rows:
            state.ui.result(str(row["run_id"]))
        return
    for row in rows:
        image = str(row.get("image") or "")[7:19]
        state.ui.result(
            f"{row['run_id']:<40} {row['status']:<10} {row.get('experiment', ''):<12} "
            f"seed {row.get('seed', '-')!s:<4} {row.get('profile', ''):<8} {image} "
            f"{row.get('host') or ''}"
        )


@runs_group.command("show")
@click.argument("run_id")
@json_option("the whole record")
@click.pass_obj
def runs_show(state: State, run_id: str, as_json: bool) -> None:
    """Show one run's record (RUN_ID may be a unique prefix)."""
    config = state.config()
    _end_abandoned(state, config)
    record = records.read(records.find(config.project_root, run_id))
    if as_json:
        state.ui.json(record)
        return
    out = state.ui.result
    out(f"run        {record['run_id']} ({record['status']})")
    out(
        f"experiment {record['experiment']}  seed {record['seed']}  "
        f"profile {record['profile']}  threads {record['threads']}"
    )
    image, environment = record.get("image"), record.get("python_environment")
    if image:
        out(f"image      {image['reference']} {image['id']}")
    elif environment:
        # A run no image isolated (the host executor, a SLURM job): its environment pins it.
        out(f"python     {environment.get('executable')} {environment.get('digest')}")
    job = record.get("slurm")
    if job:
        out(f"slurm job  {job.get('job_id')} {job.get('state')} on {job.get('node')}")
    out(f"source     {record['source']['commit']}{' (dirty)' if record['source']['dirty'] else ''}")
    if record.get("error"):
        out(f"error      {record['error']}")
    for violation in record.get("violations") or []:
        out(f"flagged    {violation}")
    for artifact in record["artifacts"]:
        out(
            f"artifact   {artifact['sha256'][:16]}  {artifact['size']:>10}  "
            f"{artifact['path']} ({artifact['kind']})"
        )
    for unlisted in record.get("unlisted") or []:
        out(f"unlisted   {unlisted['sha256'][:16]}  {unlisted['size']:>10}  {unlisted['path']}")
    seeding = record.get("seeding") or {}
    if seeding:
        note = f": {seeding['note']}" if seeding.get("note") else ""
        out(f"seeding    {seeding.get('how')} ({seeding.get('python_processes')} Python){note}")
    for line in record.get("log_tail") or []:
        out(f"log        {line}")
