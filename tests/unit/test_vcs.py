"""The source label: one canonical public URL per repository, however it was cloned."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import vcs
from harness.config import load_config
from harness.images import build
from harness.images.base import BaseImage
from tests.conftest import MINIMAL_PYPROJECT

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def git(cwd: Path, *arguments: str) -> None:
    subprocess.run(["git", *arguments], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo",
        "https://github.com/org/repo.git",
        "https://user:ghp_secret@github.com/org/repo.git",
        "http://GitHub.com/org/repo/",
        "git@github.com:org/repo.git",
        "ssh://git@github.com/org/repo.git",
        "ssh://git@github.com:22/org/repo",
        "git://github.com/org/repo",
    ],
)
def test_every_spelling_of_one_repository_is_one_url(url: str) -> None:
    assert vcs.canonical_source(url) == "https://github.com/org/repo"


@pytest.mark.parametrize(
    "url",
    [None, "", "/home/someone/src/repo", "../repo", "file:///srv/git/repo", "C:/src/repo",
     "https://github.com/../etc", "ftp://example.org/repo"],
)  # fmt: skip
def test_local_paths_and_odd_remotes_give_no_url(url: str | None) -> None:
    assert vcs.canonical_source(url) is None


def test_two_clones_of_one_commit_get_the_same_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone of a local path and one without a remote (and ssh and https clones of a
    public one) label the image alike, so the same commit gives the same image ID."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    (origin / "constraints.txt").write_text("numpy==2 --hash=sha256:aa\n")
    git(origin, "init", "-q")
    git(origin, "add", ".")
    git(origin, "commit", "-qm", "one commit")
    base = BaseImage("harness-base:bookworm-python3.11", "sha256:b", "sha256:b", None, False)

    def labels(remote: str | None) -> dict[str, str]:
        clone = tmp_path / f"clone-{len(list(tmp_path.iterdir()))}"
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        if remote is None:
            git(clone, "remote", "remove", "origin")
        else:
            git(clone, "remote", "set-url", "origin", remote)
        config = load_config(clone, environ={})
        return build.image_labels(config, config.variant("cpu"), base, 0)

    local, bare = labels(str(origin)), labels(None)
    assert local == bare
    assert "org.opencontainers.image.source" not in local
    assert str(tmp_path) not in repr(local)
    https = labels("https://x-access-token:ghs_secret@github.com/org/repo.git")
    ssh = labels("git@github.com:org/repo.git")
    assert https == ssh
    assert https["org.opencontainers.image.source"] == "https://github.com/org/repo"
    assert "secret" not in repr(https)


def test_a_modified_file_that_is_not_utf8_is_read_as_bytes(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "latin-1 and binary")
    assert vcs.source_state(tmp_path).dirty is False
    (tmp_path / "notes.txt").write_bytes("na\u00efve\n".encode("latin-1"))
    state = vcs.source_state(tmp_path)
    assert state.dirty is True
    assert state.diff_sha256 is not None
    (tmp_path / "blob.bin").write_bytes(bytes(range(255, -1, -1)))
    changed = vcs.source_state(tmp_path).diff_sha256
    assert changed not in (None, state.diff_sha256)
