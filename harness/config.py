"""Configuration: ``[tool.harness]`` in pyproject.toml, resolved into frozen dataclasses.

Precedence, lowest to highest, stated once here and nowhere else:

1. defaults (the ``OPTIONS`` table below; some defaults come from well-known variables of
   the machine, such as ``PIP_FIND_LINKS`` or ``PIP_CERT``, because pip users already set them)
2. ``[tool.harness]`` in the project's pyproject.toml
3. ``HARNESS_*`` environment variables (each option names its own)
4. command-line flags

Unknown keys in ``[tool.harness]`` are errors naming the key, so that a typo never silently
falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class Option:
    """One scalar option: its pyproject key, environment variable, default and meaning."""

    key: str
    env: str
    help: str
    default: Callable[[Mapping[str, str]], str | None]
    is_list: bool = False


def _first_env(*names: str) -> Callable[[Mapping[str, str]], str | None]:
    def default(environ: Mapping[str, str]) -> str | None:
        for name in names:
            value = environ.get(name)
            if value:
                return value
        return None

    return default


def _const(value: str | None) -> Callable[[Mapping[str, str]], str | None]:
    return lambda _environ: value


OPTIONS: tuple[Option, ...] = (
    Option(
        "image", "HARNESS_IMAGE", "repository name of the images harness builds", _const("harness")
    ),
    Option("python", "HARNESS_PYTHON", "Python version of the images (X.Y)", _const("3.11")),
    Option(
        "platform",
        "HARNESS_PLATFORM",
        "platform the constraints are resolved for (uv's --python-platform)",
        _const("x86_64-manylinux_2_36"),
    ),
    Option(
        "dependency-group",
        "HARNESS_DEPENDENCY_GROUP",
        "the [dependency-groups] entry that lists the experiment dependencies",
        _const("experiments"),
    ),
    Option(
        "base",
        "HARNESS_BASE",
        "'bootstrap' (debootstrap a Debian base here) "
        "or an image pinned by digest (REF@sha256:...)",
        _const("bootstrap"),
    ),
    Option(
        "debian-suite",
        "HARNESS_DEBIAN_SUITE",
        "Debian suite of a bootstrapped base",
        _const("bookworm"),
    ),
    Option(
        "debian-mirror",
        "HARNESS_DEBIAN_MIRROR",
        "Debian mirror for the bootstrap (default: the machine's apt sources)",
        _const(None),
    ),
    Option(
        "index-url",
        "HARNESS_INDEX_URL",
        "package index for locking and building (default: PyPI)",
        _const(None),
    ),
    Option(
        "find-links",
        "HARNESS_FIND_LINKS",
        "extra wheel folders, separated by the OS path separator (default: $PIP_FIND_LINKS)",
        _first_env("PIP_FIND_LINKS"),
        is_list=True,
    ),
    Option(
        "ca-bundle",
        "HARNESS_CA_BUNDLE",
        "CA bundle trusted inside builds, for networks that intercept TLS "
        "(default: $PIP_CERT, $SSL_CERT_FILE or $REQUESTS_CA_BUNDLE)",
        _first_env("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"),
    ),
    Option(
        "docker-host",
        "HARNESS_DOCKER_HOST",
        "Docker engine to use (default: $DOCKER_HOST, then the local socket)",
        _first_env("DOCKER_HOST"),
    ),
)

_OPTION_BY_KEY = {option.key: option for option in OPTIONS}
_VARIANT_KEYS = frozenset({"dockerfile", "constraints", "replace", "find-links"})
_DEFAULT_VARIANTS: Mapping[str, Mapping[str, Any]] = {
    "cpu": {"dockerfile": "Dockerfile", "constraints": "constraints.txt"},
    "cuda": {"dockerfile": "Dockerfile.cuda", "constraints": "constraints-cuda.txt"},
}


@dataclass(frozen=True)
class Variant:
    """One image flavour: its Dockerfile, its constraints file and how it differs."""

    name: str
    dockerfile: Path
    constraints: Path
    # Declared requirement name -> the requirement this variant installs instead
    # (for example torch -> torch==2.13.0+cpu).
    replace: Mapping[str, str] = field(default_factory=dict)
    # Whether the extra wheel folders are offered to the resolver. PEP 440 lets
    # ``torch==2.13.0`` match a local ``2.13.0+cpu`` build lying in such a folder, so a
    # variant that wants the index's build must not see them.
    find_links: bool = True


@dataclass(frozen=True)
class Config:
    """The resolved configuration; ``sources`` says where each value came from."""

    project_root: Path
    image: str
    python: str
    platform: str
    dependency_group: str
    base: str
    debian_suite: str
    debian_mirror: str | None
    index_url: str | None
    find_links: tuple[str, ...]
    ca_bundle: Path | None
    docker_host: str | None
    variants: Mapping[str, Variant]
    sources: Mapping[str, str]

    @property
    def pyproject(self) -> Path:
        return self.project_root / PYPROJECT

    def variant(self, name: str) -> Variant:
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(sorted(self.variants))
            raise ConfigError(
                f"unknown variant {name!r}",
                f"choose one of: {known}, or declare [tool.harness.variants.{name}]",
            ) from None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for `harness config --json` and for printing."""
        return {
            "project-root": str(self.project_root),
            "image": self.image,
            "python": self.python,
            "platform": self.platform,
            "dependency-group": self.dependency_group,
            "base": self.base,
            "debian-suite": self.debian_suite,
            "debian-mirror": self.debian_mirror,
            "index-url": self.index_url,
            "find-links": list(self.find_links),
            "ca-bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "docker-host": self.docker_host,
            "variants": {
                name: {
                    "dockerfile": str(v.dockerfile.relative_to(self.project_root)),
                    "constraints": str(v.constraints.relative_to(self.project_root)),
                    "replace": dict(v.replace),
                    "find-links": v.find_links,
                }
                for name, v in self.variants.items()
            },
            "sources": dict(self.sources),
        }


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds a pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PYPROJECT).is_file():
            return folder
    raise ConfigError(
        f"no {PYPROJECT} in {here} or any folder above it",
        "run harness inside a project, or pass --project DIR",
    )


def read_pyproject(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path.name} is not valid TOML: {error}", "fix the syntax") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}", "check the path") from None


def load_config(
    project_root: Path | None = None,
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve the configuration through the documented cascade.

    ``overrides`` holds command-line values by pyproject key; ``None`` means "not given".
    """
    root = (project_root or find_project_root()).resolve()
    env = os.environ if environ is None else environ
    table = read_pyproject(root / PYPROJECT).get("tool", {}).get("harness", {})
    if not isinstance(table, dict):
        raise ConfigError("[tool.harness] must be a table", "write it as [tool.harness]")

    unknown = set(table) - set(_OPTION_BY_KEY) - {"variants"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"unknown key {key!r} in [tool.harness]",
            f"remove it or use one of: {', '.join(sorted((*_OPTION_BY_KEY, 'variants')))}",
        )

    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        value, source = option.default(env), "default"
        if option.key in table:
            raw = table[option.key]
            if option.is_list and isinstance(raw, list) and all(isinstance(x, str) for x in raw):
                raw = os.pathsep.join(raw)
            if not isinstance(raw, str):
                kind = "a list of strings" if option.is_list else "a string"
                raise ConfigError(
                    f"[tool.harness] {option.key} must be {kind}, not {type(raw).__name__}",
                    f'write it as {option.key} = "..."',
                )
            value, source = raw, "pyproject"
        if env.get(option.env):
            value, source = env[option.env], f"env {option.env}"
        given = (overrides or {}).get(option.key)
        if given is not None:
            value, source = given, "command line"
        values[option.key] = value
        sources[option.key] = source

    python = values["python"] or ""
    if not _is_python_version(python):
        raise ConfigError(f"python must look like 3.11, not {python!r}", 'set python = "3.11"')
    base = values["base"] or "bootstrap"
    if base != "bootstrap" and "@sha256:" not in base:
        raise ConfigError(
            f"base image {base!r} is not pinned by digest",
            "use 'bootstrap' or REF@sha256:<digest> (see `docker buildx imagetools inspect REF`)",
        )
    ca_bundle = Path(values["ca-bundle"]) if values["ca-bundle"] else None
    find_links = tuple(p for p in (values["find-links"] or "").split(os.pathsep) if p)

    return Config(
        project_root=root,
        image=values["image"] or "harness",
        python=python,
        platform=values["platform"] or "",
        dependency_group=values["dependency-group"] or "",
        base=base,
        debian_suite=values["debian-suite"] or "bookworm",
        debian_mirror=values["debian-mirror"],
        index_url=values["index-url"],
        find_links=find_links,
        ca_bundle=ca_bundle,
        docker_host=values["docker-host"],
        variants=_load_variants(root, table.get("variants", {})),
        sources=sources,
    )


def _is_python_version(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 2 and all(part.isdigit() for part in parts)


def _load_variants(root: Path, table: Any) -> dict[str, Variant]:
    if not isinstance(table, dict):
        raise ConfigError("[tool.harness.variants] must be a table of tables", "see the README")
    merged: dict[str, dict[str, Any]] = {name: dict(v) for name, v in _DEFAULT_VARIANTS.items()}
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"[tool.harness.variants.{name}] must be a table", "see the README")
        unknown = set(spec) - _VARIANT_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(
                f"unknown key {key!r} in [tool.harness.variants.{name}]",
                f"use one of: {', '.join(sorted(_VARIANT_KEYS))}",
            )
        merged.setdefault(name, {}).update(spec)

    variants: dict[str, Variant] = {}
    for name, spec in merged.items():
        for key in ("dockerfile", "constraints"):
            if not isinstance(spec.get(key), str):
                raise ConfigError(
                    f"[tool.harness.variants.{name}] needs {key} as a string",
                    f'add {key} = "..."',
                )
        replace = spec.get("replace", {})
        if not isinstance(replace, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in replace.items()
        ):
            raise ConfigError(
                f"[tool.harness.variants.{name}] replace must map names to requirements",
                'write replace = { torch = "torch==2.13.0+cpu" }',
            )
        find_links = spec.get("find-links", True)
        if not isinstance(find_links, bool):
            raise ConfigError(
                f"[tool.harness.variants.{name}] find-links must be true or false",
                "write find-links = false",
            )
        variants[name] = Variant(
            name=name,
            dockerfile=root / spec["dockerfile"],
            constraints=root / spec["constraints"],
            replace=dict(replace),
            find_links=find_links,
        )
    return variants
