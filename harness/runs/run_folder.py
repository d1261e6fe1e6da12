"""A run's folder on this machine: private to whoever runs harness, its two output folders
open to the container's user while the run lasts, and to nobody else.

The container runs as a user of its own (uid 10001, not one of this machine's people) that
must write the artifacts and the runtime's report into two folders bind-mounted from the
run's folder. Anyone else who can reach those folders has a way in: another local user
could plant an artifact that then gets certified, or link the report to a file only the
invoking user may read and read it back from the record. So:

- the run's folder is mode 0700, owned by the invoking user: no other user can pass
  through it, whatever the modes below it say (the container reaches its two folders
  through its bind mounts, never through this path);
- artifacts/ and meta/ are mode 0700 as well and opened to the container's user alone: by
  root, by giving them to that user (chown); by anyone else, with a POSIX ACL entry that
  names it (``system.posix_acl_access``);
- when the container has stopped, both are taken back (owner, ACL) before harness reads
  anything in them.

Where the engine maps the container's users to others of this machine (a rootless engine,
a daemon with user-namespace remapping) no uid here is the container's, and where the file
system keeps no ACL none can be named: then the two folders are mode 0777 for the run, and
the 0700 folder around them is what keeps every other local user out.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Linux's POSIX ACL extended attribute (include/uapi/linux/posix_acl_xattr.h): a version,
# then (tag, permissions, id) entries sorted by tag, then id.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_RWX = 0o7
# What an engine's `docker info` SecurityOptions say when its containers' uids are not ours.
_MAPPED_USERS = ("name=rootless", "name=userns")

Grant = Literal["owner", "acl", "mode"]


@dataclass(frozen=True)
class ContainerUser:
    """The container's user, as numbers, and whether this machine sees it as such."""

    uid: int
    gid: int
    # The engine maps the container's ids to others of this machine (rootless, userns-remap).
    mapped: bool = False


def maps_users(engine_info: Mapping[str, Any]) -> bool:
    """Whether an engine's ``info()`` says its containers' user ids are not this machine's."""
    options = engine_info.get("SecurityOptions") or []
    return any(
        isinstance(option, str) and any(mark in option for mark in _MAPPED_USERS)
        for option in options
    )


def make_private(folder: Path) -> None:
    """Create the run's folder, mode 0700 whatever the umask (its parents as usual)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)


def open_to(writable: Path, user: ContainerUser | None) -> Grant | None:
    """Create ``writable`` (mode 0700) inside the private run folder and let ``user`` write
    it; None for a folder that only harness writes. Says how it was granted."""
    writable.mkdir(mode=0o700)
    writable.chmod(0o700)
    if user is None:
        return None
    if user.mapped:
        writable.chmod(0o777)
        return "mode"
    if os.geteuid() == 0:
        os.chown(writable, user.uid, user.gid, follow_symlinks=False)
        return "owner"
    try:
        os.setxattr(writable, _ACL_XATTR, _acl_for(user.uid), follow_symlinks=False)
    except OSError as error:
        if error.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise
        writable.chmod(0o777)  # no ACL on this file system: the run folder keeps others out
        return "mode"
    return "acl"


def close(writables: Iterable[Path], owner: Path) -> None:
    """Take the output folders back once the container has stopped: owned by the run
    folder's owner, no ACL entry, mode 0700. A folder that is not one (a link the
    container left where it stood) is left alone: nothing is read through it."""
    status = owner.stat()
    for writable in writables:
        try:
            if not writable.is_dir() or writable.is_symlink():
                continue
            if os.geteuid() == 0:
                os.chown(writable, status.st_uid, status.st_gid, follow_symlinks=False)
            _drop_acl(writable)
            writable.chmod(0o700)
        except FileNotFoundError:
            continue


def _drop_acl(path: Path) -> None:
    try:
        os.removexattr(path, _ACL_XATTR, follow_symlinks=False)
    except OSError as error:
        # ENODATA: no ACL was set; ENOTSUP: none can be.
        if error.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _acl_for(uid: int) -> bytes:
    """An access ACL: the owner and ``uid`` may read, write and enter; nobody else."""
    entries = (
        (_ACL_USER_OBJ, _RWX, _ACL_UNDEFINED_ID),
        (_ACL_USER, _RWX, uid),
        (_ACL_GROUP_OBJ, 0, _ACL_UNDEFINED_ID),
        (_ACL_MASK, _RWX, _ACL_UNDEFINED_ID),
        (_ACL_OTHER, 0, _ACL_UNDEFINED_ID),
    )
    return struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, permissions, ident) for tag, permissions, ident in entries
    )


def acl_users(path: Path) -> dict[int, int]:
    """The named users of ``path``'s access ACL and their permission bits (none: {})."""
    try:
        data = os.getxattr(path, _ACL_XATTR, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    named: dict[int, int] = {}
    for offset in range(4, len(data) - 7, 8):
        tag, permissions, ident = struct.unpack_from("<HHI", data, offset)
        if tag == _ACL_USER:
            named[ident] = permissions
    return named
