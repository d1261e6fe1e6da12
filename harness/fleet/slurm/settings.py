"""What a ``slurm`` host under ``[tool.harness.hosts]`` says: where and how its jobs run.

::

    [tool.harness.hosts.cluster]
    kind = "slurm"
    partition = "gpu"
    account = "my-lab"
    time = "00:30:00"
    gres = "gpu:a100:1"          # asked for by runs with --gpus
    sbatch = ["--mem=16G"]       # any other sbatch option, as it is
    workdir = "/scratch/me/harness"
    node_key = "/etc/harness/node.key"   # each node signs what it saw (see node_keys)

The schema checked the table's shape; this module gives it defaults. ``workdir`` is the one
folder that both this machine and the nodes must see (a cluster's scratch or project file
system): each job's files are staged there and its outputs written there. Nothing else is
assumed shared, the home folder included. Without it, the project's own state folder is
used, which is right where the project itself lies on such a file system.

``node_key`` is where each node keeps its own signing key, read on the node by the job
(``{node}`` stands for SLURM's node name, so that nodes sharing one disk can still keep
a key each); without it the runs are signed on this machine, as any run is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import STATE_FOLDER

KIND = "slurm"
# The folder under a project's state folder used when no workdir is configured.
DEFAULT_WORKDIR = STATE_FOLDER / "slurm"
# Distinct nodes `verify` spreads its runs over when the host does not say.
DEFAULT_NODES = 2


@dataclass(frozen=True)
class SlurmSettings:
    """A SLURM host's options; None where SLURM's own default applies."""

    partition: str | None = None
    account: str | None = None
    # The job's time limit as sbatch takes it ("30", "00:30:00", "1-00:00:00").
    time: str | None = None
    # What a run with --gpus asks for (--gres); without it, --gpus=1.
    gres: str | None = None
    # Further sbatch options, passed as they are.
    sbatch: tuple[str, ...] = ()
    # The folder both this machine and the nodes see (None: the project's .harness/slurm).
    workdir: Path | None = None
    # The interpreter uv makes the job's environment with (None: the project's Python).
    python: str | None = None
    # The uv program on the nodes.
    uv: str = "uv"
    # How many distinct nodes `verify` runs on.
    nodes: int = DEFAULT_NODES
    # Where each node keeps its signing key, as the node sees it ("{node}": its name);
    # None: the nodes sign nothing.
    node_key: str | None = None

    def folder(self, project_root: Path) -> Path:
        """Where this host's jobs are staged: the workdir, or the project's own."""
        return self.workdir if self.workdir is not None else project_root / DEFAULT_WORKDIR

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "partition": self.partition,
            "account": self.account,
            "time": self.time,
            "gres": self.gres,
            "sbatch": list(self.sbatch),
            "workdir": None if self.workdir is None else str(self.workdir),
            "nodes": self.nodes,
            "node_key": self.node_key,
        }


def is_slurm(value: object) -> bool:
    """Whether a value of ``[tool.harness.hosts]`` declares a SLURM host."""
    return isinstance(value, Mapping) and value.get("kind") == KIND


def from_table(value: Mapping[str, Any], project_root: Path) -> SlurmSettings:
    """The settings of one ``slurm`` table (its shape checked by the schema)."""
    workdir = value.get("workdir")
    return SlurmSettings(
        partition=value.get("partition"),
        account=value.get("account"),
        time=value.get("time"),
        gres=value.get("gres"),
        sbatch=tuple(value.get("sbatch", ())),
        # A relative workdir is the project's: the same folder whoever runs harness.
        workdir=None if workdir is None else project_root / Path(workdir).expanduser(),
        python=value.get("python"),
        uv=value.get("uv", "uv"),
        nodes=int(value.get("nodes", DEFAULT_NODES)),
        node_key=value.get("node_key"),
    )
