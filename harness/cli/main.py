"""The `harness` command line: the group, its options, and where each command lives.

Each command is thin: it resolves the configuration, calls one module, and prints. Errors
are HarnessError subclasses, printed on one line with their fix. Exit codes: 0 same /
current / ok, 1 differs / stale, 2 trouble, 130 interrupted.

Commands are imported when they run, not when the group starts (click's lazy-group
pattern): `harness compare` and `harness lint` need neither the docker SDK nor the build
and run machinery, and a gate that calls them many times a job should not pay for those.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

import harness
from harness import interrupt, progress
from harness.cli.state import POLICIES_KEY, State
from harness.errors import EXIT_TROUBLE, HarnessError, from_os_error
from harness.ui import UI

EXIT_INTERRUPTED = 130

# Every command: its name, and the module and attribute that define it.
COMMANDS: dict[str, str] = {
    "attest": "harness.cli.trust:attest_command",
    "base": "harness.cli.images:base_command",
    "build": "harness.cli.images:build_command",
    "cache": "harness.cli.cache:cache_group",
    "certificate": "harness.cli.trust:certificate_group",
    "certify": "harness.cli.trust:certify_command",
    "ci": "harness.cli.fleet:ci_group",
    "collect": "harness.cli.fleet:collect_command",
    "compare": "harness.cli.compare:compare",
    "config": "harness.cli.project:config_command",
    "deploy": "harness.cli.deploy:deploy_command",
    "doctor": "harness.cli.project:doctor_command",
    "gc": "harness.cli.gc:gc_command",
    "init": "harness.cli.project:init_command",
    "k8s": "harness.cli.fleet:k8s_group",
    "keys": "harness.cli.trust:keys_group",
    "lint": "harness.cli.lint:lint",
    "lock": "harness.cli.images:lock_command",
    "mlproject": "harness.cli.integrations:mlproject",
    "package": "harness.cli.package:package",
    "run": "harness.cli.runs:run_command",
    "runs": "harness.cli.runs:runs_group",
    "verify": "harness.cli.trust:verify_command",
}


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
        except OSError as error:
            # A full disk, a read-only state folder, a file it may not read: the machine's
            # trouble, told on one line like any other (exit 2, never a traceback).
            if isinstance(ctx.obj, State) and ctx.obj.debug:
                raise
            click.echo(f"harness: {from_os_error(error).one_line()}", err=True)
            ctx.exit(EXIT_TROUBLE)
        except KeyboardInterrupt:
            click.echo(
                "harness: interrupted; temporary containers and files were removed", err=True
            )
            ctx.exit(EXIT_INTERRUPTED)


class LazyGroup(HarnessGroup):
    """The top-level group: commands from :data:`COMMANDS`, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module_name, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
        self.commands[cmd_name] = command
        return command


@click.group(
    cls=LazyGroup,
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
    ui = UI(verbose=verbose, quiet=quiet)
    progress.use(ui.long_step)  # long steps (builds, uv, downloads) show that they are alive
    ctx.obj = State(project, {"docker-host": docker_host}, debug, ui)
    ctx.meta[POLICIES_KEY] = ctx.obj.configured_policies


def main() -> None:
    # SIGTERM (CI cancelling a job, `timeout`, an orchestrator) cleans up like Ctrl-C, and
    # a second signal while harness cleans up does not cut the cleaning short.
    interrupt.install()
    cli(prog_name="harness")


__all__ = ["COMMANDS", "HarnessGroup", "cli", "main"]
