"""The `harness` command line. Each command is thin: it resolves the configuration, calls one
module, and prints. Errors are HarnessError subclasses, printed on one line with their fix.

Exit codes: 0 same / current / ok, 1 differs / stale, 2 trouble, 130 interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

import harness
from harness import build as build_module
from harness import doctor as doctor_module
from harness import lock as lock_module
from harness.base import ensure_base
from harness.compare.command import POLICIES_KEY, compare
from harness.config import OPTIONS, Config, find_project_root, load_config
from harness.engine import Engine
from harness.errors import EXIT_TROUBLE, ConfigError, HarnessError
from harness.ui import UI

EXIT_INTERRUPTED = 130


@dataclass
class State:
    """What the group's options leave for the commands."""

    project: Path | None
    overrides: dict[str, str | None]
    debug: bool
    ui: UI

    def config(self, **overrides: str | None) -> Config:
        return load_config(self.project, {**self.overrides, **overrides})

    def engine(self, config: Config) -> Engine:
        return Engine.connect(config.docker_host)

    def configured_policies(self) -> dict[str, str]:
        """[tool.harness.policies] of the project, or none when there is no project."""
        try:
            root = find_project_root(self.project)
        except ConfigError:
            return {}
        return dict(load_config(root, self.overrides).policies)


class HarnessGroup(click.Group):
    """Turns harness errors and Ctrl-C into one line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as error:
            if isinstance(ctx.obj, State) and ctx.obj.debug:
                raise
            click.echo(f"harness: {error.one_line()}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "harness: interrupted; temporary containers and files were removed", err=True
            )
            ctx.exit(EXIT_INTERRUPTED)


@click.group(
    cls=HarnessGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Configuration: [tool.harness] in pyproject.toml, overridden by HARNESS_* "
    "variables, overridden by flags. `harness config` shows every value and its source.\n\n"
    "Exit codes: 0 same or current, 1 differs or stale, 2 trouble, 130 interrupted.",
)
@click.version_option(harness.__version__, prog_name="harness")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project folder (default: the nearest folder above with a pyproject.toml).",
)
@click.option("--docker-host", help="Docker engine URL (unix://, tcp://, ssh://).")
@click.option("-v", "--verbose", is_flag=True, help="Show every line of build output.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(
    ctx: click.Context,
    *,
    project: Path | None,
    docker_host: str | None,
    verbose: bool,
    quiet: bool,
    debug: bool,
) -> None:
    """Provably reproducible machine-learning results.

    harness locks experiment dependencies with hashes, builds pinned CPU and CUDA images
    from them, runs seeded experiments inside, compares their artifacts and certifies the
    result. A first session on a new machine:

    \b
      harness doctor              is the engine up, are the constraints current?
      harness lock --check        do the constraints files match pyproject.toml?
      harness build               build (or find) the CPU image
      harness build --variant cuda
    """
    ctx.obj = State(project, {"docker-host": docker_host}, debug, UI(verbose=verbose, quiet=quiet))
    ctx.meta[POLICIES_KEY] = ctx.obj.configured_policies


@cli.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved configuration as JSON.")
@click.pass_obj
def config_command(state: State, as_json: bool) -> None:
    """Show every option's value and where it came from.

    Precedence: defaults < [tool.harness] in pyproject.toml < HARNESS_* environment <
    command-line flags.
    """
    config = state.config()
    if as_json:
        state.ui.json(config.as_dict())
        return
    values = config.as_dict()
    for option in OPTIONS:
        value = values[option.key]
        shown = ", ".join(value) if isinstance(value, list) else value
        state.ui.result(
            f"{option.key:<17} {shown!s:<48} ({config.sources[option.key]}; {option.env})"
        )
    for name, variant in values["variants"].items():
        state.ui.result(f"variant {name:<9} {variant}")


@cli.command("lock")
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
        state.ui.result("lock files are current")
        return
    state.ui.say("resolving with uv (hashes for every pin)")
    for path in lock_module.lock(config, selected):
        state.ui.result(f"wrote {path.relative_to(config.project_root)}")


@cli.command("base")
@click.option("--json", "as_json", is_flag=True, help="Print the base image's facts as JSON.")
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


@cli.command("build")
@click.option("--variant", default="cpu", show_default=True, help="Image variant (cpu, cuda, ...).")
@click.option("--no-cache", is_flag=True, help="Rebuild every step, ignoring cached layers.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.pass_obj
def build_command(state: State, variant: str, no_cache: bool, as_json: bool) -> None:
    """Build a variant's image from its Dockerfile and hashed constraints.

    pip inside installs with --require-hashes: a download whose sha256 is not pinned fails
    the build, naming the package. When nothing changed since the last build, the image is
    found by its inputs' digest and the command returns at once (a cache hit). Progress goes
    to stderr; the image reference and ID to stdout.
    """
    config = state.config()
    build_plan = build_module.plan(config, variant)
    result = build_module.build(
        state.engine(config),
        build_plan,
        no_cache=no_cache,
        say=state.ui.say,
        on_line=state.ui.build_line,
    )
    if as_json:
        state.ui.json(result.as_dict())
        return
    how = "cached" if result.cached else f"built in {result.seconds:.0f} s"
    state.ui.result(f"{result.reference} {result.image_id} ({how}, {result.size / 1e9:.2f} GB)")


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_obj
def doctor_command(state: State, as_json: bool) -> None:
    """Check the engine, registry, base image, GPU runtime, CA bundle, wheel sources and
    constraints; print each problem with its fix. Exit 2 when a required check fails."""
    checks = doctor_module.diagnose(state.config())
    failed = [c for c in checks if not c.ok and c.required]
    if as_json:
        state.ui.json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        for check in checks:
            mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
            fix = f"  -> {check.fix}" if check.fix and not check.ok else ""
            state.ui.result(f"{mark} {check.name:<14} {check.detail}{fix}")
    if failed:
        raise click.exceptions.Exit(EXIT_TROUBLE)


cli.add_command(compare)


def main() -> None:
    cli(prog_name="harness")


__all__ = ["cli", "main"]
