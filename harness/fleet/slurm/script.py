"""The batch script harness submits for one run: short enough to read, every step it takes
written out in it.

It asks SLURM for one task on one node (with the host's partition, account, time limit
and GPUs), makes or reuses the Python environment of the project's constraints file (uv
checks every pin's hash; one environment per constraints file and interpreter, made under
a lock so that jobs starting together make it once), describes that environment for the
record, then runs the experiment through harness's runtime with nothing of the job's
environment but what a host run keeps. Rendering is a pure function of its plan, tested
without a cluster.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.fleet.slurm.settings import SlurmSettings
from harness.runtime import node_statement

SCRIPT = "job.sh"
# What the job folder holds, as the script names them.
RUNTIME = "runtime"
PROJECT = "project"
SPEC = "spec.json"
CONSTRAINTS = "constraints.txt"
ENVIRONMENT = "environment.json"
LOG = "log.txt"
JOB_LOG = "job.log"
HOME = "home"
# Written last into an environment that is complete: one without it is made again.
_COMPLETE = ".complete"


@dataclass(frozen=True)
class JobPlan:
    """Everything one run's batch script says."""

    job_name: str
    # The job's folder, which this machine and the node both see.
    job: Path
    # The environment's folder (shared by jobs of the same constraints and interpreter).
    environment: Path
    # uv's cache, unless the job's environment names one: beside the environments, not in
    # a home folder the node may not have.
    uv_cache: Path
    # The interpreter uv makes the environment with ("3.11", "python3", a path).
    python: str
    uv: str
    # uv's index options (--find-links, --index-url), from the project's configuration.
    uv_options: tuple[str, ...]
    # sbatch options (see sbatch_options).
    sbatch: tuple[str, ...]
    # Variables the runtime starts with (seeds, switches, threads, the run's own).
    variables: Mapping[str, str]
    # Variables of the node the runtime keeps when they are set (PATH, CUDA's, SLURM's).
    passed_through: tuple[str, ...]
    # The folder the experiment runs in: the project's copy, or its private folder.
    working_dir: Path
    # The cpus variation: the run pinned to one CPU of those SLURM gave the job.
    one_cpu: bool = False
    # Where the node keeps its signing key (see SlurmSettings.node_key); None: no signing.
    node_key: str | None = None
    heading: tuple[str, ...] = field(default_factory=tuple)


def sbatch_options(
    settings: SlurmSettings,
    *,
    job_name: str,
    job: Path,
    gpus: bool,
    timeout_s: int | None,
    node: str | None,
) -> tuple[str, ...]:
    """The job's sbatch options: the host's, then the run's (its time limit, GPUs, node)."""
    options = [
        f"--job-name={job_name}",
        f"--output={job / JOB_LOG}",
        f"--chdir={job}",
        "--nodes=1",
        "--ntasks=1",
        # A job that failed with its node, or was pre-empted, must end with that state,
        # not start over in a folder it already wrote to.
        "--no-requeue",
    ]
    if settings.partition:
        options.append(f"--partition={settings.partition}")
    if settings.account:
        options.append(f"--account={settings.account}")
    # A run's own timeout (--timeout) becomes the job's time limit, in whole minutes.
    limit = str(math.ceil(timeout_s / 60)) if timeout_s else settings.time
    if limit:
        options.append(f"--time={limit}")
    if gpus:
        options.append(f"--gres={settings.gres}" if settings.gres else "--gpus=1")
    if node:
        options.append(f"--nodelist={node}")
    options.extend(settings.sbatch)
    return tuple(options)


def render(plan: JobPlan) -> str:
    """The batch script of ``plan``."""
    q = shlex.quote
    lines = ["#!/bin/sh"]
    lines += [sbatch_line(option) for option in plan.sbatch]
    lines += [f"# {text}" for text in plan.heading]
    lines += [
        "set -eu",
        f"job={q(str(plan.job))}",
        f"env={q(str(plan.environment))}",
        f'export UV_CACHE_DIR="${{UV_CACHE_DIR:-{_double_quoted(str(plan.uv_cache))}}}"',
        "",
        "# The environment of the project's constraints: made once per constraints file",
        "# and interpreter (uv checks every pin's hash), by one job at a time.",
        'mkdir -p "$(dirname "$env")"',
        "(",
        "    flock 9",
        f'    if [ ! -e "$env/{_COMPLETE}" ]; then',
        '        rm -rf "$env"',
        f'        {q(plan.uv)} venv --quiet --python {q(plan.python)} "$env"',
        f"        {q(plan.uv)} pip sync --quiet --require-hashes "
        + "".join(f"{q(option)} " for option in plan.uv_options)
        + f'--python "$env/bin/python" "$job/{CONSTRAINTS}"',
        f'        touch "$env/{_COMPLETE}"',
        "    fi",
        ') 9>"$env.lock"',
        f'PYTHONPATH="$job/{RUNTIME}" "$env/bin/python" -P -m harness.runtime.environment '
        f'>"$job/{ENVIRONMENT}"',
        "",
        "# The experiment, through harness's runtime, with nothing of the job's environment",
        "# but what a run keeps.",
        f"cd {q(str(plan.working_dir))}",
    ]
    # With a node key the script goes on after the experiment, to sign what the node saw.
    signing = plan.node_key is not None
    start = "" if signing else "exec "
    if signing:
        lines.append("status=0")
    if plan.one_cpu:
        lines += [
            "# One CPU only (the cpus variation): the first of those SLURM gave the job.",
            'cpu=$("$env/bin/python" -c "import os; print(min(os.sched_getaffinity(0)))")',
            f'{start}taskset -c "$cpu" env -i \\',
        ]
    else:
        lines.append(f"{start}env -i \\")
    lines += [f'    ${{{name}+"{name}=${name}"}} \\' for name in plan.passed_through]
    lines.append(f'    HOME="$job/{HOME}" TMPDIR="$job/{HOME}" PYTHONPATH="$job/{RUNTIME}" \\')
    lines += [f"    {q(f'{name}={value}')} \\" for name, value in sorted(plan.variables.items())]
    lines.append(
        f'    "$env/bin/python" -P -m harness.runtime "$job/{SPEC}" >"$job/{LOG}" 2>&1'
        + (" || status=$?" if signing else "")
    )
    if plan.node_key is not None:
        lines += _node_signs(plan.node_key)
    return "\n".join(lines) + "\n"


def _node_signs(node_key: str) -> list[str]:
    """The lines that sign, on the node and with the node's own key, what the node saw."""
    pae, signature = f'"$job/{node_statement.PAE}"', f'"$job/{node_statement.SIGNATURE}"'
    return [
        "",
        "# This node states what it saw (its name, the job, the environment, the exit status",
        "# and every output's sha256) and signs it with the key it keeps; harness checks it.",
        f'key="{node_key_in_shell(node_key)}"',
        f'PYTHONPATH="$job/{RUNTIME}" "$env/bin/python" -P -m harness.runtime.node_statement '
        '"$job" "$status"',
        "if openssl pkey -in \"$key\" -noout -text_pub | grep -q '^ED25519'; then",
        f'    openssl pkeyutl -sign -rawin -inkey "$key" -in {pae} -out {signature}',
        "else",
        f'    openssl dgst -sha256 -sign "$key" -out {signature} {pae}',
        "fi",
        'exit "$status"',
    ]


def node_key_in_shell(node_key: str) -> str:
    """The key's path as it reads inside double quotes on the node: ``~/`` is the node's
    home, ``{node}`` SLURM's name for the node."""
    path = _double_quoted(node_key)
    if path.startswith("~/"):
        path = "$HOME/" + path[2:]
    return path.replace("{node}", "${SLURMD_NODENAME}")


def sbatch_line(option: str) -> str:
    """``#SBATCH OPTION``, its value in double quotes when it holds spaces (sbatch reads them
    so); an option that would end the line or its quotes early is refused, since whatever
    followed would run on the node as part of the script."""
    name, equals, value = option.partition("=")
    if any(ord(char) < 32 or ord(char) == 127 for char in option) or (
        '"' in value and any(char.isspace() for char in value)
    ):
        raise ConfigError(
            f"the sbatch option {option!r} cannot be written into a batch script (a line "
            "break, a control character, or quotes around spaces)",
            "fix the host's options under [tool.harness.hosts] (or the folder names in them)",
        )
    if equals and any(char.isspace() for char in value):
        return f'#SBATCH {name}="{value}"'
    return f"#SBATCH {option}"


def _double_quoted(text: str) -> str:
    """``text`` as it reads inside double quotes in sh."""
    return "".join(f"\\{char}" if char in '"$`\\' else char for char in text)


def uv_options(find_links: Sequence[str], index_url: str | None) -> tuple[str, ...]:
    """uv's index options from the project's find-links and index-url."""
    options: list[str] = []
    if index_url:
        options += ["--index-url", index_url]
    for place in find_links:
        options += ["--find-links", place]
    return tuple(options)
