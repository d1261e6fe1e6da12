"""Which files an experiment wrote are artifacts, and setting the others aside.

Only what ``outputs`` names (every file, when it names none), less what ``exclude``
names, is an artifact: hashed, compared, certified. The rest (TensorBoard's event files,
time-stamped logs) is moved out of the output folder into ``unlisted/`` of the run's meta
folder, where nothing compares it. The runtime does this inside the container, as the
user that wrote the files: the host's user may not move a file out of a folder the
experiment made. The host does the same for runs whose runtime did not (see
``harness.runs.records``).

A glob names a file when it matches its path, its name (a glob without ``/``), or a
folder it lies in; ``**/`` also matches no folder at all. ``*`` crosses folders, as in
the compare policies' globs, so one glob means one set of files wherever it is written.

Standard library only, like the rest of the runtime.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
from collections.abc import Iterable
from pathlib import Path

UNLISTED = "unlisted"
# Past this many levels a tree of outputs is an attack, not an output.
MAX_DEPTH = 32


def glob_matches(glob: str, path: str) -> bool:
    """fnmatch on the relative path; a pattern without ``/`` also matches the file name."""
    if fnmatch.fnmatchcase(path, glob):
        return True
    return "/" not in glob and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], glob)


def is_artifact(path: str, outputs: Iterable[str], exclude: Iterable[str]) -> bool:
    """Whether the file at ``path`` (relative to the output folder) is an artifact."""
    globs = list(outputs)
    named = not globs or any(names(glob, path) for glob in globs)
    return named and not any(names(glob, path) for glob in exclude)


def names(glob: str, path: str) -> bool:
    """Whether ``glob`` names the file at ``path``: the path, its name, or a folder of it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    candidates = [glob, glob[3:]] if glob.startswith("**/") else [glob]
    return any(glob_matches(g, prefix) for g in candidates for prefix in prefixes)


def entries(folder: Path, depth: int = MAX_DEPTH) -> list[Path]:
    """Everything under ``folder`` that is not a folder (links included, never followed),
    sorted; ValueError past ``depth`` levels."""
    found: list[Path] = []
    pending = [(folder, 0)]
    while pending:
        current, level = pending.pop()
        if level > depth:
            raise ValueError(f"{current} nests deeper than {depth} folders")
        for entry in sorted(current.iterdir()):
            if stat.S_ISDIR(entry.lstat().st_mode):
                pending.append((entry, level + 1))
            else:
                found.append(entry)
    return sorted(found)


def set_aside(
    output: Path, unlisted: Path, outputs: Iterable[str], exclude: Iterable[str]
) -> list[str]:
    """Move every file of ``output`` that is not an artifact to the same relative path
    under ``unlisted``; returns their paths. Nothing is opened or followed: a link moves as
    a link (and the host refuses it where it lands), and folders left empty go."""
    outputs, exclude = list(outputs), list(exclude)
    if not (outputs or exclude) or not stat.S_ISDIR(output.lstat().st_mode):
        return []
    moved = []
    for path in entries(output):
        relative = path.relative_to(output).as_posix()
        if is_artifact(relative, outputs, exclude):
            continue
        target = unlisted / relative
        _real_folders(unlisted.parent, target.parent)
        path.rename(target)
        moved.append(relative)
    if moved:
        _remove_empty_folders(output)
    return moved


def _real_folders(base: Path, folder: Path) -> None:
    """Make ``folder`` (below ``base``) one component at a time, refusing any component
    that is a link or not a folder: on the host, a link the container left in place of
    ``meta/unlisted`` (or below it) would move a file to wherever the link points."""
    current = base
    for part in folder.relative_to(base).parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            current.mkdir()
        if not stat.S_ISDIR(current.lstat().st_mode):
            raise ValueError(f"{current} is a link or not a folder: nothing is set aside there")


def _remove_empty_folders(folder: Path) -> None:
    """The folders that held only unlisted files: left empty, they would read as output."""
    folders: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        for entry in current.iterdir():
            if stat.S_ISDIR(entry.lstat().st_mode):
                folders.append(entry)
                pending.append(entry)
    # The deepest first, so that a folder of empty folders goes too.
    for path in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if not any(path.iterdir()):
            os.rmdir(path)  # noqa: PTH106 - the same as Path.rmdir, one level
