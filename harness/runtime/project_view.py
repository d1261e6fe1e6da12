"""A writable view of the project for the experiment, the project itself left untouched.

Code written to be run from its checkout writes next to itself: MLflow tracks to
``./mlruns``, trainers save to ``./outputs`` and ``./checkpoints``. The project reaches
the container read-only (other runs, and the host's files, must not change under a run),
so the runtime lays out the project again in a writable, memory-backed folder before the
experiment starts and runs it there: every folder is made anew, small files are copied,
large ones and links appear as links to the read-only original (reading them works,
writing one in place fails as it would have before). Nothing the run writes there
reaches the project.

What the run wrote there is evidence too: after the run, every file the run made or
changed in the view whose project-relative path matches one of the experiment's output
globs is copied into the output folder at the same path, so ``outputs = ["mlruns/**"]``
names MLflow's store as it lies in the project. An experiment that names no outputs has
every file it wrote as an artifact, there as in the output folder: a script run as
``train.py --out runs/`` must not pass verification with nothing compared because its
results lay next to its code (bytecode and tools' caches are never results). A path the
experiment wrote in the output folder itself wins.

Everything here runs inside the container, on the standard library alone. The walk never
follows a link, skips version control, harness's state, caches and virtual environments
(as the copies for other hosts do), and is bounded in depth, entries and copied bytes.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.runtime import mlflow_store

# Never laid out: harness's records, version control, bytecode and tools' caches.
SKIPPED = frozenset(
    {".harness", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)
# The glob of an experiment that names no outputs: every file it writes.
EVERYTHING = "**"
# Files up to this size are copied (a run may rewrite them); larger ones are linked.
COPY_LIMIT = 1 << 20
# All copies together: past this, files are linked whatever their size.
COPY_TOTAL_LIMIT = 256 << 20
MAX_ENTRIES = 500_000
MAX_DEPTH = 64
# What is brought back from the view into the output folder, at most.
COLLECT_LIMIT = 64 << 30


class ViewError(Exception):
    """The project view cannot be made or read back; the message says why."""


@dataclass
class Laid:
    """What :func:`lay_out` did: how many files it copied and linked, and the bytes copied."""

    copied: int = 0
    linked: int = 0
    copied_bytes: int = 0
    # Project-relative path -> (size, mtime_ns) of each copy as laid, to tell what a run
    # changed from what it left alone.
    copies: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The project's file each link of the view names -> (size, mtime_ns) when it was laid:
    # where the project is not read-only (the host executor), a write through a link
    # would reach it, and must not pass unnoticed (see changed_links).
    links: dict[str, tuple[int, int]] = field(default_factory=dict)


def lay_out(source: Path, view: Path) -> Laid:
    """Make ``view`` (an empty, writable folder) a writable image of ``source``."""
    if not source.is_dir():
        raise ViewError(f"the project folder {source} is missing from the container")
    view.mkdir(parents=True, exist_ok=True)
    if any(view.iterdir()):
        raise ViewError(f"the project view {view} is not empty")
    laid = Laid()
    entries = 0
    pending: list[tuple[Path, Path, int]] = [(source, view, 0)]
    while pending:
        folder, target, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ViewError(f"{folder} lies more than {MAX_DEPTH} folders deep")
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            entries += 1
            if entries > MAX_ENTRIES:
                raise ViewError(f"the project holds more than {MAX_ENTRIES} entries")
            if entry.name in SKIPPED:
                continue
            if _lay_entry(entry, target / entry.name, view, laid):
                pending.append((Path(entry.path), target / entry.name, depth + 1))
    return laid


def _lay_entry(entry: os.DirEntry[str], made: Path, view: Path, laid: Laid) -> bool:
    """Lay out one entry at ``made``; True for a folder whose entries come next."""
    info = entry.stat(follow_symlinks=False)
    # What the experiment's user cannot read (a tool's private cache, a key) it could not
    # have read through the read-only mount either: left out, as the host's walk does.
    if not stat.S_ISLNK(info.st_mode) and not _readable(entry.path, info.st_mode):
        return False
    if stat.S_ISLNK(info.st_mode):
        made.symlink_to(Path(entry.path).readlink())
    elif stat.S_ISDIR(info.st_mode):
        if (Path(entry.path) / "pyvenv.cfg").is_file():
            return False  # a virtual environment of the host's: the image has its own
        made.mkdir()
        return True
    elif stat.S_ISREG(info.st_mode):
        fits = laid.copied_bytes + info.st_size <= COPY_TOTAL_LIMIT
        if info.st_size <= COPY_LIMIT and fits:
            shutil.copyfile(entry.path, made)
            made.chmod(0o755 if info.st_mode & 0o111 else 0o644)
            laid.copied += 1
            laid.copied_bytes += info.st_size
            written = made.stat()
            laid.copies[made.relative_to(view).as_posix()] = (
                written.st_size,
                written.st_mtime_ns,
            )
        else:
            made.symlink_to(entry.path)
            laid.linked += 1
            laid.links[entry.path] = (info.st_size, info.st_mtime_ns)
    # Sockets, devices and pipes are no part of a project: left out.
    return False


def _readable(path: str, mode: int) -> bool:
    """Whether this process may read a file, or list and enter a folder."""
    wanted = os.R_OK | os.X_OK if stat.S_ISDIR(mode) else os.R_OK
    return os.access(path, wanted, follow_symlinks=False)


def changed_links(source: Path, laid: Laid) -> list[str]:
    """Project-relative paths of the project's large files (linked into the view) that
    changed since the view was laid out: written through the view, or edited meanwhile."""
    changed = []
    for path, (size, mtime_ns) in sorted(laid.links.items()):
        try:
            info = Path(path).lstat()
        except OSError:
            changed.append(Path(path).relative_to(source).as_posix())
            continue
        if (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
            changed.append(Path(path).relative_to(source).as_posix())
    return changed


def written_by_run(view: Path, laid: Laid) -> Iterable[str]:
    """Project-relative paths of the regular files the run made or changed in ``view``,
    sorted; links (the project's own large files) and untouched copies are left out."""
    found: list[str] = []
    pending: list[tuple[Path, int]] = [(view, 0)]
    while pending:
        folder, depth = pending.pop()
        if depth > MAX_DEPTH:
            continue
        for entry in os.scandir(folder):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                pending.append((Path(entry.path), depth + 1))
            elif stat.S_ISREG(info.st_mode):
                relative = Path(entry.path).relative_to(view).as_posix()
                if laid.copies.get(relative) != (info.st_size, info.st_mtime_ns):
                    found.append(relative)
    return sorted(found)


def matches(relative: str, globs: Sequence[str]) -> bool:
    """Whether a project-relative path matches one of the output globs, as compare policies
    match artifacts: fnmatch on the whole path (``*`` spans folders, so ``mlruns/**`` and
    ``mlruns/*`` take the whole store), and a glob without ``/`` matches the file name."""
    for glob in globs:
        pattern = glob.removeprefix("./")
        if fnmatch.fnmatchcase(relative, pattern):
            return True
        if "/" not in pattern and fnmatch.fnmatchcase(relative.rsplit("/", 1)[-1], pattern):
            return True
    return False


@dataclass
class Collected:
    """What :func:`collect` kept (project-relative paths in the output folder) and what it
    set aside of MLflow stores (one line per kind, for the run record)."""

    kept: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    _total: int = 0

    def put(self, output: Path, relative: str, data: Path | bytes) -> None:
        target = output / relative
        if target.exists() or target.is_symlink():
            return  # the experiment's own file in the output folder wins
        self._total += data.stat().st_size if isinstance(data, Path) else len(data)
        if self._total > COLLECT_LIMIT:
            raise ViewError(f"the outputs written in the project exceed {COLLECT_LIMIT >> 30} GiB")
        _make_folders(output, target.parent)
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data)
        self.kept.append(relative)


def collect(view: Path, laid: Laid, output: Path, globs: Sequence[str]) -> Collected:
    """Copy what the run wrote in ``view`` and ``globs`` name (everything, without globs)
    into ``output``, at the same project-relative path; an MLflow file store or tracking
    database among it goes by logical place (see :mod:`harness.runtime.mlflow_store`). A
    path the experiment already wrote in ``output`` is kept as it is."""
    collected = Collected()
    written = list(written_by_run(view, laid))
    if not globs:
        # No outputs named: everything the run wrote is a result, caches aside.
        written = [path for path in written if SKIPPED.isdisjoint(path.split("/")[:-1])]
        globs = (EVERYTHING,)
    claimed: set[str] = set()
    for relative in written:
        if matches(relative, globs) and mlflow_store.is_database(view / relative):
            claimed |= _collect_database(
                view, relative, written=written, output=output, globs=globs, collected=collected
            )
    stores: dict[str, set[str]] = {}
    known: dict[str, bool] = {}
    for relative in written:
        if relative in claimed or not matches(relative, globs):
            continue
        store = _store_of(view, relative, known)
        if store is not None:
            stores.setdefault(store, set()).add(relative.removeprefix(store + "/"))
        else:
            collected.put(output, relative, view / relative)
    for store, inside_store in sorted(stores.items()):
        logical = mlflow_store.lay_out(view / store, inside_store)
        for inside, data in sorted(logical.files.items()):
            collected.put(output, f"{store}/{inside}", data)
        collected.set_aside += logical.summary(store)
    return collected


def _collect_database(
    view: Path,
    relative: str,
    *,
    written: Sequence[str],
    output: Path,
    globs: Sequence[str],
    collected: Collected,
) -> set[str]:
    """A tracking database (sqlite:///mlflow.db) by logical place, with the artifacts its
    runs wrote (under folders named by ids); returns the paths it accounts for."""
    try:
        logical, artifacts = mlflow_store.lay_out_database(view / relative, view, set(written))
    except mlflow_store.DatabaseError as error:
        raise ViewError(f"the tracking database {relative} cannot be read: {error}") from None
    for inside, data in sorted(logical.files.items()):
        collected.put(output, f"{relative}/{inside}", data)
    # An artifact goes beside the rest of its folder when a glob names that folder
    # (mlruns/**), else under the database's place.
    for path, artifact in sorted(artifacts.items()):
        if matches(path, globs):
            collected.put(output, artifact.beside, artifact.data)
        else:
            collected.put(output, f"{relative}/{artifact.inside}", artifact.data)
    collected.set_aside += logical.summary(relative)
    return {relative, *artifacts}


def _store_of(view: Path, relative: str, known: dict[str, bool]) -> str | None:
    """The nearest folder above ``relative`` that is an MLflow file store, if any."""
    parts = relative.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        if folder not in known:
            known[folder] = mlflow_store.is_store(view / folder)
        if known[folder]:
            return folder
    return None


def _make_folders(root: Path, folder: Path) -> None:
    """Make ``folder`` under ``root`` without following a link the experiment left there."""
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise ViewError(f"{current} is in the way of an output the run wrote in the project")
        if not current.exists():
            current.mkdir()


__all__ = [
    "Laid",
    "ViewError",
    "changed_links",
    "collect",
    "lay_out",
    "matches",
    "written_by_run",
]
