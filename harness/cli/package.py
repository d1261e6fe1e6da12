"""`harness package`: build harness's own wheel twice and check the two builds agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from harness.cli.options import json_option
from harness.config import Config
from harness.errors import EXIT_DIFFERS, BuildError, ConfigError
from harness.images import lock, runtime_wheel
from harness.images.package import PackageResult, check_project_wheel, check_wheel
from harness.ui import UI


def _ui(context: click.Context) -> UI:
    """The command line's UI (it honours --quiet), or a plain one outside it."""
    found = getattr(context.obj, "ui", None)
    return found if isinstance(found, UI) else UI()


@click.command("package")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the wheel in this folder when the two builds agree.",
)
@json_option("the result")
@click.pass_context
def package(context: click.Context, out_dir: Path | None, as_json: bool) -> None:
    """Build the project's wheel twice and check that the two builds are identical.

    `uv build --wheel` with hashed build constraints (build-constraints.txt when the
    project commits one, else its [build-system] requires resolved with hashes) and
    --require-hashes, SOURCE_DATE_EPOCH from the commit. In harness's own checkout it is
    harness's wheel, the one the images install. Prints both sha256; exit 0 when they are
    identical, 1 when not (naming the members that differ).
    """
    ui = _ui(context)
    resolve: Callable[[], Config] | None = getattr(context.obj, "config", None)
    try:
        config = resolve() if resolve is not None else None
    except ConfigError:
        config = None  # outside a project: harness's own wheel, as before
    if config is not None and not lock.locks_harness_build(config):
        ui.say("building the project's wheel twice (uv build, hashed build constraints)")
        _report(ui, check_project_wheel(config, out_dir), as_json=as_json)
        return
    ui.say("building harness's wheel twice (uv build, hashed build constraints)")
    source = runtime_wheel.locate()
    if source.kind != "checkout":
        raise BuildError(
            f"harness package builds harness's wheel from its checkout, and this harness is "
            f"installed ({source.root})",
            "run it in harness's source checkout; an installed harness's images get its "
            "installed files, checked against its RECORD",
        )
    _report(ui, check_wheel(source.root, out_dir), as_json=as_json)


def _report(ui: UI, result: PackageResult, *, as_json: bool) -> None:
    if as_json:
        ui.json(result.as_dict())
    else:
        ui.result(f"{result.first_sha256}  build 1  {result.wheel}")
        ui.result(f"{result.second_sha256}  build 2  {result.wheel}")
        ui.result(result.summary())
        for line in result.differing:
            ui.result(f"  {line}")
    if not result.identical:
        raise click.exceptions.Exit(EXIT_DIFFERS)
