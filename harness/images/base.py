"""The base image every variant starts from.

Two worlds are supported. Where a registry is reachable, ``base`` names an image pinned by
digest and harness pulls it. Where none is, harness bootstraps a minimal Debian with Python
(``debootstrap --variant=minbase`` from the machine's own apt mirror), strips what varies
between bootstraps (apt lists and caches, logs, machine id), clamps file times, imports it
as a one-layer image and records its package list inside it and in a label. A bootstrapped
base is reused for as long as the engine holds it. Which Debian release is bootstrapped
follows the image's Python (see :mod:`harness.project_python`): bookworm for 3.11, trixie
for 3.13, forky for 3.14.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import commands, project_python
from harness.config import Config
from harness.engine import ContainerEngine
from harness.errors import BaseImageError
from harness.images import config as imageconfig

BOOTSTRAP_PACKAGES = ("python3", "python3-venv")
# Where debootstrap keeps the script of each release it knows.
DEBOOTSTRAP_SCRIPTS = Path("/usr/share/debootstrap/scripts")
PACKAGE_LIST = Path("usr/share/harness/base-packages.txt")
LABEL_PACKAGES = "io.harness.base.packages.sha256"
LABEL_SUITE = "io.harness.base.suite"
# Everything below varies from one bootstrap to the next without changing what runs.
_VOLATILE = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/config.dat-old",
    "var/cache/debconf/templates.dat-old",
    "var/cache/ldconfig/aux-cache",
    "var/log",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "etc/machine-id",
    "etc/hostname",
    "etc/resolv.conf",
)
# A fixed time for every file of the base: the base's bytes then depend only on the packages.
BASE_EPOCH = 0


@dataclass(frozen=True)
class BaseImage:
    reference: str
    id: str
    # What the OCI label org.opencontainers.image.base.digest records: the registry digest
    # of a pulled base, or the ID of a bootstrapped one (it has no registry digest).
    digest: str
    packages_sha256: str | None
    bootstrapped_now: bool


def base_reference(config: Config) -> str:
    if config.base != "bootstrap":
        return config.base
    # Shared by every image name: one bootstrap serves all the projects on an engine.
    return f"harness-base:{config.debian_suite}-python{config.python}"


def find_base(engine: ContainerEngine, config: Config) -> BaseImage | None:
    """The base image if the engine already holds it."""
    reference = base_reference(config)
    info = engine.image(reference)
    if info is None:
        return None
    digest = reference.split("@", 1)[1] if "@" in reference else info.id
    return BaseImage(reference, info.id, digest, info.labels.get(LABEL_PACKAGES), False)


def ensure_base(engine: ContainerEngine, config: Config, say: Callable[[str], None]) -> BaseImage:
    """The base image, pulled or bootstrapped when the engine does not hold it yet."""
    found = find_base(engine, config)
    if found is not None:
        return found
    if config.base != "bootstrap":
        say(f"pulling base image {config.base}")
        info = engine.pull(config.base)
        return BaseImage(config.base, info.id, config.base.split("@", 1)[1], None, True)
    return bootstrap(engine, config, say)


def bootstrap(engine: ContainerEngine, config: Config, say: Callable[[str], None]) -> BaseImage:
    reference = base_reference(config)
    carried = project_python.SUITE_PYTHONS.get(config.debian_suite)
    home = project_python.suite_for(config.python)
    if home is None and (carried is not None or config.debian_suite == "bookworm"):
        raise BaseImageError(
            f"no Debian release carries Python {config.python} for a bootstrapped base "
            f"(available: {project_python.available()})",
            project_python.unavailable_fix(config.python),
        )
    if carried is not None and carried != config.python:
        raise BaseImageError(
            f"Debian {config.debian_suite} carries Python {carried}, not {config.python}",
            f"leave debian-suite unset (Python {config.python} is in {home}), "
            f"or set python = {carried!r}",
        )
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise BaseImageError(
            "debootstrap is not installed, and no registry base is configured",
            "install it (`apt-get install debootstrap`) or set base = 'REF@sha256:...'",
        )
    if os.geteuid() != 0:
        raise BaseImageError(
            "bootstrapping a Debian base needs root (debootstrap creates device nodes and owners)",
            "run `harness base` once as root, or set base = 'REF@sha256:...'",
        )
    mirror = config.debian_mirror or apt_mirror()
    if mirror is None:
        raise BaseImageError(
            "no Debian mirror is configured and none was found in /etc/apt",
            "set debian-mirror in [tool.harness] or HARNESS_DEBIAN_MIRROR",
        )
    with tempfile.TemporaryDirectory(prefix="harness-base-") as work:
        root = Path(work) / "rootfs"
        say(
            f"bootstrapping Debian {config.debian_suite} with Python from {mirror} (about a minute)"
        )
        result = commands.call(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(BOOTSTRAP_PACKAGES)}",
                config.debian_suite,
                str(root),
                mirror,
                *debootstrap_script(config.debian_suite),
            ],
            timeout=commands.BOOTSTRAP_S,
            hint="check the mirror answers (HARNESS_DEBIAN_MIRROR), or set base = 'REF@sha256:...'",
        )
        if result.returncode != 0:
            tail = " | ".join(
                result.out.strip().splitlines()[-3:] + result.err.strip().splitlines()[-3:]
            )
            raise BaseImageError(
                f"debootstrap of {config.debian_suite} from {mirror} failed: {tail}",
                "check the mirror (HARNESS_DEBIAN_MIRROR) and the suite (HARNESS_DEBIAN_SUITE)",
            )
        python = root / "usr/bin" / f"python{config.python}"
        if not python.exists():
            found = sorted(p.name for p in (root / "usr/bin").glob("python3.*"))
            raise BaseImageError(
                f"Debian {config.debian_suite} has {', '.join(found) or 'no python3'}, "
                f"not python{config.python}",
                project_python.unavailable_fix(config.python),
            )
        packages = installed_packages(root)
        packages_text = "".join(f"{line}\n" for line in packages)
        (root / PACKAGE_LIST).parent.mkdir(parents=True, exist_ok=True)
        (root / PACKAGE_LIST).write_text(packages_text)
        strip_volatile(root)
        tarball = Path(work) / "rootfs.tar"
        write_tarball(root, tarball, BASE_EPOCH)
        packages_sha256 = hashlib.sha256(packages_text.encode()).hexdigest()
        say(f"importing {len(packages)} packages as {reference}")
        imported = engine.import_rootfs(
            tarball,
            reference,
            [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                f"LABEL {LABEL_PACKAGES}={packages_sha256}",
                f"LABEL {LABEL_SUITE}={config.debian_suite}",
                'CMD ["python3"]',
            ],
        )
    # The import stamps the clock into the image's configuration. Written again with the
    # base's fixed time, the base's ID depends only on its files and settings, so the
    # label that records it (and with it every variant's image ID) does not move when an
    # identical base is bootstrapped again.
    image_id = imageconfig.finalise(engine, imported, epoch=BASE_EPOCH, labels={})
    engine.tag(image_id, reference)
    if imported != image_id:
        engine.remove_unused_image(imported)
    return BaseImage(reference, image_id, image_id, packages_sha256, True)


def debootstrap_script(suite: str, scripts: Path = DEBOOTSTRAP_SCRIPTS) -> list[str]:
    """The script argument debootstrap needs for ``suite``: none for a release it knows,
    else its script for Debian's development release (``sid``), which every release after
    the newest it knows is made like (a debootstrap older than a release lacks its name)."""
    if (scripts / suite).exists() or not (scripts / "sid").exists():
        return []
    return [str(scripts / "sid")]


def installed_packages(root: Path) -> list[str]:
    """``name=version`` of every package dpkg installed under ``root``, sorted."""
    result = commands.call(
        [
            "dpkg-query",
            f"--admindir={root / 'var/lib/dpkg'}",
            "-W",
            "-f",
            "${Package}=${Version}\n",
        ],
        timeout=commands.LOCAL_S,
        hint="install dpkg (`apt-get install dpkg`), or set base = 'REF@sha256:...'",
    )
    if result.returncode != 0:
        raise BaseImageError(f"cannot list the base's packages: {result.err.strip()}")
    return sorted(line for line in result.out.splitlines() if line)


def strip_volatile(root: Path) -> None:
    for relative in _VOLATILE:
        path = root / relative
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif path.exists() or path.is_symlink():
            path.unlink()
    # An empty machine-id tells systemd-less tools there is none, as in Debian's own images.
    (root / "etc/machine-id").write_text("")


def write_tarball(root: Path, tarball: Path, epoch: int) -> None:
    """A tarball whose bytes depend only on the files: sorted, numeric owners, fixed times."""
    result = commands.call(
        [
            "tar",
            "--sort=name",
            "--numeric-owner",
            f"--mtime=@{epoch}",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            "-C",
            str(root),
            "-cf",
            str(tarball),
            ".",
        ],
        timeout=commands.PACK_S,
        hint="check the disk holding the temporary folder (TMPDIR), then run again",
    )
    if result.returncode != 0:
        raise BaseImageError(f"cannot pack the base file system: {result.err.strip()}")


def apt_mirror(apt_root: Path = Path("/etc/apt")) -> str | None:
    """The first Debian archive URI in the machine's apt sources (one-line or deb822)."""
    files: Iterable[Path] = [apt_root / "sources.list"]
    folder = apt_root / "sources.list.d"
    if folder.is_dir():
        files = [*files, *sorted(folder.iterdir())]
    for path in files:
        if not path.is_file():
            continue
        for uri in _uris(path.read_text(errors="replace"), deb822=path.suffix == ".sources"):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return None


def _uris(text: str, *, deb822: bool) -> list[str]:
    if deb822:
        return [
            uri
            for match in re.finditer(r"^URIs:\s*(.+)$", text, flags=re.MULTILINE)
            for uri in match.group(1).split()
        ]
    uris = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == "deb":
            # Options in brackets ([arch=amd64 signed-by=...]) come before the URI.
            rest = [w for w in words[1:] if not (w.startswith("[") or w.endswith("]") or "=" in w)]
            if rest:
                uris.append(rest[0])
    return uris
