"""What ``harness compare`` does once its arguments are read, without click.

The click command (:mod:`harness.cli.compare`) and the executable's fast start
(:mod:`harness.cli.launch`) both call :func:`run_compare`, so the two ways in print the same
output and end the same way. Trouble is raised as a HarnessError for the caller to print
on one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from harness.compare.names import printable
from harness.compare.report import print_table, to_json, write_report
from harness.compare.tree import compare_paths, project_root, resolve, run_status
from harness.errors import ArtifactError, ConfigError, HarnessError

# Where the policies come from: glob -> policy, or a function returning them, so that the
# configuration is read only when a comparison needs it.
Policies = Mapping[str, str] | Callable[[], Mapping[str, str]] | None


def project_policies() -> dict[str, str]:
    """``[tool.harness.policies]`` of the project around the current folder, or none."""
    # Outside a project (files compared in a scratch folder) the configuration module is
    # not even imported: it is a good part of the start-up.
    if project_root(Path.cwd().resolve()) is None:
        return {}
    from harness.config import find_project_root, load_config  # noqa: PLC0415 (only when asked)

    try:
        root = find_project_root(None)
    except ConfigError:
        return {}
    return dict(load_config(root, {}).policies)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """A transient status line on stderr, only when stderr is a terminal."""
    if not enabled:
        yield None
        return
    from rich.console import Console  # noqa: PLC0415 (only a terminal sees it)

    console = Console(stderr=True)
    with console.status("comparing ...") as status:

        def update(what: str) -> None:
            status.update(f"comparing {what}")

        yield update


def check_report_path(report: Path | None) -> None:
    if report is not None and report.suffix.lower() not in (".md", ".html", ".htm"):
        raise ConfigError(
            f"--report {report}: unknown report format {report.suffix or '(no extension)'!r}",
            hint="name the report FILE.md for Markdown or FILE.html for HTML",
        )


def run_compare(
    a: str,
    b: str,
    *,
    policy: str | None,
    metric_tolerance: str | None,
    as_json: bool,
    report: Path | None,
    policies: Policies,
) -> int:
    """Compare, print the table (or JSON) on stdout, write the report; the exit code."""
    check_report_path(report)
    for argument in (a, b):
        _refuse_unfinished_run(argument)
    configured: Mapping[str, str] = (policies() if callable(policies) else policies) or {}
    with _progress(not as_json and sys.stderr.isatty()) as progress:
        result = compare_paths(
            a,
            b,
            policy=policy,
            policies=configured,
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
        sys.stdout.write(to_json(result))
        sys.stdout.flush()
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
    return result.exit_code


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


__all__ = ["Policies", "check_report_path", "project_policies", "run_compare"]
