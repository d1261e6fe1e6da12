"""`harness package`: build a wheel twice and check that the two are identical.

In any project it is the project's own wheel (see :func:`check_project_wheel`); in
harness's checkout, harness's.

The wheel is the one every image built from harness's checkout installs (see
:func:`harness.images.runtime_wheel.build_from_checkout`): ``uv build`` with the hashed
``build-constraints.txt`` and ``--require-hashes``, and SOURCE_DATE_EPOCH taken from the
commit. Each build runs in a folder of its own; the two files are compared byte for byte
and, when they differ, member by member, naming the members whose content, time or
permissions differ. An installed harness has no source to build: its images get its
installed files (see :func:`harness.images.runtime_wheel.repack_installed`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from harness import commands, vcs
from harness.config import Config, read_pyproject
from harness.digests import sha256_file
from harness.errors import EXIT_DIFFERS, EXIT_SAME, BuildError
from harness.images import build, lock, runtime_wheel


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
    return _twice(lambda folder: runtime_wheel.build_from_checkout(source_root, folder), out_dir)


def check_project_wheel(config: Config, out_dir: Path | None = None) -> PackageResult:
    """The same recipe for any project's own wheel: ``uv build --wheel`` against hashed
    build constraints (the project's committed build-constraints.txt, else resolved now
    from its [build-system] requires, with hashes), SOURCE_DATE_EPOCH from its commit,
    twice, compared byte for byte."""
    root = config.project_root
    if not read_pyproject(config.pyproject).get("build-system", {}).get("requires"):
        raise BuildError(
            "the project declares no [build-system] requires, so it has no wheel to build",
            'add [build-system] with requires = ["hatchling"] and build-backend = '
            '"hatchling.build"',
        )
    with tempfile.TemporaryDirectory(prefix="harness-build-constraints-") as work:
        constraints = root / runtime_wheel.BUILD_CONSTRAINTS
        if not constraints.is_file():
            constraints = Path(work) / runtime_wheel.BUILD_CONSTRAINTS
            lock.compile_to(
                config, lock.build_input(config), constraints, ["--universal"], find_links=False
            )
        epoch = build.source_date_epoch(vcs.source_state(root))
        # The build backend needs an interpreter; where the project's Python is not on this
        # machine, this one runs it (a pure-Python wheel does not depend on it).
        python = [] if lock.missing_interpreter(config) is None else ["--python", sys.executable]
        return _twice(lambda folder: _uv_build(root, constraints, folder, epoch, python), out_dir)


def _uv_build(root: Path, constraints: Path, out_dir: Path, epoch: int, python: list[str]) -> Path:
    environment = dict(os.environ)
    environment["SOURCE_DATE_EPOCH"] = str(epoch)
    environment["UV_PYTHON_DOWNLOADS"] = "never"
    result = commands.call(
        [
            find_uv_bin(), "build", "--wheel", "--quiet",
            "--out-dir", str(out_dir),
            "--build-constraint", str(constraints),
            "--require-hashes",
            *python,
            str(root),
        ],
        env=environment,
        timeout=commands.RESOLVE_S,
        hint="check that the package index answers (`harness doctor`), then package again",
    )  # fmt: skip
    wheels = sorted(out_dir.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = " | ".join(result.err.strip().splitlines()[-3:]) or "no wheel was written"
        raise BuildError(f"uv build of the project's wheel failed: {tail}")
    return wheels[0]


def _twice(build_into: Callable[[Path], Path], out_dir: Path | None) -> PackageResult:
    """Build with ``build_into`` in two fresh folders and compare the two wheels."""
    with (
        tempfile.TemporaryDirectory(prefix="harness-wheel-1-") as one,
        tempfile.TemporaryDirectory(prefix="harness-wheel-2-") as two,
    ):
        first = build_into(Path(one))
        second = build_into(Path(two))
        first_sha, second_sha = sha256_file(first), sha256_file(second)
        differing = () if first_sha == second_sha else wheel_differences(first, second)
        kept = None
        if out_dir is not None and first_sha == second_sha:
            out_dir.mkdir(parents=True, exist_ok=True)
            kept = out_dir / first.name
            shutil.copyfile(first, kept)
        return PackageResult(first.name, first_sha, second_sha, differing, kept)
