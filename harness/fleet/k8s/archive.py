"""The project's source as one deterministic gzip tarball, for a render's ConfigMap.

The files are those :mod:`harness.project_files` says travel, as `harness run` shows them
to its container. The archive depends only on their paths, contents and executable bits,
so rendering twice gives the same bytes and the Job facts can name its digest; it holds
files and folders only, which is all the initContainer accepts.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import project_files

ARCHIVE = "project.tar.gz"


def pack(root: Path, say: Callable[[str], None] = lambda _: None) -> tuple[list[str], bytes]:
    """The files of the project at ``root`` that travel, and their archive."""
    files = project_files.files(root, say)
    return files, project_archive(root, files)


def project_archive(root: Path, files: Sequence[str]) -> bytes:
    """A gzip tar of ``files`` that depends only on their paths, contents and executable
    bits: sorted, every time 0, owner 0:0 without names, modes 0755 or 0644, and a gzip
    header without name or time. Rendering twice gives the same bytes."""
    folders = sorted({parent for name in files for parent in _parents(name)})
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in folders:
            archive.addfile(_member(name, tarfile.DIRTYPE, 0o755, 0))
        for name in sorted(files):
            data = (root / name).read_bytes()
            executable = (root / name).stat().st_mode & 0o111
            info = _member(name, tarfile.REGTYPE, 0o755 if executable else 0o644, len(data))
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def _member(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info
