"""What git says about the project's source: commit, dirty state, origin and commit time.

The origin is reduced to the repository's canonical public URL before anything records
it: images are labelled with it, and a label is part of the image's configuration, so
its ID. How a repository was cloned must not change what is built from it, nor leak into
an image: a token in ``https://user:token@host/...``, a machine's folder in a clone of a
local path. The ssh and https spellings of one repository give one URL; a local path, a
``file://`` URL or no remote give none.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from harness import commands

# scp-like ssh addresses: [user@]host:path, where host is no single letter (a drive).
_SCP_LIKE = re.compile(r"(?:[^@/:\s]+@)?(?P<host>[^@/:\s]{2,}):(?P<path>(?!//).+)")
_NETWORK_SCHEMES = frozenset({"https", "http", "ssh", "git", "git+ssh", "ssh+git"})
# What a host name and a repository path may hold once canonical.
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_PATH = re.compile(r"[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*")


@dataclass(frozen=True)
class SourceState:
    commit: str | None
    dirty: bool
    diff_sha256: str | None
    origin: str | None
    commit_time: int | None


def _git_bytes(root: Path, *arguments: str) -> bytes | None:
    """What git printed, as bytes: a diff holds the files' own bytes, in whatever encoding
    (or none) they are, and file names are bytes too."""
    try:
        result = commands.call(
            ["git", *arguments],
            cwd=root,
            timeout=commands.GIT_S,
            hint=f"check the repository with `git status` in {root} (a stale .git/index.lock?)",
        )
    except commands.CommandMissing:
        return None  # no git: the source is recorded as unknown, as outside a checkout
    return result.stdout.strip() if result.returncode == 0 else None


def _git(root: Path, *arguments: str) -> str | None:
    """What git printed, for answers that are text (a commit, a time, a URL)."""
    output = _git_bytes(root, *arguments)
    return None if output is None else output.decode("utf-8", "replace")


def source_state(root: Path) -> SourceState:
    """The state of the work tree at ``root``; every field is None outside a git checkout."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return SourceState(None, False, None, None, None)
    status = _git_bytes(root, "status", "--porcelain", "--untracked-files=no") or b""
    # Hashed as git wrote it: a modified Latin-1 or binary file is bytes, not text.
    diff = _git_bytes(root, "diff", "HEAD", "--binary") or b""
    time = _git(root, "log", "-1", "--format=%ct")
    return SourceState(
        commit=commit,
        dirty=bool(status),
        diff_sha256=hashlib.sha256(diff).hexdigest() if status else None,
        origin=canonical_source(_git(root, "config", "--get", "remote.origin.url")),
        commit_time=int(time) if time else None,
    )


def canonical_source(url: str | None) -> str | None:
    """``https://host/owner/repo`` for a network remote, without credentials, port, query
    or ``.git``; None for a local path, a ``file://`` URL, nothing, or anything odd."""
    text = (url or "").strip()
    if not text:
        return None
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        if parts.scheme.lower() not in _NETWORK_SCHEMES:
            return None
        host, path = parts.hostname or "", parts.path
    else:
        match = _SCP_LIKE.fullmatch(text)
        if match is None:
            return None  # a local path
        host, path = match["host"], match["path"]
    host = host.lower().rstrip(".")
    path = path.strip("/").removesuffix(".git").rstrip("/")
    if not _HOST.fullmatch(host) or "." not in host or not _PATH.fullmatch(path):
        return None
    if any(part in (".", "..") for part in path.split("/")):
        return None
    return f"https://{host}/{path}"
