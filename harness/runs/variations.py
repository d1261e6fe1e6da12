"""Named variations of how a run's container is set up, in the spirit of Debian's reprotest.

Each variation changes one thing about the container that a reproducible experiment must
not depend on. A control run uses :data:`CONTROL`; ``harness verify`` runs again with all
variations at once and, when the artifacts move, with each one alone to name the culprit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from harness.container import CONTAINER_USER, HOSTNAME, MOVED_PROJECT, PROJECT
from harness.errors import ConfigError


@dataclass(frozen=True)
class Setup:
    """The parts of a run's container that variations change."""

    hostname: str = HOSTNAME
    user: str = CONTAINER_USER
    working_dir: str = PROJECT
    cpuset: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # Variables of the determinism environment that this run leaves unset.
    unset_env: frozenset[str] = frozenset()
    variations: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "hostname": self.hostname,
            "user": self.user,
            "working_dir": self.working_dir,
            "cpuset": self.cpuset,
            "extra_env": dict(self.extra_env),
            "unset_env": sorted(self.unset_env),
            "variations": list(self.variations),
        }


CONTROL = Setup()


@dataclass(frozen=True)
class Variation:
    name: str
    description: str
    apply: Callable[[Setup], Setup]


def _env(setup: Setup, **values: str) -> Setup:
    return replace(setup, extra_env={**setup.extra_env, **values})


VARIATIONS: tuple[Variation, ...] = (
    Variation(
        "cpus",
        "one CPU, and another core than usual: thread placement and CPU count",
        lambda s: replace(s, cpuset="0"),
    ),
    Variation("hostname", "another host name", lambda s: replace(s, hostname="reprotest-host")),
    Variation(
        "timezone",
        "a far-off time zone with a non-hour offset",
        # A POSIX TZ string needs no tzdata in the image.
        lambda s: _env(s, TZ="HST-12:45"),
    ),
    Variation("locale", "another locale", lambda s: _env(s, LANG="C", LC_ALL="C")),
    Variation("user", "another user and group id", lambda s: replace(s, user="10002:10002")),
    # The project elsewhere, the experiment still standing in it: what differs between two
    # checkouts (/home/alice/study, /srv/ci/study). A script that reads data/train.csv
    # from where it is run works as its authors run it; one whose results hold the folder
    # it lay in (a config saved with absolute paths) moves.
    Variation(
        "workdir",
        "the project at another path",
        lambda s: replace(s, working_dir=MOVED_PROJECT),
    ),
    Variation(
        "env",
        "unrelated environment variables",
        lambda s: _env(s, HARNESS_NOISE="1", REPROTEST_CAPTURE_ENVIRONMENT="yes", EDITOR="ed"),
    ),
    Variation(
        "hashseed",
        "PYTHONHASHSEED left unpinned (Python picks a random one)",
        lambda s: replace(s, unset_env=s.unset_env | {"PYTHONHASHSEED"}),
    ),
)
BY_NAME = {variation.name: variation for variation in VARIATIONS}


def select(spec: str | Iterable[str] | None) -> list[Variation]:
    """Variations named by ``spec``: "all" (default), "none", names, "-name" to leave one out."""
    if spec is None:
        words = ["all"]
    elif isinstance(spec, str):
        words = [w.strip() for w in spec.split(",") if w.strip()]
    else:
        words = list(spec)
    chosen: list[str] = []
    for word in words or ["all"]:
        name = word.lstrip("+-")
        if name == "all":
            chosen = [v.name for v in VARIATIONS]
            continue
        if name == "none":
            chosen = []
            continue
        if name not in BY_NAME:
            raise ConfigError(
                f"unknown variation {name!r}",
                f"choose from: all, none, {', '.join(BY_NAME)} (prefix - to leave one out)",
            )
        if word.startswith("-"):
            chosen = [n for n in chosen if n != name]
        elif name not in chosen:
            chosen.append(name)
    return [BY_NAME[name] for name in chosen]


def setup_for(variations: Iterable[Variation]) -> Setup:
    setup = CONTROL
    names = []
    for variation in variations:
        setup = variation.apply(setup)
        names.append(variation.name)
    return replace(setup, variations=tuple(names))
