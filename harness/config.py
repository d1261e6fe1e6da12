"""Configuration: ``[tool.harness]`` in pyproject.toml, resolved into frozen dataclasses.

Precedence, lowest to highest, stated once here and nowhere else:

1. defaults (the ``OPTIONS`` table below; some defaults come from well-known variables of
   the machine, such as ``PIP_FIND_LINKS`` or ``PIP_CERT``, because pip users already set them)
2. ``[tool.harness]`` in the project's pyproject.toml
3. ``HARNESS_*`` environment variables (each option names its own)
4. command-line flags

The whole ``[tool.harness]`` table is checked once, at load, against the schema shipped in
the package (``harness/schemas/config.v1.json``, see :mod:`harness.config_schema`): unknown
keys are errors naming the key, so that a typo never silently falls back to a default, and
every module receives tables of the shape the schema describes. What the schema cannot say
is checked here (values from the environment and the command line, variants merged with
their defaults) or by the module that owns the table.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import config_schema, project_python
from harness.errors import ConfigError

PYPROJECT = "pyproject.toml"
# The project folder harness writes in (runs, verifications, certificates); never shipped.
STATE_FOLDER = Path(".harness")


@dataclass(frozen=True)
class Option:
    """One scalar option: its pyproject key, environment variable, default and meaning."""

    key: str
    env: str
    help: str
    default: Callable[[Mapping[str, str]], str | None]
    is_list: bool = False
    is_int: bool = False


_NOT_IN_IMAGE_NAME = re.compile(r"[^a-z0-9._-]+")
_BAD_SEPARATOR = re.compile(r"[._-]+")
_SEPARATOR = re.compile(r"\.|_|__|-+")


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
        "image",
        "HARNESS_IMAGE",
        "repository name of the images harness builds (default: the project's name)",
        _const(None),
    ),
    Option(
        "python",
        "HARNESS_PYTHON",
        "Python version of the images (X.Y; default: what the project's .python-version "
        "and requires-python ask for, else 3.11)",
        _const(None),
    ),
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
        "Debian suite of a bootstrapped base (default: the one whose Python is python's)",
        _const(None),
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
    Option(
        "engine",
        "HARNESS_ENGINE",
        "which engine serves the Docker API when docker-host is not set: docker "
        "(the local socket) or podman (its service's socket, rootful or rootless)",
        _const(None),
    ),
    Option(
        "registry",
        "HARNESS_REGISTRY",
        "registry repository prefix images are shipped to other hosts through "
        "(e.g. registry.example.com/team; default: none, stream with save/load)",
        _const(None),
    ),
    Option(
        "host-name",
        "HARNESS_HOST_NAME",
        "name of this machine's engine in run records and certificates "
        "(default: the machine's host name)",
        _const(None),
    ),
    Option(
        "seed",
        "HARNESS_SEED",
        "seed of every run (Python, NumPy, torch, TensorFlow)",
        _const("0"),
        is_int=True,
    ),
    Option(
        "profile",
        "HARNESS_PROFILE",
        "determinism profile: 'strict' (same hardware kind) "
        "or 'portable' (also pins CPU code paths)",
        _const("strict"),
    ),
    Option(
        "threads",
        "HARNESS_THREADS",
        "threads of every math library in a run; fixed, never taken from the host's core count",
        _const("1"),
        is_int=True,
    ),
    Option(
        "timeout",
        "HARNESS_TIMEOUT",
        "seconds after which a run's container is stopped (0: no limit)",
        _const("0"),
        is_int=True,
    ),
    Option(
        "memory",
        "HARNESS_MEMORY",
        "memory limit of each run's container, e.g. 8g (default: none; swap is not added)",
        _const(None),
    ),
)
# Whole numbers in ASCII digits: str.isdigit() also accepts "²" and other digits int() refuses.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
# NumPy's legacy seeding, which the runtime uses, takes 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1
# A container memory limit as Docker reads it: a number with an optional b/k/m/g unit.
MEMORY = re.compile(r"(?P<amount>[1-9][0-9]{0,12})(?P<unit>[bkmg]?)", re.IGNORECASE)
PROFILES = ("strict", "portable")

DEVICES = ("cpu", "cuda")
# Tables read by the module that owns them (shaped by the schema, interpreted there).
_MODULE_TABLES = ("mlflow", "lint", "certify", "verify", "hosts", "ci", "k8s")
# A project's own Dockerfile is used when it exists; otherwise harness's own (see
# harness.images.dockerfiles), so a project needs none to build.
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
    # variant that wants the index's build must not see them (the default for cuda).
    find_links: bool = True
    # What the image computes on: "cpu" or "cuda". Its constraints are checked against it
    # (see harness.images.device_pins): no CPU-only build in a CUDA image, no CUDA wheel in
    # a CPU one.
    device: str = "cpu"
    # Whether [tool.harness.variants.NAME] names a dockerfile: a declared one must exist,
    # an undeclared default falls back to harness's own when the project has none.
    dockerfile_declared: bool = False
    # Whether the project declares this variant under [tool.harness.variants].
    declared: bool = False


@dataclass(frozen=True)
class Experiment:
    """One experiment: what to call inside the image, with what, and what it writes."""

    name: str
    # "package.module:function", called with output=, seed=, inputs= and the parameters...
    entry: str | None
    # ...or a command run as it is, which finds the same values in HARNESS_* variables.
    command: tuple[str, ...] | None
    parameters: Mapping[str, Any]
    # Input name -> file or folder on the host, mounted read-only and hashed into the record.
    inputs: Mapping[str, Path]
    # Artifact glob (relative to the output folder) -> compare policy ("" for the default).
    outputs: Mapping[str, str]
    variant: str = "cpu"
    # Globs of files the experiment writes that are not artifacts (logs, event files):
    # kept beside the artifacts, listed in the record, never compared.
    exclude: tuple[str, ...] = ()
    # Where in the output folder a command's standard output is kept as an artifact: a
    # script that prints its results (losses, samples) and writes no file has them there.
    stdout: str | None = None
    # The variations `harness verify` makes of it, as written under its table (see
    # harness.runs.variations); None: the project's [tool.harness.verify] choice.
    vary: tuple[str, ...] | None = None

    @property
    def artifact_globs(self) -> list[str]:
        """The artifact globs the runtime keeps: ``outputs``, and the kept standard
        output, which they need not name."""
        globs = list(self.outputs)
        if globs and self.stdout is not None and self.stdout not in globs:
            globs.append(self.stdout)
        return globs


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
    registry: str | None
    host_name: str
    seed: int
    profile: str
    threads: int
    timeout: int
    variants: Mapping[str, Variant]
    experiments: Mapping[str, Experiment]
    # Artifact glob -> compare policy, for every experiment's artifacts.
    policies: Mapping[str, str]
    sources: Mapping[str, str]
    # [tool.harness.<name>] of the modules that read their own table (see _MODULE_TABLES).
    module_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Memory limit of each run's container ("8g"), or None for none.
    memory: str | None = None
    # Artifact glob -> compare policy for two runs on different device classes (another GPU
    # model, or a GPU against the CPU), where bitwise agreement is not to be expected.
    device_policies: Mapping[str, str] = field(default_factory=dict)

    def table(self, name: str) -> Mapping[str, Any]:
        """The [tool.harness.<name>] table of the module that reads it, as the schema
        shaped it."""
        return self.module_tables.get(name, {})

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

    def experiment(self, name: str) -> Experiment:
        try:
            return self.experiments[name]
        except KeyError:
            known = ", ".join(sorted(self.experiments)) or "none declared"
            raise ConfigError(
                f"unknown experiment {name!r}",
                f"choose one of: {known}, or declare [tool.harness.experiments.{name}]",
            ) from None

    def policies_for(self, experiment: Experiment) -> dict[str, str]:
        """Compare policies of an experiment's artifacts; its own outputs win over global ones."""
        own = {glob: policy for glob, policy in experiment.outputs.items() if policy}
        return {**self.policies, **own}

    def policies_between(
        self, experiment: Experiment, class_a: str, class_b: str
    ) -> dict[str, str]:
        """The policies for two runs that computed on ``class_a`` and ``class_b`` (see
        ``records.device_class``): the experiment's own within one class, and across
        classes the declared [tool.harness.policies-across-devices] over them."""
        policies = self.policies_for(experiment)
        if class_a == class_b:
            return policies
        return {**policies, **self.device_policies}

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
            "registry": self.registry,
            "host-name": self.host_name,
            "seed": self.seed,
            "profile": self.profile,
            "threads": self.threads,
            "timeout": self.timeout,
            "memory": self.memory,
            "policies": dict(self.policies),
            "policies-across-devices": dict(self.device_policies),
            "experiments": {
                name: {
                    "entry": e.entry,
                    "command": list(e.command) if e.command else None,
                    "parameters": dict(e.parameters),
                    "inputs": {k: str(v) for k, v in e.inputs.items()},
                    "outputs": dict(e.outputs),
                    "exclude": list(e.exclude),
                    "stdout": e.stdout,
                    "variant": e.variant,
                    "vary": list(e.vary) if e.vary is not None else None,
                }
                for name, e in self.experiments.items()
            },
            "variants": {
                name: {
                    "dockerfile": str(v.dockerfile.relative_to(self.project_root)),
                    "constraints": str(v.constraints.relative_to(self.project_root)),
                    "replace": dict(v.replace),
                    "find-links": v.find_links,
                    "device": v.device,
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
    document = read_pyproject(root / PYPROJECT)
    table = document.get("tool", {}).get("harness", {})
    _vary_as_lists(table)
    config_schema.validate(table)

    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        value, source = option.default(env), "default"
        if option.key in table:
            # A string, an integer (is_int) or a list of strings (is_list): the schema says so.
            raw = table[option.key]
            value = os.pathsep.join(raw) if isinstance(raw, list) else str(raw)
            source = "pyproject"
        if env.get(option.env):
            value, source = env[option.env], f"env {option.env}"
        given = (overrides or {}).get(option.key)
        if given is not None:
            value, source = given, "command line"
        values[option.key] = value
        sources[option.key] = source

    if values["image"] is None:
        values["image"] = project_image_name(document.get("project", {}).get("name"), root)
        sources["image"] = "project name"
    if values["python"] is None:
        asked = project_python.asked(root)
        values["python"] = asked.python if asked else project_python.DEFAULT_PYTHON
        sources["python"] = f"project ({asked.source})" if asked else "default"
    _validate(values, sources)
    python = values["python"] or ""
    base = values["base"] or "bootstrap"
    ca_bundle = Path(values["ca-bundle"]) if values["ca-bundle"] else None
    find_links = tuple(p for p in (values["find-links"] or "").split(os.pathsep) if p)

    return Config(
        project_root=root,
        image=values["image"] or "",
        python=python,
        platform=values["platform"] or "",
        dependency_group=values["dependency-group"] or "",
        base=base,
        debian_suite=values["debian-suite"] or project_python.suite_for(python) or "bookworm",
        debian_mirror=values["debian-mirror"],
        index_url=values["index-url"],
        find_links=find_links,
        ca_bundle=ca_bundle,
        docker_host=values["docker-host"]
        or (podman_socket() if values["engine"] == "podman" else None),
        registry=(values["registry"] or "").rstrip("/") or None,
        # The host's name as gethostname(2) gives it, without importing socket (a good
        # part of the start of `harness compare`, which loads this configuration).
        host_name=values["host-name"] or os.uname().nodename,
        seed=int(values["seed"] or 0),
        profile=values["profile"] or "strict",
        threads=int(values["threads"] or 1),
        timeout=int(values["timeout"] or 0),
        variants=_load_variants(root, table.get("variants", {})),
        experiments=_load_experiments(root, table.get("experiments", {})),
        policies=dict(table.get("policies", {})),
        device_policies=dict(table.get("policies-across-devices", {})),
        module_tables=_module_tables(table),
        sources=sources,
        memory=values["memory"].lower() if values["memory"] else None,
    )


def _validate(values: Mapping[str, str | None], sources: Mapping[str, str]) -> None:
    """Refuse values no command could use, naming the option and where it came from."""
    python = values["python"] or ""
    if not _is_python_version(python):
        raise ConfigError(f"python must look like 3.11, not {python!r}", 'set python = "3.11"')
    base = values["base"] or "bootstrap"
    if base != "bootstrap" and "@sha256:" not in base:
        raise ConfigError(
            f"base image {base!r} is not pinned by digest",
            "use 'bootstrap' or REF@sha256:<digest> (see `docker buildx imagetools inspect REF`)",
        )
    for option in OPTIONS:
        value = values[option.key]
        if option.is_int and not _WHOLE_NUMBER.fullmatch(value or ""):
            raise ConfigError(
                f"{option.key} must be a whole number, not {value!r} (from {sources[option.key]})",
                f"set {option.key} = 1 or {option.env}=1",
            )
    if int(values["seed"] or 0) > MAX_SEED:
        raise ConfigError(
            f"seed {values['seed']} is larger than {MAX_SEED} (from {sources['seed']})",
            "choose a seed below 2**32, which every framework accepts",
        )
    memory = values["memory"]
    if memory is not None and not MEMORY.fullmatch(memory):
        raise ConfigError(
            f"memory must look like 512m or 8g, not {memory!r} (from {sources['memory']})",
            'set memory = "8g" or HARNESS_MEMORY=8g',
        )
    if values["profile"] not in PROFILES:
        raise ConfigError(
            f"unknown profile {values['profile']!r} (from {sources['profile']})",
            f"choose one of: {', '.join(PROFILES)}",
        )
    if int(values["threads"] or 0) < 1:
        raise ConfigError("threads must be at least 1", "set threads = 1")
    if values["host-name"] is not None:
        # Records name their host with it, and other hosts' records are filed under it.
        config_schema.check_name(values["host-name"], f"host-name (from {sources['host-name']})")


def project_image_name(name: object, root: Path) -> str:
    """The images' repository when none is configured: the project's name ([project].name,
    else its folder's), made a valid image name. Never one name for every project: a
    fixed default (it was ``harness``) made each project's build replace the tags of the
    last, harness's own ``harness:cpu`` included."""
    for candidate in (name if isinstance(name, str) else "", root.name):
        normal = image_name(candidate)
        if normal:
            return normal
    return "project"


def image_name(text: str) -> str:
    """``text`` as a Docker repository name (lowercase letters and digits in runs joined by
    one ``.``, one or two ``_``, or dashes); empty when nothing of it is left."""
    words = _NOT_IN_IMAGE_NAME.sub("-", text.lower())
    joined = _BAD_SEPARATOR.sub(
        lambda m: m.group() if _SEPARATOR.fullmatch(m.group()) else "-", words
    )
    return joined.strip("._-")[:128].strip("._-")


def _is_python_version(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 2 and all(part.isdigit() for part in parts)


def podman_socket() -> str:
    """Where `podman system service` listens by default: as root, /run/podman; as
    anyone else, the user's runtime folder (rootless Podman needs no root at all)."""
    if os.geteuid() == 0:
        return "unix:///run/podman/podman.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix://{runtime}/podman/podman.sock"


def _load_variants(root: Path, table: Mapping[str, Any]) -> dict[str, Variant]:
    merged: dict[str, dict[str, Any]] = {name: dict(v) for name, v in _DEFAULT_VARIANTS.items()}
    for name, spec in table.items():
        merged.setdefault(name, {}).update(spec)
    declared = set(table)

    variants: dict[str, Variant] = {}
    for name, spec in merged.items():
        device = spec.get("device", "cuda" if name == "cuda" else "cpu")
        # A variant of another name builds, by default, from its device's Dockerfile.
        spec.setdefault("dockerfile", _DEFAULT_VARIANTS[device]["dockerfile"])
        # Only cpu and cuda have a default constraints file, which the schema cannot know.
        if "constraints" not in spec:
            raise ConfigError(
                f"[tool.harness.variants.{name}] has no constraints",
                f'add constraints = "constraints-{name}.txt", which `harness lock` writes',
            )
        variants[name] = Variant(
            name=name,
            dockerfile=root / spec["dockerfile"],
            constraints=root / spec["constraints"],
            replace=dict(spec.get("replace", {})),
            find_links=spec.get("find-links", device == "cpu"),
            device=device,
            dockerfile_declared=name in declared and "dockerfile" in table[name],
            declared=name in declared,
        )
    return variants


def _load_experiments(root: Path, table: Mapping[str, Any]) -> dict[str, Experiment]:
    experiments = {}
    for name, spec in table.items():
        command = spec.get("command")
        outputs = spec.get("outputs", {})
        if isinstance(outputs, list):  # globs alone: each with the default policy
            outputs = dict.fromkeys(outputs, "")
        stdout = spec.get("stdout")
        if stdout is not None and command is None:
            raise ConfigError(
                f"[tool.harness.experiments.{name}] stdout is kept only for a command: an "
                "entry's function returns its metrics and writes into output",
                "remove stdout, or run the experiment as command = [...]",
            )
        experiments[name] = Experiment(
            name=name,
            entry=spec.get("entry"),
            command=tuple(command) if command is not None else None,
            parameters=dict(spec.get("parameters", {})),
            inputs={key: (root / value).resolve() for key, value in spec.get("inputs", {}).items()},
            outputs=dict(outputs),
            variant=spec.get("variant", "cpu"),
            exclude=tuple(spec.get("exclude", ())),
            stdout=stdout,
            vary=tuple(spec["vary"]) if "vary" in spec else None,
        )
    return experiments


def _vary_as_lists(table: object) -> None:
    """Write each ``vary`` given as one comma-separated string ("all,-workdir") as the list
    it stands for, before the schema check: then an unknown name is refused as the one
    item it is, and every reader receives a list."""
    if not isinstance(table, dict):
        return
    experiments = table.get("experiments")
    holders = [table.get("verify")]
    if isinstance(experiments, dict):
        holders += experiments.values()
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("vary"), str):
            holder["vary"] = [w.strip() for w in holder["vary"].split(",") if w.strip()]


def _module_tables(table: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {name: dict(table.get(name, {})) for name in _MODULE_TABLES}
