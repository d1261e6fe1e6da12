"""Programs analysed in parallel when there are many files.

A folder of a few hundred scripts (a gallery of examples, a research repository) is
mostly separate programs, and programs share nothing once the files are parsed and their
imports linked (:meth:`~harness.lint.project.Project.programs`): each is analysed alone
either way, so the findings do not depend on how many processes analyse them. With at
least :data:`MIN_FILES` files and more than one core available to this process, the
programs are split into one share per core, of about equal source size; this process
forks one worker per share but the first, after parsing, so that each inherits the
parsed trees, and analyses the first share itself meanwhile. A worker sends its findings
back through a pipe, as JSON (nothing is unpickled), and ends without tearing down what
it inherited. Forking is the only start method that inherits the trees: where the
platform does not fork, or a thread is running (forking it is unsafe), the programs are
analysed in this process; so is a share whose worker failed, which surfaces its error
as one process would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.lint.findings import Finding, Location
from harness.lint.project import Project

# Below this many files, starting processes costs more than it saves.
MIN_FILES = 48

Analyse = Callable[
    [Project, Mapping[Path, frozenset[str]] | None, frozenset[str] | None], list[Finding]
]


def analyse_programs(
    programs: Sequence[Project],
    managed: Mapping[Path, frozenset[str]] | None,
    rules: frozenset[str] | None,
    analyse: Analyse,
    jobs: int | None = None,
) -> list[Finding]:
    """The findings of every program; ``jobs`` processes (None: by the number of files
    and cores, see the module's docstring)."""

    def share_findings(share: list[int]) -> list[Finding]:
        return [found for index in share for found in analyse(programs[index], managed, rules)]

    workers = _workers(programs) if jobs is None else min(jobs, len(programs))
    if workers <= 1 or not _can_fork():
        return share_findings(list(range(len(programs))))
    own, *others = _shares(programs, workers)
    started: dict[int, int] = {}  # each worker's process id, and the pipe's end to read
    try:
        for share in others:
            pid, pipe = _fork(functools.partial(share_findings, share))
            started[pid] = pipe
        found = share_findings(own)
        for (pid, pipe), share in zip(list(started.items()), others, strict=True):
            sent = _collect(pid, pipe, started)
            found.extend(sent if sent is not None else share_findings(share))
    finally:
        for pid, pipe in started.items():  # interrupted: the workers stop with this process
            with contextlib.suppress(OSError):
                os.close(pipe)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    return found


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _workers(programs: Sequence[Project]) -> int:
    files = sum(1 for program in programs for module in program.modules if module.linted)
    if files < MIN_FILES:
        return 1
    return min(available_cores(), len(programs))


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def _shares(programs: Sequence[Project], workers: int) -> list[list[int]]:
    """Program indexes in ``workers`` shares of about equal source size, each program to
    the smallest share so far, largest programs first."""
    sizes = [sum(len(m.source) for m in program.modules) for program in programs]
    shares: list[list[int]] = [[] for _ in range(workers)]
    totals = [0] * workers
    for index in sorted(range(len(programs)), key=lambda i: -sizes[i]):
        smallest = totals.index(min(totals))
        shares[smallest].append(index)
        totals[smallest] += sizes[index]
    return [share for share in shares if share]


def _fork(work: Callable[[], list[Finding]]) -> tuple[int, int]:
    """A worker that runs ``work`` and writes its findings to a pipe: its process id and
    the pipe's end to read."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    status = 1
    try:  # the worker: never returns, never runs this process's cleanup
        # Ctrl-C reaches the whole process group: the parent stops the workers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.close(read)
        with os.fdopen(write, "wb") as stream:
            stream.write(_encode(work()))
        status = 0
    finally:
        os._exit(status)


def _collect(pid: int, pipe: int, started: dict[int, int]) -> list[Finding] | None:
    """What a worker sent, or None when it failed (its share is analysed again here);
    the worker is ended and no longer in ``started``."""
    with os.fdopen(pipe, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    del started[pid]
    if status != 0:
        return None
    try:
        return _decode(data)
    except (ValueError, TypeError):
        return None


def _encode(found: list[Finding]) -> bytes:
    return json.dumps([dataclasses.astuple(finding) for finding in found]).encode()


def _decode(data: bytes) -> list[Finding]:
    found = []
    for values in json.loads(data):
        fields = dict(zip(_FINDING_FIELDS, values, strict=True))
        fields["related"] = tuple(Location(*place) for place in fields["related"])
        found.append(Finding(**fields))
    return found


_FINDING_FIELDS = [field.name for field in dataclasses.fields(Finding)]


__all__ = ["MIN_FILES", "analyse_programs", "available_cores"]
