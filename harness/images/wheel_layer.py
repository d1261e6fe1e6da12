"""A wheel installed into an image's environment, written as one image layer by harness.

The deploy image is the certified image plus the project's wheel. Installing the wheel
with pip in a build would add a container's run to the image's identity (pip's own
files, its version, the build's clock); here the layer is written directly from the
wheel, following the binary distribution format
(https://packaging.python.org/en/latest/specifications/binary-distribution-format/): the
root and ``*.data/purelib`` / ``platlib`` into site-packages, ``scripts`` into the venv's
``bin/`` with their ``#!python`` line pointed at the venv's Python, ``data`` into the
venv, console and GUI entry points as small scripts, ``INSTALLER`` and a new ``RECORD``.

The archive is canonical: entries sorted by path, every parent folder listed, owner 0,
no user names, every time set to one epoch, modes 0644 / 0755 only. The same wheel for
the same environment gives the same bytes, hence the same diff ID and the same image ID.

The wheel is read within bounds (members, sizes, names that stay inside their folder,
no links), although it is the project's own: it is an input like any other file.
"""

from __future__ import annotations

import base64
import configparser
import csv
import email.parser
import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import BuildError

# The environment harness's Dockerfiles install into (see Dockerfile.in).
VENV = PurePosixPath("/opt/harness/venv")
# Bounds on the wheel: a project's wheel is code and small data, far below these.
MAX_MEMBERS = 20_000
MAX_BYTES = 1 << 30
_ENTRY_POINT = re.compile(r"^(?P<module>[\w.]+)\s*(:\s*(?P<attribute>[\w.]+)\s*)?$")
_SCRIPT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCHEME = ("purelib", "platlib", "scripts", "data", "headers")


@dataclass(frozen=True)
class WheelFacts:
    """What the deploy image needs to know of a wheel before installing it."""

    name: str
    version: str
    requires: tuple[Requirement, ...]
    # Top-level importable names (packages and modules at the root of site-packages).
    top_level: tuple[str, ...]


@dataclass(frozen=True)
class WrittenLayer:
    diff_id: str
    size: int
    files: int


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in path.parts)
    ):
        raise BuildError(
            f"the wheel holds a member named {name!r}, which would land outside its folder",
            "build the wheel again with `harness package`",
        )
    return path


def _members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > MAX_MEMBERS:
        raise BuildError(f"the wheel holds {len(infos)} files, more than {MAX_MEMBERS}")
    if sum(info.file_size for info in infos) > MAX_BYTES:
        raise BuildError(f"the wheel unpacks to more than {MAX_BYTES >> 20} MiB")
    seen: set[str] = set()
    for info in infos:
        _safe_member(info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise BuildError(f"the wheel holds a link, {info.filename}: a wheel holds files only")
        if info.filename in seen:
            raise BuildError(f"the wheel holds {info.filename} twice")
        seen.add(info.filename)
    return infos


def _dist_info(infos: Iterable[zipfile.ZipInfo]) -> str:
    found = {
        info.filename.split("/", 1)[0]
        for info in infos
        if info.filename.split("/", 1)[0].endswith(".dist-info")
    }
    if len(found) != 1:
        raise BuildError(
            f"the wheel has {len(found)} .dist-info folders, not one",
            "build the wheel again with `harness package`",
        )
    return found.pop()


def facts(wheel: Path) -> WheelFacts:
    """The wheel's name, version, declared dependencies and top-level names."""
    with zipfile.ZipFile(wheel) as archive:
        infos = _members(archive)
        dist_info = _dist_info(infos)
        metadata = email.parser.BytesParser().parsebytes(
            archive.read(f"{dist_info}/METADATA"), headersonly=True
        )
        requires = []
        for line in metadata.get_all("Requires-Dist") or ():
            try:
                requires.append(Requirement(line))
            except InvalidRequirement:
                raise BuildError(f"the wheel's METADATA has a Requires-Dist {line!r}") from None
        data = f"{dist_info.removesuffix('.dist-info')}.data/"
        top: set[str] = set()
        for info in infos:
            path = info.filename
            if path.startswith(data):
                parts = PurePosixPath(path).parts
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                path = "/".join(parts[2:])
            first = PurePosixPath(path).parts[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in path:
                top.add(first)
            elif first.endswith(".py"):
                top.add(first.removesuffix(".py"))
    return WheelFacts(
        str(metadata["Name"] or ""),
        str(metadata["Version"] or ""),
        tuple(requires),
        tuple(sorted(name for name in top if name.isidentifier())),
    )


def _wheel_info(archive: zipfile.ZipFile, dist_info: str) -> dict[str, str]:
    text = archive.read(f"{dist_info}/WHEEL").decode("utf-8", "replace")
    parsed = email.parser.Parser().parsestr(text, headersonly=True)
    return {key.lower(): str(value) for key, value in parsed.items()}


def _record_hash(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _script(module: str, attribute: str, python: PurePosixPath) -> bytes:
    """The launcher pip writes for an entry point (``from module import attr``)."""
    head, _, rest = attribute.partition(".")
    call = f"{head}.{rest}()" if rest else f"{head}()"
    return (
        f"#!{python}\n"
        "# -*- coding: utf-8 -*-\n"
        "import re\n"
        "import sys\n"
        f"from {module} import {head}\n"
        'if __name__ == "__main__":\n'
        '    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])\n'
        f"    sys.exit({call})\n"
    ).encode()


# Compiles modules (absolute path -> source) to bytecode (absolute .pyc path -> bytes).
Compiler = Callable[[Mapping[PurePosixPath, bytes]], Mapping[PurePosixPath, bytes]]


def installed_files(
    wheel: Path, python_version: str, compiler: Compiler | None = None
) -> dict[PurePosixPath, tuple[bytes, int]]:
    """Every file the installed wheel consists of: absolute path to (content, mode); with
    ``compiler``, the bytecode of its modules in site-packages too (listed in RECORD)."""
    site = VENV / "lib" / f"python{python_version}" / "site-packages"
    python = VENV / "bin" / "python"
    files: dict[PurePosixPath, tuple[bytes, int]] = {}
    with zipfile.ZipFile(wheel) as archive:
        infos = _members(archive)
        dist_info = _dist_info(infos)
        wheel_info = _wheel_info(archive, dist_info)
        if not wheel_info.get("wheel-version", "").startswith("1."):
            raise BuildError(
                f"the wheel's format is {wheel_info.get('wheel-version')!r}, not 1.x",
                "build it again with `harness package`",
            )
        data = f"{dist_info.removesuffix('.dist-info')}.data"
        record_name = f"{dist_info}/RECORD"
        for info in infos:
            if info.filename == record_name or info.filename.startswith(f"{dist_info}/RECORD."):
                continue  # RECORD is written anew; its signatures would not match the install
            content = archive.read(info)
            executable = bool((info.external_attr >> 16) & 0o111)
            target, scheme = _target(info.filename, data, site, python_version)
            if scheme == "scripts":
                if content.startswith(b"#!python"):
                    content = b"#!" + str(python).encode() + content[len(b"#!python") :]
                executable = True
            files[target] = (content, 0o755 if executable else 0o644)
        entry_points = f"{dist_info}/entry_points.txt"
        if entry_points in archive.namelist():
            for name, module, attribute in _scripts(archive.read(entry_points)):
                files[VENV / "bin" / name] = (_script(module, attribute, python), 0o755)
    if compiler is not None:
        modules = {
            path: content
            for path, (content, _) in files.items()
            if path.suffix == ".py" and path.is_relative_to(site)
        }
        for path, bytecode in compiler(modules).items():
            files[path] = (bytecode, 0o644)
    files[site / dist_info / "INSTALLER"] = (b"harness\n", 0o644)
    files[site / dist_info / "RECORD"] = (_record(files, site, site / dist_info / "RECORD"), 0o644)
    return files


def _target(
    member: str, data: str, site: PurePosixPath, python_version: str
) -> tuple[PurePosixPath, str]:
    """Where a member of the wheel is installed, and its scheme (purelib for the root)."""
    parts = PurePosixPath(member).parts
    if parts[0] != data:
        return site / PurePosixPath(*parts), "purelib"
    if len(parts) < 3 or parts[1] not in _SCHEME:
        raise BuildError(f"the wheel's {member} names no install scheme")
    rest = PurePosixPath(*parts[2:])
    scheme = parts[1]
    if scheme == "scripts":
        return VENV / "bin" / rest, scheme
    if scheme == "data":
        return VENV / rest, scheme
    if scheme == "headers":
        return VENV / "include" / "site" / f"python{python_version}" / rest, scheme
    return site / rest, scheme


def _scripts(text: bytes) -> list[tuple[str, str, str]]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text.decode("utf-8"))
    except (configparser.Error, UnicodeDecodeError) as error:
        raise BuildError(f"the wheel's entry_points.txt cannot be read: {error}") from None
    found = []
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for name, value in parser.items(section):
            match = _ENTRY_POINT.match(value.split("[", 1)[0].strip())
            if not _SCRIPT_NAME.match(name) or match is None or not match["attribute"]:
                raise BuildError(f"the wheel's entry point {name} = {value!r} cannot be installed")
            found.append((name, match["module"], match["attribute"]))
    return found


def _record(
    files: dict[PurePosixPath, tuple[bytes, int]], site: PurePosixPath, record: PurePosixPath
) -> bytes:
    """RECORD as an installer writes it: paths relative to site-packages."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for path in sorted(files):
        relative = _relative(path, site)
        writer.writerow([relative, _record_hash(files[path][0]), len(files[path][0])])
    writer.writerow([_relative(record, site), "", ""])
    return out.getvalue().encode()


def _relative(path: PurePosixPath, site: PurePosixPath) -> str:
    if path.is_relative_to(site):
        return str(path.relative_to(site))
    ups = len(site.relative_to(VENV).parts)
    return "/".join([".."] * ups + [str(path.relative_to(VENV))])


def write_layer(
    files: dict[PurePosixPath, tuple[bytes, int]], target: IO[bytes], *, epoch: int
) -> WrittenLayer:
    """Write ``files`` as a canonical layer archive; its diff ID is the sha256 of the bytes."""
    folders = {parent for path in files for parent in path.parents if str(parent) != "/"}
    entries = sorted([(str(p).lstrip("/"), None, 0o755) for p in folders]) + sorted(
        (str(p).lstrip("/"), content, mode) for p, (content, mode) in files.items()
    )
    entries.sort(key=lambda entry: entry[0])
    hashing = _HashingTarget(target)
    with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for name, content, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid, info.gid = epoch, mode, 0, 0
            info.uname = info.gname = ""
            if content is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return WrittenLayer("sha256:" + hashing.digest.hexdigest(), hashing.count, len(files))


class _HashingTarget(io.RawIOBase):
    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)
        self.digest.update(chunk)
        self.count += len(chunk)
        self._target.write(chunk)
        return len(chunk)


def canonical_name(name: str) -> str:
    return str(canonicalize_name(name))
