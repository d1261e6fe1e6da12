"""What an image holds, file by file, read from the archive ``docker save`` writes.

An image's *content digest* is a sha256 over every file of its merged file system (its
layers applied in order, whiteouts honoured), one line per path in path order: the path,
type, mode, owner, link target, device numbers, extended attributes and a sha256 of the
content. File times are left out on purpose: they are listed beside it, since a time
alone is the commonest way two builds of the same thing differ, but they are not content.

Archives are read as streams, once from start to end: the one the engine writes and each
layer inside it. Only the listing is kept, never a file's content, so a multi-gigabyte
image costs memory in proportion to its number of files.

This module also rewrites a layer into a normal form (:func:`normalise_layer`): sorted
entries, times clamped, numeric owners only, no access or change times. The engine's own
layers are already deterministic when the files are; the normal form is for layers whose
times a Dockerfile does not control.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from harness.errors import EngineError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 20
# Members of a saved image that are not layers (manifests, configs) are small; anything
# larger that is not a tar is skipped, not held.
_SMALL = 16 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_XATTR = "SCHILY.xattr."
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Entry:
    """One path of an image, as the layer archive describes it."""

    kind: str  # file, dir, symlink, hardlink, char, block, fifo
    mode: int
    uid: int
    gid: int
    size: int = 0
    sha256: str = ""  # of the content, for files and hard links
    target: str = ""  # of a symbolic or hard link
    device: str = ""  # "major,minor" of a device node
    xattrs: tuple[tuple[str, str], ...] = ()
    mtime: int = 0

    def line(self, path: str) -> str:
        """The entry's line in the content digest: everything but its time."""
        xattrs = ",".join(f"{key}={value}" for key, value in self.xattrs)
        fields = (
            path,
            self.kind,
            f"{self.mode:04o}",
            f"{self.uid}:{self.gid}",
            self.target,
            self.sha256,
            self.device,
            xattrs,
        )
        return "\0".join(fields) + "\n"

    def differences(self, other: Entry) -> tuple[str, ...]:
        """Names of the aspects in which ``other`` differs from this entry."""
        found = []
        if self.kind != other.kind:
            found.append("type")
        if self.sha256 != other.sha256 or self.size != other.size:
            found.append("content")
        if self.mode != other.mode:
            found.append("mode")
        if (self.uid, self.gid) != (other.uid, other.gid):
            found.append("owner")
        if self.target != other.target:
            found.append("target")
        if self.device != other.device:
            found.append("device")
        if self.xattrs != other.xattrs:
            found.append("xattrs")
        if self.mtime != other.mtime:
            found.append("mtime")
        return tuple(found)


@dataclass
class Layer:
    """One layer's listing: its entries, and what it removes from the layers below."""

    diff_id: str
    size: int
    entries: dict[str, Entry] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Located:
    """An entry of the merged file system and the layer (from 0) that put it there."""

    entry: Entry
    layer: int


@dataclass
class SavedImage:
    """An image read from ``docker save``: its configuration and its layers in order."""

    config: bytes
    layers: list[Layer]
    files: dict[str, Located] = field(default_factory=dict)

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def content_digest(self) -> str:
        return content_digest(self.files)

    @property
    def manifest_digest(self) -> str:
        return manifest_digest(self.config, [(layer.diff_id, layer.size) for layer in self.layers])


def clean_path(name: str) -> str:
    """A member name as a path relative to the image's root: no ./, no leading or trailing /."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/") if name not in (".", "/") else ""


# -- reading ---------------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """Reads through ``inner``, hashing and counting every byte that passes."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.digest.update(data)
        self.count += size
        return size

    def drain(self) -> None:
        """Read what the tar reader left (the end-of-archive padding): it is in the digest."""
        while self.read(_CHUNK):
            pass


class _Prefixed(io.RawIOBase):
    """``head`` (already read, to sniff the format) followed by the rest of ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _hash_stream(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _entry(member: tarfile.TarInfo, archive: tarfile.TarFile) -> Entry:
    xattrs = tuple(
        sorted(
            (key[len(_XATTR) :], value)
            for key, value in member.pax_headers.items()
            if key.startswith(_XATTR)
        )
    )
    common: dict[str, Any] = {
        "mode": member.mode & 0o7777,
        "uid": member.uid,
        "gid": member.gid,
        "xattrs": xattrs,
        "mtime": int(member.mtime),
    }
    if member.isreg():
        content = archive.extractfile(member)
        digest = _hash_stream(content) if content is not None else ""
        return Entry("file", size=member.size, sha256=digest, **common)
    if member.isdir():
        return Entry("dir", **common)
    if member.issym():
        return Entry("symlink", target=member.linkname, **common)
    if member.islnk():
        return Entry("hardlink", target=clean_path(member.linkname), **common)
    if member.ischr() or member.isblk():
        kind = "char" if member.ischr() else "block"
        return Entry(kind, device=f"{member.devmajor},{member.devminor}", **common)
    return Entry("fifo", **common)


def scan_layer(stream: IO[bytes]) -> Layer:
    """The listing of one layer archive, and its diff ID (the sha256 of the archive)."""
    reader = _Hashing(stream)
    layer = Layer("", 0)
    with tarfile.open(fileobj=io.BufferedReader(reader, _CHUNK), mode="r|", bufsize=_CHUNK) as tar:
        for member in tar:
            path = clean_path(member.name)
            if not path:
                continue
            folder, _, name = path.rpartition("/")
            if name == OPAQUE:
                layer.opaque.append(folder)
            elif name.startswith(WHITEOUT):
                layer.whiteouts.append(_join(folder, name[len(WHITEOUT) :]))
            else:
                layer.entries[path] = _entry(member, tar)
    reader.drain()
    layer.diff_id = "sha256:" + reader.digest.hexdigest()
    layer.size = reader.count
    return layer


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def sniff(head: bytes) -> str:
    """What a member of a saved image holds: "tar", "gzip" or "other"."""
    if len(head) == tarfile.BLOCKSIZE and (head[257:262] == b"ustar" or not any(head)):
        return "tar"
    if head[:2] == _GZIP_MAGIC:
        return "gzip"
    return "other"


def read_saved(stream: IO[bytes], *, layers: bool = True) -> SavedImage:
    """Read the archive ``docker save`` writes, legacy or OCI layout, as a stream.

    The archive names its layers only in manifest.json, which comes last in the legacy
    layout, so every member that is a tar (or a gzipped tar) is listed as it passes and the
    manifest orders them at the end. With ``layers=False`` only the configuration is kept.
    """
    small: dict[str, bytes] = {}
    scanned: dict[str, Layer] = {}
    with tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK) as outer:
        for member in outer:
            if not member.isreg():
                continue
            content = outer.extractfile(member)
            if content is None:
                continue
            name = clean_path(member.name)
            head = content.read(tarfile.BLOCKSIZE)
            kind = sniff(head)
            if kind == "other" and member.size <= _SMALL:
                small[name] = head + content.read()
            elif layers and kind == "tar":
                scanned[name] = scan_layer(io.BufferedReader(_Prefixed(head, content), _CHUNK))
            elif layers and kind == "gzip":
                unzipped = gzip.GzipFile(fileobj=io.BufferedReader(_Prefixed(head, content)))
                scanned[name] = scan_layer(unzipped)  # type: ignore[arg-type]
    return _assemble(small, scanned, layers=layers)


def _assemble(
    small: Mapping[str, bytes], scanned: Mapping[str, Layer], *, layers: bool
) -> SavedImage:
    if "manifest.json" not in small:
        raise EngineError("the saved image has no manifest.json: not a `docker save` archive")
    manifest = json.loads(small["manifest.json"])[0]
    config = small.get(clean_path(manifest["Config"]))
    if config is None:
        raise EngineError(f"the saved image lacks its configuration {manifest['Config']}")
    if not layers:
        return SavedImage(config, [])
    try:
        ordered = [scanned[clean_path(name)] for name in manifest["Layers"]]
    except KeyError as missing:
        raise EngineError(f"the saved image lacks its layer {missing}") from None
    expected = json.loads(config).get("rootfs", {}).get("diff_ids", [])
    found = [layer.diff_id for layer in ordered]
    if expected != found:
        raise EngineError(
            "the saved image's layers do not hash to the diff IDs of its configuration",
            "save it again; if this persists the engine's layer store is damaged",
        )
    return SavedImage(config, ordered, merge(ordered))


def merge(layers: Sequence[Layer]) -> dict[str, Located]:
    """The file system the layers make when applied in order (whiteouts honoured)."""
    view: dict[str, Located] = {}
    for index, layer in enumerate(layers):
        # What a layer removes is removed from the layers below it, before its own entries.
        for folder in layer.opaque:
            _remove_below(view, folder, keep_root=True)
        for path in layer.whiteouts:
            _remove_below(view, path, keep_root=False)
        for path, entry in layer.entries.items():
            view[path] = Located(_resolved(entry, layer, view), index)
    return view


def _resolved(entry: Entry, layer: Layer, view: Mapping[str, Located]) -> Entry:
    """A hard link carries the content hash of the file it names (in its layer or below)."""
    if entry.kind != "hardlink":
        return entry
    below = view.get(entry.target)
    source = layer.entries.get(entry.target) or (below.entry if below else None)
    if source is None:
        return entry
    return dataclasses.replace(entry, size=source.size, sha256=source.sha256)


def _remove_below(view: dict[str, Located], path: str, *, keep_root: bool) -> None:
    prefix = f"{path}/" if path else ""
    doomed = [key for key in view if key.startswith(prefix) or (key == path and not keep_root)]
    for key in doomed:
        del view[key]


def content_digest(files: Mapping[str, Located]) -> str:
    """sha256 over every path's line (see :class:`Entry`), in path order."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(files[path].entry.line(path).encode("utf-8", "surrogateescape"))
    return "sha256:" + digest.hexdigest()


def manifest_digest(config: bytes, layers: Iterable[tuple[str, int]]) -> str:
    """The digest of the image's OCI manifest with its layers uncompressed.

    A registry's digest depends on how the layers were compressed for the push; this one
    depends only on the configuration and the layers, so two builds can be compared by it.
    """
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {
            "mediaType": MEDIA_CONFIG,
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
            "size": len(config),
        },
        "layers": [
            {"mediaType": MEDIA_LAYER, "digest": digest, "size": size} for digest, size in layers
        ],
    }
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- the normal form of a layer --------------------------------------------------------


class _HashingWriter(io.RawIOBase):
    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._inner.write(view)
        self.digest.update(view)
        self.count += len(view)
        return len(view)


class _Slice(io.RawIOBase):
    """``size`` bytes of a seekable file from ``offset``, read in place."""

    def __init__(self, source: IO[bytes], offset: int, size: int) -> None:
        self._source = source
        self._position = offset
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        self._source.seek(self._position)
        data = self._source.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._position += len(data)
        self._left -= len(data)
        return len(data)


def _normal_members(members: Iterable[tarfile.TarInfo]) -> list[tuple[str, tarfile.TarInfo]]:
    """Members by clean path, sorted, with every hard-link group led by its first path.

    In a sorted archive a hard link may come before the file it names; the group's first
    path then becomes the file (with its content) and the others link to it.
    """
    by_path = {clean_path(m.name): m for m in members if clean_path(m.name)}
    groups: dict[str, list[str]] = {}
    for path, member in by_path.items():
        if member.islnk() and clean_path(member.linkname) in by_path:
            groups.setdefault(clean_path(member.linkname), []).append(path)
    ordered: dict[str, tarfile.TarInfo] = dict(by_path)
    for target, links in groups.items():
        first, *rest = sorted([target, *links])
        content = by_path[target]
        ordered[first] = _relabelled(content, first, by_path[first])
        for path in rest:
            link = _relabelled(by_path[path], path, by_path[path])
            link.type = tarfile.LNKTYPE
            link.linkname = first
            link.size = 0
            ordered[path] = link
    return sorted(ordered.items())


def _relabelled(content: tarfile.TarInfo, path: str, own: tarfile.TarInfo) -> tarfile.TarInfo:
    """``content``'s data and type under ``path``, with ``own``'s metadata."""
    info = tarfile.TarInfo(path)
    info.type = content.type if not content.islnk() else tarfile.REGTYPE
    info.size = content.size
    info.offset_data = content.offset_data
    info.linkname = ""
    info.mode, info.uid, info.gid, info.mtime = own.mode, own.uid, own.gid, own.mtime
    info.pax_headers = dict(own.pax_headers)
    return info


def normalise_layer(source: IO[bytes], target: IO[bytes], epoch: int) -> tuple[str, int]:
    """Rewrite the layer archive ``source`` (seekable) into its normal form on ``target``.

    Entries sorted by path; every time clamped to ``epoch``; owners by number only (no
    user or group names, which depend on the machine that wrote the archive); of the PAX
    records only extended attributes survive (no atime, ctime or sub-second times). File
    content is copied through in chunks. Returns the new archive's diff ID and size.
    """
    with tarfile.open(fileobj=source, mode="r:") as archive:
        members = archive.getmembers()
    writer = _HashingWriter(target)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_CHUNK) as out:
        for path, member in _normal_members(members):
            info = tarfile.TarInfo(path)
            info.type = member.type
            info.mode = member.mode & 0o7777
            info.uid, info.gid = member.uid, member.gid
            info.uname = info.gname = ""
            info.mtime = min(int(member.mtime), epoch)
            info.linkname = member.linkname if member.issym() else clean_path(member.linkname)
            info.devmajor, info.devminor = member.devmajor, member.devminor
            info.pax_headers = {
                key: value for key, value in member.pax_headers.items() if key.startswith(_XATTR)
            }
            if member.isreg():
                info.size = member.size
                body = io.BufferedReader(_Slice(source, member.offset_data, member.size), _CHUNK)
                out.addfile(info, body)
            else:
                info.size = 0
                out.addfile(info)
    return "sha256:" + writer.digest.hexdigest(), writer.count


def tar_stream(members: Iterable[tuple[str, IO[bytes] | bytes, int]]) -> Iterator[bytes]:
    """A tar archive of ``(name, content, size)`` as chunks, for streaming to the engine.

    Content is a file (read in chunks as the archive is sent) or bytes; nothing is held
    whole, so archives of several gigabytes stream through constant memory.
    """
    for name, content, size in members:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        if isinstance(content, bytes):
            yield content
        else:
            left = size
            while left > 0:
                chunk = content.read(min(_CHUNK, left))
                if not chunk:
                    raise EngineError(f"{name} ended {left} bytes early while being sent")
                left -= len(chunk)
                yield chunk
        padding = -size % tarfile.BLOCKSIZE
        if padding:
            yield bytes(padding)
    yield bytes(2 * tarfile.BLOCKSIZE)


def copy_stream(source: IO[bytes], target: IO[bytes]) -> None:
    shutil.copyfileobj(source, target, _CHUNK)
