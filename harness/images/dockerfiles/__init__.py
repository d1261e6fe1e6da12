"""harness's own Dockerfiles, and which Dockerfile a variant's image is built from.

A project that adopts harness should not have to write a Dockerfile before its first
image, as repo2docker builds any repository: the CPU and CUDA Dockerfiles ship in this
package, and a variant whose project has none builds with harness's. A project's own
Dockerfile (at the variant's ``dockerfile`` path, by default ``Dockerfile`` and
``Dockerfile.cuda``) always wins, and one that ``[tool.harness.variants.NAME]`` names must
exist: a typo there never falls back silently. ``harness init --dockerfiles`` copies
harness's files into the project, as the starting point of a customised one.

Which file was used is part of the image's identity: the choice goes into the build input
and the image's labels (``io.harness.dockerfile``), and from there into every run record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.config import Variant
from harness.errors import ConfigError

# Where the Dockerfile came from, as the label and the record name it.
FROM_PROJECT = "project"
FROM_HARNESS = "harness"
# harness's own Dockerfile of each device, by file name.
BUILTIN = {"cpu": "Dockerfile", "cuda": "Dockerfile.cuda"}


@dataclass(frozen=True)
class Dockerfile:
    """The Dockerfile a variant builds from: its text, its origin and its name."""

    origin: str
    # The project-relative path of a project's own file; the file name of harness's.
    name: str
    text: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    @property
    def label(self) -> str:
        """``project:Dockerfile`` or ``harness:Dockerfile.cuda``, as the image label says."""
        return f"{self.origin}:{self.name}"

    def describe(self) -> str:
        if self.origin == FROM_HARNESS:
            return f"harness's own {self.name}"
        return f"the project's {self.name}"


def builtin_text(device: str) -> bytes:
    """harness's own Dockerfile for ``device`` (cpu or cuda)."""
    return (resources.files(__name__) / BUILTIN[device]).read_bytes()


def choose(variant: Variant, project_root: Path) -> Dockerfile:
    """The project's Dockerfile when it has one, else harness's for the variant's device."""
    path = variant.dockerfile
    if path.is_file():
        try:
            name = path.relative_to(project_root).as_posix()
        except ValueError:
            name = str(path)
        try:
            return Dockerfile(FROM_PROJECT, name, path.read_bytes())
        except OSError as error:
            raise ConfigError(
                f"the {variant.name} variant's Dockerfile {path.name} cannot be read: "
                f"{error.strerror}",
                "fix its permissions",
            ) from None
    if variant.dockerfile_declared:
        raise ConfigError(
            f"the {variant.name} variant's Dockerfile {path.name} does not exist",
            f"create it, or remove dockerfile from [tool.harness.variants.{variant.name}] "
            "to build with harness's own",
        )
    return Dockerfile(FROM_HARNESS, BUILTIN[variant.device], builtin_text(variant.device))


__all__ = ["BUILTIN", "FROM_HARNESS", "FROM_PROJECT", "Dockerfile", "builtin_text", "choose"]
