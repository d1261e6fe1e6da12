"""Named variations of how a run's container is set up, in the spirit of Debian's reprotest.

Each variation changes one thing about the container that a reproducible experiment must
not depend on. A control run uses :data:`CONTROL`; ``harness verify`` runs again with all
variations at once and, when the artifacts move, with each one alone to name the culprit.

Which variations an experiment's verification makes is chosen once, by this cascade (the
first that says wins): ``--vary`` on the command line, ``vary`` under the experiment's
``[tool.harness.experiments.NAME]``, ``vary`` under ``[tool.harness.verify]``, else all.
The choice keeps where it came from, so that a verification says that a variation was left
out by configuration rather than never tried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness import config_schema
from harness.config import Config, Experiment
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


# Where a choice of variations came from, strongest first.
COMMAND_LINE = "command line"
EXPERIMENT_CONFIG = "experiment config"
PROJECT_CONFIG = "project config"
DEFAULT = "default"
# Why a variation the choice names did not run: it needs a container, which the host
# executor and SLURM jobs have not.
NEEDS_A_CONTAINER = "needs a container"


@dataclass(frozen=True)
class Choice:
    """The variations one experiment's verification makes, and where the choice came from.

    ``asked`` is the choice as written (``("all", "-workdir")``); ``left_out`` names each
    known variation that does not run with why: the choice's source when the choice
    leaves it out, or what the executor lacks."""

    variations: tuple[Variation, ...]
    source: str
    asked: tuple[str, ...] = ("all",)
    left_out: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variations]

    def without(self, names: Iterable[str], why: str) -> Choice:
        """This choice less ``names``, each said to be left out for ``why``."""
        unwanted = set(names)
        dropped = [v.name for v in self.variations if v.name in unwanted]
        return replace(
            self,
            variations=tuple(v for v in self.variations if v.name not in dropped),
            left_out={**self.left_out, **dict.fromkeys(dropped, why)},
        )

    def as_dict(self) -> dict[str, object]:
        """What a verification document says of the choice: what ran, what did not and why,
        and where the choice came from."""
        return {
            "varied": self.names,
            "left_out": {name: self.left_out[name] for name in BY_NAME if name in self.left_out},
            "chosen_by": self.source,
            "asked": list(self.asked),
        }


def words_of(spec: str | Sequence[str]) -> tuple[str, ...]:
    """A choice as its words: ``"all, -workdir"`` and ``["all", "-workdir"]`` alike."""
    if isinstance(spec, str):
        return tuple(word.strip() for word in spec.split(",") if word.strip())
    return tuple(spec)


def chosen(words: Sequence[str], source: str) -> Choice:
    """The choice ``words`` make (see :func:`select`), coming from ``source``."""
    variations = tuple(select(words))
    names = {v.name for v in variations}
    return Choice(
        variations,
        source,
        asked=tuple(words) or ("all",),
        left_out={name: source for name in BY_NAME if name not in names},
    )


def choice_for(config: Config, experiment: Experiment, command_line: str | None) -> Choice:
    """The variations ``experiment`` is verified under, by the cascade of this module's
    docstring. The configuration's values were checked when it was loaded."""
    if command_line is not None:
        return chosen(words_of(command_line), COMMAND_LINE)
    if experiment.vary is not None:
        return chosen(experiment.vary, EXPERIMENT_CONFIG)
    project_wide = config.table("verify").get("vary")
    if project_wide is not None:
        return chosen(words_of(project_wide), PROJECT_CONFIG)
    return chosen(("all",), DEFAULT)


def choices_for(
    config: Config, experiments: Iterable[Experiment], command_line: str | None
) -> dict[str, Choice]:
    """Each experiment's choice, by name."""
    return {e.name: choice_for(config, e, command_line) for e in experiments}


def per_experiment(
    variations: Sequence[Variation] | Mapping[str, Choice], names: Iterable[str]
) -> dict[str, Choice]:
    """Each experiment's choice: as given, or one list of variations for every experiment,
    which is what the command asked for (``harness run --hosts`` asks for none)."""
    if isinstance(variations, Mapping):
        return {name: variations[name] for name in names}
    every = chosen([v.name for v in variations] or ["none"], COMMAND_LINE)
    return dict.fromkeys(names, every)


def without(
    choices: Mapping[str, Choice], names: Iterable[str], why: str
) -> tuple[dict[str, Choice], list[str]]:
    """Every choice less ``names`` (said to be left out for ``why``), and which of them any
    choice had named."""
    unwanted = set(names)
    named = ran_in_any(choices.values())
    return (
        {name: choice.without(unwanted, why) for name, choice in choices.items()},
        [name for name in named if name in unwanted],
    )


def as_certified(
    config: Config, experiment: Experiment, varied: Iterable[str], *, cannot_make: Iterable[str]
) -> dict[str, object]:
    """What a certificate says of an experiment's variations: ``varied``, the variations its
    checked runs were made under, and why each other one was not made, as the certifier's
    own configuration accounts for it (left out there, or one the executor ``cannot_make``),
    else ``command line``. Never what a verification document claims."""
    made = set(varied)
    configured = choice_for(config, experiment, None)
    unable = set(cannot_make)
    left_out = {}
    for name in BY_NAME:
        if name in made:
            continue
        if name in configured.left_out:
            left_out[name] = configured.source
        elif name in unable:
            left_out[name] = NEEDS_A_CONTAINER
        else:
            left_out[name] = COMMAND_LINE
    return {"varied": [name for name in BY_NAME if name in made], "left_out": left_out}


def ran_in_any(choices: Iterable[Choice]) -> list[str]:
    """The variations some experiment ran under, in their usual order."""
    ran = {name for choice in choices for name in choice.names}
    return [name for name in BY_NAME if name in ran]


def leave_out_line(choice: Choice | None, experiment: str, names: Sequence[str]) -> str:
    """The configuration line that leaves the variations ``names`` out for ``experiment``,
    from the choice made (``vary = ["all", "-workdir"]`` under its table), and the flag that
    does it for one verify."""
    kept = [w for w in (choice.asked if choice else ("all",)) if w.lstrip("+-") not in names]
    still = {v.name for v in select(kept or ["none"])}
    kept += [f"-{name}" for name in names if name in still]
    words = kept or ["none"]
    line = "vary = [" + ", ".join(json.dumps(word) for word in words) + "]"
    return (
        f"{line} under {config_schema.header(('experiments', experiment))} in pyproject.toml, "
        f"or --vary={','.join(words)} for one verify"
    )
