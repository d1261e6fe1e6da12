"""Shared fixtures: a minimal harness project in a temporary folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
# The run-record schema harness ships, which every record a test reads must satisfy.
RUN_RECORD_SCHEMA = json.loads(
    (REPOSITORY / "harness" / "schemas" / "run-record.v1.json").read_text(encoding="utf-8")
)

MINIMAL_PYPROJECT = """\
[project]
name = "demo"
version = "0"

[dependency-groups]
experiments = ["numpy>=2.0", "torch==2.13.0"]

[tool.harness]
image = "demo"

[tool.harness.variants.cpu]
constraints = "constraints.txt"
replace = { torch = "torch==2.13.0+cpu" }
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a minimal pyproject.toml (no lock files)."""
    (tmp_path / "pyproject.toml").write_text(MINIMAL_PYPROJECT)
    return tmp_path


PROJECT_FILES = (
    "pyproject.toml",
    "uv.lock",
    "constraints.txt",
    "constraints-cuda.txt",
    "build-constraints.txt",
    "README.md",
    "Dockerfile",
    "Dockerfile.cuda",
)


def copy_project_files(target: Path) -> Path:
    """Copy this repository's project files (pyproject, lock files, README, Dockerfiles) to
    ``target``, so that a copy builds the images the repository builds."""
    for name in PROJECT_FILES:
        shutil.copy2(REPOSITORY / name, target / name)
    return target


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """A copy of this repository's project files in a temporary folder."""
    return copy_project_files(tmp_path)
