"""Where an array's elements come from, read a bounded chunk at a time.

Every source yields its elements in storage order as 1-D arrays in native byte order.
Contiguous data (npy payloads, safetensors tensors, stored zip members) is read with
``readinto`` into one reused buffer. Strided data (non-contiguous torch views, HDF5
datasets, arrays whose memory order differs between A and B) is gathered from a memory
map or an h5py dataset block by block; mapped pages are released after each block so the
resident set stays at the size of a block, not of the file.
"""

from __future__ import annotations

import mmap
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from math import prod
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.compare.dtypes import NATIVE, DType
from harness.compare.fastpath import read_exactly
from harness.errors import ArtifactError

Order = Literal["C", "F"]
Index = tuple[int | slice, ...]


def native(array: np.ndarray[Any, Any], dtype: DType) -> np.ndarray[Any, Any]:
    """``array`` reinterpreted in native byte order (a copy only when bytes must swap)."""
    if dtype.itemsize > 1 and dtype.byteorder not in (NATIVE, "|"):
        swapped: np.ndarray[Any, Any] = array.byteswap().view(array.dtype.newbyteorder("="))
        return swapped
    return array


class Reader(ABC):
    """Hands out the next elements of one source."""

    @abstractmethod
    def read(self, count: int) -> np.ndarray[Any, Any]:
        """The next ``count`` elements, 1-D, native byte order; valid until the next call."""

    def skip(self, count: int) -> None:
        self.read(count)


class Source(ABC):
    """One array: its type and shape, and how to read its elements."""

    def __init__(self, dtype: DType, shape: tuple[int, ...], order: Order = "C") -> None:
        self.dtype = dtype
        self.shape = shape
        self.order = order

    @property
    def count(self) -> int:
        return prod(self.shape)

    @property
    def file_offset(self) -> tuple[Path, int] | None:
        """(file, offset of the first element) when the elements lie raw and contiguous there."""
        return None

    @abstractmethod
    def open(self) -> AbstractContextManager[Reader]:
        """A context manager yielding a Reader in storage order."""

    def open_c_order(self) -> AbstractContextManager[Reader]:
        """A context manager yielding a Reader in C (row-major) order."""
        return self.open()


class _BufferedReader(Reader):
    def __init__(self, handle: Any, dtype: DType, what: str, chunk_bytes: int) -> None:
        self._handle = handle
        self._dtype = dtype
        self._what = what
        self._buffer = bytearray(max(chunk_bytes, dtype.itemsize))
        self._view = memoryview(self._buffer)
        self._storage = np.dtype(dtype.storage)

    def read(self, count: int) -> np.ndarray[Any, Any]:
        nbytes = count * self._dtype.itemsize
        if nbytes > len(self._buffer):
            self._buffer = bytearray(nbytes)
            self._view = memoryview(self._buffer)
        view = self._view[:nbytes]
        read_exactly(self._handle, view, self._what)
        return native(np.frombuffer(view, dtype=self._storage), self._dtype)

    def skip(self, count: int) -> None:
        nbytes = count * self._dtype.itemsize
        if self._handle.seekable():
            self._handle.seek(nbytes, 1)
            return
        while nbytes:
            step = min(nbytes, len(self._buffer))
            read_exactly(self._handle, self._view[:step], self._what)
            nbytes -= step


CHUNK_BYTES = 4 << 20


class FileRange(Source):
    """Elements stored raw and contiguous in a plain file from ``offset`` on."""

    def __init__(
        self,
        path: Path,
        offset: int,
        dtype: DType,
        shape: tuple[int, ...],
        order: Order = "C",
        *,
        what: str | None = None,
    ) -> None:
        super().__init__(dtype, shape, order)
        self.path = path
        self.offset = offset
        self.what = what or str(path)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    @property
    def file_offset(self) -> tuple[Path, int] | None:
        return (self.path, self.offset)

    @contextmanager
    def open(self) -> Iterator[Reader]:
        with self.path.open("rb", buffering=0) as handle:
            handle.seek(self.offset)
            yield _BufferedReader(handle, self.dtype, self.what, CHUNK_BYTES)

    def open_c_order(self) -> AbstractContextManager[Reader]:
        if self.order == "C" or len(self.shape) < 2:
            return self.open()
        itemsize = self.dtype.itemsize
        strides = tuple(itemsize * prod(self.shape[:axis]) for axis in range(len(self.shape)))
        return open_strided(self.path, self.offset, self.dtype, self.shape, strides, what=self.what)


class StreamRange(Source):
    """Elements read in order from a stream (a compressed zip member) opened on demand."""

    def __init__(
        self,
        opener: Callable[[], Any],
        dtype: DType,
        shape: tuple[int, ...],
        order: Order = "C",
        *,
        what: str,
    ) -> None:
        super().__init__(dtype, shape, order)
        self.opener = opener
        self.what = what

    @contextmanager
    def open(self) -> Iterator[Reader]:
        with self.opener() as handle:
            yield _BufferedReader(handle, self.dtype, self.what, CHUNK_BYTES)

    def open_c_order(self) -> AbstractContextManager[Reader]:
        if self.order == "C" or len(self.shape) < 2:
            return self.open()
        raise ArtifactError(
            f"{self.what}: comparing a compressed Fortran-order array with a C-order one "
            "is not supported",
            hint="save both arrays in the same memory order (or uncompressed)",
        )


def blocks(shape: tuple[int, ...], start: int, stop: int) -> Iterator[Index]:
    """Index tuples that together cover the C-order flat range [start, stop), in order.

    Each is a hyperslab (one ``array[index]`` read); there are at most 2 * ndim + 1.
    """
    if start >= stop:
        return
    if not shape:
        yield ()
        return
    inner = prod(shape[1:])
    first, first_rest = divmod(start, inner)
    last, last_rest = divmod(stop, inner)
    rest_full = tuple(slice(None) for _ in shape[1:])
    if first == last:
        for sub in blocks(shape[1:], first_rest, last_rest):
            yield (first, *sub)
        return
    if first_rest:
        for sub in blocks(shape[1:], first_rest, inner):
            yield (first, *sub)
        first += 1
    if last > first:
        yield (slice(first, last), *rest_full)
    if last_rest:
        for sub in blocks(shape[1:], 0, last_rest):
            yield (last, *sub)


class _BlockReader(Reader):
    """Reads C-order flat ranges of an indexable array (numpy view or h5py dataset)."""

    def __init__(
        self,
        array: Any,
        shape: tuple[int, ...],
        dtype: DType,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._array = array
        self._shape = shape
        self._dtype = dtype
        self._position = 0
        self._release = release

    def read(self, count: int) -> np.ndarray[Any, Any]:
        start, stop = self._position, self._position + count
        parts = [
            np.asarray(self._array[index]).reshape(-1) for index in blocks(self._shape, start, stop)
        ]
        self._position = stop
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out = np.ascontiguousarray(out)
        if out.size != count:
            raise ArtifactError(f"short read: expected {count} elements, got {out.size}")
        if self._release is not None:
            self._release()
        return native(out.view(np.dtype(self._dtype.storage)), self._dtype)

    def skip(self, count: int) -> None:
        self._position += count

    def detach(self) -> None:
        """Drop the view so that the memory map under it can be closed."""
        self._array = None


@contextmanager
def open_strided(
    path: Path,
    offset: int,
    dtype: DType,
    shape: tuple[int, ...],
    strides: tuple[int, ...],
    *,
    what: str,
) -> Iterator[Reader]:
    """A C-order reader over a strided view of a file (byte ``strides``, all >= 0)."""
    with ExitStack() as stack:
        handle = stack.enter_context(path.open("rb"))
        size = path.stat().st_size
        elements = prod(shape)
        extent = offset + dtype.itemsize
        if elements:
            extent += sum((dim - 1) * stride for dim, stride in zip(shape, strides, strict=True))
        if any(stride < 0 for stride in strides) or (elements and extent > size):
            raise ArtifactError(
                f"{what}: the array's layout reaches past the end of its data "
                f"({extent} > {size} bytes)",
                hint="the file is truncated or malformed",
            )
        if size == 0 or not elements:
            empty = np.zeros(shape, dtype=np.dtype(dtype.storage))
            yield _BlockReader(empty, shape, dtype)
            return
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        view = np.ndarray(
            shape, dtype=np.dtype(dtype.storage), buffer=mapped, offset=offset, strides=strides
        )

        def release() -> None:
            mapped.madvise(mmap.MADV_DONTNEED)

        reader = _BlockReader(view, shape, dtype, release)
        del view
        try:
            yield reader
        finally:
            reader.detach()
            mapped.close()


class ArraySource(Source):
    """An indexable array such as an h5py dataset (read in C order, block by block)."""

    def __init__(self, opener: Callable[[], Any], dtype: DType, shape: tuple[int, ...]) -> None:
        super().__init__(dtype, shape, "C")
        self.opener = opener

    @contextmanager
    def open(self) -> Iterator[Reader]:
        with self.opener() as array:
            yield _BlockReader(array, self.shape, self.dtype)


class StridedRange(Source):
    """Elements at byte ``strides`` from ``offset`` in a plain file (a non-contiguous view)."""

    def __init__(
        self,
        path: Path,
        offset: int,
        dtype: DType,
        shape: tuple[int, ...],
        strides: tuple[int, ...],
        *,
        what: str,
    ) -> None:
        super().__init__(dtype, shape, "C")
        self.path = path
        self.offset = offset
        self.strides = strides
        self.what = what

    def open(self) -> AbstractContextManager[Reader]:
        return open_strided(
            self.path, self.offset, self.dtype, self.shape, self.strides, what=self.what
        )
