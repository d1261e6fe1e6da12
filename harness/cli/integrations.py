"""`harness mlproject`: an MLproject file whose entry points run the experiments in the
pinned image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness.config import Config, find_project_root, load_config
from harness.engine import Engine
from harness.integrations.mlproject import MLPROJECT, pin_image, render_mlproject, write_mlproject


@click.command(
    "mlproject",
    short_help="Write an MLproject running the experiments in the pinned image.",
)
@click.option(
    "--image",
    "reference",
    metavar="REF",
    help="The image to pin (default: the cpu variant's, IMAGE:cpu).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(MLPROJECT),
    show_default=True,
    help="Where to write it, relative to the project root; - for stdout.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an MLproject that exists with other content (it is refused otherwise).",
)
@click.pass_context
def mlproject(ctx: click.Context, *, reference: str | None, output: Path, force: bool) -> None:
    """Write an MLproject file for MLflow Projects.

    Its docker_env.image is the image pinned by digest (its registry digest when it was
    pushed, else its image ID), its docker_env.environment the variables harness sets
    before a run, and each experiment under [tool.harness.experiments] becomes an entry
    point that starts harness's runtime in the image: seeds and determinism switches as in
    `harness run`. An entry's keyword defaults become typed parameters.

    \b
      harness mlproject                     pin IMAGE:cpu, write ./MLproject
      harness run --mlproject torch -P steps=10
      mlflow run . -e torch -P steps=10
    """
    config = _config(ctx)
    chosen = reference or f"{config.image}:{config.variant('cpu').name}"
    image = pin_image(_engine(ctx, config), chosen)
    if str(output) == "-":
        click.echo(render_mlproject(config, image), nl=False)
        return
    target = write_mlproject(config, image, output, force=force)
    click.echo(f"wrote {target} (image {image.pinned})")


def _config(ctx: click.Context) -> Config:
    resolve: Callable[[], Config] | None = getattr(ctx.obj, "config", None)
    if callable(resolve):
        return resolve()
    return load_config(find_project_root())


def _engine(ctx: click.Context, config: Config) -> Any:
    connect: Callable[[Config], Any] | None = getattr(ctx.obj, "engine", None)
    if callable(connect):
        return connect(config)
    return Engine.connect(config.docker_host)
