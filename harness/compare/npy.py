"""NumPy ``.npy`` files and ``.npz`` archives.

The npy header is parsed here (it is a Python literal, read with ``ast.literal_eval``,
never pickle) so that the payload can be streamed from its exact offset. ``.npz`` members
are zip entries: stored ones are read in place at their offset in the archive, compressed
ones are decompressed as a stream; neither is ever loaded whole. Object arrays hold
pickles: they are never loaded, and when their bytes differ the file is refused (equal
values can pickle differently, and different ones can share a CRC).
"""

from __future__ import annotations

import ast
import hashlib
import struct
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from harness.compare.container import Container, compare_containers
from harness.compare.dtypes import DType, from_descr, from_numpy
from harness.compare.fastpath import read_exactly
from harness.compare.model import ArtifactResult, Entry, combine
from harness.compare.names import shown
from harness.compare.numeric import compare_sources
from harness.compare.policy import Policy
from harness.compare.streams import FileRange, Order, Source, StreamRange
from harness.errors import ArtifactError

MAGIC = b"\x93NUMPY"
# numpy itself refuses headers over 10 kB unless told otherwise; a megabyte leaves room
# for large record dtypes while keeping a corrupt length from allocating gigabytes.
MAX_HEADER = 1 << 20
_MALFORMED = "the file is not a valid .npy array; regenerate it"


@dataclass
class NpyHeader:
    dtype: DType | None  # None: an object array (pickled elements)
    shape: tuple[int, ...]
    order: Order
    header_size: int  # bytes before the payload

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * (self.dtype.itemsize if self.dtype else 0)


def _descr_dtype(descr: Any, what: str) -> DType | None:
    if isinstance(descr, str):
        simple = from_descr(descr)
        if simple is not None:
            return simple
    try:
        dt = np.lib.format.descr_to_dtype(descr)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{what}: unknown dtype {descr!r} ({exc})", hint=_MALFORMED) from None
    if dt.hasobject:
        return None
    return from_numpy(dt)


def read_header(handle: IO[bytes], what: str) -> NpyHeader:
    """Parse an npy header from the current position of ``handle``."""
    lead = bytearray(8)
    read_exactly(handle, memoryview(lead), what)
    if bytes(lead[:6]) != MAGIC:
        raise ArtifactError(f"{what} is not an .npy file (bad magic number)", hint=_MALFORMED)
    major = lead[6]
    if major == 1:
        size_bytes, fmt, encoding = 2, "<H", "latin1"
    elif major in (2, 3):
        size_bytes, fmt, encoding = 4, "<I", "latin1" if major == 2 else "utf8"
    else:
        raise ArtifactError(f"{what}: unsupported .npy format version {major}", hint=_MALFORMED)
    raw_size = bytearray(size_bytes)
    read_exactly(handle, memoryview(raw_size), what)
    (length,) = struct.unpack(fmt, raw_size)
    if length > MAX_HEADER:
        raise ArtifactError(f"{what}: implausible .npy header of {length} bytes", hint=_MALFORMED)
    text = bytearray(length)
    read_exactly(handle, memoryview(text), what)
    try:
        header = ast.literal_eval(text.decode(encoding))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise ArtifactError(f"{what}: unreadable .npy header", hint=_MALFORMED) from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ArtifactError(f"{what}: malformed .npy header {header!r}", hint=_MALFORMED)
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise ArtifactError(f"{what}: malformed .npy shape {shape!r}", hint=_MALFORMED)
    if not isinstance(header["fortran_order"], bool):
        raise ArtifactError(f"{what}: malformed .npy header {header!r}", hint=_MALFORMED)
    order: Order = "F" if header["fortran_order"] and len(shape) > 1 else "C"
    return NpyHeader(_descr_dtype(header["descr"], what), shape, order, 8 + size_bytes + length)


def _npy_source(path: Path, what: str) -> tuple[NpyHeader, Source | None]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = read_header(handle, what)
    if header.dtype is None:
        return header, None
    if header.header_size + header.nbytes > size:
        raise ArtifactError(
            f"{what} is truncated: its header promises {header.nbytes} bytes of data, "
            f"the file holds {size - header.header_size}",
            hint="the file was cut short; re-run the step that wrote it",
        )
    source = FileRange(
        path, header.header_size, header.dtype, header.shape, header.order, what=what
    )
    return header, source


def compare_npy(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    header_a, source_a = _npy_source(a, str(a))
    header_b, source_b = _npy_source(b, str(b))
    if source_a is None or source_b is None:
        raise _object_array(str(a))
    equal = None if prefix is None else (a, b, prefix)
    tensor = compare_sources("", source_a, source_b, policy, equal)
    result.tensors.append(tensor)
    statuses = [tensor.status]
    tail_a = result.size_a - header_a.header_size - header_a.nbytes if result.size_a else 0
    tail_b = result.size_b - header_b.header_size - header_b.nbytes if result.size_b else 0
    if tail_a or tail_b:
        result.notes.append(f"trailing bytes after the array: {tail_a} in A, {tail_b} in B")
        if tensor.status != "differs" and _tails_differ(a, b, tail_a, tail_b):
            result.add_entry(Entry("trailing bytes", "differs", a=tail_a, b=tail_b))
            statuses.append("differs")
    result.status = combine(statuses)


def _tails_differ(a: Path, b: Path, tail_a: int, tail_b: int) -> bool:
    if tail_a != tail_b:
        return True
    with a.open("rb") as fa, b.open("rb") as fb:
        fa.seek(-tail_a, 2)
        fb.seek(-tail_b, 2)
        while chunk := fa.read(1 << 20):
            if chunk != fb.read(len(chunk)):
                return True
    return False


# -- .npz -----------------------------------------------------------------------------


def stored_member_offset(path: Path, info: zipfile.ZipInfo) -> int | None:
    """Where a stored (uncompressed) zip member's bytes start in the archive, else None."""
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return None
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ArtifactError(f"{path}: corrupt zip entry {info.filename!r}", hint=_MALFORMED)
    lengths: tuple[int, int] = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + sum(lengths)


def member_opener(path: Path, name: str, skip: int) -> Callable[[], Any]:
    def open_member() -> Any:
        stack = ExitStack()
        archive = stack.enter_context(zipfile.ZipFile(path))
        member = stack.enter_context(archive.open(name))
        member.read(skip)
        return _Closing(member, stack)

    return open_member


class _Closing:
    """A member stream that also closes its archive."""

    def __init__(self, member: Any, stack: ExitStack) -> None:
        self._member = member
        self._stack = stack

    def readinto(self, buffer: memoryview) -> int:
        got: int = self._member.readinto(buffer)
        return got

    def seekable(self) -> bool:
        return False

    def __enter__(self) -> _Closing:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ArtifactError(
            f"{path} is not a valid zip archive ({exc})", hint="the file is truncated or corrupt"
        ) from None


def _member_sha256(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    digest = hashlib.sha256()
    with archive.open(info) as member:
        while block := member.read(1 << 20):
            digest.update(block)
    return f"<{info.file_size} bytes sha256:{digest.hexdigest()}>"


def npz_container(path: Path) -> Container:
    container = Container()
    with open_zip(path) as archive:
        for info in archive.infolist():
            name = info.filename
            what = f"{path}:{name}"
            if not name.endswith(".npy"):
                # By a digest of its bytes: a CRC-32 is easy to forge.
                container.values[f"member {name}"] = _member_sha256(archive, info)
                continue
            with archive.open(info) as member:
                header = read_header(member, what)
            key = name[: -len(".npy")]
            if header.dtype is None:
                # Compared by its bytes (never unpickled); bytes that differ are refused
                # by compare_npz, since equal values can be pickled differently.
                container.values[key] = _ObjectMember(path, info)
                continue
            if header.header_size + header.nbytes > info.file_size:
                raise ArtifactError(
                    f"{what} is truncated", hint="the archive was cut short; regenerate it"
                )
            offset = stored_member_offset(path, info)
            source: Source
            if offset is not None:
                source = FileRange(
                    path,
                    offset + header.header_size,
                    header.dtype,
                    header.shape,
                    header.order,
                    what=what,
                )
            else:
                source = StreamRange(
                    member_opener(path, name, header.header_size),
                    header.dtype,
                    header.shape,
                    header.order,
                    what=what,
                )
            container.tensors[key] = source
    return container


def _object_array(what: str) -> ArtifactError:
    return ArtifactError(
        f"{what} holds an object array (pickled Python objects) whose bytes differ: "
        "harness never unpickles, so it cannot tell whether the values differ",
        hint="save numbers with a numeric dtype, strings with a fixed-width 'U' dtype",
    )


class _ObjectMember:
    """An object-array member of an .npz, equal to another only byte for byte."""

    def __init__(self, path: Path, info: zipfile.ZipInfo) -> None:
        self.path, self.info = path, info

    def digest(self) -> bytes:
        digest = hashlib.sha256()
        with zipfile.ZipFile(self.path) as archive, archive.open(self.info) as member:
            while block := member.read(1 << 20):
                digest.update(block)
        return digest.digest()

    def __repr__(self) -> str:
        return f"<object array of {self.info.file_size} bytes>"


def check_object_members(a: Container, b: Container, what: str) -> None:
    for key, value in a.values.items():
        other = b.values.get(key)
        if isinstance(value, _ObjectMember) or isinstance(other, _ObjectMember):
            same = (
                isinstance(value, _ObjectMember)
                and isinstance(other, _ObjectMember)
                and value.info.file_size == other.info.file_size
                and value.digest() == other.digest()
            )
            if not same and other is not None:
                raise _object_array(f"{what}:{shown(key)}")
            a.values[key] = repr(value)
            if other is not None:
                b.values[key] = repr(other)
    for key, value in b.values.items():
        if isinstance(value, _ObjectMember):
            b.values[key] = repr(value)


def compare_npz(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    equal = None if prefix is None else (a, b, prefix)
    container_a, container_b = npz_container(a), npz_container(b)
    check_object_members(container_a, container_b, str(b))
    compare_containers(result, container_a, container_b, policy, equal)
