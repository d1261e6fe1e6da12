"""harness's own Dockerfiles, and which Dockerfile a variant's image is built from.

A project that adopts harness should not have to write a Dockerfile before its first
image, as repo2docker builds any repository: the CPU and CUDA Dockerfiles ship in this
package, and a variant whose project has none builds with harness's. A project's own
Dockerfile (at the variant's ``dockerfile`` path, by default ``Dockerfile`` and
``Dockerfile.cuda``) wins when it is written for harness (it takes harness's build
arguments); one that ``[tool.harness.variants.NAME]`` names must exist: a typo there never
falls back silently, and ``harness:Dockerfile`` names harness's own. Many projects keep a
``Dockerfile`` for deployment (``FROM python:3.14-slim``): found at the default path, it is
never taken for the experiment image without a word; ``harness init`` sees it and names
harness's own for the variant. ``harness init --dockerfiles`` copies
harness's files into the project, as the starting point of a customised one.

Which file was used is part of the image's identity: the choice goes into the build input
and the image's labels (``io.harness.dockerfile``), and from there into every run record.
"""

from __future__ import annotations

import hashlib
import re
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
# The two differ only in their opening comment and the CUDA image's environment, so one
# template (Dockerfile.in) holds the rest: a fix to the build steps lands in both.
# The rendered text is part of every image's identity: a change here changes image IDs.
TEMPLATE = "Dockerfile.in"
# The frameworks image every image built from the template starts FROM, and the build
# argument that names it (an image ID) in the Dockerfiles built on it.
FRAMEWORKS = "Dockerfile.frameworks"
# A frameworks layer: one large pin's files, installed alone (an image FROM scratch).
FRAMEWORKS_LAYER = "Dockerfile.frameworks-layer"
FRAMEWORKS_ARGUMENT = "FRAMEWORKS_IMAGE"
_FRAMEWORKS_ARGUMENT = re.compile(
    rb"^[ \t]*ARG[ \t]+FRAMEWORKS_IMAGE\b", re.MULTILINE | re.IGNORECASE
)
# A variant's dockerfile that starts so names harness's own (``harness:Dockerfile``).
HARNESS_PREFIX = "harness:"
# The build arguments harness passes; a Dockerfile written for harness takes one of them.
_HARNESS_ARGUMENT = re.compile(
    rb"^[ \t]*ARG[ \t]+(BASE_IMAGE|FRAMEWORKS_IMAGE)\b", re.MULTILINE | re.IGNORECASE
)
_FROM = re.compile(rb"^[ \t]*FROM[ \t]+(?:--\S+[ \t]+)*(\S+)", re.MULTILINE | re.IGNORECASE)
_HEADER_LINE = "@HEADER@\n"
_DEVICE_ENV_LINE = "@DEVICE_ENV@\n"
_CPU_HEADER = (
    "# harness's CPU image: Python, the experiment dependencies pinned by hash, and the\n"
    "# harness runtime. Every project without a Dockerfile of its own builds with this one\n"
    "# (`harness init --dockerfiles` copies it into a project to customise). Build it with\n"
    "# `harness build --variant cpu`: harness assembles the context (constraints.txt and\n"
    "# wheels/ with the pins its frameworks image lacks, dist/, ca-bundle.crt) and passes\n"
    "# FRAMEWORKS_IMAGE as that image's ID, so what it builds on is fixed by content, not by\n"
    "# a tag. The image holds only what the constraints pin: a project that needs numpy and\n"
    "# scikit-learn gets those, and no framework it does not use.\n"
)
_CUDA_HEADER = (
    "# harness's CUDA image, for every project without a Dockerfile.cuda of its own (`harness\n"
    "# init --dockerfiles` copies it into a project to customise): Python, PyPI's CUDA build of\n"
    "# torch with its nvidia-* wheels (the CUDA libraries travel as wheels, so no CUDA base\n"
    "# image is needed; the host brings only the driver, through the NVIDIA container\n"
    "# runtime), pinned by hash, and the harness runtime. Build it with `harness build\n"
    "# --variant cuda`: harness assembles the context (constraints.txt and wheels/ with the\n"
    "# pins of constraints-cuda.txt its frameworks image lacks, dist/, ca-bundle.crt) and\n"
    "# passes FRAMEWORKS_IMAGE as that image's ID, so what it builds on is fixed by content.\n"
)
_CUDA_ENVIRONMENT = (
    "# Read by the NVIDIA container runtime; cuBLAS needs a fixed workspace to be deterministic.\n"
    "ENV NVIDIA_VISIBLE_DEVICES=all \\\n"
    "    NVIDIA_DRIVER_CAPABILITIES=compute,utility \\\n"
    "    CUBLAS_WORKSPACE_CONFIG=:4096:8\n"
)
_HEADERS = {"cpu": _CPU_HEADER, "cuda": _CUDA_HEADER}
_DEVICE_ENVIRONMENT = {"cpu": "", "cuda": _CUDA_ENVIRONMENT}


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
    """harness's own Dockerfile for ``device`` (cpu or cuda), rendered from the template."""
    template = (resources.files(__name__) / TEMPLATE).read_text(encoding="utf-8")
    if template.count(_HEADER_LINE) != 1 or template.count(_DEVICE_ENV_LINE) != 1:
        raise AssertionError(f"{TEMPLATE} must hold each placeholder line once")
    text = template.replace(_HEADER_LINE, _HEADERS[device]).replace(
        _DEVICE_ENV_LINE, _DEVICE_ENVIRONMENT[device]
    )
    return text.encode("utf-8")


def frameworks_text() -> bytes:
    """The Dockerfile of harness's frameworks image (see :mod:`harness.images.frameworks`)."""
    return (resources.files(__name__) / FRAMEWORKS).read_bytes()


def frameworks_layer_text() -> bytes:
    """The Dockerfile of a frameworks layer: its pins' files alone, FROM scratch."""
    return (resources.files(__name__) / FRAMEWORKS_LAYER).read_bytes()


def builds_on_frameworks(text: bytes) -> bool:
    """Whether a Dockerfile is built FROM harness's frameworks image: it declares the
    argument that names it. harness's own do; a project's that started as a copy of them
    does too, and one written before them (or without them) gets every pin in its context."""
    return _FRAMEWORKS_ARGUMENT.search(text) is not None


def named_builtin(variant: Variant, project_root: Path) -> str | None:
    """The file name of harness's own Dockerfile the variant names explicitly
    (``dockerfile = "harness:Dockerfile"``), or None when it names a project file."""
    try:
        written = variant.dockerfile.relative_to(project_root).as_posix()
    except ValueError:
        return None
    if not written.startswith(HARNESS_PREFIX):
        return None
    return written.removeprefix(HARNESS_PREFIX)


def meant_for_harness(text: bytes) -> bool:
    """Whether a Dockerfile is written to be built by harness: it takes the build argument
    that names harness's base or frameworks image. One that does not (``FROM
    python:3.14-slim``, the usual deployment file) builds something else, from a registry
    harness may not reach, without the pinned environment."""
    return _HARNESS_ARGUMENT.search(text) is not None


def first_from(text: bytes) -> str:
    """The image a Dockerfile's first FROM names, for messages."""
    match = _FROM.search(text)
    return match.group(1).decode("utf-8", "replace") if match else "no FROM"


def choose(variant: Variant, project_root: Path) -> Dockerfile:
    """The project's Dockerfile when it has one meant for harness, else harness's for the
    variant's device; ``harness:NAME`` names harness's own explicitly."""
    builtin = named_builtin(variant, project_root)
    if builtin is not None:
        devices = {name: device for device, name in BUILTIN.items()}
        if builtin not in devices:
            raise ConfigError(
                f"[tool.harness.variants.{variant.name}] names {HARNESS_PREFIX}{builtin}, "
                "which harness does not have",
                f"write one of: {', '.join(HARNESS_PREFIX + n for n in BUILTIN.values())}",
            )
        device = devices[builtin]
        return Dockerfile(FROM_HARNESS, builtin, builtin_text(device))
    path = variant.dockerfile
    if path.is_file():
        try:
            name = path.relative_to(project_root).as_posix()
        except ValueError:
            name = str(path)
        try:
            text = path.read_bytes()
        except OSError as error:
            raise ConfigError(
                f"the {variant.name} variant's Dockerfile {path.name} cannot be read: "
                f"{error.strerror}",
                "fix its permissions",
            ) from None
        if not variant.dockerfile_declared and not meant_for_harness(text):
            raise ConfigError(
                f"{name} is not written for harness (FROM {first_from(text)}, none of "
                "harness's build arguments BASE_IMAGE or FRAMEWORKS_IMAGE): it looks like "
                "the project's deployment Dockerfile, so the experiment image is not built "
                "from it",
                f'run `harness init`, which sets dockerfile = "{HARNESS_PREFIX}'
                f'{BUILTIN[variant.device]}" under [tool.harness.variants.{variant.name}] '
                f'(or set it yourself); to build from {name} anyway, set dockerfile = "{name}" '
                "there",
            )
        return Dockerfile(FROM_PROJECT, name, text)
    if variant.dockerfile_declared:
        raise ConfigError(
            f"the {variant.name} variant's Dockerfile {path.name} does not exist",
            f"create it, or set dockerfile = "
            f'"{HARNESS_PREFIX}{BUILTIN[variant.device]}" under '
            f"[tool.harness.variants.{variant.name}] to build with harness's own",
        )
    return Dockerfile(FROM_HARNESS, BUILTIN[variant.device], builtin_text(variant.device))


__all__ = [
    "BUILTIN",
    "FRAMEWORKS_ARGUMENT",
    "FROM_HARNESS",
    "FROM_PROJECT",
    "HARNESS_PREFIX",
    "Dockerfile",
    "builds_on_frameworks",
    "builtin_text",
    "choose",
    "first_from",
    "frameworks_layer_text",
    "frameworks_text",
    "meant_for_harness",
    "named_builtin",
]
