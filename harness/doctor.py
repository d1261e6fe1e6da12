"""`harness doctor`: is this machine ready to lock, build and run? Each problem with its fix."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import podman_conf, project_python
from harness.config import Config
from harness.engine import PODMAN, ContainerEngine, Engine
from harness.errors import EngineError, EngineUnavailable, HarnessError
from harness.fleet.hosts import Host, configured
from harness.fleet.slurm import scheduler
from harness.images import lock
from harness.images.base import BaseImage, base_reference, find_base
from harness.runs import reconcile

# Something any Docker Hub mirror or proxy serves; only reachability matters.
_PROBE_REFERENCE = "docker.io/library/busybox:latest"
# Seconds the trial container (`true`) may take: a start, however slow the engine.
_TRIAL_TIMEOUT = 60
_PODMAN_LIMITS = "podman limits"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    # A failed check that only limits what can be done (no GPU) rather than blocking.
    required: bool = True

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def diagnose(config: Config) -> list[Check]:
    checks: list[Check] = []
    engine: Engine | None = None
    try:
        engine = Engine.connect(config.docker_host, timeout=20)
        version = engine.version()
        checks.append(
            Check(
                "engine",
                True,
                f"{engine.product} {version.get('Version')} (API {version.get('ApiVersion')}) "
                f"at {engine.where}",
            )
        )
    except EngineUnavailable as error:
        checks.append(Check("engine", False, error.message, error.hint))

    if engine is not None:
        reachable = engine.registry_reachable(
            config.base if config.base != "bootstrap" else _PROBE_REFERENCE
        )
        needs_registry = config.base != "bootstrap"
        checks.append(
            Check(
                "registry",
                reachable or not needs_registry,
                "reachable" if reachable else "not reachable from the engine",
                ""
                if reachable or not needs_registry
                else "set base = 'bootstrap' or make the registry reachable",
                required=needs_registry,
            )
        )
        base = find_base(engine, config)
        bootstrap_ready = shutil.which("debootstrap") is not None
        checks.append(
            Check(
                "base image",
                base is not None or (config.base == "bootstrap" and bootstrap_ready),
                f"{base.reference} ({base.id[:19]})"
                if base
                else f"{base_reference(config)} not built yet",
                ""
                if base or bootstrap_ready
                else "`apt-get install debootstrap`, then `harness base`",
            )
        )
        if engine.product == PODMAN:
            checks.append(podman_limits_check(engine, base))
        checks.append(_leftovers_check(config, engine))
        gpu = engine.has_gpu_runtime()
        checks.append(
            Check(
                "gpu runtime",
                gpu,
                "nvidia runtime present"
                if gpu
                else "no nvidia runtime: the cuda variant builds but cannot use GPUs here",
                "" if gpu else "install the NVIDIA Container Toolkit on a GPU host",
                required=False,
            )
        )

    checks.append(_python_check(config))
    checks += _host_checks(config)
    checks.append(_ca_bundle_check(config))
    checks.append(_wheel_sources_check(config))
    checks.append(_lock_check(config))
    checks += _pins_digest_checks(config)
    return checks


def podman_limits_check(
    engine: ContainerEngine,
    base: BaseImage | None,
    *,
    environment: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Check:
    """Can Podman start a container? As root it cannot where no containers.conf lets it set
    containers' limits (see harness.podman_conf). The service may read other files than
    this machine shows, so a container of the base image (`true`, no network) is started
    to find out; the files only name where the fix goes, and stand in for the trial while
    no base image exists."""
    environment = os.environ if environment is None else environment
    rootless = _rootless(engine)
    local = engine.where == "default" or engine.where.startswith("unix://")
    files = [
        podman_conf.read(path)
        for path in podman_conf.search_order(environment, rootless=rootless, home=home)
    ]
    in_effect = podman_conf.setting_in_effect(files)
    if local:
        target = podman_conf.file_to_edit(environment, files, rootless=rootless, home=home)
        fix = podman_conf.fix(target, or_service_file="CONTAINERS_CONF" not in environment)
    else:
        fix = podman_conf.fix(Path("the containers.conf of the engine's machine"))
    if base is not None:
        return _podman_trial(engine, base, fix)
    name = _PODMAN_LIMITS
    untried = "not tried (no base image yet)"
    if rootless:
        return Check(name, True, f"{untried}; rootless Podman needs no limits set", required=False)
    if local and in_effect is not None and podman_conf.allows_runs(in_effect.ulimits):
        return Check(
            name, True, f"{untried}; {in_effect.path} sets default_ulimits", required=False
        )
    unreadable = [conf for conf in files if conf.problem]
    said = f" ({unreadable[0].path} {unreadable[0].problem})" if unreadable else ""
    return Check(
        name,
        False,
        f"{untried}; no containers.conf here lets rootful Podman set containers' limits"
        f"{said}: where root's limits are low, runs fail with "
        f"'{podman_conf.RLIMITS_ERROR}'",
        fix,
        required=False,
    )


def _podman_trial(engine: ContainerEngine, base: BaseImage, fix: str) -> Check:
    """Start a container of the base image running `true`, and say what stopped it."""
    name = _PODMAN_LIMITS
    try:
        result = engine.run(base.id, ["true"], timeout=_TRIAL_TIMEOUT)
    except EngineError as error:
        if podman_conf.RLIMITS_ERROR in error.message:
            return Check(
                name,
                False,
                "a container cannot start: Podman cannot set its limits "
                f"({podman_conf.RLIMITS_ERROR} ... operation not permitted)",
                fix,
            )
        return Check(name, False, f"a container cannot start: {error.message}", error.hint)
    if result.exit_code != 0:
        return Check(
            name,
            False,
            f"`true` exited {result.exit_code} in {base.reference}",
            "make the base image again: `harness base`",
        )
    return Check(name, True, f"a container of {base.reference} starts")


def _rootless(engine: ContainerEngine) -> bool:
    """Whether the engine runs rootless, as it says among its security options."""
    options = engine.info().get("SecurityOptions") or ()
    return any("name=rootless" in str(option) for option in options)


def _python_check(config: Config) -> Check:
    """The images' Python against what the project asks for, and whether a base can have it."""
    asked = project_python.asked(config.project_root)
    source = config.sources.get("python", "default")
    if asked is not None and asked.python != config.python:
        return Check(
            "python",
            False,
            f"the images get Python {config.python} ({source}), the project asks for "
            f"{asked.python} ({asked.source})",
            f'set python = "{asked.python}" (or remove python from [tool.harness] and '
            "HARNESS_PYTHON: the project's own choice is then used)",
        )
    carried = project_python.SUITE_PYTHONS.get(config.debian_suite)
    if config.base == "bootstrap" and carried != config.python:
        return Check(
            "python",
            False,
            f"Python {config.python}: Debian {config.debian_suite} carries "
            f"{carried or 'a Python harness does not know'} "
            f"(bootstrapped bases can have {project_python.available()})",
            project_python.unavailable_fix(config.python)
            if project_python.suite_for(config.python) is None
            else f"leave debian-suite unset (Python {config.python} is in "
            f"{project_python.suite_for(config.python)})",
            required=carried is not None,
        )
    where = f"Debian {config.debian_suite}" if config.base == "bootstrap" else config.base
    return Check("python", True, f"{config.python} ({source}) on {where}")


def _host_checks(config: Config) -> list[Check]:
    """Each host of [tool.harness.hosts]: does its engine answer? (Not required: a host
    that is down only limits which hosts a command can use.)"""
    try:
        hosts = configured(config)
    except HarnessError as error:
        return [Check("hosts", False, error.message, error.hint)]
    checks = []
    for host in hosts.values():
        if host.slurm is not None:
            checks.append(_slurm_check(host))
            continue
        try:
            engine = host.connect(timeout=20)
            version = engine.version().get("Version")
        except HarnessError as error:
            checks.append(Check(f"host {host.name}", False, error.message, error.hint, False))
            continue
        checks.append(
            Check(
                f"host {host.name}",
                True,
                f"{engine.product} {version} at {host.url}",
                required=False,
            )
        )
        if engine.product == PODMAN:
            limits = podman_limits_check(engine, find_base(engine, config))
            # A host that cannot run limits what can be done, as a host that is down does.
            checks.append(
                Check(f"podman limits on {host.name}", limits.ok, limits.detail, limits.fix, False)
            )
        checks.append(_leftovers_check(config, engine, name=f"leftovers on {host.name}"))
    return checks


def _slurm_check(host: Host) -> Check:
    """A SLURM host: does the cluster answer, and which nodes take jobs?"""
    partition = host.slurm.partition if host.slurm else None
    try:
        nodes = scheduler.nodes(partition)
    except HarnessError as error:
        return Check(f"host {host.name}", False, error.message, error.hint, False)
    where = f"partition {partition}" if partition else "the cluster"
    if not nodes:
        return Check(
            f"host {host.name}",
            False,
            f"SLURM answers, but no node of {where} takes jobs",
            "check the nodes with `sinfo -N`",
            False,
        )
    return Check(
        f"host {host.name}",
        True,
        f"SLURM: {len(nodes)} node(s) of {where} take jobs ({', '.join(nodes[:8])})",
        required=False,
    )


def _leftovers_check(config: Config, engine: Engine, *, name: str = "leftovers") -> Check:
    """What a harness killed outright left on ``engine``: records still ``running`` end
    ``lost``, containers no harness will remove are removed; those that cannot be (or
    cannot be told to be unused) are reported with how to remove them by hand."""
    try:
        ended = reconcile.end_stale(
            config.project_root,
            lambda where: engine if where == engine.where else reconcile.connect(where),
        )
        found = reconcile.reap(engine, config.project_root)
    except HarnessError as error:
        return Check(name, False, error.message, error.hint, required=False)
    removed = [item for item in found if item.removed]
    left = [item for item in found if not item.removed]
    said = [*ended, *(item.line() for item in removed)]
    if left:
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        return Check(
            name,
            False,
            f"{left[0].line()}{more}",
            "remove what is named once no harness uses it; `harness doctor` removes the "
            "rest itself",
            required=False,
        )
    detail = "; ".join(said) if said else "no abandoned run or container"
    return Check(name, True, detail, required=False)


def _ca_bundle_check(config: Config) -> Check:
    if config.ca_bundle is None:
        return Check("ca bundle", True, "none configured (TLS is not intercepted)", required=False)
    path = config.ca_bundle
    if not path.is_file():
        return Check(
            "ca bundle", False, f"{path} does not exist", "fix ca-bundle / HARNESS_CA_BUNDLE"
        )
    text = path.read_text(errors="replace")
    count = text.count("BEGIN CERTIFICATE")
    if count == 0:
        return Check(
            "ca bundle", False, f"{path} holds no PEM certificate", "point it at a PEM bundle"
        )
    return Check(
        "ca bundle", True, f"{path} ({count} certificates, from {config.sources['ca-bundle']})"
    )


def _wheel_sources_check(config: Config) -> Check:
    index = config.index_url or "https://pypi.org/simple (default)"
    missing = [f for f in config.find_links if "://" not in f and not Path(f).is_dir()]
    if missing:
        return Check(
            "wheel sources",
            False,
            f"index {index}; wheel folder {missing[0]} does not exist",
            "fix find-links / HARNESS_FIND_LINKS",
        )
    folders = ", ".join(config.find_links) or "none"
    return Check("wheel sources", True, f"index {index}; extra wheel folders: {folders}")


def _pins_digest_checks(config: Config) -> list[Check]:
    """Constraints files whose pins cannot be told unedited (locked before their digest was
    recorded): used, so not required, but never passed in silence."""
    try:
        unverifiable = lock.unverifiable(config)
    except HarnessError:
        return []  # the constraints check names what is wrong
    return [
        Check("pins digest", False, why, lock.UNDIGESTED_FIX, required=False)
        for why in unverifiable
    ]


def _lock_check(config: Config) -> Check:
    """The constraints of the variants in use: current, and fit for their device (a CUDA
    file without CUDA runtime wheels fails here with the package and the fix)."""
    try:
        variants = lock.variants_in_use(config)
        problems = lock.check(config, variants, uv_lock=False)
    except HarnessError as error:
        return Check("constraints", False, error.message, error.hint)
    if problems:
        return Check(
            "constraints", False, "; ".join(problems), "run `harness lock` (or the fix named)"
        )
    # Each file may fit its device while the variants disagree on the framework.
    differing = lock.framework_differences(variants)
    if differing:
        return Check(
            "constraints",
            False,
            "; ".join(differing),
            "declare the framework at one version every variant's sources have "
            "(`harness lock` names them), then run `harness lock`",
        )
    names = ", ".join(sorted(variant.name for variant in variants))
    return Check("constraints", True, f"current and fit for their device: {names}")
