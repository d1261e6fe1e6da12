"""Podman's containers.conf: whether it lets rootful Podman set containers' limits, and
which file to edit when it does not.

As root, Podman gives every container limits of its own choosing (open files, processes)
unless a containers.conf sets ``default_ulimits``; where root's own hard limits are lower
(a machine that is itself a container), every run then fails with "error setting rlimits
... operation not permitted". Rootless Podman stays within its user's limits and never
needs the setting.

`harness doctor` learns whether runs work by trying one (see :mod:`harness.doctor`); the
files read here only say which file to edit, and, when nothing can be tried, whether the
setting is likely in place. They are what a Podman on this machine reads, in Podman's
order (containers.conf(5), containers-config(5)); the engine harness talks to may run with
another environment or as another user, so what they say is a hint, never a verdict.

They are read as untrusted input all the same: regular files only, bounded in size and
number, parsed as TOML and never shown. Links are followed as Podman follows them, since
what matters is what Podman reads.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.untrusted import read_bytes

# The setting that lets rootful Podman run containers where root's limits are low: both
# values lie under the hard limits of the machines harness is used on, and above what ML
# workloads open.
ULIMITS = ("nofile=20000:20000", "nproc=32768:32768")
SETTING = "default_ulimits = [" + ", ".join(f'"{limit}"' for limit in ULIMITS) + "]"
# The limits Podman raises on its own when nothing sets them (its rlimits for root).
NEEDED = frozenset(limit.split("=", 1)[0] for limit in ULIMITS)

# What Podman says when it could not give a container the limits it chose.
RLIMITS_ERROR = "error setting rlimits"
# Far more than any containers.conf holds (Podman's own, every option commented, is
# about 30 KiB); a drop-in folder with more files than this is not read further.
FILE_LIMIT = 1 << 20
DROP_IN_LIMIT = 256

SYSTEM_DEFAULTS = Path("/usr/share/containers/containers.conf")
ADMIN_FILE = Path("/etc/containers/containers.conf")


@dataclass(frozen=True)
class ConfFile:
    """One containers.conf as read: the ``default_ulimits`` it sets, if any, or why it
    could not be read (Podman would refuse it too, or read what harness will not)."""

    path: Path
    ulimits: tuple[str, ...] | None = None
    problem: str = ""


def search_order(
    environment: Mapping[str, str], *, rootless: bool, home: Path | None = None
) -> list[Path]:
    """The containers.conf files Podman reads, lowest precedence first, that exist.

    ``$CONTAINERS_CONF`` replaces them all; otherwise the system defaults, the
    administrator's file and drop-ins, then, for a rootless Podman, the user's.
    """
    named = environment.get("CONTAINERS_CONF")
    if named:
        return [Path(named)]
    found = [path for path in (SYSTEM_DEFAULTS, ADMIN_FILE) if path.exists()]
    found += _drop_ins(Path(f"{ADMIN_FILE}.d"))
    if rootless:
        user = user_file(environment, home)
        if user.exists():
            found.append(user)
        found += _drop_ins(Path(f"{user}.d"))
    return found


def user_file(environment: Mapping[str, str], home: Path | None = None) -> Path:
    """A rootless Podman's own containers.conf ($XDG_CONFIG_HOME, else ~/.config)."""
    config_home = environment.get("XDG_CONFIG_HOME") or str((home or Path.home()) / ".config")
    return Path(config_home) / "containers" / "containers.conf"


def _drop_ins(folder: Path) -> list[Path]:
    """The ``*.conf`` files of a drop-in folder, in the name order Podman reads them."""
    try:
        with os.scandir(folder) as entries:
            names: list[str] = []
            for entry in entries:
                if len(names) >= DROP_IN_LIMIT:
                    break
                if entry.name.endswith(".conf"):
                    names.append(entry.name)
    except OSError:
        return []
    return [folder / name for name in sorted(names)]


def read(path: Path) -> ConfFile:
    """What ``path`` sets for ``default_ulimits`` (under ``[containers]``)."""
    try:
        data = read_bytes(path, limit=FILE_LIMIT, what="containers.conf")
    except FileNotFoundError:
        return ConfFile(path, problem="does not exist")
    except HarnessError as error:
        return ConfFile(path, problem=error.message.removeprefix(f"containers.conf {path} "))
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return ConfFile(path, problem=f"is not TOML ({error})")
    table = document.get("containers")
    if not isinstance(table, dict) or "default_ulimits" not in table:
        return ConfFile(path)
    value = table["default_ulimits"]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return ConfFile(path, problem="sets default_ulimits to something not a list of strings")
    return ConfFile(path, tuple(value))


def setting_in_effect(files: Sequence[ConfFile]) -> ConfFile | None:
    """The file whose ``default_ulimits`` Podman uses: the last that sets it."""
    setting = [conf for conf in files if conf.ulimits is not None]
    return setting[-1] if setting else None


def allows_runs(ulimits: Sequence[str] | None) -> bool:
    """Whether ``ulimits`` names every limit Podman would otherwise raise itself."""
    names = {limit.split("=", 1)[0].strip() for limit in ulimits or ()}
    return names >= NEEDED


def file_to_edit(
    environment: Mapping[str, str],
    files: Sequence[ConfFile],
    *,
    rootless: bool,
    home: Path | None = None,
) -> Path:
    """Where the setting belongs: the file ``$CONTAINERS_CONF`` names (it replaces every
    other), else the file whose ``default_ulimits`` wins now (a file read earlier would be
    overridden by it), else the administrator's file (root) or the user's (rootless)."""
    named = environment.get("CONTAINERS_CONF")
    if named:
        return Path(named)
    winning = setting_in_effect(files)
    if winning is not None:
        return winning.path
    return user_file(environment, home) if rootless else ADMIN_FILE


def fix(path: Path, *, or_service_file: bool = True) -> str:
    """The one-line fix: the setting, the file it goes into, and the restart.

    ``or_service_file``: the service may have been started with a ``CONTAINERS_CONF`` of
    its own, which this machine's environment cannot show.
    """
    where = f"{path}"
    if or_service_file:
        where += " (or the file CONTAINERS_CONF names where `podman system service` starts)"
    return f"set {SETTING} under [containers] in {where}, then restart `podman system service`"
