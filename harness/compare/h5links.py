"""The other files an HDF5 file reads: external links and virtual datasets' sources.

h5py follows an external link, and reads a virtual dataset's sources, by opening files by
name, relative to the file's folder, the current folder or prefixes taken from the
environment. A compared file read that way could make the comparison read, or miss,
anything. So harness follows these names itself, and only to files inside the folder
being compared (:class:`harness.compare.inputs.Place`): each target is opened as every
compared file is (no link followed on the way, its descriptor checked), its objects are
reached through hard links only, nesting is bounded and a cycle is refused. A virtual
dataset is then read by HDF5 with its source names resolved in a private folder whose
only entries lead to those checked descriptors. Anything else is refused with one line.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import h5py

from harness.compare.inputs import Opened, Place
from harness.compare.names import shown
from harness.errors import ArtifactError

# External links inside linked files inside linked files...: real layouts use one or two.
MAX_DEPTH = 8
# Names visited across every linked group: a few links to a large group, nested, would
# otherwise repeat it exponentially.
MAX_NAMES = 1_000_000

HINT_OUTSIDE = (
    "harness compares what is inside the compared folder; put the linked file there "
    "(external links and virtual datasets may name files in the same folder), or copy "
    "the data into the file (h5py: dataset[...] = source[...])"
)


def refuse_outside(label: str, name: str, what: str) -> ArtifactError:
    return ArtifactError(
        f"{label}: {shown(name)} is {what}, which reads data outside the compared folder",
        hint=HINT_OUTSIDE,
    )


@dataclass(frozen=True)
class _File:
    handle: h5py.File
    place: Place
    key: tuple[int, int]
    fd: int


class LinkedFiles:
    """The files one compared HDF5 file reaches, each opened once and kept open in
    ``stack``; ``label`` names the compared file in messages."""

    @dataclass(frozen=True)
    class Where:
        """Where an object was found: its file's place (None: nothing may be followed
        from it) and the external links followed to reach it, as (file, path) steps."""

        place: Place | None
        key: tuple[int, int]
        chain: tuple[tuple[tuple[int, int], str], ...] = ()

    def __init__(
        self, stack: ExitStack, label: str, place: Place | None, info: os.stat_result
    ) -> None:
        self.stack = stack
        self.label = label
        key = (info.st_dev, info.st_ino)
        self.top = LinkedFiles.Where(place, key, ((key, "/"),))
        self._files: dict[PurePosixPath, _File] = {}
        self._names = 0
        self._scratch: Path | None = None

    def count(self, names: int, where: str) -> None:
        self._names += names
        if self._names > MAX_NAMES:
            raise ArtifactError(
                f"{self.label}: its links reach more than {MAX_NAMES} names (at "
                f"{shown(where or '/')})",
                hint="link each group once; harness reads every name a link reaches",
            )

    def member(self, group: h5py.Group, name: str, where: Where) -> h5py.Group | h5py.Dataset:
        """``group[name]``; a dataset is opened so that, should it be virtual, HDF5 looks
        for its sources only in this comparison's private folder (an HDF5 dataset keeps
        the access settings of its first opening)."""
        if where.place is None or group.get(name, getclass=True) is not h5py.Dataset:
            found: h5py.Group | h5py.Dataset = group[name]
            return found
        access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        access.set_virtual_prefix(os.fsencode(f"{self._base(where.place)}/"))
        opened = h5py.h5d.open(group.id, name.encode("utf-8", "surrogateescape"), access)
        return h5py.Dataset(opened)

    def _base(self, place: Place) -> Path:
        """The private folder a virtual dataset's relative source names start from."""
        if self._scratch is None:
            folder = self.stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-vds-"))
            self._scratch = Path(folder)
        base = self._scratch / place.relative.parent
        if ":" in str(base):  # HDF5 reads a prefix as a list of folders, split at ":"
            raise ArtifactError(
                f"{self.label}: the temporary folder {self._scratch} holds a ':'",
                hint="set TMPDIR to a folder whose path has no ':'",
            )
        return base

    def _open(self, place: Place, name: str, what: str) -> _File:
        """The file ``name`` (as the file at ``place`` names it), opened once per path:
        names inside it are resolved from that path, as HDF5 would."""
        label = f"{self.label}: {what}"
        relative = place.inner(name, label)
        known = self._files.get(relative)
        if known is not None:
            return known
        opened: Opened = place.open(relative, label)
        self.stack.callback(opened.close)
        info = os.fstat(opened.fd)
        key = (info.st_dev, info.st_ino)
        try:
            handle = self.stack.enter_context(h5py.File(opened.reader_path(), "r"))
        except OSError as exc:
            raise ArtifactError(
                f"{label}: {shown(str(relative))} is not a readable HDF5 file ({exc})",
                hint="the linked file is truncated or corrupt; regenerate it",
            ) from None
        found = _File(handle, Place(place.root, relative), key, opened.fd)
        self._files[relative] = found
        return found

    def external(
        self, name: str, filename: str, path: str, where: Where
    ) -> tuple[h5py.Group | h5py.Dataset, Where]:
        """The object the external link ``name`` (to ``path`` in ``filename``) leads to,
        and where it is."""
        what = f"an external link to {filename}"
        if where.place is None:
            raise refuse_outside(self.label, name, what)
        if len(where.chain) > MAX_DEPTH:
            raise ArtifactError(
                f"{self.label}: {shown(name)}: external links nest more than {MAX_DEPTH} deep",
                hint="link to the data itself, not to another link",
            )
        target = self._open(where.place, filename, f"{shown(name)} ({what})")
        step = (target.key, _absolute(path))
        if step in where.chain:
            raise ArtifactError(
                f"{self.label}: {shown(name)}: external links lead back to "
                f"{shown(step[1])} in {shown(str(target.place.relative))}, a cycle",
                hint="an external link must not lead to a group that holds it",
            )
        inner = LinkedFiles.Where(target.place, target.key, (*where.chain, step))
        label = f"{self.label}: {shown(name)} ({what})"
        return self._by_hard_links(target.handle, step[1], label, inner), inner

    def virtual(self, name: str, dataset: h5py.Dataset, where: Where) -> h5py.Dataset:
        """The virtual dataset ``name`` (opened by :meth:`member`), once each of its
        sources is known to be a plain dataset in a checked file inside the compared
        folder, which HDF5 will find through the private folder and nowhere else."""
        what = "a virtual dataset"
        if where.place is None:
            raise refuse_outside(self.label, name, what)
        label = f"{self.label}: {shown(name)} ({what})"
        if os.environ.get("HDF5_VDS_PREFIX"):
            raise ArtifactError(
                f"{label}: HDF5_VDS_PREFIX is set, so HDF5 would look for its sources there",
                hint="unset HDF5_VDS_PREFIX to compare files with virtual datasets",
            )
        base = self._base(where.place)
        base.mkdir(parents=True, exist_ok=True)
        scratch = self._scratch
        assert scratch is not None  # made by _base  # noqa: S101
        for source in dataset.virtual_sources():
            file_name, dset_name = source.file_name, source.dset_name
            if "%" in file_name or "%" in dset_name:
                raise ArtifactError(
                    f"{label}: a source is named by a pattern ({file_name!r}, {dset_name!r})",
                    hint="map each source file and dataset by its own name",
                )
            if file_name == ".":
                handle = dataset.file
            elif file_name.startswith("/"):
                where.place.inner(file_name, f"{label}: a source")  # outside: say so first
                # HDF5 opens an absolute source name as it is, before any prefix.
                raise ArtifactError(
                    f"{label}: a source file is named by an absolute path ({file_name!r})",
                    hint="name source files relative to the virtual dataset's file",
                )
            else:
                source_file = self._open(where.place, file_name, f"a source of {shown(name)}")
                handle = source_file.handle
                entry = scratch / source_file.place.relative
                if not entry.is_symlink():
                    entry.parent.mkdir(parents=True, exist_ok=True)
                    entry.symlink_to(f"/proc/self/fd/{source_file.fd}")
            found = self._by_hard_links(handle, _absolute(dset_name), f"{label}: source", None)
            if not isinstance(found, h5py.Dataset) or found.is_virtual or found.external:
                raise ArtifactError(
                    f"{label}: source {shown(dset_name)} in {file_name!r} is not a dataset "
                    "stored in its file",
                    hint="map virtual datasets onto plain datasets",
                )
        # Opened by member() with base as its prefix: HDF5 opens the sources when the
        # values are first read, through the entries made above.
        return dataset

    def _by_hard_links(
        self, handle: h5py.Group, path: str, label: str, where: Where | None
    ) -> h5py.Group | h5py.Dataset:
        """The object at ``path`` in ``handle``'s file, reached through hard links only: a
        soft or external link on the way would be followed by HDF5, not by these checks.
        ``where`` is the object's place, for :meth:`member` (None: only looked at)."""
        obj: h5py.Group | h5py.Dataset = handle.file["/"]
        walked = ""
        for part in PurePosixPath(path).parts[1:]:
            walked += f"/{part}"
            if not isinstance(obj, h5py.Group):
                raise ArtifactError(f"{label}: {shown(walked)} is not in a group", hint=_HINT_PATH)
            link = obj.get(part, getlink=True)
            if link is None:
                raise ArtifactError(f"{label}: {shown(walked)} does not exist", hint=_HINT_PATH)
            if not isinstance(link, h5py.HardLink):
                raise ArtifactError(
                    f"{label}: {shown(walked)} is itself a link; harness follows one link at "
                    "a time",
                    hint=_HINT_PATH,
                )
            obj = obj[part] if where is None else self.member(obj, part, where)
        return obj


def _absolute(path: str) -> str:
    return "/" + path.strip("/")


_HINT_PATH = "make the link name the object's own path in the linked file"
