"""Which wheels an image's Python accepts, and which of several it prefers.

The wheel cache chooses, on the host, the one file of each pin that goes into the image
(see :mod:`harness.images.wheelcache`). It must choose as pip inside the image would from the
same files, or an image built from the cache would differ from one built from the index:
among the files whose sha256 the pin names, the one whose most specific tag comes first
in the interpreter's list of supported tags. That list is computed here for the image's
Python (``python``, X.Y) and platform (``platform``, uv's ``--python-platform`` spelling,
as the constraints were resolved for), never for the machine harness runs on.

Only glibc Linux targets are known (harness's images are Debian): a platform spelled any
other way is refused with the spellings that work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from harness.errors import ConfigError

# uv's spellings: "x86_64-manylinux_2_36", "aarch64-manylinux2014", "x86_64-unknown-linux-gnu".
_MANYLINUX = re.compile(r"^(?P<arch>[a-z0-9_]+)-manylinux_(?P<major>\d+)_(?P<minor>\d+)$")
_LEGACY = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
_LEGACY_ALIAS = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
# uv reads a bare Linux target as glibc 2.17, the manylinux2014 baseline.
_GNU_BASELINE = (2, 17)
# manylinux tags start at glibc 2.5 (manylinux1).
_OLDEST_GLIBC_MINOR = 5


@dataclass(frozen=True)
class Target:
    """The interpreter and platform of an image, as wheel tags see them."""

    python: tuple[int, int]
    arch: str
    glibc: tuple[int, int]

    @classmethod
    def parse(cls, python: str, platform: str) -> Target:
        version = _python_version(python)
        arch, glibc = _platform(platform)
        return cls(version, arch, glibc)

    def platforms(self) -> list[str]:
        """Platform tags, most specific first, as pip lists them on such a system."""
        major, newest = self.glibc
        tags: list[str] = []
        for minor in range(newest, _OLDEST_GLIBC_MINOR - 1, -1):
            tags.append(f"manylinux_{major}_{minor}_{self.arch}")
            legacy = _LEGACY_ALIAS.get((major, minor))
            if legacy is not None:
                tags.append(f"{legacy}_{self.arch}")
        tags.append(f"linux_{self.arch}")
        return tags

    def tags(self) -> list[Tag]:
        """Every tag the image's CPython accepts, most preferred first."""
        interpreter = f"cp{self.python[0]}{self.python[1]}"
        platforms = self.platforms()
        ordered = [
            *cpython_tags(self.python, abis=[interpreter], platforms=platforms),
            *compatible_tags(self.python, interpreter=interpreter, platforms=platforms),
        ]
        return list(dict.fromkeys(ordered))


class Ranking:
    """Ranks wheel file names by the target's tag preference; lower is better."""

    def __init__(self, target: Target) -> None:
        self._rank = {tag: index for index, tag in enumerate(target.tags())}

    def rank(self, filename: str) -> int | None:
        """The wheel's rank, or None when the target cannot install it (or it is no wheel)."""
        try:
            _, _, _, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return None
        ranks = [self._rank[tag] for tag in tags if tag in self._rank]
        return min(ranks) if ranks else None

    def best(self, filenames: Iterable[str]) -> str | None:
        """The file pip would take of those given, or None when none fits.

        Ties (two files with the same best tag) go to the smaller name, so that the choice
        never depends on the order the files were listed in.
        """
        ranked = [(rank, name) for name in filenames if (rank := self.rank(name)) is not None]
        return min(ranked)[1] if ranked else None


def _python_version(python: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", python.strip())
    if match is None:
        raise ConfigError(
            f"the image's Python {python!r} is not a version X.Y", 'set python = "3.11"'
        )
    return int(match.group(1)), int(match.group(2))


def _platform(platform: str) -> tuple[str, tuple[int, int]]:
    text = platform.strip().lower()
    if text == "linux":
        return "x86_64", _GNU_BASELINE
    match = _MANYLINUX.match(text)
    if match is not None:
        return match.group("arch"), (int(match.group("major")), int(match.group("minor")))
    arch, _, rest = text.partition("-")
    if rest in _LEGACY:
        return arch, _LEGACY[rest]
    if rest == "unknown-linux-gnu" and arch:
        return arch, _GNU_BASELINE
    raise ConfigError(
        f"cannot tell which wheels the platform {platform!r} installs: harness's images "
        "are glibc Linux",
        'set platform to uv\'s spelling of one, e.g. "x86_64-manylinux_2_36" or '
        '"aarch64-manylinux_2_28"',
    )


__all__ = ["Ranking", "Target"]
