"""The options of a run, declared once for every command that starts runs.

`harness run` and `harness verify` both start runs, and each used to declare its own
``--seed``, ``--threads``, ``--gpus``...: they drifted (verify had no ``--gpus``, so a CUDA
image could only be verified on the CPU). Here each option is written once, and
:func:`run_options` puts all of them on a command, which receives one :class:`RunOptions`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from harness.config import Config, Experiment
from harness.errors import ConfigError
from harness.integrations.mlproject import experiment_from_mlproject
from harness.runs.host_executor import EXECUTORS
from harness.runs.run import RunRequest


@dataclass(frozen=True)
class RunOptions:
    """What the command line said about how runs are made; None where it said nothing."""

    variant: str | None
    seed: int | None
    profile: str | None
    threads: int | None
    timeout: int | None
    cpus: float | None
    gpus: bool
    executor: str
    python: str | None
    # Runs at once on each host; None: from the host's cores and the thread count.
    jobs: int | None
    # The key this host signs its runs with (None: $HARNESS_HOST_KEY, else the default key).
    sign_key: Path | None = None

    def config_overrides(self) -> dict[str, str | None]:
        """The options that override configuration, in the form the config loader takes."""
        return {
            "seed": None if self.seed is None else str(self.seed),
            "profile": self.profile,
            "threads": None if self.threads is None else str(self.threads),
            "timeout": None if self.timeout is None else str(self.timeout),
        }

    @property
    def on_host(self) -> bool:
        return self.executor == "host"

    def request(self, config: Config, experiment: Experiment) -> RunRequest:
        """The control request of ``experiment``: the configuration's seed, profile,
        threads and timeout (these options already folded in), this line's CPUs and GPUs."""
        return RunRequest(
            experiment,
            config.seed,
            config.profile,
            config.threads,
            config.timeout or None,
            self.cpus,
            self.gpus,
        )


# A click option declaration: takes a command function, returns it with the option.
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

_DECLARATIONS: tuple[Decorator, ...] = (
    click.option("--variant", help="Image variant (default: each experiment's own, usually cpu)."),
    click.option("--seed", type=int, help="Seed of every framework (default: config seed, 0)."),
    click.option(
        "--profile",
        type=click.Choice(["strict", "portable"]),
        help="Determinism profile (default: config, strict); portable also pins CPU code paths.",
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        help="Threads of every math library (default: config, 1).",
    ),
    click.option(
        "--timeout",
        type=click.IntRange(min=0),
        help="Stop a run after this many seconds (0: no limit).",
    ),
    click.option(
        "--cpus",
        type=click.FloatRange(min=0.01),
        help="Limit each container to this many CPUs.",
    ),
    click.option(
        "--gpus",
        is_flag=True,
        help="Run on the GPUs (cuda variant; in a container it needs the NVIDIA runtime).",
    ),
    click.option(
        "--executor",
        type=click.Choice(EXECUTORS),
        default="container",
        show_default=True,
        help="container: in the pinned image. host: in a Python environment on this machine, "
        "without Docker (GPU nodes, SLURM jobs); the record names the environment's "
        "distributions instead of an image.",
    ),
    click.option(
        "--python",
        metavar="PATH",
        envvar="HARNESS_HOST_PYTHON",
        help="The interpreter of --executor host (default: the active virtual environment, "
        "the project's .venv, then python3).",
    ),
    click.option(
        "-j",
        "--jobs",
        type=click.IntRange(min=1),
        envvar="HARNESS_JOBS",
        help="Runs at once on each host (default: its cores divided by --threads, at least 1, "
        "so that every run keeps the cores its threads use and takes as long as alone; 1 "
        "with --gpus, as a run takes every GPU). Results never depend on it: thread counts "
        "are fixed, and records and verdicts come out in the same order.",
    ),
    click.option(
        "--sign-key",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Sign each finished run with this host's private key (default: $HARNESS_HOST_KEY, "
        "a path or the PEM itself, else harness.key in the keys folder when it exists; "
        "never a file of the project).",
    ),
)
_NAMES = tuple(field.name for field in fields(RunOptions))


def json_option(what: str) -> Decorator:
    """``--json``: print ``what`` on stdout as JSON for machines, progress staying on stderr."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def hosts_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--hosts a,b`` (and its spelling ``--host a --host b``): the engines a command uses."""
    function = click.option("--host", "host_names", multiple=True, hidden=True)(function)
    return click.option(
        "--hosts",
        "host_names",
        multiple=True,
        metavar="HOST[,HOST...]",
        help="Run on these hosts (names under [tool.harness.hosts], Docker URLs, NAME=URL, "
        "local, all) and compare each with the first, the control. Repeatable; --host is "
        "the same.",
    )(function)


def mlproject_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--mlproject ENTRY -P key=value``: an entry point of the project's MLproject, for
    every command that runs experiments (run, verify)."""
    function = click.option(
        "-P",
        "--param",
        "mlproject_params",
        multiple=True,
        metavar="KEY=VALUE",
        help="A parameter of the MLproject entry point (repeatable).",
    )(function)
    return click.option(
        "--mlproject",
        "mlproject_entry",
        metavar="ENTRY",
        help="Run this entry point of the MLproject (instead of named experiments).",
    )(function)


def selected_experiments(
    config: Config, names: tuple[str, ...], mlproject_entry: str | None, params: tuple[str, ...]
) -> list[Experiment]:
    """The experiments a `harness run` or `verify` asks for: by name, an MLproject entry
    point, or all."""
    if mlproject_entry is not None:
        if names:
            raise ConfigError(
                "give either experiment names or --mlproject, not both", "run them separately"
            )
        return [
            experiment_from_mlproject(config.project_root, mlproject_entry, _key_values(params))
        ]
    experiments = [config.experiment(n) for n in names] or list(config.experiments.values())
    if not experiments:
        raise ConfigError(
            "no experiment is declared", "add [tool.harness.experiments.NAME] to pyproject.toml"
        )
    return experiments


def _key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ConfigError(f"-P {pair!r} is not KEY=VALUE", "write -P alpha=0.5")
        values[key] = value
    return values


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add every run option to a click command; it receives them as ``run_options``."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        options = RunOptions(**{name: kwargs.pop(name) for name in _NAMES})
        return function(*args, run_options=options, **kwargs)

    decorated: Callable[..., Any] = command
    for declare in reversed(_DECLARATIONS):
        decorated = declare(decorated)
    return decorated
