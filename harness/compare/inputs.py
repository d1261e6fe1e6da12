"""Which files a comparison may read: regular files, inside the folders being compared.

Artifacts come from other machines and other users. A folder from a CI leg can hold a
symbolic link to ``/etc/shadow`` (whose lines a text diff would print), to ``/dev/zero``
(an endless read), a FIFO (a read that never returns) or a ``/proc`` file (whose size is
0 however much it holds). Every file is checked here before any reader opens it: links
must stay inside the compared folder, and the file they name must be a regular file on
a real file system.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.errors import ArtifactError

# Kernel file systems: their files report sizes that are not their contents, and reading
# some of them has effects. Nothing a run writes lives there.
PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))

_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}
_HINT = "compare regular files only; copy the artifact's bytes into the run folder instead"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_readable(path: Path, label: str, root: Path | None = None) -> None:
    """Refuse ``path`` unless it is a regular file (inside ``root`` when one is given).

    ``root`` is the compared folder the file was found in; files the user named on the
    command line have none, and may be links anywhere.
    """
    target = Path(os.path.realpath(path))
    if root is not None and not _inside(target, Path(os.path.realpath(root))):
        raise ArtifactError(
            f"{label} is a link to {target}, outside the compared folder {root}",
            hint="links may point only inside the folder being compared; "
            "copy the file there instead",
        )
    if any(_inside(target, pseudo) for pseudo in PSEUDO_ROOTS):
        raise ArtifactError(f"{label} is {target}, a kernel file, not an artifact", hint=_HINT)
    try:
        mode = target.stat().st_mode
    except OSError as exc:
        raise ArtifactError(
            f"{label}: {exc.strerror or exc}", hint="check that the file exists and is readable"
        ) from None
    if not stat.S_ISREG(mode):
        kind = _TYPES.get(stat.S_IFMT(mode), "not a regular file")
        raise ArtifactError(f"{label} is {kind}, not a regular file", hint=_HINT)
