"""`harness lint`: the command over :mod:`harness.lint`.

It reads the CLI's state through ``ctx.obj`` when it has one (the ``--project`` option and
the resolved configuration), and works without it, so that it can also be invoked on its
own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from harness import atomic
from harness.config import Config, find_project_root, load_config
from harness.errors import EXIT_DIFFERS, ConfigError
from harness.lint import sarif
from harness.lint.rules import RULES
from harness.lint.settings import (
    LintSettings,
    check_selectors,
    enabled_rules,
    settings_from_table,
)
from harness.lint.targets import FORMATS, default_targets, lint_paths, managed_entries

HELP = """Check experiment code for what breaks reproducibility, without running it.

\b
PATH is a file or a folder (walked for *.py files); with none, harness
lints [tool.harness.lint] paths, else the source of the declared
experiments, else the project. The files are read as one program: a seed
set in a helper the entry calls counts, a seed in a function nothing calls
does not, and harness's own entries start seeded, as the runtime seeds them.

\b
Rules (`harness lint --rules` shows what exactly each one matches):
  HR001-HR005  randomness used before its generator is seeded (random,
               numpy, generators, torch, TensorFlow)
  HR006        DataLoader workers while torch is unseeded
  HR007-HR009  cuDNN autotuning, determinism switched off, CUDA ops that
               vary while torch.use_deterministic_algorithms is off
  HR010-HR012  the clock or host, OS entropy, set order - when the value
               reaches a result (returned, written, logged, trained on)
  HR013        scikit-learn estimators and splitters without random_state
  HR014-HR016  file listing order, completion order, hash() of strings
               reaching a result
  HR017        layers and models (torchvision, timm, transformers) created
               before the framework is seeded
  HR018        a seed that is itself random (clock, entropy, unseeded draw)
  HR019        a seed set only when one is given, which the default run
               (e.g. --seed defaulting to None) does not give
  HR000        a file that cannot be parsed (always on)

\b
One finding per cause: the unseeded uses of one generator in a file are one
finding, at the first, with the others as related locations (JSON
"related", SARIF relatedLocations). A random draw counts only when its value
reaches a result. Lines and columns are 1-based.

\b
Select rules with [tool.harness.lint] select / ignore (ids or prefixes), or
--select / --ignore; silence one line with  # harness: ignore[HR001]  and a
whole file with  # harness: ignore-file[HR010]  (no ids: every rule).
--format sarif writes SARIF 2.1.0 for GitHub code scanning.

\b
Exit status: 0 when nothing is found, 1 when findings remain (a file that
cannot be parsed is a finding, HR000), 2 when a path does not exist or a
file cannot be read.
"""


def _comma_list(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _project_config(ctx: click.Context) -> Config | None:
    """The project's configuration, or None when linting outside any project."""
    state = ctx.obj
    project = getattr(state, "project", None)
    try:
        root = find_project_root(project if isinstance(project, Path) else None)
    except ConfigError:
        return None
    resolve: Callable[[], Config] | None = getattr(state, "config", None)
    return resolve() if callable(resolve) else load_config(root)


@click.command("lint", help=HELP, short_help="Check experiment code for nondeterminism.")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[PATH]...")
@click.option(
    "--select", "select", multiple=True, metavar="IDS", help="Only these rules (ids or prefixes)."
)
@click.option(
    "--ignore", "ignore", multiple=True, metavar="IDS", help="Not these rules (ids or prefixes)."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default=None,
    help="text (default), json, or sarif for GitHub code scanning.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of stdout (the summary stays on stderr).",
)
@click.option("--rules", "show_rules", is_flag=True, help="List the rules and what they match.")
@click.pass_context
def lint(
    ctx: click.Context,
    *,
    paths: tuple[Path, ...],
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    output_format: str | None,
    as_json: bool,
    output: Path | None,
    show_rules: bool,
) -> None:
    if as_json and output_format not in (None, "json"):
        raise ConfigError(f"--json and --format {output_format} disagree", "give one of them")
    chosen_format = output_format or ("json" if as_json else "text")
    if show_rules:
        _print_rules(chosen_format == "json")
        return
    config = _project_config(ctx)
    settings = settings_from_table(config.table("lint")) if config else LintSettings()
    chosen_select = _comma_list(select) or settings.select
    chosen_ignore = _comma_list(ignore) or settings.ignore
    check_selectors(_comma_list(select), "--select")
    check_selectors(_comma_list(ignore), "--ignore")
    targets = list(paths)
    if not targets:
        targets = default_targets(config, settings) if config else [Path.cwd()]
    roots = [config.project_root, config.project_root / "src"] if config else []
    managed = managed_entries(config) if config else {}
    result = lint_paths(
        targets, enabled_rules(chosen_select, chosen_ignore), roots=roots, managed=managed
    )
    if chosen_format == "json":
        report = json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n"
    elif chosen_format == "sarif":
        report = json.dumps(sarif.document(result.findings, result.rules), indent=2) + "\n"
    else:
        report = "".join(finding.one_line() + "\n" for finding in result.findings)
    if output is not None:
        atomic.write_text(output, report)
    else:
        click.echo(report, nl=False)
    files = len(result.files)
    if result.findings:
        click.echo(f"{len(result.findings)} finding(s) in {files} file(s)", err=True)
    else:
        click.echo(f"{files} file(s) clean", err=True)
    if result.findings:
        raise click.exceptions.Exit(EXIT_DIFFERS)


def _print_rules(as_json: bool) -> None:
    if as_json:
        document = [
            {
                "id": r.id,
                "name": r.name,
                "severity": r.severity,
                "summary": r.summary,
                "fix": r.fix,
                "scope": r.scope,
            }
            for r in RULES
        ]
        click.echo(json.dumps(document, indent=2))
        return
    for rule in RULES:
        click.echo(f"{rule.id} {rule.name} ({rule.severity}): {rule.summary}")
        click.echo(f"  matches: {rule.scope}")
        click.echo(f"  fix:     {rule.fix}")
