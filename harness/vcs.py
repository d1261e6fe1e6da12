"""What git says about the project's source: commit, dirty state, origin and commit time."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceState:
    commit: str | None
    dirty: bool
    diff_sha256: str | None
    origin: str | None
    commit_time: int | None


def _git(root: Path, *arguments: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *arguments], cwd=root, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def source_state(root: Path) -> SourceState:
    """The state of the work tree at ``root``; every field is None outside a git checkout."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return SourceState(None, False, None, None, None)
    status = _git(root, "status", "--porcelain", "--untracked-files=no") or ""
    diff = _git(root, "diff", "HEAD", "--binary") or ""
    time = _git(root, "log", "-1", "--format=%ct")
    return SourceState(
        commit=commit,
        dirty=bool(status),
        diff_sha256=hashlib.sha256(diff.encode()).hexdigest() if status else None,
        origin=_git(root, "config", "--get", "remote.origin.url"),
        commit_time=int(time) if time else None,
    )
