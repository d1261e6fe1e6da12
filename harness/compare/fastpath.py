"""Byte-level comparison of whole files, without numpy.

Equal files are the common case of a reproducible run, so this is the path that must be
fastest: sizes first (from the descriptors already checked), then both files read once,
block by block, into two reused buffers and compared with ``==`` (a memcmp). That is
cheaper than hashing, and reading into fixed buffers keeps memory flat where a memory map
would count every touched page as resident. Small files, the bulk of a folder of
metrics and logs, are read with one ``pread`` each.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from harness.compare.inputs import Opened
from harness.errors import ArtifactError

# Small enough to stay in the CPU's cache between the copy from the kernel and the memcmp.
BLOCK = 1 << 20
SMALL = 1 << 16
_CHANGED = "the file changed while being compared; compare files that are no longer written"


class Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def read_exactly(handle: Readable | Any, view: memoryview, what: str) -> None:
    """Fill ``view`` from ``handle``, or fail as truncated."""
    filled = 0
    total = len(view)
    while filled < total:
        got = handle.readinto(view[filled:])
        if not got:
            raise ArtifactError(
                f"{what} is truncated: expected {total - filled} more bytes",
                hint="the file was cut short; re-run the step that wrote it",
            )
        filled += got


def _pread_into(opened: Opened, view: memoryview, offset: int) -> None:
    filled = 0
    while filled < len(view):
        got = os.preadv(opened.fd, [view[filled:]], offset + filled)
        if not got:
            raise ArtifactError(f"{opened.path} became shorter while being read", hint=_CHANGED)
        filled += got


def first_difference(a: Opened, b: Opened, block: int = BLOCK) -> int | None:
    """None when the files hold the same bytes; otherwise the first offset that differs.

    Files of different sizes still get their common prefix compared, so that the caller
    learns how far they agree.
    """
    common = min(a.size, b.size)
    if common <= SMALL:
        data_a = os.pread(a.fd, common, 0)
        data_b = os.pread(b.fd, common, 0)
        if len(data_a) != common or len(data_b) != common:
            raise ArtifactError(
                f"{a.path} or {b.path} became shorter while being read", hint=_CHANGED
            )
        if data_a != data_b:
            return _first_unequal(memoryview(data_a), memoryview(data_b))
        return None if a.size == b.size else common
    buf_a = bytearray(min(block, common))
    buf_b = bytearray(len(buf_a))
    view_a = memoryview(buf_a)
    view_b = memoryview(buf_b)
    offset = 0
    while offset < common:
        n = min(len(buf_a), common - offset)
        _pread_into(a, view_a[:n], offset)
        _pread_into(b, view_b[:n], offset)
        same = buf_a == buf_b if n == len(buf_a) else view_a[:n] == view_b[:n]
        if not same:
            return offset + _first_unequal(view_a[:n], view_b[:n])
        offset += n
    return None if a.size == b.size else common


def _first_unequal(a: memoryview, b: memoryview) -> int:
    """Index of the first differing byte of two equal-length, unequal buffers."""
    lo, hi = 0, len(a)  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid].tobytes() == b[lo:mid].tobytes():
            lo = mid
        else:
            hi = mid
    return lo
