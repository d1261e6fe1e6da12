"""A container's outputs, copied out of it into a run's folder.

Outputs come back as a tar stream from the engine, which is as trusted as the experiment
that wrote them, that is, not at all. tarfile's "data" filter is not enough on every
Python (CVE-2025-4517: a chain of links longer than PATH_MAX escaped it before 3.11.13),
and outputs are files anyway: :func:`extract_outputs` accepts plain files and folders
only, checks every name component by component, and creates each file new, never
through a link.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO

from harness.errors import EngineError

# Bounds on what an engine may send back: far more than an experiment writes.
MAX_OUTPUT_MEMBERS = 100_000


MAX_OUTPUT_DEPTH = 32


class UnsafeOutput(EngineError):
    """An engine sent back something that is no plain output: refused, nothing kept."""

    default_hint = "experiments must write plain files and folders into their output folder"


def extract_outputs(stream: IO[bytes], target: Path) -> None:
    """Unpack a container folder's tar (as the engine's archive API sends it, every name
    under the folder's own) into ``target``: plain files and folders, nothing else."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for count, member in enumerate(archive, start=1):
            if count > MAX_OUTPUT_MEMBERS:
                raise UnsafeOutput(f"the outputs hold more than {MAX_OUTPUT_MEMBERS} entries")
            _, _, relative = member.name.partition("/")
            parts = _checked_parts(member.name, relative)
            if not parts:
                continue  # the folder itself
            if member.isdir():
                _make_folders(target, parts)
            elif member.isreg():
                folder = _make_folders(target, parts[:-1])
                source = archive.extractfile(member)
                if source is None:
                    raise UnsafeOutput(f"the output {relative} cannot be read from the archive")
                _write_new(folder / parts[-1], source)
            else:
                kind = "a link" if member.issym() or member.islnk() else "a device or pipe"
                raise UnsafeOutput(f"the output {relative} is {kind}, not a plain file")


def _checked_parts(name: str, relative: str) -> list[str]:
    parts = [part for part in relative.split("/") if part]
    if name.startswith("/") or any(part in (".", "..") or "\0" in part for part in parts):
        raise UnsafeOutput(f"the output {name!r} names a place outside its folder")
    if len(parts) > MAX_OUTPUT_DEPTH:
        raise UnsafeOutput(f"the output {relative} nests deeper than {MAX_OUTPUT_DEPTH} folders")
    return parts


def _make_folders(target: Path, parts: list[str]) -> Path:
    """``target/parts...``, made one folder at a time; an existing link on the way refuses."""
    folder = target
    for part in parts:
        folder = folder / part
        try:
            folder.mkdir(mode=0o755)
        except FileExistsError:
            if not stat.S_ISDIR(folder.lstat().st_mode):
                raise UnsafeOutput(
                    f"the output folder {folder.relative_to(target)} is not a folder here"
                ) from None
    return folder


def _write_new(path: Path, source: IO[bytes]) -> None:
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise UnsafeOutput(f"the output {path.name} comes twice in the archive") from None
    with os.fdopen(handle, "wb") as stream:
        shutil.copyfileobj(source, stream, 1 << 20)
