"""Hash-locked constraints: from the declared experiment dependencies to one file per variant.

The experiment dependencies are a PEP 735 dependency group in pyproject.toml. For each image
variant, ``harness lock`` applies the variant's replacements (the CPU builds of torch and
TensorFlow, say), resolves them with ``uv pip compile --generate-hashes`` for the image's
Python and platform, and writes the variant's constraints file with a header that records
exactly what was resolved. ``harness lock --check`` recomputes that header from the
current declarations, without touching the network for the constraints, so CI can tell in a
second whether someone changed a dependency and forgot to relock.

Each variant's pins must fit its device (see :mod:`harness.images.device_pins`): a resolution
that would put a CPU-only torch into the CUDA image, or CUDA wheels into the CPU one, is
refused before the file is written, and a file on disk that does so is reported as
unusable by ``--check``, ``doctor`` and ``build``.

Without ``--variant``, the variants locked and checked are those the project uses: cpu,
every variant it declares or an experiment names, and any whose constraints file exists.
A project that never asked for CUDA is not made to resolve gigabytes of it.

``build-constraints.txt`` pins what builds harness's own wheel, so only harness's own
project writes and checks it; any other project gets harness's runtime from the harness
that builds its images (see :mod:`harness.images.runtime_wheel`).

Where wheels come from (an index URL, extra wheel folders) is configuration, passed to uv
on the command line and never written into the files.

The image's Python need not be on this machine: the constraints are resolved for it by
version (``--python-version``), and uv is never let download an interpreter (a download
that cannot reach its host hid the real reason behind "Request failed after 3 retries").
Only uv.lock needs an interpreter for the project; where there is none, it is left as it
was and ``lock`` says so. A uv failure is shown with uv's own reason and causes.

Frameworks lock as researchers write them: a declared ``torch`` or ``tensorflow`` becomes,
for each variant that does not replace it, the build its sources have for its device
(see :mod:`harness.images.framework_builds`), recorded in the header as ``resolved-as``.
The header's digest covers the declarations only, so ``--check`` stays offline.

Everything is resolved before anything is written: a refused resolution leaves uv.lock
and every constraints file as they were, and the files are written together (one that
cannot be written puts the others back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from uv import find_uv_bin

from harness import atomic, commands, progress, project_code
from harness.config import Config, Variant, read_pyproject
from harness.errors import ConfigError, LockError, StaleLock
from harness.images import cuda_wheels, device_pins, framework_builds, unpinned_imports, wheelcache
from harness.images.pin import Pin
from harness.images.runtime_wheel import BUILD_CONSTRAINTS, DISTRIBUTION

UV_LOCK = "uv.lock"
_HEADER_INPUT = "# input-sha256: "
_HEADER_REQUIREMENT = "# requirement: "
# The digest of the pins as written (every line that is not a comment): a pin or a hash
# edited by hand afterwards no longer matches it, and `lock --check` says so as `build`
# would (files written before this line existed cannot be told unedited: see undigested).
_HEADER_PINS = "# pins-sha256: "
_HEADER_RESOLVED = "# resolved-as: "
_RESOLVED_ARROW = " -> "


class ResolutionError(LockError):
    """uv found no resolution; ``explanation`` is uv's whole account of why, never cut."""

    def __init__(self, message: str, hint: str | None = None, *, explanation: str) -> None:
        super().__init__(message, hint)
        self.explanation = explanation


@dataclass(frozen=True)
class LockInput:
    """What one constraints file is resolved from; its digest goes into the file's header."""

    label: str
    python: str
    platform: str
    requirements: tuple[str, ...]
    # (declared name, requirement resolved in its place): the framework builds chosen from
    # the sources. Recorded in the header, outside the digest (the sources may change).
    resolved: tuple[tuple[str, str], ...] = ()

    def to_resolve(self) -> list[str]:
        """The requirements handed to the resolver: the declared ones, frameworks chosen."""
        chosen = dict(self.resolved)
        return [chosen.get(_req_name(r), r) for r in self.requirements]

    @property
    def digest(self) -> str:
        canonical = json.dumps(
            {"python": self.python, "platform": self.platform, "requirements": self.requirements},
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def header(self) -> str:
        lines = [
            f"# Written by `harness lock` for {self.label}: every pin carries its sha256.",
            "# Do not edit by hand: run `harness lock`; `harness lock --check` tells if stale.",
            f"# python: {self.python}",
            f"# platform: {self.platform}",
            *(f"{_HEADER_REQUIREMENT}{r}" for r in self.requirements),
            *(f"{_HEADER_RESOLVED}{n}{_RESOLVED_ARROW}{r}" for n, r in self.resolved),
            f"{_HEADER_INPUT}{self.digest}",
        ]
        return "\n".join(lines) + "\n"


# -- what is declared -------------------------------------------------------------------


def declared_requirements(config: Config) -> list[Requirement]:
    """The dependency group named by ``dependency-group``, include-groups expanded."""
    groups = read_pyproject(config.pyproject).get("dependency-groups", {})
    return [
        _parse_requirement(text, config.dependency_group)
        for text in _expand(groups, config.dependency_group, ())
    ]


def _expand(groups: Mapping[str, Any], name: str, seen: tuple[str, ...]) -> list[str]:
    if name in seen:
        raise ConfigError(f"dependency group {name!r} includes itself", "remove the cycle")
    entries = groups.get(name)
    if not isinstance(entries, list):
        raise ConfigError(
            f"pyproject.toml declares no [dependency-groups] {name!r}",
            f'add {name} = ["numpy", ...] under [dependency-groups] or set dependency-group',
        )
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            out.extend(_expand(groups, entry["include-group"], (*seen, name)))
        else:
            raise ConfigError(
                f"dependency group {name!r} holds {entry!r}", "use requirement strings"
            )
    return out


def _parse_requirement(text: str, where: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as error:
        raise ConfigError(
            f"invalid requirement {text!r} in {where}: {error}", "fix its syntax"
        ) from None


def variant_input(config: Config, variant: Variant) -> LockInput:
    """The requirements a variant resolves: the declared ones with its replacements applied."""
    declared = declared_requirements(config)
    names = {canonicalize_name(r.name) for r in declared}
    replace = {canonicalize_name(k): v for k, v in variant.replace.items()}
    for name in sorted(set(replace) - names):
        raise ConfigError(
            f"variant {variant.name!r} replaces {name!r}, "
            f"which {config.dependency_group!r} does not declare",
            "declare it in the dependency group or drop the replacement",
        )
    requirements = [
        str(_parse_requirement(replace[canonicalize_name(r.name)], f"variant {variant.name}"))
        if canonicalize_name(r.name) in replace
        else str(r)
        for r in declared
    ]
    return LockInput(
        label=f"the {variant.name} variant",
        python=config.python,
        platform=config.platform,
        requirements=tuple(requirements),
    )


def variants_in_use(config: Config) -> list[Variant]:
    """The variants a plain `harness lock` resolves: cpu, those the project declares or an
    experiment names, and those whose constraints file exists."""
    named = {experiment.variant for experiment in config.experiments.values()}
    return [
        variant
        for name, variant in config.variants.items()
        if name == "cpu" or variant.declared or name in named or variant.constraints.is_file()
    ]


def locks_harness_build(config: Config) -> bool:
    """Whether the project is harness itself, whose wheel build-constraints.txt pins."""
    name = read_pyproject(config.pyproject).get("project", {}).get("name")
    return isinstance(name, str) and canonicalize_name(name) == DISTRIBUTION


def build_input(config: Config) -> LockInput:
    """Build requirements of harness's own wheel ([build-system] requires)."""
    requires = read_pyproject(config.pyproject).get("build-system", {}).get("requires", [])
    return LockInput(
        label="the build of harness's wheel",
        python=config.python,
        platform="any",
        requirements=tuple(str(_parse_requirement(r, "[build-system]")) for r in requires),
    )


# -- reading constraints files -----------------------------------------------------------


def parse_constraints(text: str, source: str = "constraints") -> list[Pin]:
    """Parse a hashed constraints file; every requirement must be ``name==version`` with hashes."""
    pins: list[Pin] = []
    for logical in _logical_lines(text):
        parts = logical.split()
        requirement_text = " ".join(p for p in parts if not p.startswith("--hash="))
        hashes = tuple(p.removeprefix("--hash=") for p in parts if p.startswith("--hash="))
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement:
            raise LockError(f"{source}: cannot parse {requirement_text!r}") from None
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise LockError(f"{source}: {requirement.name} is not pinned with ==")
        if not hashes:
            raise LockError(
                f"{source}: {requirement.name} carries no hash",
                "run `harness lock`; hand-added lines must carry --hash=sha256:...",
            )
        pins.append(
            Pin(
                name=canonicalize_name(requirement.name),
                version=specifiers[0].version,
                hashes=hashes,
                marker=str(requirement.marker or ""),
            )
        )
    return pins


def _logical_lines(text: str) -> Iterable[str]:
    buffer = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            yield buffer.strip()
        buffer = ""
    if buffer.strip():
        yield buffer.strip()


def resolved_fields(text: str) -> dict[str, str]:
    """The framework builds a constraints file's header records: declared name -> requirement."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(_HEADER_RESOLVED):
            name, _, requirement = line.removeprefix(_HEADER_RESOLVED).partition(_RESOLVED_ARROW)
            found[canonicalize_name(name.strip())] = requirement.strip()
    return found


def header_fields(text: str) -> tuple[str | None, list[str]]:
    """The recorded input digest and requirements of a constraints file's header."""
    digest = None
    requirements = []
    for line in text.splitlines():
        if line.startswith(_HEADER_INPUT):
            digest = line.removeprefix(_HEADER_INPUT).strip()
        elif line.startswith(_HEADER_REQUIREMENT):
            requirements.append(line.removeprefix(_HEADER_REQUIREMENT).strip())
    return digest, requirements


# -- checking --------------------------------------------------------------------------


def cuda_content(config: Config) -> cuda_wheels.CudaContent:
    """What decides whether a pin is CUDA runtime: its wheel's content (see cuda_wheels)."""
    return cuda_wheels.CudaContent(
        wheelcache.open_cache(),
        config.index_url or wheelcache.DEFAULT_INDEX_URL,
        config.ca_bundle,
    )


def device_mismatches(variant: Variant, config: Config) -> list[device_pins.Mismatch]:
    """How the variant's constraints file on disk does not fit its device."""
    try:
        text = variant.constraints.read_text(encoding="utf-8")
        pins = parse_constraints(text, variant.constraints.name)
    except (OSError, UnicodeDecodeError, LockError):
        return []  # staleness names what is wrong with the file itself
    return device_pins.mismatches(
        pins,
        variant.device,
        variant.name,
        variant.constraints.name,
        holds_cuda=cuda_content(config),
    )


def staleness(path: Path, expected: LockInput) -> list[str]:
    """Why ``path`` does not match ``expected`` (empty when it does)."""
    name = path.name
    if not path.is_file():
        return [f"{name} is missing"]
    text = path.read_text(encoding="utf-8")
    digest, recorded = header_fields(text)
    problems: list[str] = []
    if digest is None:
        return [f"{name} has no `harness lock` header"]
    if digest != expected.digest:
        was = {_req_name(r): r for r in recorded}
        now = {_req_name(r): r for r in expected.requirements}
        problems += [
            f"{name}: {now[n]} is declared but not locked" for n in sorted(now.keys() - was.keys())
        ]
        problems += [
            f"{name}: {was[n]} is locked but no longer declared"
            for n in sorted(was.keys() - now.keys())
        ]
        problems += [
            f"{name}: {n} changed from {was[n]!r} to {now[n]!r}"
            for n in sorted(now.keys() & was.keys())
            if was[n] != now[n]
        ]
        if not problems:
            problems.append(f"{name} was locked for other settings (python, platform) or edited")
        return problems
    edited = pins_edited(text, name)
    if edited is not None:
        return [edited]
    try:
        pins = {p.name: p for p in parse_constraints(text, name)}
        resolved = resolved_fields(text)
        for text_requirement in expected.requirements:
            resolved_as = resolved.get(_req_name(text_requirement))
            if resolved_as is not None:
                _parse_requirement(resolved_as, f"{name}'s header")
    except (LockError, ConfigError) as error:
        return [error.message]
    for text_requirement in expected.requirements:
        requirement = Requirement(resolved.get(_req_name(text_requirement), text_requirement))
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{name}: {requirement.name} is declared but has no pin")
        elif not _satisfies(requirement, pin.version):
            problems.append(f"{name}: pin {pin.name}=={pin.version} does not satisfy {requirement}")
    return problems


def _req_name(text: str) -> str:
    return canonicalize_name(Requirement(text).name)


def _satisfies(requirement: Requirement, version: str) -> bool:
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def check(
    config: Config, variants: Sequence[Variant] | None = None, *, uv_lock: bool = True
) -> list[str]:
    """Every reason the committed lock files are stale; empty when all are current."""
    problems: list[str] = []
    for variant in variants or variants_in_use(config):
        stale = staleness(variant.constraints, variant_input(config, variant))
        problems += stale or [m.one_line() for m in device_mismatches(variant, config)]
    if locks_harness_build(config):
        problems += staleness(config.project_root / BUILD_CONSTRAINTS, build_input(config))
    # uv.lock can only be checked with an interpreter for the project (see lock()).
    if uv_lock and missing_interpreter(config) is None:
        result = _uv(["lock", "--check"], config, cwd=config.project_root, check=False)
        if result.returncode != 0:
            problems.append(f"{UV_LOCK} does not match pyproject.toml ({_last_line(result.err)})")
    return problems


def framework_differences(variants: Sequence[Variant]) -> list[str]:
    """Frameworks the variants' constraints files pin at different versions (a cpu image
    with torch 2.13 and a cuda one with 2.15 do not run the same experiment)."""
    pins_by_variant: dict[str, dict[str, str]] = {}
    for variant in variants:
        try:
            text = variant.constraints.read_text(encoding="utf-8")
            pins = parse_constraints(text, variant.constraints.name)
        except (OSError, UnicodeDecodeError, LockError):
            continue  # staleness names what is wrong with the file itself
        pins_by_variant[variant.name] = {pin.name: pin.version for pin in pins}
    return framework_builds.differences(pins_by_variant)


def require_fresh(config: Config, variant: Variant) -> list[Pin]:
    """The variant's pins, or a LockError saying why they cannot be used."""
    problems = staleness(variant.constraints, variant_input(config, variant))
    if problems:
        raise LockError(
            f"constraints for the {variant.name} variant are not usable: {problems[0]}",
            f"run `harness lock --variant {variant.name}` (and commit the result)",
        )
    mismatched = device_mismatches(variant, config)
    if mismatched:
        raise LockError(
            f"constraints for the {variant.name} variant are not usable: {mismatched[0].message}",
            mismatched[0].fix,
        )
    return parse_constraints(
        variant.constraints.read_text(encoding="utf-8"), variant.constraints.name
    )


# -- writing ---------------------------------------------------------------------------


def lock(
    config: Config,
    variants: Sequence[Variant] | None = None,
    *,
    builds: framework_builds.BuildLister | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """Resolve every constraints file, then write them and uv.lock together; returns the
    files written. ``builds`` asks the sources which framework builds exist (the real
    sources by default)."""
    selected = list(variants or variants_in_use(config))
    # The framework versions are agreed among every variant in use, not only those
    # relocked now: `lock --variant cuda` must pin the torch the cpu variant has.
    agreeing = [*selected, *(v for v in variants_in_use(config) if v not in selected)]
    resolved = framework_resolutions(config, agreeing, builds, say)
    texts: dict[Path, str] = {}
    for variant in selected:
        lock_input = variant_input(config, variant)
        lock_input = dataclasses.replace(
            lock_input, resolved=tuple(sorted(resolved.get(variant.name, {}).items()))
        )
        texts[variant.constraints] = resolve(
            config,
            lock_input,
            variant.constraints.name,
            ["--python-platform", config.platform],
            find_links=variant.find_links,
            variant=variant,
        )
    if locks_harness_build(config):
        target = config.project_root / BUILD_CONSTRAINTS
        texts[target] = resolve(
            config, build_input(config), target.name, ["--universal"], find_links=False
        )
    uv_lock = config.project_root / UV_LOCK
    missing = missing_interpreter(config)
    if missing is not None:
        say(f"{UV_LOCK} left as it was: {missing}")
    written = [*texts] if missing is not None else [uv_lock, *texts]
    with _restored_on_failure(written):
        if missing is None:
            _uv(["lock"], config, cwd=config.project_root)
        for path, text in texts.items():
            atomic.write_text(path, text)
    return written


def unprovided_imports(config: Config, variants: Sequence[Variant] | None = None) -> list[str]:
    """One warning per constraints file that provides none of some imports of the project's
    code (see :mod:`harness.images.unpinned_imports`)."""
    inferred = project_code.read(config.project_root).dependencies()
    warnings = []
    for variant in variants or variants_in_use(config):
        if not variant.constraints.is_file():
            continue
        pins = parse_constraints(variant.constraints.read_text(), variant.constraints.name)
        missing = unpinned_imports.unpinned(inferred, (pin.name for pin in pins))
        if missing:
            warnings.append(
                unpinned_imports.warning(missing, variant.constraints.name, config.dependency_group)
            )
    return warnings


def framework_resolutions(
    config: Config,
    variants: Sequence[Variant],
    builds: framework_builds.BuildLister | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, dict[str, str]]:
    """Variant name -> declared framework -> the requirement that takes its build."""
    declared = declared_requirements(config)
    if not any(canonicalize_name(r.name) in framework_builds.FRAMEWORKS for r in declared):
        return {}
    say("asking the wheel sources which framework builds they have")
    choices = framework_builds.choose(
        config, declared, variants, builds or framework_builds.lister(config)
    )
    by_variant: dict[str, dict[str, str]] = {}
    for choice in choices:
        say(choice.note)
        if choice.differs:
            say(f"warning: {choice.differs}")
        for name, requirement in choice.requirements.items():
            by_variant.setdefault(name, {})[choice.framework] = requirement
    return by_variant


@contextlib.contextmanager
def _restored_on_failure(paths: Sequence[Path]) -> Iterator[None]:
    """Every file in ``paths`` as it was (or absent) unless the block completes."""
    before = {path: path.read_bytes() if path.is_file() else None for path in paths}
    try:
        yield
    except BaseException:
        for path, data in before.items():
            with contextlib.suppress(OSError):
                if data is None:
                    path.unlink(missing_ok=True)
                elif not path.is_file() or path.read_bytes() != data:
                    atomic.write_bytes(path, data)
        raise


def compile_to(
    config: Config,
    lock_input: LockInput,
    target: Path,
    extra: Sequence[str],
    *,
    find_links: bool,
    variant: Variant | None = None,
) -> None:
    """Resolve ``lock_input`` into ``target``; with ``variant``, refuse pins that do not
    fit its device, leaving the file on disk as it was."""
    text = resolve(config, lock_input, target.name, extra, find_links=find_links, variant=variant)
    atomic.write_text(target, text)


def resolve(
    config: Config,
    lock_input: LockInput,
    target_name: str,
    extra: Sequence[str],
    *,
    find_links: bool,
    variant: Variant | None = None,
) -> str:
    """The constraints file's text for ``lock_input``; with ``variant``, refuse pins that do
    not fit its device. Nothing is written."""
    with tempfile.TemporaryDirectory(prefix="harness-lock-") as folder:
        # uv annotates pins with the input file's path; a bare name keeps machine paths out.
        (Path(folder) / "requirements.in").write_text("\n".join(lock_input.to_resolve()) + "\n")
        arguments = [
            "pip", "compile", "requirements.in",
            "--generate-hashes", "--no-header", "--quiet",
            "--python-version", config.python,
            "--output-file", "constraints.txt",
            *extra,
        ]  # fmt: skip
        if find_links:
            for folder_or_url in config.find_links:
                arguments += ["--find-links", folder_or_url]
        _uv(arguments, config, cwd=Path(folder), what=lock_input.label)
        body = (Path(folder) / "constraints.txt").read_text(encoding="utf-8")
    pins = parse_constraints(body, target_name)  # refuse a file the build would reject
    if variant is not None:
        mismatched = device_pins.mismatches(
            pins, variant.device, variant.name, target_name, holds_cuda=cuda_content(config)
        )
        if mismatched:
            raise LockError(
                f"the resolution for the {variant.name} variant does not fit its "
                f"{variant.device} image, so {target_name} was left as it was (and uv.lock "
                f"with it): {mismatched[0].message.removeprefix(target_name + ' ')}",
                mismatched[0].fix,
            )
    return lock_input.header() + f"{_HEADER_PINS}{pins_digest(body)}\n" + body


def pins_digest(text: str) -> str:
    """sha256 of a constraints file's pins: its lines that are not comments, stripped."""
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith("#")]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def pins_edited(text: str, name: str) -> str | None:
    """Why the pins of a constraints file are not those `harness lock` wrote, if so."""
    recorded = next(
        (
            line.removeprefix(_HEADER_PINS).strip()
            for line in text.splitlines()
            if line.startswith(_HEADER_PINS)
        ),
        None,
    )
    if recorded is None or recorded == pins_digest(text):
        return None
    return f"{name}: its pins or hashes were changed after `harness lock` wrote them"


# What to do about a file locked before its pins' digest was recorded (see undigested).
UNDIGESTED_FIX = (
    "run `harness lock` to record it (it resolves again: review the pins it moves before "
    "committing them)"
)


def undigested(path: Path) -> str | None:
    """Why the pins of ``path`` cannot be told to be those `harness lock` wrote: it was
    locked before the lock recorded their digest (``# pins-sha256:``).

    Such a file is still used: refusing it would force every project locked before to
    resolve again, and a new resolution moves pins (new releases since), which is not what
    a reproducibility tool may do behind its user's back. So every command that checks the
    file (`lock --check`, `doctor`, `build`) says that an edited pin in it cannot be told,
    with the fix; none passes it in silence. (pip's --require-hashes at build time still
    refuses a hash that no longer matches its wheel; only the digest catches a pin moved
    to another release together with that release's hashes.)
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # staleness names what is wrong with the file itself
    digest, _ = header_fields(text)
    if digest is None or any(line.startswith(_HEADER_PINS) for line in text.splitlines()):
        return None
    return (
        f"{path.name} was locked before `harness lock` recorded its pins' digest, so a pin "
        "or hash edited by hand in it cannot be told"
    )


def unverifiable(config: Config, variants: Sequence[Variant] | None = None) -> list[str]:
    """The constraints files in use whose pins cannot be told unedited (see undigested)."""
    paths = [variant.constraints for variant in variants or variants_in_use(config)]
    if locks_harness_build(config):
        paths.append(config.project_root / BUILD_CONSTRAINTS)
    return [why for path in paths if (why := undigested(path)) is not None]


def missing_interpreter(config: Config) -> str | None:
    """Why uv cannot write the project's uv.lock here, or None when it can.

    ``uv lock`` needs an interpreter that fits the project's requires-python and
    .python-version on this machine (it would download one, which fails where Python's
    builds cannot be reached). The constraints files do not: they are resolved for the
    image's Python by version (``--python-version``), so a project on a Python this
    machine lacks still gets its image's lock.
    """
    result = _uv(["python", "find"], config, cwd=config.project_root, check=False)
    if result.returncode == 0:
        return None
    return (
        f"uv needs a Python for the project on this machine to write it, and finds none "
        f"({_last_line(result.err)}); the image's constraints do not need one"
    )


def _uv(
    arguments: Sequence[str],
    config: Config,
    *,
    cwd: Path,
    check: bool = True,
    what: str = "",
) -> commands.Completed:
    environment = dict(os.environ)
    # Interpreters come from the machine: a download uv tried would fail where only package
    # indexes answer, and hide the real reason behind "Request failed after 3 retries".
    environment["UV_PYTHON_DOWNLOADS"] = "never"
    if config.index_url:
        environment["UV_DEFAULT_INDEX"] = config.index_url
    if config.ca_bundle:
        environment["SSL_CERT_FILE"] = str(config.ca_bundle)
    result = progress.during(
        f"uv {arguments[0]}",
        commands.call,
        [find_uv_bin(), *arguments],
        cwd=cwd,
        env=environment,
        timeout=commands.RESOLVE_S,
        hint="check that the package index answers (`harness doctor`), then lock again",
    )
    if check and result.returncode != 0:
        command = " ".join(arguments[:2]) if arguments[0] == "pip" else arguments[0]
        for_what = f" for {what}" if what else ""
        raise ResolutionError(
            f"uv {command} failed{for_what}, so no lock file was written: "
            f"{_last_line(result.err)} (uv's whole explanation is above)",
            _os_trouble(result.err)
            or "fix what uv names (a declared dependency, a wheel source: `harness doctor` "
            "checks the sources), then lock again",
            explanation=result.err.strip() or "uv printed nothing",
        )
    return result


# uv's lines that say why it failed: the error, the causes under it, and its hints.
_REASON = re.compile("^(error|caused by|cause|\u00d7|\u2570|\u251c|hint)", re.IGNORECASE)
_REASON_LINES = 4
_REASON_CHARACTERS = 600
# What uv says when the machine, not the dependencies, failed it (its "os error N").
_OS_TROUBLE = (
    (
        re.compile(r"No space left on device|os error 28|Disk quota exceeded|os error 122"),
        "a disk is full: free space (`df -h`) on the project's, the temporary folder's and "
        "uv's cache's file systems, then lock again",
    ),
    (
        re.compile(r"Read-only file system|os error 30"),
        "a folder uv writes is read-only (the project, the temporary folder or uv's cache): "
        "make it writable, then lock again",
    ),
    (
        re.compile(r"Permission denied|os error 13"),
        "uv may not write a folder it needs (the project, the temporary folder or uv's "
        "cache): check their permissions, then lock again",
    ),
)


def _os_trouble(err: str) -> str | None:
    """The fix when uv failed for the machine's reasons (a full disk...), else None."""
    return next((fix for pattern, fix in _OS_TROUBLE if pattern.search(err)), None)


def _last_line(text: str) -> str:
    """uv's own reason, on one line: the error with its causes (the innermost cause is
    usually the one that names the fix), bounded in length."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    interesting = [line for line in lines if _REASON.match(line)]
    chosen = interesting or lines or ["no output"]
    if len(chosen) > _REASON_LINES:
        chosen = [*chosen[:2], "...", *chosen[-(_REASON_LINES - 2) :]]
    reason = " ".join(chosen)
    return reason if len(reason) <= _REASON_CHARACTERS else reason[: _REASON_CHARACTERS - 3] + "..."


def stale_error(problems: Sequence[str]) -> StaleLock:
    return StaleLock(f"lock files are stale: {'; '.join(problems)}")
