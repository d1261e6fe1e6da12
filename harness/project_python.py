"""The Python a project asks for, and the Debian releases whose Python an image can have.

A project says which Python it runs on in two places that uv and pyenv users already keep:
``.python-version`` (the version its developers run) and ``[project] requires-python``. The
image's Python is chosen from them unless ``python`` is configured: the version
``.python-version`` names when ``requires-python`` allows it, else the lowest that a base
can carry and ``requires-python`` allows. A project on Python 3.14 then gets a 3.14 image
without a setting of its own, and one that allows 3.11 keeps the 3.11 image it had.

A bootstrapped base takes its Python from Debian, so which Pythons it can have is which
releases Debian's mirrors carry, one Python each (checked against the mirror's package
lists: python3 depends on python3.11 in bookworm, 3.13 in trixie, 3.14 in forky). Where a
Python is carried by none, the only way to it is a registry image pinned by digest.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# Debian release -> the Python its python3 package is; oldest first.
SUITE_PYTHONS: Mapping[str, str] = {"bookworm": "3.11", "trixie": "3.13", "forky": "3.14"}
# The image's Python when the project says nothing, as before the project could choose.
DEFAULT_PYTHON = "3.11"
PYTHON_VERSION_FILE = ".python-version"


@dataclass(frozen=True)
class Asked:
    """What the project asks for: a Python version and where that came from."""

    python: str
    source: str


def suite_for(python: str) -> str | None:
    """The Debian release whose python3 is ``python`` (X.Y), if any."""
    for suite, version in SUITE_PYTHONS.items():
        if version == python:
            return suite
    return None


def available() -> str:
    """The Pythons a bootstrapped base can have, for messages: ``3.11 (bookworm), ...``."""
    return ", ".join(f"{python} ({suite})" for suite, python in SUITE_PYTHONS.items())


def unavailable_fix(python: str) -> str:
    """One line: how to get an image with a Python no Debian release here carries."""
    return (
        f"set python to one of {', '.join(SUITE_PYTHONS.values())} in [tool.harness], or "
        f"base = 'REF@sha256:...' to a registry image that carries Python {python} "
        "(its python3 must be that version)"
    )


def asked(root: Path) -> Asked | None:
    """The Python ``root``'s project asks for (X.Y), or None when it says nothing usable."""
    pinned = _python_version_file(root / PYTHON_VERSION_FILE)
    requires = _requires_python(root / "pyproject.toml")
    if pinned is not None and (requires is None or requires.contains(pinned + ".0")):
        return Asked(pinned, PYTHON_VERSION_FILE)
    if requires is None:
        return None
    for python in SUITE_PYTHONS.values():
        if requires.contains(python + ".0") or requires.contains(python + ".99"):
            return Asked(python, f"requires-python {requires}")
    # None a base carries fits: name the lowest version the specifier allows, so the
    # message that follows says what the project needs rather than what was available.
    for minor in range(8, 40):
        python = f"3.{minor}"
        if requires.contains(python + ".0") or requires.contains(python + ".99"):
            return Asked(python, f"requires-python {requires}")
    return None


def _python_version_file(path: Path) -> str | None:
    """X.Y from the first version line of ``.python-version`` (``3.14``, ``3.14.2``,
    ``cpython-3.14``); None for a missing file or a name it cannot read (``pypy``)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip().removeprefix("cpython-").removeprefix("cpython@")
        if not word:
            continue
        parts = word.split(".")
        if len(parts) >= 2 and parts[0] == "3" and parts[1].isdigit():
            return f"3.{int(parts[1])}"
        return None
    return None


def _requires_python(path: Path) -> SpecifierSet | None:
    try:
        with path.open("rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    text = project.get("requires-python") if isinstance(project, dict) else None
    if not isinstance(text, str):
        return None
    try:
        specifier = SpecifierSet(text)
    except InvalidSpecifier:
        return None
    # A specifier no 3.x release satisfies says nothing this module can use.
    try:
        return specifier if any(specifier.filter(Version(f"3.{m}.0") for m in range(40))) else None
    except InvalidVersion:
        return None


__all__ = [
    "DEFAULT_PYTHON",
    "PYTHON_VERSION_FILE",
    "SUITE_PYTHONS",
    "Asked",
    "asked",
    "available",
    "suite_for",
    "unavailable_fix",
]
