"""Byte-level comparison of whole files, without numpy.

Equal files are the common case of a reproducible run, so this is the path that must be
fastest: sizes first, then both files read once, block by block, into two reused buffers
and compared with ``==`` (a memcmp). That is cheaper than hashing, and reading into fixed
buffers keeps memory flat where a memory map would count every touched page as resident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from harness.errors import ArtifactError

BLOCK = 8 << 20


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


def first_difference(a: Path, b: Path, block: int = BLOCK) -> int | None:
    """None when the files hold the same bytes; otherwise the first offset that differs.

    Files of different sizes still get their common prefix compared, so that the caller
    learns how far they agree.
    """
    size_a = a.stat().st_size
    size_b = b.stat().st_size
    common = min(size_a, size_b)
    buf_a = bytearray(min(block, max(common, 1)))
    buf_b = bytearray(len(buf_a))
    view_a = memoryview(buf_a)
    view_b = memoryview(buf_b)
    offset = 0
    with a.open("rb", buffering=0) as fa, b.open("rb", buffering=0) as fb:
        while offset < common:
            n = min(len(buf_a), common - offset)
            read_exactly(fa, view_a[:n], str(a))
            read_exactly(fb, view_b[:n], str(b))
            same = buf_a == buf_b if n == len(buf_a) else buf_a[:n] == buf_b[:n]
            if not same:
                return offset + _first_unequal(view_a[:n], view_b[:n])
            offset += n
    return None if size_a == size_b else common


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
