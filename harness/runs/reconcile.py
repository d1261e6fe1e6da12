"""What a harness that was killed outright leaves behind: records that say ``running`` for
ever, and containers that run on (or stay, exited) with nobody to remove them.

A harness that ends by its own means ends every record and removes every container it
started, whatever happened (see :mod:`harness.runs.run` and :mod:`harness.engine`). One
that is SIGKILLed, or whose engine was lost and came back, cannot. So the next command
that reads records (`runs list`, `runs show`, `run`, `verify`, `doctor`) looks for them:

- a record still ``running`` whose harness process is gone (same machine, same boot, and
  no process with its id and start time: see :mod:`harness.owner`) ends ``lost``, with
  what became of its container: gone, or still there (then removed), or not known (a
  SLURM run's batch job still pending or running is cancelled);
- a container harness labelled whose harness process is gone is removed (the reaping);
  one whose owner cannot be told (another machine shares the engine, or an older harness
  started it) is removed only when its run's record here has ended, and otherwise
  reported, as something to remove by hand once it is certainly not in use.

Nothing of a harness that still runs is touched: another command on this machine, or
another engineer's on the same engine, goes on undisturbed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import owner
from harness.container import LABEL_RUN_ID
from harness.engine import LABEL_OWNER, OwnedContainer
from harness.errors import HarnessError
from harness.fleet.slurm import scheduler
from harness.runs import records

# Seconds an engine a record names has to answer a listing or a removal once connected.
# A forced removal of a running container takes a second or two on a busy engine; one that
# takes longer is not answering now, and its container is reaped the next time a command
# runs there (the harness that started it is gone).
ANSWER_TIMEOUT = 15


class Containers(Protocol):
    """What reaping needs of an engine: its containers, and a way to remove one."""

    @property
    def where(self) -> str: ...

    def owned_containers(self) -> list[OwnedContainer]: ...

    def remove_container(self, name: str) -> None: ...


@dataclass(frozen=True)
class Leftover:
    """A container harness started and no harness will remove: what it is, why it is
    left, and whether it was removed now (or the error that kept it)."""

    where: str
    name: str
    state: str
    run_id: str | None
    why: str
    removed: bool
    error: str | None = None

    def line(self) -> str:
        run = f" (run {self.run_id})" if self.run_id else ""
        if self.removed:
            return f"removed container {self.name}{run} on {self.where}: {self.why}"
        if self.error:
            return f"cannot remove container {self.name}{run} on {self.where}: {self.error}"
        return (
            f"container {self.name}{run} on {self.where} ({self.state}) {self.why}: "
            f"remove it by hand once it is not in use (docker rm -f {self.name})"
        )


def reap(engine: Containers, project_root: Path | None) -> list[Leftover]:
    """Remove the containers on ``engine`` that no harness will remove; report those that
    cannot be removed or cannot be told to be unused."""
    ended: set[str | None] | None = None  # read only when a container's owner is unknown
    found: list[Leftover] = []
    for container in engine.owned_containers():
        run_id = container.labels.get(LABEL_RUN_ID)
        started_by = owner.from_label(container.labels.get(LABEL_OWNER))
        alive = started_by.alive() if started_by is not None else None
        if alive:
            continue  # its harness is at work: it removes it itself
        if alive is None and ended is None:
            ended = _ended_runs(project_root)
        if alive is None and run_id not in (ended or set()):
            found.append(
                Leftover(
                    engine.where,
                    container.name,
                    container.state,
                    run_id,
                    "was started by a harness this machine cannot see (another machine, or "
                    "an older harness)",
                    removed=False,
                )
            )
            continue
        why = (
            f"the harness process that started it (pid {started_by.pid}) is gone"
            if started_by is not None and alive is False
            else f"its run {run_id} has ended"
        )
        try:
            engine.remove_container(container.name)
        except HarnessError as error:
            found.append(
                Leftover(
                    engine.where,
                    container.name,
                    container.state,
                    run_id,
                    why,
                    removed=False,
                    error=error.one_line(),
                )
            )
            continue
        found.append(
            Leftover(engine.where, container.name, container.state, run_id, why, removed=True)
        )
    return found


def stale_records(project_root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Records that say ``running`` though the harness process that runs them is gone."""
    return [
        (folder, record)
        for folder, record in records.all_records(project_root)
        if record is not None and records.abandoned(record)
    ]


def end_stale(
    project_root: Path,
    engine_for: Callable[[str], Containers | None] | None = None,
) -> list[str]:
    """End every stale record ``lost``, saying what became of its container.

    ``engine_for`` gives the engine a record names (its ``engine.where``: the control's, or
    another host's for a run made with ``--hosts``), or None when it cannot be reached;
    without it the container is not looked for. Each engine is asked once, whatever the
    number of records that name it, and one that does not answer is not asked again: an
    engine that is gone costs one short timeout, not one per record. Returns one line per
    record ended, for the command to show.
    """
    stale = stale_records(project_root)
    by_engine: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for folder, record in stale:
        where = str((record.get("engine") or {}).get("where") or "default")
        by_engine.setdefault(where, []).append((folder, record))
    told: list[str] = []
    for where, named in by_engine.items():
        slurm_only = all(isinstance(record.get("slurm"), dict) for _, record in named)
        engine = (
            _quiet_engine(engine_for, where) if engine_for is not None and not slurm_only else None
        )
        containers = _quiet_containers(engine)
        for folder, record in named:
            slurm = record.get("slurm")
            if isinstance(slurm, dict) and slurm.get("job_id"):
                # A batch job, not a container: nobody would bring it back, so it goes.
                container = scheduler.cancel_abandoned(str(slurm["job_id"]))
            else:
                container = _container_fate(engine, containers, record["run_id"], where)
            process = owner.from_dict(record.get("harness_process"))
            pid = f" (pid {process.pid})" if process else ""
            reason = f"the harness process that ran it{pid} ended without finishing it; {container}"
            records.end_lost(folder, record, reason)
            told.append(f"{record['run_id']}: lost: {reason}")
    return told


def _quiet_engine(engine_for: Callable[[str], Containers | None], where: str) -> Containers | None:
    try:
        return engine_for(where)
    except HarnessError:
        return None


def _quiet_containers(engine: Containers | None) -> list[OwnedContainer] | None:
    """The containers harness created on ``engine``, or None when it does not answer."""
    if engine is None:
        return None
    try:
        return engine.owned_containers()
    except HarnessError:
        return None


def _container_fate(
    engine: Containers | None, containers: list[OwnedContainer] | None, run_id: str, where: str
) -> str:
    """What became of a stale run's container: gone, or still there (and now removed)."""
    if engine is None or containers is None:
        return f"its container on {where} was not looked for (the engine did not answer)"
    mine = [c for c in containers if c.labels.get(LABEL_RUN_ID) == run_id]
    if not mine:
        return f"its container is gone from {where}"
    for container in mine:
        try:
            engine.remove_container(container.name)
        except HarnessError:
            return (
                f"its container {container.name} is still {container.state} on {where} and "
                f"could not be removed (docker rm -f {container.name})"
            )
    states = ", ".join(sorted({c.state for c in mine}))
    return f"its container was still there ({states}) on {where} and was removed"


def _ended_runs(project_root: Path | None) -> set[str | None]:
    """Run ids of this project whose records have ended (nothing runs them any more)."""
    if project_root is None:
        return set()
    return {
        str(record["run_id"])
        for _, record in records.all_records(project_root)
        if record is not None and record.get("status") != "running"
    }


def connect(where: str) -> Containers:
    """The engine a record names (``engine.where``: "default" or a URL), with the short
    timeout of a first answer (see :meth:`Engine.connect`) and a bounded one for the
    listing and removals after it: a record's engine that is gone or hung must not hold
    a command that only reads records (`runs list`)."""
    from harness.engine import Engine  # noqa: PLC0415 - the SDK only when a record needs it

    return Engine.connect(None if where == "default" else where, timeout=ANSWER_TIMEOUT)


def tidy(project_root: Path, engine: Containers, say: Callable[[str], None]) -> list[Leftover]:
    """Before runs start on ``engine``: end the project's abandoned records and remove the
    containers no harness will remove, saying each on one line; returns what is left."""

    def engine_for(where: str) -> Containers | None:
        return engine if where == engine.where else connect(where)

    for line in end_stale(project_root, engine_for):
        say(line)
    return sweep(engine, project_root, say)


def sweep(engine: Containers, project_root: Path, say: Callable[[str], None]) -> list[Leftover]:
    """Before runs start on ``engine`` (the control's, or another host's): remove the
    containers no harness will remove, saying each on one line; returns what is left.

    Every engine a command runs on is swept, not the control's alone: a host whose engine
    was lost mid-run keeps that run's container when it comes back, and only a command that
    runs there again can remove it."""
    found = reap(engine, project_root)
    for item in found:
        say(item.line())
    return [item for item in found if not item.removed]
