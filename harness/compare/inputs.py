"""Which files a comparison may read, and reading each one through a single checked open.

Artifacts come from other machines and other users. A folder from a CI leg can hold a
symbolic link to ``/etc/shadow`` (whose lines a text diff would print), to ``/dev/zero``
(an endless read), a FIFO (a read that never returns) or a ``/proc`` file (whose size is
0 however much it holds), and a hostile writer can swap a checked file for one of those
while the comparison runs. So a file is opened once, without following a link and
without blocking (``O_NOFOLLOW | O_NONBLOCK``), the descriptor itself is checked to be a
regular file, and every later read goes through that descriptor: whatever happens to the
name afterwards, what was checked is what is read. Readers that want a name (zipfile,
h5py, numpy) get the kernel's name for the open descriptor, ``/proc/self/fd/N``, which
reopens the same file, never whatever the path names by then.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PosixPath, PurePath, PurePosixPath

from harness.errors import ArtifactError

# Kernel file systems: their files report sizes that are not their contents, and reading
# some of them has effects. Nothing a run writes lives there.
PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))

# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = Path("/proc/self/fd")

_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
    stat.S_IFLNK: "a symbolic link",
}
_HINT = "compare regular files only; copy the artifact's bytes into the run folder instead"
_HINT_OUTSIDE = "links may point only inside the folder being compared; copy the file there"


def inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def kind_name(mode: int) -> str:
    return _TYPES.get(stat.S_IFMT(mode), "not a regular file")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a compared file lies: the folder being compared and the file's path in it.

    Some formats name other files (an HDF5 external link, a virtual dataset's sources).
    Their readers follow such a name only to a file inside the same compared folder,
    opened as every compared file is (no link followed on the way, checked descriptor),
    so that a file cannot make the comparison read what it does not compare.
    """

    root: Path
    relative: PurePosixPath

    def inner(self, name: str, label: str) -> PurePosixPath:
        """``name`` as a file names another (relative to its own folder, or absolute), as a
        path inside the compared folder; refused when it leads outside."""
        if name.startswith("/"):
            real_root = os.path.realpath(self.root)
            target = os.path.normpath(name)
            if target != real_root and not target.startswith(real_root.rstrip("/") + "/"):
                raise self._outside(name, label)
            found = PurePosixPath(os.path.relpath(target, real_root))
        else:
            found = PurePosixPath(os.path.normpath(self.relative.parent / name))
        if not found.parts or found.parts[0] in ("..", "."):
            raise self._outside(name, label)
        return found

    def open(self, relative: PurePosixPath, label: str) -> Opened:
        """The file at ``relative`` inside the compared folder, opened and checked."""
        try:
            root_fd = os.open(self.root, FOLDER_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise _refuse(label, exc) from None
        try:
            opened = open_beneath(root_fd, Path(relative), label, str(self.root / relative))
        finally:
            os.close(root_fd)
        return opened.within(self.root, relative)

    def _outside(self, name: str, label: str) -> ArtifactError:
        return ArtifactError(
            f"{label} names {name!r}, outside the compared folder {self.root}",
            hint=_HINT_OUTSIDE,
        )


class DescriptorPath(PosixPath):
    """A path that names a file in messages but opens the checked descriptor.

    ``str()`` (and so every message) is the artifact's own path; ``os.fspath()``, which
    ``open``, ``os.stat``, zipfile, numpy and h5py use to open it, is ``/proc/self/fd/N``.
    ``place`` says where the file lies, for readers that follow names of other files.
    """

    _through: str | None = None
    place: Place | None = None

    def __fspath__(self) -> str:
        return self._through if self._through is not None else str(self)


def _proc_fd_available() -> bool:
    return _PROC_FD.is_dir()


@dataclass(slots=True)
class Opened:
    """A regular file, opened once and checked through its descriptor.

    ``path`` is a string: a folder of a hundred thousand files should not pay for two
    hundred thousand ``Path`` objects when nearly all of them are only compared as bytes.
    """

    fd: int
    path: str
    size: int
    # Where the file lies (see Place), kept as plain values: most files of a large folder
    # are only compared as bytes, and never need a Place.
    root: Path | None = None
    relative: str = ""

    def within(self, root: Path, relative: str | PurePath) -> Opened:
        """This file, known to lie at ``relative`` inside the compared folder ``root``."""
        self.root, self.relative = root, str(relative)
        return self

    def reader_path(self) -> Path:
        """A path for readers that open by name: it reaches this descriptor's file."""
        if not _PROC_AVAILABLE:
            return Path(self.path)
        path = DescriptorPath(self.path)
        path._through = f"{_PROC_FD}/{self.fd}"
        if self.root is not None:
            path.place = Place(self.root, PurePosixPath(self.relative))
        return path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_PROC_AVAILABLE = _proc_fd_available()


def _refuse(label: str, error: OSError) -> ArtifactError:
    if error.errno == errno.ELOOP:
        return ArtifactError(
            f"{label} is a symbolic link (or became one while being compared)", hint=_HINT
        )
    return ArtifactError(
        f"{label}: {error.strerror or error}", hint="check that the file exists and is readable"
    )


def open_checked(
    name: str | Path, label: str, path: str, *, dir_fd: int | None = None, follow: bool = False
) -> Opened:
    """Open ``name`` (relative to ``dir_fd`` when given) once and check the descriptor.

    ``follow`` is only for files the user named on the command line, which may be links
    anywhere; anything found inside a compared folder is opened without following.
    """
    flags = FILE_FLAGS & ~os.O_NOFOLLOW if follow else FILE_FLAGS
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise _refuse(label, exc) from None
    try:
        info = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise _refuse(label, exc) from None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ArtifactError(f"{label} is {kind_name(info.st_mode)}, not a file", hint=_HINT)
    return Opened(fd, path, info.st_size)


def open_named(path: Path, label: str) -> Opened:
    """A file the user named: it may be a link, but not to a kernel file or a device.

    Its folder is the one it is compared in: the files it names (see :class:`Place`)
    must lie there."""
    target = Path(os.path.realpath(path))
    if any(inside(target, pseudo) for pseudo in PSEUDO_ROOTS):
        raise ArtifactError(f"{label} is {target}, a kernel file, not an artifact", hint=_HINT)
    return open_checked(path, label, str(path), follow=True).within(path.parent, path.name)


def open_beneath(root_fd: int, relative: Path, label: str, path: str) -> Opened:
    """Open ``relative`` under the folder ``root_fd`` one component at a time, following
    no link on the way: a link's resolved target is opened this way, so that a folder
    swapped for a link between resolving and opening cannot lead outside."""
    parts = relative.parts
    if not parts or any(part in ("..", "/") for part in parts):
        raise ArtifactError(f"{label} points outside the compared folder", hint=_HINT_OUTSIDE)
    folder = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, FOLDER_FLAGS, dir_fd=folder)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR and _is_link(part, folder):
                    # O_DIRECTORY answers a link to a folder so; say what it is.
                    exc = OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                raise _refuse(label, exc) from None
            os.close(folder)
            folder = inner
        return open_checked(parts[-1], label, path, dir_fd=folder)
    finally:
        os.close(folder)


def _is_link(name: str, folder_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def link_target(link: Path, root: Path, label: str) -> Path:
    """Where a link inside ``root`` leads, relative to ``root``; refused when outside."""
    target = Path(os.path.realpath(link))
    real_root = Path(os.path.realpath(root))
    if not inside(target, real_root):
        raise ArtifactError(
            f"{label} is a link to {target}, outside the compared folder {root}",
            hint=_HINT_OUTSIDE,
        )
    return target.relative_to(real_root)
