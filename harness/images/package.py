"""`harness package`: build harness's wheel twice and check that the two are identical.

The wheel is the one every image built from harness's checkout installs (see
:func:`harness.images.runtime_wheel.build_from_checkout`): ``uv build`` with the hashed
``build-constraints.txt`` and ``--require-hashes``, and SOURCE_DATE_EPOCH taken from the
commit. Each build runs in a folder of its own; the two files are compared byte for byte
and, when they differ, member by member, naming the members whose content, time or
permissions differ. An installed harness has no source to build: its images get its
installed files (see :func:`harness.images.runtime_wheel.repack_installed`).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.digests import sha256_file
from harness.errors import EXIT_DIFFERS, EXIT_SAME
from harness.images import runtime_wheel


@dataclass(frozen=True)
class PackageResult:
    wheel: str
    first_sha256: str
    second_sha256: str
    # Members of the wheel that differ, each with what differs; empty when the two are
    # identical (or differ only in how the archive is laid out).
    differing: tuple[str, ...] = ()
    kept: Path | None = None

    @property
    def identical(self) -> bool:
        return self.first_sha256 == self.second_sha256

    @property
    def exit_code(self) -> int:
        return EXIT_SAME if self.identical else EXIT_DIFFERS

    def summary(self) -> str:
        if self.identical:
            where = f"; kept in {self.kept}" if self.kept else ""
            return (
                f"{self.wheel} is reproducible: both builds have sha256 {self.first_sha256}{where}"
            )
        what = ", ".join(self.differing[:5]) or "the archive's layout"
        return f"{self.wheel} is not reproducible: the two builds differ in {what}"

    def as_dict(self) -> dict[str, object]:
        return {
            "wheel": self.wheel,
            "identical": self.identical,
            "exit_code": self.exit_code,
            "sha256": [self.first_sha256, self.second_sha256],
            "differing": list(self.differing),
            "kept": str(self.kept) if self.kept else None,
        }


def wheel_differences(first: Path, second: Path) -> tuple[str, ...]:
    """``member: aspects`` for each member of two wheels that differs, in name order."""
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        left = {info.filename: info for info in a.infolist()}
        right = {info.filename: info for info in b.infolist()}
        found = []
        for name in sorted(left.keys() | right.keys()):
            x, y = left.get(name), right.get(name)
            if x is None or y is None:
                found.append(f"{name}: only in the {'second' if x is None else 'first'} build")
                continue
            aspects = [
                aspect
                for aspect, differs in (
                    ("content", (x.CRC, x.file_size) != (y.CRC, y.file_size)),
                    ("time", x.date_time != y.date_time),
                    ("permissions", x.external_attr != y.external_attr),
                    ("compression", x.compress_type != y.compress_type),
                )
                if differs
            ]
            if aspects:
                found.append(f"{name}: {', '.join(aspects)}")
        if not found and [i.filename for i in a.infolist()] != [i.filename for i in b.infolist()]:
            found.append("the order of the members")
    return tuple(found)


def check_wheel(source_root: Path, out_dir: Path | None = None) -> PackageResult:
    """Build the wheel twice and compare; with ``out_dir``, keep it there when identical."""
    with (
        tempfile.TemporaryDirectory(prefix="harness-wheel-1-") as one,
        tempfile.TemporaryDirectory(prefix="harness-wheel-2-") as two,
    ):
        first = runtime_wheel.build_from_checkout(source_root, Path(one))
        second = runtime_wheel.build_from_checkout(source_root, Path(two))
        first_sha, second_sha = sha256_file(first), sha256_file(second)
        differing = () if first_sha == second_sha else wheel_differences(first, second)
        kept = None
        if out_dir is not None and first_sha == second_sha:
            out_dir.mkdir(parents=True, exist_ok=True)
            kept = out_dir / first.name
            shutil.copyfile(first, kept)
        return PackageResult(first.name, first_sha, second_sha, differing, kept)
