"""The files of a run, packed for an engine that cannot see this machine's folders.

On the local engine a run's container bind-mounts the project, the spec, the inputs and
its output folders. A remote engine (ssh://, tcp://, a CI runner's) has none of these
paths, so the same tree is packed into one tar archive, unpacked into a named volume on
that engine, and mounted read-only at the same place: the experiment sees the same
paths and the same bytes either way. Outputs come back by copying the output folders
out of the stopped container.

The project travels as :mod:`harness.project_files` says, the same files the local
container sees through its bind mount: not harness's own state, version control, caches
or virtual environments, nor any file that others cannot read here. Links travel as
links, as the bind mount shows them.

Outputs come back as a tar stream from the engine, which is as trusted as the experiment
that wrote them, that is, not at all. tarfile's "data" filter is not enough on every
Python (CVE-2025-4517: a chain of links longer than PATH_MAX escaped it before 3.11.13),
and outputs are files anyway: :func:`extract_outputs` accepts plain files and folders
only, checks every name component by component, and creates each file new, never
through a link.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from harness import project_files
from harness.errors import EngineError

# The output folders are written by the container's own user, not root.
_WRITABLE = 0o777
# Bounds on what an engine may send back: far more than an experiment writes.
MAX_OUTPUT_MEMBERS = 100_000
MAX_OUTPUT_DEPTH = 32


class UnsafeOutput(EngineError):
    """An engine sent back something that is no plain output: refused, nothing kept."""

    default_hint = "experiments must write plain files and folders into their output folder"


def archive(
    project: Path, spec: Path, inputs: Mapping[str, Path], *, harness_state: str
) -> IO[bytes]:
    """A tar of ``project/``, ``spec.json``, ``inputs/NAME``, ``out/`` and ``meta/``.

    It is spooled to disk past a few megabytes, so large inputs do not sit in memory.
    Owners are root and modes are normalised (readable by all), as the container's user
    is not this machine's.
    """
    spooled = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - returned open
    with tarfile.open(fileobj=spooled, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "project")
        for path in project_files.walk(project):
            _add(tar, path, f"project/{path.relative_to(project).as_posix()}")
        # The mount point of the tmpfs that hides harness's state from experiments.
        _add_dir(tar, f"project/{harness_state}")
        _add(tar, spec, "spec.json")
        _add_dir(tar, "inputs")
        for name, source in inputs.items():
            if source.is_dir():
                _add_dir(tar, f"inputs/{name}")
                for path in project_files.walk(source, skip_state=False):
                    _add(tar, path, f"inputs/{name}/{path.relative_to(source).as_posix()}")
            else:
                _add(tar, source, f"inputs/{name}")
        _add_dir(tar, "out", _WRITABLE)
        _add_dir(tar, "meta", _WRITABLE)
    spooled.seek(0)
    return spooled


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if info.isdir():
        info.mode = 0o755
        tar.addfile(info)
    elif info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
        with path.open("rb") as stream:
            tar.addfile(info, stream)
    elif info.issym():
        tar.addfile(info)
    # Sockets, devices and pipes are no part of a project: left out.


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info, io.BytesIO(b""))


# -- outputs coming back ---------------------------------------------------------------


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
