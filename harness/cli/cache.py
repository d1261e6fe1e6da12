"""`harness cache`: what the wheel cache holds, and removing what no build uses any more.

The wheel cache (see :mod:`harness.images.wheelcache`) grows by every wheel a build ever pinned,
across projects and variants: a CUDA set alone is gigabytes. Each build marks the files it
used, so pruning by age removes what the current constraints no longer name and keeps
what builds still take from it. Nothing in a project's configuration points here: the
folder is ``$HARNESS_WHEEL_CACHE`` or the user's cache folder.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import click

from harness.cli.options import json_option
from harness.cli.state import State
from harness.config import find_project_root
from harness.errors import ConfigError
from harness.images import frameworks, layers, wheelcache
from harness.ui import UI

if TYPE_CHECKING:
    from harness.engine import ContainerEngine

_AGE = re.compile(r"^(?P<count>[0-9]{1,6})(?P<unit>[dhm])$")
_SECONDS = {"d": 86400, "h": 3600, "m": 60}


def parse_age(text: str) -> float:
    """``30d``, ``12h`` or ``90m`` as seconds."""
    match = _AGE.match(text.strip().lower())
    if match is None:
        raise ConfigError(f"--unused-for {text!r} is not an age", "write it as 30d, 12h or 90m")
    return int(match.group("count")) * _SECONDS[match.group("unit")]


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ui(ctx: click.Context) -> UI:
    """The UI the main group made (its -q and -v), or a plain one."""
    ui = getattr(ctx.find_root().obj, "ui", None)
    return ui if isinstance(ui, UI) else UI()


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


@click.group("cache", invoke_without_command=True)
@json_option("the cache's size")
@click.pass_context
def cache_group(ctx: click.Context, as_json: bool) -> None:
    """Show the wheel cache: where it is, how many wheels, how large.

    Builds download each pinned wheel once into it (checked against the constraints'
    sha256) and take it from there afterwards, in every project and variant.

    \b
      harness cache                      where, how many, how large
      harness cache prune                remove wheels and frameworks layers no build
                                         used for 30 days, and frameworks images no
                                         image is built on
      harness cache prune --all          every wheel (and those images)
    """
    if ctx.invoked_subcommand is not None:
        return
    stats = wheelcache.open_cache().stats()
    ui = _ui(ctx)
    if as_json:
        ui.json(stats.as_dict())
        return
    ui.result(
        f"{stats.root}: {stats.wheels} wheels, {_size(stats.size)}; last used "
        f"{_when(stats.newest_use)}, least recently used {_when(stats.oldest_use)}"
    )


@cache_group.command("prune")
@click.option(
    "--unused-for",
    default="30d",
    show_default=True,
    metavar="AGE",
    help="Remove wheels no build used for this long (30d, 12h, 90m).",
)
@click.option("--all", "everything", is_flag=True, help="Remove every wheel.")
@click.option(
    "--wheels-only",
    is_flag=True,
    help="Leave the engine alone: prune the wheel cache only.",
)
@json_option("what was removed")
@click.pass_context
def prune_command(
    ctx: click.Context, unused_for: str, everything: bool, wheels_only: bool, as_json: bool
) -> None:
    """Remove wheels and cached frameworks layers no build used for a while (a later build
    downloads or installs them again), and the frameworks images no image on the engine is
    built on any more.

    A frameworks image (harness-frameworks:<input>) holds the large pins of a variant,
    installed once; every image built on it shares its layers, so while one exists it
    costs no disk of its own and stays. One that no image starts with any more (they
    were removed, or the large pins moved on) holds gigabytes for nothing and goes; a
    later build that needs it builds it again.
    """
    age = None if everything else parse_age(unused_for)
    ui = _ui(ctx)
    removed: list[frameworks.Unused] = []
    if not wheels_only:
        # The engine first: unreachable, it fails the command before any wheel is gone.
        engine = _engine(ctx)
        removed = [
            image for image in frameworks.unused(engine)
            if engine.remove_unused_image(image.reference)
        ]  # fmt: skip
    pruned = wheelcache.open_cache().prune(unused_for=age)
    layer_count, layer_bytes = layers.open_cache().prune_unused(age)
    if as_json:
        ui.json(
            {
                **pruned.as_dict(),
                "frameworks_images": [image.as_dict() for image in removed],
                "frameworks_layers": {"removed": layer_count, "size": layer_bytes},
            }
        )
        return
    ui.result(f"removed {pruned.wheels} wheels ({_size(pruned.size)}); {pruned.kept} kept")
    ui.result(f"removed {layer_count} cached frameworks layers ({_size(layer_bytes)})")
    if not wheels_only:
        names = ", ".join(image.reference for image in removed) or "none"
        ui.result(f"removed frameworks images no image is built on: {names}")


def _engine(ctx: click.Context) -> ContainerEngine:
    """The project's engine inside a project, else the environment's (DOCKER_HOST)."""
    from harness.engine import Engine  # noqa: PLC0415  # the docker SDK is slow to import

    state = ctx.find_root().obj
    if not isinstance(state, State):
        return Engine.connect(None)
    try:
        find_project_root(state.project)
    except ConfigError:  # no project here: the wheel cache and the engine are the machine's
        return Engine.connect(None)
    return Engine.connect(state.config().docker_host)
