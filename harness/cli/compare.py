"""The ``harness compare`` command.

Per-artifact policies from configuration reach the command through click's shared
context metadata: the CLI group stores, under ``ctx.meta[POLICIES_KEY]``, either a
``Mapping[str, str]`` of glob -> policy or a function returning one. A function lets the
configuration be read only when a comparison needs it, so that comparing two files
outside any project works.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli.state import POLICIES_KEY
from harness.compare.command import project_policies, run_compare
from harness.errors import EXIT_TROUBLE, HarnessError, from_os_error

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
link out of the compared folder, a JSON key given twice) is refused too:
never a false pass.

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
    ctx.exit(
        run_compare(
            a,
            b,
            policy=policy,
            metric_tolerance=metric_tolerance,
            as_json=as_json,
            report=report,
            policies=ctx.meta.get(POLICIES_KEY),
        )
    )


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
