"""Commands that make images: `harness lock`, `harness base`, `harness build`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import json_option
from harness.cli.state import State
from harness.engine import Engine
from harness.errors import ConfigError
from harness.images import build as build_module
from harness.images import lock as lock_module
from harness.images import rebuild
from harness.images.base import ensure_base
from harness.trust import provenance


@click.command("lock")
@click.option("--check", is_flag=True, help="Only check; exit 1 naming what is stale (for CI).")
@click.option("--variant", "variants", multiple=True, help="Only this variant (repeatable).")
@click.pass_obj
def lock_command(state: State, check: bool, variants: tuple[str, ...]) -> None:
    """Write the hashed constraints files from the declared experiment dependencies.

    The dependencies are the [dependency-groups] entry named by `dependency-group`
    (default "experiments"). Each variant applies its `replace` table (the CPU builds of
    torch and TensorFlow, say) and resolves for the image's Python and platform with
    `uv pip compile --generate-hashes`. Also updates uv.lock and build-constraints.txt.

    \b
      harness lock                  resolve and write everything
      harness lock --check          0 when current, 1 naming what is stale
    """
    config = state.config()
    selected = [config.variant(name) for name in variants] or None
    if check:
        problems = lock_module.check(config, selected)
        if problems:
            for problem in problems:
                click.echo(f"stale: {problem}", err=True)
            raise lock_module.stale_error(problems)
        for unverifiable in lock_module.unverifiable(config, selected):
            click.echo(f"warning: {unverifiable}: {lock_module.UNDIGESTED_FIX}", err=True)
        state.ui.result("lock files are current")
        return
    state.ui.say("resolving with uv (hashes for every pin)")
    try:
        written = lock_module.lock(config, selected, say=state.ui.say)
    except lock_module.ResolutionError as error:
        # uv's account of a failed resolution is the explanation: all of it, as uv wrote it.
        click.echo(error.explanation, err=True)
        raise
    for path in written:
        state.ui.result(f"wrote {path.relative_to(config.project_root)}")
    for line in lock_module.unprovided_imports(config, selected):
        click.echo(f"warning: {line}", err=True)


@click.command("base")
@json_option("the base image's facts")
@click.pass_obj
def base_command(state: State, as_json: bool) -> None:
    """Make sure the base image exists: pull it by digest, or bootstrap Debian with Python.

    With `base = "bootstrap"` (the default) harness runs debootstrap from the machine's
    apt mirror, records the package list in the image, and reuses it while it exists.
    """
    config = state.config()
    base = ensure_base(state.engine(config), config, state.ui.say)
    if as_json:
        state.ui.json(
            {
                "reference": base.reference,
                "id": base.id,
                "digest": base.digest,
                "packages_sha256": base.packages_sha256,
                "bootstrapped_now": base.bootstrapped_now,
            }
        )
        return
    state.ui.result(f"{base.reference} {base.id}")


@click.command("build")
@click.option("--variant", default="cpu", show_default=True, help="Image variant (cpu, cuda, ...).")
@click.option("--no-cache", is_flag=True, help="Rebuild every step, ignoring cached layers.")
@click.option(
    "--check",
    is_flag=True,
    help="Build twice without the cache and compare the images file by file "
    "(exit 1 if they differ).",
)
@click.option(
    "--host",
    "check_host",
    metavar="URL",
    help="With --check: make the second build on this other Docker engine.",
)
@click.option(
    "--rewrite-layers",
    is_flag=True,
    help="Also rewrite every layer with clamped file times (same image ID across builds).",
)
@click.option(
    "--provenance",
    "provenance_copy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the image's signed SLSA provenance here (it is always kept under "
    ".harness/provenance/).",
)
@json_option("the result")
@click.pass_obj
def build_command(
    state: State,
    *,
    variant: str,
    no_cache: bool,
    check: bool,
    check_host: str | None,
    rewrite_layers: bool,
    provenance_copy: Path | None,
    as_json: bool,
) -> None:
    """Build a variant's image from its Dockerfile and hashed constraints.

    pip inside installs with --require-hashes: a download whose sha256 is not pinned fails
    the build, naming the package. When nothing changed since the last build, the image is
    found by its inputs' digest and the command returns at once (a cache hit). Progress goes
    to stderr; the image reference and ID to stdout.

    \b
      harness build --variant cuda
      harness build --check            does the image rebuild bit for bit? (exit 0 / 1)
    """
    config = state.config()
    build_plan = build_module.plan(config, variant)
    if check_host and not check:
        raise ConfigError("--host only applies to --check", "add --check")
    if check:
        other = Engine.connect(check_host) if check_host else None
        outcome = rebuild.check(
            state.engine(config),
            build_plan,
            other_engine=other,
            rewrite_layers=rewrite_layers,
            say=state.ui.say,
            on_line=state.ui.build_line,
        )
        if as_json:
            state.ui.json(outcome.as_dict())
        else:
            state.ui.result(outcome.summary())
        if outcome.exit_code:
            raise click.exceptions.Exit(outcome.exit_code)
        return
    result = build_module.build(
        state.engine(config),
        build_plan,
        no_cache=no_cache,
        rewrite_layers=rewrite_layers,
        say=state.ui.say,
        on_line=state.ui.build_line,
    )
    recorded = provenance.record_build(
        config.project_root,
        result.provenance,
        state.ui.say,
        also=[provenance_copy] if provenance_copy else [],
    )
    if as_json:
        state.ui.json({**result.as_dict(), "provenance": str(recorded.path) if recorded else None})
        return
    how = "cached" if result.cached else f"built in {result.seconds:.0f} s"
    state.ui.result(f"{result.reference} {result.image_id} ({how}, {result.size / 1e9:.2f} GB)")
