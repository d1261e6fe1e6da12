"""Hosts: the Docker engines experiments run on, named once and chosen per command.

A host is a Docker endpoint: ``unix://``, ``tcp://``, ``ssh://`` or the name of a Docker
context (``docker context ls``). ``local`` always names the engine harness uses without
``--hosts`` (``docker-host``, ``$DOCKER_HOST`` or the local socket); others come from
``[tool.harness.hosts]`` or straight from the command line::

    [tool.harness.hosts]
    gpu-box = "ssh://ci@gpu-box"
    runner-2 = { url = "tcp://10.0.0.12:2376", ship = "registry" }

Each host says how its image gets there (``ship``: auto, registry, stream or never) and
how the run's files reach its containers (``files``: bind mounts, which only work where
the engine sees this machine's folders, or copy, which works everywhere). The first host
of a command is the control: it builds the image, and every other host is compared with it.

The table's shape (names, keys, URL schemes, modes) is checked with the rest of the
configuration, against its schema (:mod:`harness.config_schema`); here only hosts given
on the command line are checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Config
from harness.config_schema import PLAIN_NAME_PATTERN
from harness.engine import Engine
from harness.errors import ConfigError
from harness.fleet.slurm import settings as slurm_settings

LOCAL = "local"
_WHERE = "[tool.harness.hosts]"
_SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://", "npipe://")
# Host names name folders and appear in records: the schema's plain names.
_NAME = re.compile(PLAIN_NAME_PATTERN)


@dataclass(frozen=True)
class Host:
    """One engine a command runs on."""

    name: str
    # None: the default engine (docker-host, $DOCKER_HOST or the local socket).
    url: str | None
    ship: str = "auto"
    files: str = "copy"
    # Whether the host has GPUs (and the NVIDIA container runtime) for runs with --gpus.
    gpus: bool = False
    # A SLURM cluster rather than an engine: its runs are batch jobs (harness.fleet.slurm).
    slurm: slurm_settings.SlurmSettings | None = None

    def connect(self, timeout: int = 600) -> Engine:
        if self.slurm is not None:
            raise ConfigError(
                f"host {self.name} is a SLURM cluster: it runs batch jobs, not containers",
                f"use it with --executor host (--hosts {self.name})",
            )
        return Engine.connect(self.url, timeout=timeout)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "ship": self.ship,
            "files": self.files,
            "gpus": self.gpus,
            **({"slurm": self.slurm.as_dict()} if self.slurm is not None else {}),
        }


def local_host(config: Config) -> Host:
    """The engine harness uses by default; its runs see the project through bind mounts."""
    return Host(config.host_name, config.docker_host, ship="never", files="bind")


def configured(config: Config) -> dict[str, Host]:
    """Every host of ``[tool.harness.hosts]``, by name (the schema checked the table)."""
    return {
        name: _host(name, value, config.project_root)
        for name, value in config.table("hosts").items()
    }


def resolve(config: Config, requested: Sequence[str]) -> list[Host]:
    """The hosts ``--hosts``/``--host`` name, in order: names, URLs, NAME=URL, ``local``, ``all``.

    ``all`` is the local engine followed by every configured host. A URL not configured
    becomes a host of its own, named by its address (or by NAME, given as NAME=URL).
    Nothing requested is the local engine alone.
    """
    if not requested:
        return [local_host(config)]
    known = configured(config)
    chosen: list[Host] = []
    for item in (part.strip() for entry in requested for part in entry.split(",")):
        for host in _named(config, known, item) if item else ():
            if all(host.name != other.name for other in chosen):
                chosen.append(host)
    if not chosen:
        raise ConfigError("no host given", "write --hosts local,NAME")
    return chosen


def _named(config: Config, known: Mapping[str, Host], item: str) -> list[Host]:
    """The hosts one word of ``--hosts`` names."""
    if item == "all":
        return [local_host(config), *known.values()]
    if item in (LOCAL, config.host_name):
        return [local_host(config)]
    if item in known:
        return [known[item]]
    if item.startswith(_SCHEMES):
        return [Host(_name_of(item), item)]
    if "=" in item:
        name, _, url = item.partition("=")
        if not _NAME.search(name) or name in (LOCAL, config.host_name):
            raise ConfigError(f"host name {name!r} is not allowed", "write NAME=URL")
        return [Host(name, _url(url, f"host {name}"))]
    names = ", ".join([LOCAL, *sorted(known)])
    raise ConfigError(
        f"unknown host {item!r}",
        f"choose among {names}, give a Docker URL (ssh://, tcp://, unix://), "
        f"or declare it under {_WHERE}",
    )


def _host(name: str, value: str | Mapping[str, Any], project_root: Path = Path()) -> Host:
    """A host of the table: a URL, a table with the URL (and the schema's defaults), or a
    SLURM cluster's table."""
    if isinstance(value, str):
        return Host(name, value)
    if slurm_settings.is_slurm(value):
        slurm = slurm_settings.from_table(value, project_root)
        gpus = value.get("gpus", slurm.gres is not None)
        return Host(name, None, ship="never", files="copy", gpus=gpus, slurm=slurm)
    return Host(
        name,
        value["url"],
        ship=value.get("ship", "auto"),
        files=value.get("files", "copy"),
        gpus=value.get("gpus", False),
    )


def for_gpus(hosts: list[Host], gpus: bool, *, say: Callable[[str], None]) -> list[Host]:
    """The hosts a run takes part on: with --gpus, those that declare GPUs (a CUDA result is
    compared between GPUs, never between a GPU and a host that would refuse the run)."""
    if not gpus:
        return hosts
    chosen = [host for host in hosts if host.gpus]
    left_out = [host.name for host in hosts if not host.gpus]
    if left_out:
        say(f"--gpus: leaving out {', '.join(left_out)}, which declare no GPUs (gpus = true)")
    return chosen


def _url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} url must be a string", 'write url = "ssh://user@machine"')
    if "://" in value and not value.startswith(_SCHEMES):
        raise ConfigError(
            f"{where} url {value!r} is not a Docker endpoint",
            "use unix://, tcp://, ssh:// or the name of a Docker context",
        )
    return value


def _name_of(url: str) -> str:
    """A readable name for a host given by URL: its address without scheme or user."""
    address = url.split("://", 1)[1].rsplit("@", 1)[-1].strip("/")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", address).strip("-.")
    name = re.sub(r"[.][.]+", ".", name)[:100]
    return name if _NAME.search(name) else "host"
