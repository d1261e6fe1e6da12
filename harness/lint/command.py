"""The ``harness lint`` command and the file walk behind it.

With no PATH it lints what the project runs: ``[tool.harness.lint] paths`` when set, else
the source files of the declared experiments (an entry's module, a command's ``.py``
arguments), else the whole project. Folders are walked for the ``*.py`` files among those
that travel to an experiment (:mod:`harness.project_files`): lint judges the code the
experiment's container sees.

The command reads the CLI's state through ``ctx.obj`` when it has one (the ``--project``
option and the resolved configuration), and works without it, so that it can be added to
the ``harness`` group as it is and also be invoked on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness import atomic, project_files
from harness.config import Config, find_project_root, load_config
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError
from harness.lint import sarif
from harness.lint.checker import Finding, check_files
from harness.lint.rules import RULES
from harness.lint.seeding import MODULE_BODY
from harness.lint.settings import LintSettings, check_selectors, enabled_rules, settings_from_table

SCHEMA = "harness.lint/v1"
FORMATS = ("text", "json", "sarif")

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
  HR017        layers created before the framework is seeded
  HR018        a seed that is itself random (clock, entropy, unseeded draw)
  HR000        a file that cannot be parsed (always on)

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


@dataclass(frozen=True)
class LintResult:
    files: tuple[str, ...]
    findings: tuple[Finding, ...]
    rules: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "files": list(self.files),
            "rules": sorted(self.rules),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def lint_paths(
    paths: Sequence[Path],
    rules: Iterable[str],
    *,
    relative_to: Path | None = None,
    roots: Sequence[Path] = (),
    managed: Mapping[Path, frozenset[str]] | None = None,
) -> LintResult:
    """Lint files and folders, read together as one program, with the given rule ids;
    findings name paths relative to ``relative_to`` where they lie below it. ``roots`` are
    where imported project modules are sought besides each file's folder and package;
    ``managed`` names the entries harness runs (see :func:`managed_entries`)."""
    enabled = frozenset(rules)
    files = collect_files(paths)
    base = relative_to or Path.cwd()
    shown = [_shown(file, base) for file in files]
    try:
        found = check_files(list(zip(files, shown, strict=True)), roots, managed)
    except OSError as error:
        name = _shown(Path(error.filename), base) if error.filename else "a file"
        raise HarnessError(
            f"cannot read {name}: {error.strerror or error}", "check the file's permissions"
        ) from None
    findings = [f for f in found if f.rule in enabled]
    return LintResult(tuple(shown), tuple(sorted(findings)), enabled)


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """The files to lint: each file as given, each folder's ``*.py`` files, sorted, once."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            found[path] = None
        elif path.is_dir():
            for file in _walk(path):
                found[file] = None
        else:
            raise HarnessError(f"{path} does not exist", "give an existing file or folder")
    return list(found)


def _walk(folder: Path) -> list[Path]:
    return [folder / name for name in project_files.files(folder) if name.endswith(".py")]


def _shown(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def default_targets(config: Config, settings: LintSettings) -> list[Path]:
    """What `harness lint` checks with no PATH (see the module's docstring)."""
    root = config.project_root
    if settings.paths:
        return [root / path for path in settings.paths]
    targets: dict[Path, None] = {}
    for experiment in config.experiments.values():
        if experiment.entry is not None:
            module = experiment.entry.partition(":")[0]
            for candidate in _module_files(root, module):
                targets[candidate] = None
        for argument in experiment.command or ():
            if argument.endswith(".py") and (root / argument).is_file():
                targets[root / argument] = None
    return list(targets) or [root]


def managed_entries(config: Config) -> dict[Path, frozenset[str]]:
    """The code harness itself runs, which its runtime seeds first: each experiment's entry
    function, and each command's script (its whole body)."""
    managed: dict[Path, set[str]] = {}
    root = config.project_root
    for experiment in config.experiments.values():
        if experiment.entry is not None:
            module, _, function = experiment.entry.partition(":")
            for candidate in _module_files(root, module):
                path = candidate / "__init__.py" if candidate.is_dir() else candidate
                managed.setdefault(path.resolve(), set()).add(function)
        for argument in experiment.command or ():
            if argument.endswith(".py") and (root / argument).is_file():
                managed.setdefault((root / argument).resolve(), set()).add(MODULE_BODY)
    return {path: frozenset(names) for path, names in managed.items()}


def _module_files(root: Path, module: str) -> list[Path]:
    base = root.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return [base.with_suffix(".py")]
    if (base / "__init__.py").is_file():
        return [base]
    return []  # installed rather than in the project: not this project's code to lint


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


__all__ = ["SCHEMA", "LintResult", "collect_files", "default_targets", "lint", "lint_paths"]
