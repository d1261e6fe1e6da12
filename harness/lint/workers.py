"""Programs analysed in parallel when there are many files.

A folder of a few hundred scripts (a gallery of examples, a research repository) is
mostly separate programs, and programs share nothing once the files are parsed and their
imports linked (:meth:`~harness.lint.project.Project.programs`): each is analysed alone
either way, so the findings do not depend on how many processes analyse them. With at
least :data:`MIN_FILES` files and more than one core available to this process, the
programs are shared among that many worker processes, forked after parsing so that each
inherits the parsed trees and only findings travel back. Forking is the only start method
that inherits them: where the platform does not fork, or a thread is running (forking it
is unsafe), the programs are analysed in this process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.lint.findings import Finding
from harness.lint.project import Project

# Below this many files, starting processes costs more than it saves.
MIN_FILES = 48
# Shares per worker: a few large programs are spread out instead of ending up in one.
_SHARES_PER_WORKER = 4

Analyse = Callable[
    [Project, Mapping[Path, frozenset[str]] | None, frozenset[str] | None], list[Finding]
]

# What the forked workers analyse: set in the parent just before forking, inherited.
_job: (
    tuple[Sequence[Project], Mapping[Path, frozenset[str]] | None, frozenset[str] | None, Analyse]
    | None
) = None


def analyse_programs(
    programs: Sequence[Project],
    managed: Mapping[Path, frozenset[str]] | None,
    rules: frozenset[str] | None,
    analyse: Analyse,
    jobs: int | None = None,
) -> list[Finding]:
    """The findings of every program; ``jobs`` processes (None: by the number of files
    and cores, see the module's docstring)."""
    workers = _workers(programs) if jobs is None else min(jobs, len(programs))
    if workers <= 1 or not _can_fork():
        return [found for program in programs for found in analyse(program, managed, rules)]
    # Imported only here: it takes longer to import than most lints of a few files take.
    import multiprocessing  # noqa: PLC0415

    global _job  # noqa: PLW0603 (handed to the forked workers by inheritance)
    _job = (programs, managed, rules, analyse)
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_ignore_interrupts) as pool:
            found = [
                f
                for share in pool.imap_unordered(_share, _shares(programs, workers))
                for f in share
            ]
            pool.close()
            pool.join()
    finally:
        _job = None
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
    import multiprocessing  # noqa: PLC0415 (see analyse_programs)

    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _shares(programs: Sequence[Project], workers: int) -> list[list[int]]:
    """Program indexes in shares of about equal source size, largest programs first."""
    count = min(len(programs), workers * _SHARES_PER_WORKER)
    shares: list[list[int]] = [[] for _ in range(count)]
    sizes = [0] * count
    by_size = sorted(
        range(len(programs)),
        key=lambda index: -sum(len(m.source) for m in programs[index].modules),
    )
    for index in by_size:
        smallest = sizes.index(min(sizes))
        shares[smallest].append(index)
        sizes[smallest] += sum(len(m.source) for m in programs[index].modules)
    return [share for share in shares if share]


def _share(indexes: list[int]) -> list[Finding]:
    if _job is None:  # only a worker forked by analyse_programs runs this
        return []
    programs, managed, rules, analyse = _job
    return [found for index in indexes for found in analyse(programs[index], managed, rules)]


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool and reports it once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


__all__ = ["MIN_FILES", "analyse_programs", "available_cores"]
