"""Bounded reading of files that come from another machine or user.

Run records, Job outputs, certificates and keys are written elsewhere and read here: a
hostile one must not hang harness (a FIFO, ``/dev/zero``), exhaust its memory (a file of
gigabytes, JSON nested a hundred thousand levels deep, whose parse or later recursive
walk blows the stack) or mean two things to two readers (an object with the same key
twice, which Python's json resolves to the last one and other parsers to the first).

Every reader here opens without blocking, insists on a regular file, reads at most its
limit plus one byte, and says in one line what was wrong with the file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

# Generous for any record or certificate harness writes (a record with thousands of
# artifacts is well under a megabyte), small enough to read at once.
DOCUMENT_LIMIT = 16 << 20
# Records and statements nest a handful of levels; parameters and metrics a few more.
DEPTH_LIMIT = 64


class UntrustedInputError(HarnessError):
    """A file from elsewhere is not something harness will read.

    ``reason`` is the message without the file's name, for callers that name it their way.
    """

    default_hint = "get the file again from a source you trust; do not use this copy"

    def __init__(self, subject: str, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{subject} {reason}", hint)
        self.reason = reason


def read_bytes(path: Path, *, limit: int, what: str, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file ``path``, refusing anything else or anything larger.

    ``follow_symlinks=False`` refuses a link in the last component, for files inside a
    folder from elsewhere, where a link could point at any file of this machine.
    """
    return read_regular(path, limit=limit, what=what, follow_symlinks=follow_symlinks)[0]


def read_regular(
    path: Path, *, limit: int, what: str, follow_symlinks: bool = True
) -> tuple[bytes, os.stat_result]:
    """:func:`read_bytes`, with the status of the file that was read (not of a link to it)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_symlinks:
            raise UntrustedInputError(f"{what} {path}", "is a symbolic link") from None
        raise UntrustedInputError(
            f"{what} {path}",
            f"cannot be opened: {error.strerror}",
            "check the path and its permissions",
        ) from None
    return _read_handle(handle, path, limit=limit, what=what)


def _read_handle(handle: int, path: Path, *, limit: int, what: str) -> tuple[bytes, os.stat_result]:
    """Read the open ``handle`` (closed here) when it is a regular file within ``limit``."""
    status = os.fstat(handle)
    if not stat.S_ISREG(status.st_mode):
        os.close(handle)
        raise UntrustedInputError(
            f"{what} {path}", f"is not a regular file ({_kind(status.st_mode)})"
        )
    with os.fdopen(handle, "rb") as stream:
        if status.st_size > limit:
            raise UntrustedInputError(
                f"{what} {path}", f"is {status.st_size} bytes, more than the {limit} allowed"
            )
        # The size can grow between the check and the read: never read past the limit.
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise UntrustedInputError(f"{what} {path}", f"grew past the {limit} bytes allowed")
    return data, status


def open_inside(folder: Path, relative: str, *, what: str) -> int:
    """A descriptor of the file ``folder/relative``, opened without following a link in
    any component from ``folder`` down (each folder is opened from the last, never by
    path) and without blocking (a named pipe opens at once; :func:`_read_handle` or the
    caller's ``fstat`` then refuses it). For files that someone else wrote in a folder of
    this machine, where a link at any level could point at any file here.

    Raises FileNotFoundError when some component does not exist.
    """
    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise UntrustedInputError(f"{what} {relative}", "is not a path inside its folder")
    nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    current = os.open(folder, nofollow | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            flags = nofollow | (os.O_NONBLOCK | os.O_NOCTTY if last else os.O_DIRECTORY)
            try:
                opened = os.open(part, flags, dir_fd=current)
            except FileNotFoundError:
                raise
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    mode = os.stat(part, dir_fd=current, follow_symlinks=False).st_mode
                    kind = (
                        "a symbolic link"
                        if stat.S_ISLNK(mode)
                        else "a file, not a folder"
                        if stat.S_ISREG(mode)
                        else _kind(mode)
                    )
                    shown = "" if last else f"is not read: {'/'.join(parts[: depth + 1])} "
                    raise UntrustedInputError(
                        f"{what} {folder / relative}",
                        f"{shown}is {kind}",
                        "experiments must write plain files; links could point anywhere",
                    ) from None
                raise UntrustedInputError(
                    f"{what} {folder / relative}", f"cannot be opened: {error.strerror}"
                ) from None
            os.close(current)
            current = opened
    except BaseException:
        os.close(current)
        raise
    return current


def read_inside(folder: Path, relative: str, *, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``folder/relative``, read as :func:`open_inside`
    opens it, within ``limit``."""
    handle = open_inside(folder, relative, what=what)
    return _read_handle(handle, folder / relative, limit=limit, what=what)[0]


def parse_json(data: bytes | str, *, what: str, depth: int = DEPTH_LIMIT) -> Any:
    """Parse JSON text, refusing duplicate keys and nesting deeper than ``depth``."""
    try:
        document = json.loads(data, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise UntrustedInputError(what, f"nests deeper than {depth} levels") from None
    except _DuplicateKeyError as error:
        raise UntrustedInputError(what, f"names the key {error.key!r} twice") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise UntrustedInputError(what, f"is not valid JSON: {_first_line(error)}") from None
    if nesting(document, depth) > depth:
        raise UntrustedInputError(what, f"nests deeper than {depth} levels")
    return document


def load_json(
    path: Path,
    *,
    what: str,
    limit: int = DOCUMENT_LIMIT,
    depth: int = DEPTH_LIMIT,
    follow_symlinks: bool = True,
) -> Any:
    """:func:`read_bytes` then :func:`parse_json`."""
    data = read_bytes(path, limit=limit, what=what, follow_symlinks=follow_symlinks)
    return parse_json(data, what=f"{what} {path}", depth=depth)


def nesting(document: Any, stop: int) -> int:
    """How deep ``document`` nests (a scalar is 0), counted without recursion and given up
    past ``stop`` levels."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > stop:
            return deepest
        pending.extend((child, level) for child in children)
    return deepest


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKeyError(key)
        document[key] = value
    return document


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
