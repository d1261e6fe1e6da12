"""Shared fixtures: a minimal harness project in a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent

MINIMAL_PYPROJECT = """\
[project]
name = "demo"
version = "0"

[dependency-groups]
experiments = ["numpy>=2.0", "torch==2.13.0"]

[tool.harness]
image = "demo"

[tool.harness.variants.cpu]
dockerfile = "Dockerfile"
constraints = "constraints.txt"
replace = { torch = "torch==2.13.0+cpu" }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a minimal pyproject.toml (no lock files)."""
    (tmp_path / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    return tmp_path


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """A copy of this repository's project files (pyproject, lock files, Dockerfiles)."""
    for name in (
        "pyproject.toml",
        "uv.lock",
        "constraints.txt",
        "constraints-cuda.txt",
        "build-constraints.txt",
        "Dockerfile",
        "Dockerfile.cuda",
        "README.md",
    ):
        shutil.copy2(REPOSITORY / name, tmp_path / name)
    return tmp_path
