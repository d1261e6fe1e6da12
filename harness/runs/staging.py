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

Outputs come back through :mod:`harness.copy_out`, which trusts nothing the engine sends.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from harness import project_files

# The output folders are written by the container's own user, not root.
_WRITABLE = 0o777


def archive(
    project: Path, spec: Path, inputs: Mapping[str, Path], *, harness_state: str
) -> IO[bytes]:
    """A tar of ``source/`` (the project), ``project/`` (the mount point of its writable
    view), ``spec.json``, ``inputs/NAME``, ``out/`` and ``meta/``.

    It is spooled to disk past a few megabytes, so large inputs do not sit in memory.
    Owners are root and modes are normalised (readable by all), as the container's user
    is not this machine's.
    """
    spooled = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - returned open
    with tarfile.open(fileobj=spooled, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # The project under source/, read-only; project/ is the mount point of the tmpfs
        # the runtime lays out its writable view in (see harness.container).
        _add_dir(tar, "source")
        for path in project_files.walk(project):
            _add(tar, path, f"source/{path.relative_to(project).as_posix()}")
        # The mount point of the tmpfs that hides harness's state from experiments.
        _add_dir(tar, f"source/{harness_state}")
        _add_dir(tar, "project")
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
