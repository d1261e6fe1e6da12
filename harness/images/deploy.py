"""The deploy image: the certified experiment image plus the project's wheel.

What a deployer runs must be what was verified. The experiment image holds the
environment but not the project (each run mounts it); the deploy image is that image,
unchanged, with one more layer: the project's wheel installed into its environment. The
layer is written by harness from the wheel (see :mod:`harness.images.wheel_layer`), not
by a build that runs pip, so nothing but the wheel and the image decides its bytes: the
same certified image and the same wheel give the same image ID, on any engine.

Why not the project's own deployment Dockerfile: it starts ``FROM`` a registry image
(``python:3.14-slim``) and installs with pip from an index, so its environment is not
the one whose results were reproduced, and its identity depends on the registry and the
day. A team that wants its Dockerfile's extra steps builds ``FROM`` the deploy image by
digest; the certificate then covers what it builds on, not what it adds.

The wheel's modules get hash-based bytecode as the image's others have (PEP 552,
compiled by the image's own Python in a container without network; see
:func:`compile_in_image`). The image is checked before it is certified: the layer is
made twice, from two unpackings and compilations of the wheel, and must have the same
diff ID; the wheel's declared
dependencies must be pinned in the constraints the certified image was built from (the
layer adds no other package); and a container of the finished image, without network,
finds the distribution and its top-level modules.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.config import Config, Variant
from harness.container import TMP
from harness.digests import sha256_file
from harness.engine import PODMAN, ContainerEngine, ContainerSpec, Mount, layer_ids
from harness.errors import BuildError, EngineError
from harness.images import build as build_module
from harness.images import config as imageconfig
from harness.images import filesystem as imagefs
from harness.images import lock, wheel_layer, wheeltags
from harness.images.built import LABEL_BUILD_INPUT
from harness.images.pin import Pin

# The deploy image's labels: which certified image it is built on, and which wheel it adds.
LABEL_BUILT_ON = "io.harness.deploy.image"
LABEL_WHEEL = "io.harness.deploy.wheel"
LABEL_WHEEL_SHA256 = "io.harness.deploy.wheel.sha256"
_CHECK_TIMEOUT_S = 300.0
# The platforms' machine names, as environment markers spell them.
_MACHINES = {"x86_64": "x86_64", "aarch64": "aarch64", "amd64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class DeployImage:
    """A deploy image on the engine, and what it is made of."""

    reference: str
    image_id: str
    built_on: str
    variant: str
    wheel: str
    wheel_sha256: str
    layer: str
    files: int
    # The image existed already (the same certified image and wheel made it before).
    existed: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "image_id": self.image_id,
            "built_on": self.built_on,
            "variant": self.variant,
            "wheel": {"name": self.wheel, "sha256": self.wheel_sha256},
            "layer": self.layer,
            "files": self.files,
            "existed": self.existed,
        }


def reference(config: Config, variant: Variant) -> str:
    return f"{config.image}:{variant.name}-deploy"


def unmet_requirements(
    facts: wheel_layer.WheelFacts, pins: Sequence[Pin], python: str, platform: str
) -> list[str]:
    """The wheel's dependencies (for the image's Python and platform, no extras) that the
    pins do not satisfy, each as a line to show."""
    pinned = {wheel_layer.canonical_name(pin.name): pin.version for pin in pins}
    arch = platform.split("-", 1)[0] if platform else "x86_64"
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": _MACHINES.get(arch, arch),
        "extra": "",
    }
    unmet = []
    for requirement in facts.requires:
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        version = pinned.get(wheel_layer.canonical_name(requirement.name))
        if version is None:
            unmet.append(f"{requirement} (not pinned)")
            continue
        try:
            fits = requirement.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            fits = False
        if not fits:
            unmet.append(f"{requirement} (pinned {version})")
    return unmet


def require_fitting_wheel(wheel: Path, python: str, platform: str) -> None:
    """Refuse a wheel the image's Python and platform would not install (a cp312 build
    for a 3.13 image, a macOS one), as pip in the image would."""
    if wheeltags.Ranking(wheeltags.Target.parse(python, platform)).rank(wheel.name) is None:
        raise BuildError(
            f"{wheel.name} does not fit the image's Python {python} on {platform or 'linux'}",
            "build the wheel for the image's Python (`harness deploy` builds it when "
            "--wheel is left out)",
        )


def _wheel_epoch(wheel: Path) -> int:
    """The time the layer's files get: the wheel's newest member time (its build took it
    from the commit, SOURCE_DATE_EPOCH), so the wheel alone decides it."""
    with zipfile.ZipFile(wheel) as archive:
        times = [info.date_time for info in archive.infolist()]
    newest = max(times, default=(1980, 1, 1, 0, 0, 0))
    return calendar.timegm((*newest, 0, 0, 0))


def write_layer_twice(
    wheel: Path,
    python: str,
    folder: Path,
    epoch: int,
    compiler: wheel_layer.Compiler | None = None,
) -> tuple[Path, wheel_layer.WrittenLayer]:
    """Unpack (and compile) and write the layer twice, independently; refuse when the two
    differ."""
    written = []
    for attempt in (1, 2):
        files = wheel_layer.installed_files(wheel, python, compiler)
        path = folder / f"layer-{attempt}.tar"
        with path.open("wb") as target:
            written.append(wheel_layer.write_layer(files, target, epoch=epoch))
    if written[0].diff_id != written[1].diff_id:
        raise BuildError(
            f"the deploy layer of {wheel.name} came out differently twice "
            f"({written[0].diff_id[:19]}, {written[1].diff_id[:19]})",
            "report it: the layer is meant to depend on the wheel alone",
        )
    return folder / "layer-1.tar", written[0]


def _layer_archive(config: bytes, layer_count: int, layer: Path) -> Iterator[bytes]:
    """A ``docker load`` archive: the configuration and the one new layer. The engine
    finds the layers below it by their diff IDs (see :func:`imageconfig.config_only_archive`)."""
    digest = hashlib.sha256(config).hexdigest()
    last = f"{layer_count - 1}/layer.tar"
    manifest = imageconfig.serialise(
        [
            {
                "Config": f"{digest}.json",
                "RepoTags": None,
                "Layers": [f"{index}/layer.tar" for index in range(layer_count)],
            }
        ]
    )
    handle = layer.open("rb")
    try:
        yield from imagefs.tar_stream(
            [
                (last, handle, layer.stat().st_size),
                (f"{digest}.json", config, len(config)),
                ("manifest.json", manifest, len(manifest)),
            ]
        )
    finally:
        handle.close()


def _require_harness_environment(attributes: Mapping[str, Any], image_id: str) -> None:
    environment = (attributes.get("Config") or {}).get("Env") or []
    if f"VIRTUAL_ENV={wheel_layer.VENV}" not in environment:
        raise BuildError(
            f"the certified image {image_id[:19]} has no environment at {wheel_layer.VENV}, "
            "where the deploy image installs the wheel",
            "build the experiment image from harness's Dockerfile (or one that keeps its "
            "venv), then verify and certify it",
        )


def build(
    engine: ContainerEngine,
    config: Config,
    variant: Variant,
    certified_image: str,
    wheel: Path,
    *,
    say: Callable[[str], None] = lambda _: None,
) -> DeployImage:
    """Make (or find) the deploy image of ``certified_image`` with ``wheel``; tag it."""
    if engine.product == PODMAN:
        raise EngineError(
            "deploy images are made on a Docker engine",
            "make it on Docker, then move it with `docker save | podman load`",
        )
    attributes = engine.image_attributes(certified_image)
    if attributes is None:
        raise EngineError(
            f"the engine has no image {certified_image[:19]}, the certified one",
            "build it (`harness build`) or load it where the certificate was made",
        )
    _require_harness_environment(attributes, certified_image)
    labels = dict((attributes.get("Config") or {}).get("Labels") or {})
    constraints_sha = sha256_file(variant.constraints)
    if labels.get(build_module.LABEL_CONSTRAINTS) != constraints_sha:
        raise BuildError(
            f"{variant.constraints.name} changed since the certified image was built from it",
            "build, verify and certify again, or restore the constraints it was built from",
        )
    require_fitting_wheel(wheel, config.python, config.platform)
    facts = wheel_layer.facts(wheel)
    pins = lock.parse_constraints(
        variant.constraints.read_text(encoding="utf-8"), variant.constraints.name
    )
    unmet = unmet_requirements(facts, pins, config.python, config.platform)
    if unmet:
        raise BuildError(
            f"{wheel.name} needs what the certified image does not hold: {'; '.join(unmet)}",
            "add it to the experiments dependency group, then lock, build, verify and "
            "certify again",
        )
    wheel_sha = sha256_file(wheel)
    epoch = _wheel_epoch(wheel)
    diff_ids = layer_ids(attributes)
    history = imageconfig.layer_history(engine, certified_image, len(diff_ids))
    if history is None:
        say("reading the certified image's exact history from the saved image")
        history = imageconfig.saved_history(engine, certified_image)
    with tempfile.TemporaryDirectory(prefix="harness-deploy-") as folder:
        say(f"writing the layer of {wheel.name} twice (it must come out the same)")
        layer, written = write_layer_twice(
            wheel,
            config.python,
            Path(folder),
            epoch,
            lambda modules: compile_in_image(engine, certified_image, modules),
        )
        deploy_labels = {
            LABEL_BUILT_ON: certified_image,
            LABEL_WHEEL: wheel.name,
            LABEL_WHEEL_SHA256: wheel_sha,
        }
        # The image is harness's build of these inputs, not of the experiment image's.
        deploy_labels[LABEL_BUILD_INPUT] = hashlib.sha256(
            json.dumps({**deploy_labels, "layer": written.diff_id}, sort_keys=True).encode()
        ).hexdigest()
        entry = {
            "created_by": f"harness deploy: {wheel.name} (sha256 {wheel_sha})",
            "comment": "harness deploy",
            "empty_layer": False,
        }
        document = imageconfig.canonical_config(
            attributes,
            [*history, entry],
            epoch=epoch,
            labels=deploy_labels,
            diff_ids=[*diff_ids, written.diff_id],
        )
        config_bytes = imageconfig.serialise(document)
        image_id = imageconfig.image_id_of(config_bytes)
        existed = engine.image(image_id) is not None
        if not existed:
            say(f"loading the deploy image ({written.files} files of {facts.name} on top)")
            engine.load(_layer_archive(config_bytes, len(diff_ids) + 1, layer))
    if engine.image(image_id) is None:
        raise EngineError(f"the engine did not keep the deploy image {image_id}")
    tag = reference(config, variant)
    engine.tag(image_id, tag)
    check_installed(engine, image_id, facts)
    return DeployImage(
        tag,
        image_id,
        certified_image,
        variant.name,
        wheel.name,
        wheel_sha,
        written.diff_id,
        written.files,
        existed,
    )


# Run by the image's own Python, with no site and a fixed hash seed, in one process and in
# path order: hash-based bytecode (PEP 552, unchecked, as the image's other modules have),
# whose bytes depend on the sources and the interpreter alone (marshal's references depend
# on what the process compiled before, hence one process, always the same order).
_COMPILE = """\
import base64, importlib.util, json, sys
from importlib._bootstrap_external import _code_to_hash_pyc
folder = sys.argv[1]
with open(folder + "/listing.json", encoding="utf-8") as handle:
    listing = json.load(handle)
print("cache-tag", sys.implementation.cache_tag, flush=True)
for index, target in sorted(listing.items(), key=lambda item: item[1]):
    with open(f"{folder}/{index}", "rb") as handle:
        source = handle.read()
    try:
        code = compile(source, target, "exec", dont_inherit=True)
    except SyntaxError:
        continue
    data = _code_to_hash_pyc(code, importlib.util.source_hash(source), False)
    print("pyc", index, base64.b64encode(data).decode(), flush=True)
"""
_MOUNTED_SOURCES = "/harness/compile"


def compile_in_image(
    engine: ContainerEngine, image_id: str, modules: Mapping[PurePosixPath, bytes]
) -> dict[PurePosixPath, bytes]:
    """The bytecode of ``modules`` as the image's Python compiles them, in a container of
    the image without network: ``__pycache__/NAME.<cache tag>.pyc`` beside each."""
    if not modules:
        return {}
    ordered = sorted(modules)
    with tempfile.TemporaryDirectory(prefix="harness-deploy-compile-") as folder:
        sources = Path(folder) / "sources"
        sources.mkdir()
        listing = {str(index): str(path) for index, path in enumerate(ordered)}
        for index, path in enumerate(ordered):
            (sources / str(index)).write_bytes(modules[path])
        (sources / "listing.json").write_text(json.dumps(listing), encoding="utf-8")
        # The image's user reads them through a read-only mount.
        for entry in [sources, *sources.iterdir()]:
            entry.chmod(0o755 if entry.is_dir() else 0o644)
        Path(folder).chmod(0o755)
        spec = ContainerSpec(
            image=image_id,
            command=("python", "-S", "-c", _COMPILE, _MOUNTED_SOURCES),
            environment={"PYTHONHASHSEED": "0"},
            mounts=(Mount(sources, _MOUNTED_SOURCES),),
            read_only_root=True,
            tmpfs={TMP: "rw,size=16m"},
            working_dir=TMP,
        )
        log = Path(folder) / "log.txt"
        outcome = engine.run_logged(spec, log=log, timeout=_CHECK_TIMEOUT_S)
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    tag = next((line.split()[1] for line in lines if line.startswith("cache-tag ")), None)
    if outcome.exit_code != 0 or tag is None:
        raise BuildError(
            f"the image's Python could not compile the wheel's modules: "
            f"{lines[-1] if lines else f'exit status {outcome.exit_code}'}",
            "check that the wheel is built for the image's Python, then make the deploy "
            "image again",
        )
    compiled = {}
    for line in lines:
        if line.startswith("pyc "):
            _, number, data = line.split(" ", 2)
            path = PurePosixPath(listing[number])
            compiled[path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc"] = base64.b64decode(
                data
            )
    return compiled


def check_installed(engine: ContainerEngine, image_id: str, facts: wheel_layer.WheelFacts) -> None:
    """In a container of the image, without network, Python finds the distribution at
    its version and each of its top-level modules (found, not imported: nothing of the
    project runs)."""
    program = (
        "import importlib.metadata as m, importlib.util as u, sys\n"
        f"assert m.version({facts.name!r}) == {facts.version!r}, m.version({facts.name!r})\n"
        f"missing = [n for n in {list(facts.top_level)!r} if u.find_spec(n) is None]\n"
        "sys.exit('not found: ' + ', '.join(missing) if missing else 0)\n"
    )
    spec = ContainerSpec(
        image=image_id,
        command=("python", "-I", "-c", program),
        read_only_root=True,
        tmpfs={TMP: "rw,size=16m"},
        working_dir=TMP,
    )
    with tempfile.TemporaryDirectory(prefix="harness-deploy-check-") as folder:
        log = Path(folder) / "log.txt"
        outcome = engine.run_logged(spec, log=log, timeout=_CHECK_TIMEOUT_S)
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
    if outcome.exit_code != 0:
        raise BuildError(
            f"the deploy image does not find {facts.name} {facts.version}: "
            f"{tail[0] if tail else f'exit status {outcome.exit_code}'}",
            "check that the wheel is built for the image's Python "
            "(`harness config` shows it), then make the deploy image again",
        )
