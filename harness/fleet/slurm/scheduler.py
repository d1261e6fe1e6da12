"""The SLURM commands harness uses: ``sbatch`` to submit, ``scontrol`` to watch, ``scancel``.

A job is watched through ``scontrol show job -o ID``, which every cluster answers;
``sacct`` needs accounting storage, which many small clusters leave off. Only the fields
harness needs are read from its one line (``JobState``, ``Reason``, ``ExitCode``,
``BatchHost``/``NodeList``, ``TimeLimit``), none of which holds spaces. The node a job ran
on is SLURM's word, never a name the job writes: it is what tells hosts apart when runs
are compared across nodes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import commands, interrupt
from harness.errors import HarnessError

# Job states that end a job (squeue(1), "JOB STATE CODES").
ENDED = (
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "PREEMPTED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
)
# Ended states in which the batch script ran to its own end: its exit code is the run's.
RAN_TO_ITS_END = ("COMPLETED", "FAILED")
# Each state that ended a job early, as the run's record ends: the status and why.
CUT_SHORT = {
    "TIMEOUT": ("timeout", "its time limit ran out"),
    "CANCELLED": ("aborted", "it was cancelled"),
    "PREEMPTED": ("aborted", "it was pre-empted by another job"),
    "NODE_FAIL": ("failed", "its node failed"),
    "OUT_OF_MEMORY": ("failed", "it ran out of memory"),
    "BOOT_FAIL": ("failed", "its node failed to boot"),
    "DEADLINE": ("failed", "it reached its deadline"),
    "SPECIAL_EXIT": ("failed", "it was held after a special exit"),
    "REVOKED": ("aborted", "it was revoked (it ran on another cluster)"),
}
# Commands that only talk to slurmctld: a minute is only ever exceeded by a hang.
_COMMAND_S = 60.0
_INSTALL = "install SLURM's client commands (sbatch, scontrol, scancel) on this machine"
# Polling starts fast (a short job ends in seconds) and slows down for long ones.
_FIRST_POLL_S = 0.25
_LONGEST_POLL_S = 5.0
# A job that scontrol no longer knows, this many times in a row, is gone (purged).
_UNKNOWN_TIMES = 3


class SchedulerError(HarnessError):
    """SLURM refused or did not answer."""


@dataclass(frozen=True)
class JobInfo:
    """What ``scontrol show job`` says of one job."""

    job_id: str
    state: str
    reason: str | None
    # The node the batch script ran on (None while pending).
    node: str | None
    exit_code: int | None
    # The signal that ended the script, 0 for none.
    signal: int
    time_limit: str | None

    @property
    def ended(self) -> bool:
        return self.state in ENDED


_FIELD = re.compile(r"(?:^|\s)(JobId|JobState|Reason|ExitCode|BatchHost|NodeList|TimeLimit)=(\S*)")
_JOB_ID = re.compile(r"[0-9]+(?:_[0-9]+)?")


def parse_job(line: str) -> JobInfo:
    """One line of ``scontrol show job -o``."""
    fields = dict(_FIELD.findall(line))
    if "JobId" not in fields or "JobState" not in fields:
        raise SchedulerError(
            f"scontrol answered something that is not a job: {_shown(line)}",
            "check the cluster with `scontrol show job -o ID`",
        )
    # A job may be held with a reason ("PENDING+..."), or cut short ("CANCELLED by 0").
    state = re.split(r"[^A-Z_]", fields["JobState"], maxsplit=1)[0]
    exit_code, _, signal = fields.get("ExitCode", "").partition(":")
    node = fields.get("BatchHost") or fields.get("NodeList")
    return JobInfo(
        job_id=fields["JobId"],
        state=state,
        reason=_known(fields.get("Reason")),
        node=_known(node),
        exit_code=int(exit_code) if exit_code.isdigit() else None,
        signal=int(signal) if signal.isdigit() else 0,
        time_limit=_known(fields.get("TimeLimit")),
    )


def submit(script: Path, *, cwd: Path) -> str:
    """Submit a batch script; returns its job id (``sbatch --parsable``)."""
    done = _call(["sbatch", "--parsable", str(script)], cwd=cwd)
    answer = done.out.strip()
    # --parsable prints "ID" or "ID;CLUSTER".
    job_id = answer.split(";", 1)[0]
    if done.returncode != 0 or not _JOB_ID.fullmatch(job_id):
        raise SchedulerError(
            f"sbatch refused the job: {_shown(done.err.strip() or answer or 'no answer')}",
            "check the host's partition, account, time and sbatch options under "
            "[tool.harness.hosts]",
        )
    return job_id


def show(job_id: str) -> JobInfo | None:
    """The job as scontrol sees it now; None when scontrol no longer knows it."""
    done = _call(["scontrol", "show", "job", "-o", job_id])
    if done.returncode != 0:
        if "Invalid job id" in done.err:
            return None
        raise SchedulerError(
            f"scontrol could not show job {job_id}: {_shown(done.err.strip() or 'no answer')}",
            "check that slurmctld answers (`scontrol ping`)",
        )
    line = next((text for text in done.out.splitlines() if text.strip()), "")
    return parse_job(line)


def nodes(partition: str | None) -> list[str]:
    """The nodes of ``partition`` (default: every partition) that take jobs now: idle ones
    first, then those running others' jobs; down, drained and failing ones left out."""
    command = ["sinfo", "--noheader", "--Node", "--format=%N %t"]
    if partition:
        command.append(f"--partition={partition}")
    done = _call(command)
    if done.returncode != 0:
        raise SchedulerError(
            f"sinfo could not list the nodes: {_shown(done.err.strip() or 'no answer')}",
            "check that slurmctld answers (`scontrol ping`) and the host's partition",
        )
    found: dict[str, int] = {}
    for line in done.out.splitlines():
        name, _, state = line.strip().partition(" ")
        # sinfo marks a node that does not respond with "*" after its state.
        rank = _TAKING_JOBS.get(state.strip())
        if name and rank is not None:
            found[name] = min(rank, found.get(name, rank))
    return sorted(found, key=lambda name: (found[name], name))


# Node states (sinfo %t) in which a node takes jobs, the ones to prefer first.
_TAKING_JOBS = {"idle": 0, "mix": 1, "alloc": 2, "comp": 2}


def cancel(job_id: str) -> None:
    """Cancel a job (its script gets SIGTERM, then SIGKILL after the cluster's KillWait)."""
    _call(["scancel", job_id])


def cancel_abandoned(job_id: str) -> str:
    """Cancel the job of a run whose harness was killed (nobody will bring it back); says
    what became of it, for the line that ends the run's record."""
    try:
        info = show(job_id)
        if info is None:
            return f"its SLURM job {job_id} is no longer known to SLURM"
        if info.ended:
            return f"its SLURM job {job_id} had ended {info.state}"
        cancel(job_id)
    except HarnessError as error:
        return f"its SLURM job {job_id} could not be cancelled ({error.message}; scancel {job_id})"
    return f"its SLURM job {job_id} was still {info.state} and was cancelled"


def wait(
    job_id: str,
    *,
    on_change: Callable[[JobInfo], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobInfo:
    """Poll the job until it ends; returns how it ended.

    Ctrl-C (through :mod:`harness.interrupt`) cancels the job and raises
    KeyboardInterrupt here. A job that scontrol stops knowing before it ended (purged, or
    a controller that lost its state) is trouble: how it ended cannot be told.
    """
    pause, unknown, last = _FIRST_POLL_S, 0, ""
    with interrupt.stoppable(lambda: cancel(job_id)):
        while True:
            interrupt.check()
            info = show(job_id)
            if info is None:
                unknown += 1
                if unknown >= _UNKNOWN_TIMES:
                    raise SchedulerError(
                        f"SLURM job {job_id} is no longer known to scontrol, so how it "
                        "ended cannot be told",
                        "raise the cluster's MinJobAge, or look for the job in the cluster's logs",
                    )
            else:
                unknown = 0
                if info.state != last:
                    last = info.state
                    on_change(info)
                if info.ended:
                    return info
            sleep(pause)
            pause = min(pause * 1.5, _LONGEST_POLL_S)


def _call(command: Sequence[str], *, cwd: Path | None = None) -> commands.Completed:
    try:
        return commands.call(command, timeout=_COMMAND_S, hint=_INSTALL, cwd=cwd)
    except commands.CommandMissing as error:
        raise SchedulerError(error.message, _INSTALL) from None


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "(null)", "None", "N/A") else value


def _shown(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
