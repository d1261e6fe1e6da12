"""harness's own wheel, which every image installs as its runtime, from wherever harness runs.

harness runs in one of two ways, and the images get the runtime of the harness that built
them either way:

* from its source checkout (its developers, CI of this repository): the wheel is built
  with ``uv build`` from that tree, its build dependencies pinned by hash in
  ``build-constraints.txt`` (see `harness package`);
* installed from its wheel (``uv tool install``, ``pipx install``, a venv): there is no
  source to build from, and none is needed. The installed files are checked against the
  distribution's RECORD (a file edited after installation is refused, since the image
  would carry code no wheel ever held) and packed again into a wheel whose bytes depend on
  those files alone: members in a fixed order, one fixed time, one mode.

Either way a digest of the files the wheel holds goes into the build input, so a rebuild
with the same harness is a cache hit and another harness builds another image.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name
from uv import find_uv_bin

import harness
from harness import commands, vcs
from harness.errors import BuildError

DISTRIBUTION = "harness"
BUILD_CONSTRAINTS = "build-constraints.txt"
# Files of harness's source tree that shape its wheel besides the package itself.
_WHEEL_SOURCES = ("pyproject.toml", "README.md", BUILD_CONSTRAINTS)
# Installer files that say how a copy was installed, not what it is: never repacked.
_INSTALLER_FILES = frozenset({"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"})
# The earliest time a zip member can carry; every member gets it.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_MEMBER_MODE = 0o644 << 16
# Bounds on what is read from an installation: harness is a few hundred files of source.
_MAX_FILES = 5000
_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class InstalledFile:
    """One file of an installed distribution that the repacked wheel holds."""

    # The member's name in the wheel (its path relative to site-packages).
    name: str
    path: Path


@dataclass(frozen=True)
class HarnessSource:
    """Where the running harness comes from: a source ``checkout`` or an ``installed`` copy."""

    kind: str
    # The checkout's root, or the folder the distribution is installed in (site-packages).
    root: Path

    def describe(self) -> str:
        return f"harness {harness.__version__} ({self.kind} at {self.root})"

    def digest(self) -> str:
        """sha256 over every file that shapes the wheel, by path and content."""
        if self.kind == "checkout":
            return source_digest(self.root)
        digest = hashlib.sha256()
        for member in installed_files():
            digest.update(member.name.encode() + b"\0")
            digest.update(hashlib.sha256(member.path.read_bytes()).digest())
        return digest.hexdigest()

    def wheel(self, out_dir: Path) -> Path:
        """Write harness's wheel into ``out_dir``; returns its path."""
        if self.kind == "checkout":
            return build_from_checkout(self.root, out_dir)
        return repack_installed(out_dir)


def locate() -> HarnessSource:
    """The source checkout harness runs from, else its installed distribution."""
    package = Path(harness.__file__).resolve().parent
    root = package.parent
    if _is_harness_checkout(root):
        return HarnessSource("checkout", root)
    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        distribution = None
    if distribution is not None and distribution.files:
        located = Path(str(distribution.locate_file(""))).resolve()
        if (located / "harness").resolve() == package:
            return HarnessSource("installed", located)
    raise BuildError(
        f"harness runs from {package}, which is neither its source checkout nor an "
        "installed distribution, so the images cannot get its runtime",
        "install harness as a tool (`uv tool install harness-*.whl`) or into a virtual "
        "environment, or run it from its checkout",
    )


def _is_harness_checkout(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return isinstance(name, str) and canonicalize_name(name) == DISTRIBUTION


# -- a source checkout -------------------------------------------------------------------


def source_digest(root: Path) -> str:
    """sha256 over harness's package files and the files that shape its wheel."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in (root / "harness").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    files += [root / name for name in _WHEEL_SOURCES if (root / name).is_file()]
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_from_checkout(source_root: Path, out_dir: Path) -> Path:
    """Build harness's wheel with hash-checked build dependencies; returns the wheel's path."""
    constraints = source_root / BUILD_CONSTRAINTS
    if not constraints.is_file():
        raise BuildError(
            f"{BUILD_CONSTRAINTS} is missing, so harness's wheel cannot be built with hashes",
            "run `harness lock` in harness's checkout",
        )
    environment = dict(os.environ)
    # The commit's time, as for the image's own dates (SOURCE_DATE_EPOCH, when set, wins).
    environment.setdefault("SOURCE_DATE_EPOCH", str(vcs.source_state(source_root).commit_time or 0))
    result = commands.call(
        [
            find_uv_bin(), "build", "--wheel", "--quiet",
            "--out-dir", str(out_dir),
            "--build-constraint", str(constraints),
            "--require-hashes",
            str(source_root),
        ],
        env=environment,
        timeout=commands.RESOLVE_S,
        hint="check that the package index answers (`harness doctor`), then build again",
    )  # fmt: skip
    wheels = sorted(out_dir.glob("harness-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = " ".join(result.err.strip().splitlines()[-3:])
        raise BuildError(
            f"building harness's wheel failed: {tail}", "run `harness lock`, then retry"
        )
    return wheels[0]


# -- an installed distribution -------------------------------------------------------------


def installed_files(distribution: metadata.Distribution | None = None) -> list[InstalledFile]:
    """The installed package's files and metadata, each checked against RECORD's sha256.

    Bytecode is left out (the images hold none), and so are the installer's own files.
    """
    distribution = distribution or metadata.distribution(DISTRIBUTION)
    entries = distribution.files or []
    if len(entries) > _MAX_FILES:
        raise BuildError(
            f"harness's RECORD lists {len(entries)} files, more than {_MAX_FILES}",
            "reinstall harness from its wheel",
        )
    found: list[InstalledFile] = []
    total = 0
    for entry in entries:
        name = PurePosixPath(str(entry))
        if not _belongs_in_wheel(name):
            continue
        path = Path(str(entry.locate()))
        expected = entry.hash
        if expected is None or expected.mode != "sha256":
            raise BuildError(
                f"harness's RECORD gives {name} no sha256",
                "reinstall harness from its wheel (uv tool install --force, pipx reinstall)",
            )
        try:
            content = path.read_bytes()
        except OSError as error:
            raise BuildError(
                f"harness's installed file {name} cannot be read: {error.strerror}",
                "reinstall harness from its wheel (uv tool install --force, pipx reinstall)",
            ) from None
        total += len(content)
        if total > _MAX_BYTES:
            raise BuildError(
                f"harness's installed files exceed {_MAX_BYTES} bytes",
                "reinstall harness from its wheel",
            )
        if _record_digest(content) != expected.value:
            raise BuildError(
                f"harness's installed file {name} differs from what its wheel held (RECORD)",
                "reinstall harness from its wheel (uv tool install --force, pipx reinstall); "
                "to change harness, work in its checkout",
            )
        found.append(InstalledFile(name.as_posix(), path))
    if not any(member.name == "harness/runtime/__main__.py" for member in found):
        raise BuildError(
            "the installed harness has no runtime package (harness/runtime)",
            "reinstall harness from its wheel",
        )
    # The package first, then the metadata, RECORD last: the order the wheel format
    # recommends, and one that does not depend on the order RECORD happens to list.
    return sorted(found, key=lambda member: (".dist-info/" in member.name, member.name))


def _belongs_in_wheel(name: PurePosixPath) -> bool:
    parts = name.parts
    if not parts or ".." in parts or name.is_absolute():
        return False
    if parts[0] == "harness":
        return "__pycache__" not in parts and name.suffix != ".pyc"
    if parts[0].endswith(".dist-info") and len(parts) >= 2:
        return parts[1] not in _INSTALLER_FILES
    return False  # the console script in bin/: the installer writes it


def _record_digest(content: bytes) -> str:
    """A file's digest as RECORD writes it: urlsafe base64 of the sha256, no padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def repack_installed(out_dir: Path, distribution: metadata.Distribution | None = None) -> Path:
    """Pack the installed harness into a wheel again; the same files give the same bytes."""
    distribution = distribution or metadata.distribution(DISTRIBUTION)
    members = installed_files(distribution)
    dist_info = next(
        (PurePosixPath(m.name).parts[0] for m in members if m.name.endswith(".dist-info/WHEEL")),
        None,
    )
    if dist_info is None:
        raise BuildError(
            "the installed harness has no WHEEL metadata", "reinstall harness from its wheel"
        )
    tags = _wheel_tags(next(m for m in members if m.name == f"{dist_info}/WHEEL").path)
    version = distribution.version
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{DISTRIBUTION}-{version}-{tags}.whl"
    record_lines = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for member in members:
            content = member.path.read_bytes()
            _write_member(archive, member.name, content)
            record_lines.append(f"{member.name},sha256={_record_digest(content)},{len(content)}")
        record_lines.append(f"{dist_info}/RECORD,,")
        _write_member(archive, f"{dist_info}/RECORD", ("\n".join(record_lines) + "\n").encode())
    return wheel


def _write_member(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.external_attr = _MEMBER_MODE
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, content, compresslevel=9)


def _wheel_tags(path: Path) -> str:
    """The compressed tag set of the WHEEL file (py3-none-any for harness)."""
    tags = [
        line.split(":", 1)[1].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("Tag:")
    ]
    if not tags:
        raise BuildError("harness's WHEEL metadata names no tag", "reinstall harness")
    parts = [tag.split("-") for tag in tags]
    if any(len(p) != 3 for p in parts):
        raise BuildError(f"harness's WHEEL metadata has a malformed tag: {tags[0]}", "reinstall")
    return "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))


__all__ = [
    "BUILD_CONSTRAINTS",
    "HarnessSource",
    "build_from_checkout",
    "installed_files",
    "locate",
    "repack_installed",
    "source_digest",
]
