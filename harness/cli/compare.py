"""The ``harness compare`` command.

Per-artifact policies from configuration reach the command through click's shared
context metadata: the CLI group stores, under ``ctx.meta[POLICIES_KEY]``, either a
``Mapping[str, str]`` of glob -> policy or a function returning one. A function lets the
configuration be read only when a comparison needs it, so that comparing two files
outside any project works.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from harness.cli.state import POLICIES_KEY
from harness.compare.names import printable
from harness.compare.report import print_table, to_json, write_report
from harness.compare.tree import compare_paths, resolve, run_status
from harness.errors import EXIT_TROUBLE, ArtifactError, ConfigError, HarnessError, from_os_error


def project_policies() -> dict[str, str]:
    """``[tool.harness.policies]`` of the project around the current folder, or none."""
    from harness.config import find_project_root, load_config  # noqa: PLC0415 (only when asked)

    try:
        root = find_project_root(None)
    except ConfigError:
        return {}
    return dict(load_config(root, {}).policies)


HELP = """Compare the artifacts of two runs, two folders or two files.

\b
A and B are each a run id (or a unique prefix of one, looked up in
.harness/runs/ here or at the project root), a run folder (holding
record.json and artifacts/), an artifact folder, or a single file.
Folders are compared file by file: added, removed and changed files.

\b
Every artifact is read by the library made for it: .npy/.npz, .safetensors,
.pt/.pth (tensors only; no pickled code is ever run), .keras and .h5
weights, JSON metrics, CSV/TSV tables, text; anything else as bytes.

\b
Policies (--policy applies to every artifact, over configured ones):
  bitwise                  every bit equal (the default): a NaN payload, a
                           signed zero, 1 vs 1.0 in JSON all differ
  ulp:N                    floats at most N units in the last place apart
  ulp:N,atol=A             ... or at most A apart (a floor for values near 0)
  close:rtol=R,atol=A      |a - b| <= A + R * max(|a|, |b|)
  metric:rtol=R,atol=A     the same test, for JSON and CSV numbers
  ...,nan-equal            also any NaN equals any NaN at the same place
  nan-equal                bitwise, except NaN payloads
Integers are exact, or at most A apart under a policy with atol=A (ULPs
and rtol are for floating point); booleans and float8 are always exact.
An infinity must meet the same infinity; NaN must meet NaN.

\b
Only regular files are read: a link out of a compared folder, a device,
a FIFO or a /proc file is refused (exit 2) without being read. A value
harness cannot read exactly (a pickled object array, an HDF5 external
link, a JSON key given twice) is refused too: never a false pass.

\b
Examples:
  harness compare 3f2a9c 7be410                  two recorded runs, bitwise
  harness compare runs/a/artifacts runs/b/artifacts --policy ulp:4
  harness compare cpu.safetensors gpu.safetensors --policy ulp:64,atol=1e-6
  harness compare a/metrics.json b/metrics.json --metric-tolerance rtol=1e-3
  harness compare RUN_A RUN_B --json > comparison.json
  harness compare RUN_A RUN_B --report comparison.html

\b
Verdicts: identical (same bytes); equal values (bytes differ, e.g. zip
timestamps or header padding, every value bit for bit the same); within
<policy>; differs; added or removed (a file or tensor on one side only).

\b
Exit status: 0 when every artifact is identical, equal or within its policy,
1 when any differs (or was added or removed), 2 when an artifact cannot be
read or a run does not exist.
"""


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """A transient status line on stderr, only when stderr is a terminal."""
    if not enabled:
        yield None
        return
    console = Console(stderr=True)
    with console.status("comparing ...") as status:

        def update(what: str) -> None:
            status.update(f"comparing {what}")

        yield update


@click.command("compare", help=HELP, short_help="Compare the artifacts of two runs.")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--policy",
    "-p",
    metavar="POLICY",
    help="Policy for every artifact: bitwise, ulp:N[,atol=A], close:rtol=R,atol=A "
    "(add ,nan-equal to forgive NaN payloads).",
)
@click.option(
    "--metric-tolerance",
    metavar="rtol=R,atol=A",
    help="Tolerance for the numbers in JSON and CSV artifacts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema 1).")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a report: Markdown for FILE.md, HTML for FILE.html (summary first, "
    "then per tensor: histograms of ULP and absolute differences, percentiles, worst "
    "locations).",
)
@click.pass_context
def compare(
    ctx: click.Context,
    *,
    a: str,
    b: str,
    policy: str | None,
    metric_tolerance: str | None,
    as_json: bool,
    report: Path | None,
) -> None:
    if report is not None and report.suffix.lower() not in (".md", ".html", ".htm"):
        raise ConfigError(
            f"--report {report}: unknown report format {report.suffix or '(no extension)'!r}",
            hint="name the report FILE.md for Markdown or FILE.html for HTML",
        )
    for argument in (a, b):
        _refuse_unfinished_run(argument)
    configured = ctx.meta.get(POLICIES_KEY)
    policies: Mapping[str, str] = (configured() if callable(configured) else configured) or {}
    with _progress(not as_json and sys.stderr.isatty()) as progress:
        result = compare_paths(
            a,
            b,
            policy=policy,
            policies=policies,
            metric_tolerance=metric_tolerance,
            progress=progress,
        )
    if report is not None:
        try:
            write_report(result, report)
        except OSError as exc:
            raise ArtifactError(
                f"cannot write the report {report}: {exc.strerror or exc}",
                hint="choose a writable path for --report",
            ) from None
    if as_json:
        click.echo(to_json(result), nl=False)
    else:
        print_table(result)
    errors = result.errors
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        # A reader's message can quote a file name: escaped, it stays one line and
        # cannot drive the terminal.
        raise ArtifactError(
            f"{len(errors)} artifact(s) could not be compared: "
            f"{printable(errors[0].error or '')}{more}",
            hint=printable(errors[0].hint or "fix or regenerate the unreadable artifacts"),
        )
    ctx.exit(result.exit_code)


def _refuse_unfinished_run(argument: str) -> None:
    """A run that did not succeed wrote no complete set of artifacts: two failed runs with
    nothing in their folders would otherwise compare as "identical"."""
    target = resolve(argument, Path.cwd())
    if target.run is not None:
        _refuse_unreadable_record(target.path.parent, target.run)
    status = run_status(target)
    if status not in (None, "succeeded"):
        raise ArtifactError(
            f"run {target.run} {status}, so its artifacts are not a result to compare",
            hint=f"see why with `harness runs show {target.run}`; to compare what it wrote "
            f"anyway, give its folder: {target.path}",
        )


def _refuse_unreadable_record(folder: Path, run: str) -> None:
    """A run whose record cannot be read (truncated, edited) says nothing of how it ended:
    its artifacts are not a result either, whatever its folder holds."""
    from harness.runs import records  # noqa: PLC0415 - only comparisons of runs read records

    if not (folder / records.RECORD).exists() and not (folder / records.RECORD).is_symlink():
        return
    try:
        records.read(folder)
    except HarnessError as error:
        raise ArtifactError(
            f"run {run}'s record cannot be read, so how it ended is unknown: {error.message}",
            hint=f"rerun the experiment; to compare what it wrote anyway, give its folder: "
            f"{folder / records.ARTIFACTS}",
        ) from None


# `python -m harness.compare A B`: the command on its own, as the group would run it: the
# project's [tool.harness.policies] apply, errors are one line with their fix, and the exit
# code is the error's.
EXIT_INTERRUPTED = 130  # as the group's, for Ctrl-C


def run(arguments: list[str]) -> int:
    """Run ``harness compare ARGUMENTS`` and return its exit code."""
    try:
        with compare.make_context("harness compare", arguments) as ctx:
            ctx.meta[POLICIES_KEY] = project_policies
            compare.invoke(ctx)
    except HarnessError as err:
        click.echo(f"harness: {err.one_line()}", err=True)
        return err.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as err:
        err.show()
        return EXIT_TROUBLE
    except OSError as err:  # an unreadable file or folder: the machine's trouble
        click.echo(f"harness: {from_os_error(err).one_line()}", err=True)
        return EXIT_TROUBLE
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("harness: interrupted", err=True)
        return EXIT_INTERRUPTED
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


__all__ = ["compare", "main", "project_policies", "run"]
