"""Commands about the project itself: `harness init`, `harness config`, `harness doctor`."""

from __future__ import annotations

from pathlib import Path

import click

from harness import doctor as doctor_module
from harness.cli.options import json_option
from harness.cli.state import State
from harness.config import OPTIONS
from harness.errors import EXIT_TROUBLE
from harness.project_init import InitRequest, find_root, init_project, parse_experiment, summary


@click.command("config")
@json_option("the resolved configuration")
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


@click.command("init")
@click.argument("experiments", nargs=-1, metavar="[NAME=module:function]...")
@click.option(
    "--dockerfiles", is_flag=True, help="Also copy harness's Dockerfiles in, to customise."
)
@click.option("--ci", is_flag=True, help="Also write the GitHub workflow (harness ci github).")
@click.option("--force", is_flag=True, help="Replace what exists with other content.")
@json_option("what was done")
@click.pass_obj
def init_command(
    state: State,
    experiments: tuple[str, ...],
    *,
    dockerfiles: bool,
    ci: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Make this repository a harness project, adding only what is missing.

    Adds [tool.harness] with the experiments given (or the training scripts as commands, or
    an example experiment, unless an MLproject's entry points are the experiments), the
    `experiments` dependency group (from the project's dependencies, else from the imports
    of its code) when there is none,
    and .harness/ to .gitignore. Running it again changes nothing; what exists with other
    content is refused unless --force.

    \b
      harness init                          your train.py as a command (else an example)
      harness init train=mypkg.train:main   declare your own
      harness init --dockerfiles --ci       also the Dockerfiles and the CI workflow
    """
    request = InitRequest(
        experiments=tuple(parse_experiment(text) for text in experiments),
        dockerfiles=dockerfiles,
        ci=ci,
        force=force,
    )
    root = find_root(state.project or Path.cwd())
    changes = init_project(root, request)
    if as_json:
        state.ui.json([change.as_dict() for change in changes])
        return
    for line in summary(changes, root):
        state.ui.result(line)


@click.command("doctor")
@json_option("the checks")
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
