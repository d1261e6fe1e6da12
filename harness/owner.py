"""Which harness process started a run or a container, so that a later harness can tell
whether that process still lives.

A harness killed outright (SIGKILL, the machine's OOM killer, a CI runner torn down) leaves
a record that says ``running`` and, maybe, a container that runs on. A process id alone
cannot say whether its process is gone, as ids are reused; with the machine's boot id and
the process's start time (in clock ticks since boot, from ``/proc``), it can: a process
with that id and that start time, on this machine since this boot, is the one that wrote
the record, and no other.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Owner:
    """A harness process: where (machine boot id, host name), which (pid) and since when."""

    boot_id: str
    pid: int
    started: int
    hostname: str

    def label(self) -> str:
        """One line for a container label: ``BOOT_ID/PID/STARTED``."""
        return f"{self.boot_id}/{self.pid}/{self.started}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started": self.started,
            "boot_id": self.boot_id,
            "hostname": self.hostname,
        }

    def alive(self) -> bool | None:
        """Whether this process still runs: None when that cannot be told from here
        (another machine, another boot's record read on a machine without /proc)."""
        here = _boot_id()
        if not here or not self.boot_id:
            return None
        if here != self.boot_id:
            # Another boot of this machine, or another machine that shares the folder:
            # a record from an earlier boot is certainly dead only on this machine.
            return False if self.hostname == socket.gethostname() else None
        return _start_time(self.pid) == self.started


def current() -> Owner:
    """This process."""
    pid = os.getpid()
    if pid not in _CURRENT:  # keyed by pid: a forked child is another process
        _CURRENT[pid] = Owner(_boot_id(), pid, _start_time(pid) or 0, socket.gethostname())
    return _CURRENT[pid]


_CURRENT: dict[int, Owner] = {}


def from_dict(found: object) -> Owner | None:
    """The owner a record names, or None when it names none (older records, other hosts)."""
    if not isinstance(found, dict):
        return None
    pid, started = found.get("pid"), found.get("started")
    if not isinstance(pid, int) or not isinstance(started, int):
        return None
    return Owner(str(found.get("boot_id") or ""), pid, started, str(found.get("hostname") or ""))


def from_label(text: str | None) -> Owner | None:
    """The owner a container's label names (see :meth:`Owner.label`), or None."""
    parts = (text or "").split("/")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return Owner(parts[0], int(parts[1]), int(parts[2]), "")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count after it.
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None
