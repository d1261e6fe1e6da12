"""A copy of this repository's project, for benchmarks that build and run its examples.

One list of the files a copy needs, so that a file moving in the repository (as the
Dockerfiles did, into the package) is changed in one place rather than in every benchmark.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
# The project's declared dependencies and pins: what the image is built from. The README is
# part of harness's wheel, so a copy without it would build another image.
PROJECT_FILES = (
    "pyproject.toml",
    "uv.lock",
    "constraints.txt",
    "constraints-cuda.txt",
    "build-constraints.txt",
    "README.md",
)


def copy_project(folder: Path, *, experiments: bool = False) -> Path:
    """Copy the project files (and, with ``experiments``, the example experiments) into
    ``folder``, made readable by the container's user (mkdtemp makes folders 0700)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for name in PROJECT_FILES:
        shutil.copy2(REPOSITORY / name, folder / name)
    if experiments:
        shutil.copytree(REPOSITORY / "experiments", folder / "experiments")
    return folder
