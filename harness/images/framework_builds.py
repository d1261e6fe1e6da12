"""Which build of torch, TensorFlow and XGBoost each variant locks, asked of the sources.

Researchers write ``torch`` or ``torch==2.13.0`` and expect both images to work. But PyPI's
torch for Linux is the CUDA build, the CPU build lives elsewhere under a local version
(``2.13.0+cpu``), and a resolver left alone gives the CPU variant gigabytes of CUDA wheels
or, told to take ``+cpu``, a version no configured source has ("No solution found"). So
before resolving, ``harness lock`` asks each variant's sources (its wheel folders and
pages, and the index) which builds of the framework exist for the image's Python and
platform, and writes the requirement that takes the right one:

- torch: the CPU variant takes ``torch==V+cpu``, the CUDA variant ``torch==V`` from the
  index (or a ``+cuXYZ`` build);
- TensorFlow: the CPU variant takes ``tensorflow-cpu==V`` where a source has it (else
  ``tensorflow==V``, which carries no CUDA runtime), the CUDA variant
  ``tensorflow[and-cuda]==V``, or ``tensorflow==V`` beside torch, whose ``nvidia-*``
  wheels are the CUDA runtime (the two frameworks' extras ask for different CUDA majors);
- XGBoost: PyPI's ``xgboost`` for Linux requires NCCL's CUDA wheel (``nvidia-nccl-cu*``,
  hundreds of megabytes a CPU image cannot use), so the CPU variant takes
  ``xgboost-cpu==V`` (the same library without it) where a source has it, the CUDA
  variant ``xgboost==V``;
- torchvision and torchaudio, compiled against one torch build and released with it
  (torch 2.13 has torchvision 0.28 and torchaudio 2.13): each variant takes the release of
  its torch, built as its torch is (``torchvision==0.28.0+cpu`` beside ``torch==2.13.0+cpu``;
  PyPI's, built against PyPI's CUDA torch, fail to load beside a CPU torch).

V is the newest version the declaration allows that every variant's sources have, so the
variants of a project pin the same framework. Where no common version exists, each
variant takes its newest and the choice says which differ and why; where a variant has
none at all, the error lists the builds that do exist and the line to write.

A variant's own ``replace`` of the framework always wins: nothing is chosen for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from harness.config import Config, Variant
from harness.errors import LockError
from harness.images import wheelcache, wheelindex, wheeltags
from harness.images.device_pins import CPU_DISTRIBUTIONS, TORCH_COMPANIONS

TORCH = "torch"
TENSORFLOW = "tensorflow"
XGBOOST = "xgboost"
FRAMEWORKS = (TORCH, TENSORFLOW, XGBOOST)
# The distributions of each framework a constraints file may pin (for the comparison of
# variants).
FAMILIES = {
    TORCH: (TORCH,),
    TENSORFLOW: (TENSORFLOW, "tensorflow-cpu", "tensorflow-intel"),
    XGBOOST: (XGBOOST, "xgboost-cpu"),
}
_CUDA_EXTRA = "and-cuda"
# Builds listed in an error: the newest few are what a user can act on.
_LISTED = 8


@dataclass(frozen=True)
class Build:
    """One version of a distribution a source offers for the image, and which source."""

    name: str
    version: Version
    where: str


# (distribution, variant) -> the builds its sources offer for the image.
BuildLister = Callable[[str, Variant], list[Build]]


@dataclass(frozen=True)
class Choice:
    """What one declared framework becomes in each variant, and why."""

    framework: str
    declared: str
    # Variant name -> the requirement it resolves in place of the declared one.
    requirements: Mapping[str, str]
    # One line saying what was taken from where, for the user.
    note: str
    # Set when the variants could not agree on a version: which differ and why.
    differs: str = ""
    # Variant name -> the version of the build it takes.
    versions: Mapping[str, Version] = field(default_factory=dict)


def sources_of(config: Config, variant: Variant) -> wheelcache.Sources:
    """Where a variant's wheels come from, as the build will look for them."""
    return wheelcache.Sources(
        config.index_url or wheelcache.DEFAULT_INDEX_URL,
        config.find_links if variant.find_links else (),
        config.ca_bundle,
    )


def lister(config: Config) -> BuildLister:
    """Asks the real sources (folders, pages, the index), each page read once per lock."""
    target = wheeltags.Target.parse(config.python, config.platform)
    ranking = wheeltags.Ranking(target)
    session = requests.Session()
    if config.ca_bundle is not None:
        session.verify = str(config.ca_bundle)
    pages: dict[str, list[wheelindex.Offered]] = {}

    def read(url: str) -> list[wheelindex.Offered]:
        if url not in pages:
            pages[url] = wheelindex.read_listing(session, url)
        return pages[url]

    def builds(name: str, variant: Variant) -> list[Build]:
        sources = sources_of(config, variant)
        found: list[Build] = []
        for entry in sources.find_links:
            folder = local_folder(entry)
            if folder is not None:
                wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
                found += _builds(name, [wheel.name for wheel in wheels], entry, ranking)
            else:
                found += _builds(name, fitting(read(entry)), entry, ranking)
        index = sources.index_url
        offered = read(wheelindex.project_url(index, name))
        found += _builds(name, fitting(offered), wheelindex.redact(index), ranking)
        return found

    def fitting(offered: list[wheelindex.Offered]) -> list[str]:
        """The files a page lists that install on the image's Python (a py3 wheel's tags
        do not say: xgboost-cpu 3.4 needs 3.12)."""
        return [o.filename for o in offered if wheelindex.installs_on(o, target.python)]

    return builds


def local_folder(entry: str) -> Path | None:
    """The folder a find-links entry names (a path or a file:// URL); None for a page."""
    folders = wheelcache.local_folders([entry])
    return Path(folders[0]) if folders else None


def _builds(
    name: str, filenames: Iterable[str], where: str, ranking: wheeltags.Ranking
) -> list[Build]:
    found = []
    for filename in filenames:
        try:
            wheel_name, version, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if canonicalize_name(wheel_name) == name and ranking.rank(filename) is not None:
            found.append(Build(name, version, wheelindex.redact(where)))
    return found


def choose(
    config: Config,
    declared: Sequence[Requirement],
    variants: Sequence[Variant],
    builds: BuildLister,
) -> list[Choice]:
    """The build of every declared framework for each variant that does not replace it."""
    choices = []
    names = {canonicalize_name(r.name) for r in declared}
    for requirement in declared:
        framework = canonicalize_name(requirement.name)
        if framework not in FRAMEWORKS:
            continue
        choosing = [
            v for v in variants if framework not in {canonicalize_name(k) for k in v.replace}
        ]
        if choosing:
            beside_torch = framework == TENSORFLOW and TORCH in names
            choices.append(
                _choose_one(config, requirement, choosing, builds, beside_torch=beside_torch)
            )
    torch = next((choice for choice in choices if choice.framework == TORCH), None)
    if torch is not None:
        for requirement in declared:
            if canonicalize_name(requirement.name) in TORCH_COMPANIONS:
                companion = _companion(config, requirement, torch, variants, builds)
                if companion is not None:
                    choices.append(companion)
    return choices


def _companion(
    config: Config,
    requirement: Requirement,
    torch: Choice,
    variants: Sequence[Variant],
    builds: BuildLister,
) -> Choice | None:
    """The build of torchvision or torchaudio each variant takes: the release of its
    torch, built as its torch is; None when no variant's torch was chosen here."""
    name = canonicalize_name(requirement.name)
    requirements: dict[str, str] = {}
    picked: dict[str, Build] = {}
    for variant in variants:
        torch_version = torch.versions.get(variant.name)
        replaced = {canonicalize_name(k) for k in variant.replace}
        release = _companion_release(name, torch_version) if torch_version else None
        if torch_version is None or release is None or name in replaced:
            continue
        fitting = [
            build
            for build in builds(name, variant)
            if build.version.release[:2] == release
            and _local(build) == (torch_version.local or "").lower()
            and requirement.specifier.contains(build.version.public, prereleases=True)
        ]
        if not fitting:
            raise _no_companion_error(config, requirement, variant, torch_version, release)
        build = max(fitting, key=lambda b: b.version)
        picked[variant.name] = build
        requirements[variant.name] = _with_version(requirement, build.version)
    if not requirements:
        return None
    note = f"{requirement.name}: " + ", ".join(
        f"{variant} takes {requirements[variant].split(';')[0]} (the release of its torch, "
        f"from {build.where})"
        for variant, build in picked.items()
    )
    versions = {variant: build.version for variant, build in picked.items()}
    return Choice(name, str(requirement), requirements, note, versions=versions)


def _companion_release(name: str, torch: Version) -> tuple[int, int] | None:
    """The major and minor version of ``name`` released with ``torch`` (2.x only: torch
    2.m has torchvision 0.(m+15) and torchaudio 2.m)."""
    if torch.major != 2:
        return None
    return (0, torch.minor + 15) if name == "torchvision" else (2, torch.minor)


def _no_companion_error(
    config: Config,
    requirement: Requirement,
    variant: Variant,
    torch: Version,
    release: tuple[int, int],
) -> LockError:
    name = canonicalize_name(requirement.name)
    build = f"{name} {release[0]}.{release[1]}" + (f" +{torch.local}" if torch.local else "")
    sources = sources_of(config, variant).describe()
    why = (
        f"PyPI's {name} is built against PyPI's CUDA torch and fails to load beside torch {torch}"
        if torch.local
        else f"{name} must be the release built for torch {torch}"
    )
    where = (
        f"a wheel folder or page with {name}-{release[0]}.{release[1]}.*+{torch.local} wheels "
        f"(find-links / HARNESS_FIND_LINKS), or index-url = "
        f"https://download.pytorch.org/whl/{torch.local}"
        if torch.local
        else "an index or wheel folder that has it (index-url, find-links)"
    )
    return LockError(
        f"no build of {requirement} for the {variant.name} variant's torch {torch} in its "
        f"sources ({sources}): the {variant.name} variant needs {build}; {why}",
        f"add {where}, then run `harness lock`",
    )


def _choose_one(
    config: Config,
    requirement: Requirement,
    variants: Sequence[Variant],
    builds: BuildLister,
    *,
    beside_torch: bool,
) -> Choice:
    framework = canonicalize_name(requirement.name)
    offered: dict[str, dict[Version, Build]] = {}  # variant -> public version -> build
    for variant in variants:
        fitting = _fitting(framework, variant, builds)
        allowed: dict[Version, Build] = {}
        # Of one release, the plain build (+cpu) before its variants (+cpu.cxx11abi), and
        # the first source listed.
        for build in sorted(fitting, key=lambda b: len(b.version.local or "")):
            if requirement.specifier.contains(build.version.public, prereleases=True):
                allowed.setdefault(Version(build.version.public), build)
        # As pip and uv do: a pre-release only when the declaration names one, or nothing
        # else fits.
        finals = {v: b for v, b in allowed.items() if not v.is_prerelease}
        if finals and not requirement.specifier.prereleases:
            allowed = finals
        if not allowed:
            raise _no_build_error(config, requirement, variant, fitting, builds)
        offered[variant.name] = dict(sorted(allowed.items()))
    common = set.intersection(*(set(versions) for versions in offered.values()))
    differs = ""
    if common:
        picked = {name: versions[max(common)] for name, versions in offered.items()}
    else:
        picked = {name: versions[max(versions)] for name, versions in offered.items()}
        differs = _why_they_differ(framework, offered, picked)
    requirements = {
        name: _requirement_for(requirement, build, _device(variants, name), beside_torch)
        for name, build in picked.items()
    }
    note = f"{requirement.name}: " + ", ".join(
        f"{name} takes {requirements[name].split(';')[0]} (from {build.where})"
        for name, build in picked.items()
    )
    versions = {name: build.version for name, build in picked.items()}
    return Choice(framework, str(requirement), requirements, note, differs, versions)


def _device(variants: Sequence[Variant], name: str) -> str:
    return next(v.device for v in variants if v.name == name)


def _fitting(framework: str, variant: Variant, builds: BuildLister) -> list[Build]:
    """The builds of ``framework`` that fit the variant's device, from its sources."""
    if framework == TORCH:
        torch = builds(TORCH, variant)
        if variant.device == "cuda":
            return [b for b in torch if _local(b).startswith("cu") or not _local(b)]
        return [b for b in torch if _local(b).startswith("cpu")]
    if variant.device != "cuda":
        cpu_only = [b for b in builds(CPU_DISTRIBUTIONS[framework], variant) if not _local(b)]
        if cpu_only:
            return cpu_only
    return [b for b in builds(framework, variant) if not _local(b)]


def _local(build: Build) -> str:
    return (build.version.local or "").lower()


def _requirement_for(declared: Requirement, build: Build, device: str, beside_torch: bool) -> str:
    chosen = Requirement(str(declared))
    chosen.name = build.name
    chosen.specifier = Requirement(f"x=={build.version}").specifier
    if build.name == TENSORFLOW and device == "cuda" and not beside_torch:
        chosen.extras = {*chosen.extras, _CUDA_EXTRA}
    return str(chosen)


def _why_they_differ(
    framework: str, offered: Mapping[str, Mapping[Version, Build]], picked: Mapping[str, Build]
) -> str:
    taken = ", ".join(f"{name} {build.version}" for name, build in picked.items())
    missing = "; ".join(
        f"the {name} variant's sources have no fitting build of "
        + ", ".join(
            str(other.version.public)
            for other_name, other in picked.items()
            if other_name != name and Version(other.version.public) not in offered[name]
        )
        for name in picked
        if any(
            Version(other.version.public) not in offered[name]
            for other_name, other in picked.items()
            if other_name != name
        )
    )
    return f"{framework} differs between variants ({taken}): {missing}"


def _no_build_error(
    config: Config,
    requirement: Requirement,
    variant: Variant,
    fitting: Sequence[Build],
    builds: BuildLister,
) -> LockError:
    """No build fits: list what the sources do have, and the line that would lock."""
    framework = canonicalize_name(requirement.name)
    kind = "CUDA" if variant.device == "cuda" else "CPU"
    sources = sources_of(config, variant).describe()
    newest = sorted({b.version for b in fitting}, reverse=True)
    table = f"[dependency-groups] {config.dependency_group}"
    if newest:
        listed = ", ".join(str(v) for v in newest[:_LISTED])
        more = f" and {len(newest) - _LISTED} older" if len(newest) > _LISTED else ""
        line = _with_version(requirement, Version(newest[0].public))
        return LockError(
            f"no {kind} build of {requirement} for the {variant.name} variant in its sources "
            f"({sources}); the {kind} builds they have: {listed}{more}",
            f'write "{line}" in {table}, or add a source that has the build you want '
            "(find-links / HARNESS_FIND_LINKS, index-url), then run `harness lock`",
        )
    others = sorted(
        {str(b.version) for b in builds(framework, variant)},
        key=Version,
        reverse=True,
    )
    have = f"; they have only {', '.join(others[:_LISTED])}" if others else ""
    where = (
        "a wheel folder or page with torch-VERSION+cpu wheels (find-links / "
        "HARNESS_FIND_LINKS), or index-url = https://download.pytorch.org/whl/cpu"
        if framework == TORCH and kind == "CPU"
        else "an index or wheel folder that has it (index-url, find-links)"
    )
    return LockError(
        f"no {kind} build of {framework} for the {variant.name} variant in its sources "
        f"({sources}){have}",
        f"add {where}, then run `harness lock`",
    )


def _with_version(requirement: Requirement, version: Version) -> str:
    line = Requirement(str(requirement))
    line.specifier = Requirement(f"x=={version}").specifier
    return str(line)


def differences(pins_by_variant: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Frameworks whose versions differ between variants' constraints: one line each.

    ``pins_by_variant`` maps a variant to its pins (name -> version).
    """
    problems = []
    for framework, family in FAMILIES.items():
        versions = {
            variant: version
            for variant, pins in pins_by_variant.items()
            for name, version in pins.items()
            if name in family
        }
        publics = {Version(v).public for v in versions.values()}
        if len(publics) > 1:
            listed = ", ".join(f"{variant} {version}" for variant, version in versions.items())
            problems.append(
                f"the variants pin different {framework} versions ({listed}): results "
                f"compared across them come from different {framework} releases"
            )
    return problems


__all__ = [
    "FRAMEWORKS",
    "Build",
    "BuildLister",
    "Choice",
    "choose",
    "differences",
    "lister",
    "local_folder",
    "sources_of",
]
