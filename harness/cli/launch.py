"""The ``harness`` executable: the command line, started as lightly as the line allows.

``harness compare`` is what CI gates and scripts call, often many times a job, and on a
reproducible result its files are byte-identical: then reading them is quick and starting
click and rich (a fifth of a second) would be most of its time. So a plain compare line
(``harness compare A B``, with ``--json``, ``--policy``/``-p`` or ``--metric-tolerance``)
is run here without them, as the group would run it: the project's policies, the same
output, one-line errors, the same exit codes. Any other line, including ``--help``,
``--report``, a group option or anything this reading is unsure of, starts the full
command line (:mod:`harness.cli.main`), which reads it exactly as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from harness import interrupt

EXIT_TROUBLE = 2
# What the group prints and returns when Ctrl-C (or SIGTERM) stops a command.
INTERRUPTED = "harness: interrupted; temporary containers and files were removed"
EXIT_INTERRUPTED = 130

# Options taking a value, by every spelling click accepts as a separate token.
_VALUED = {"--policy": "policy", "-p": "policy", "--metric-tolerance": "metric_tolerance"}
_LONG_VALUED = ("--policy", "--metric-tolerance")


@dataclass
class PlainCompare:
    """A compare line read without click: its two arguments and the options it gave."""

    a: str
    b: str
    policy: str | None = None
    metric_tolerance: str | None = None
    as_json: bool = False


def plain_compare(arguments: list[str]) -> PlainCompare | None:
    """The compare line ``arguments`` (after ``compare``), or None unless it is one that
    click would read the same way: two arguments and each option given once."""
    positional: list[str] = []
    values: dict[str, str] = {}
    as_json = False
    words = iter(arguments)
    for word in words:
        if not word.startswith("-"):
            positional.append(word)
            continue
        if word == "--json" and not as_json:
            as_json = True
            continue
        name, equals, value = word.partition("=")
        if equals and name in _LONG_VALUED:
            pass
        elif word in _VALUED:
            name, value = word, next(words, "")
        else:
            return None
        field = _VALUED[name]
        # An empty value or one that looks like an option: click's reading decides.
        if field in values or not value or value.startswith("-"):
            return None
        values[field] = value
    if len(positional) != 2:
        return None
    return PlainCompare(
        positional[0],
        positional[1],
        policy=values.get("policy"),
        metric_tolerance=values.get("metric_tolerance"),
        as_json=as_json,
    )


def _say(line: str) -> None:
    # click's echo, as the group's: it keeps escape codes out of a log. Imported only for
    # the line that says what went wrong.
    import click  # noqa: PLC0415

    click.echo(line, err=True)


def run_plain(line: PlainCompare, interrupted: str = INTERRUPTED) -> int:
    """Run a plain compare line as the group would; its exit code."""
    from harness.compare.command import project_policies, run_compare  # noqa: PLC0415
    from harness.errors import HarnessError, from_os_error  # noqa: PLC0415

    try:
        return run_compare(
            line.a,
            line.b,
            policy=line.policy,
            metric_tolerance=line.metric_tolerance,
            as_json=line.as_json,
            report=None,
            policies=project_policies,
        )
    except HarnessError as error:
        _say(f"harness: {error.one_line()}")
        return error.exit_code
    except OSError as error:
        _say(f"harness: {from_os_error(error).one_line()}")
        return EXIT_TROUBLE
    except KeyboardInterrupt:
        _say(interrupted)
        return EXIT_INTERRUPTED


def main() -> None:
    arguments = sys.argv[1:]
    line = plain_compare(arguments[1:]) if arguments[:1] == ["compare"] else None
    if line is None:
        from harness.cli.main import main as full_command_line  # noqa: PLC0415

        full_command_line()
        return
    # As the full command line does: SIGTERM ends it like Ctrl-C, once.
    interrupt.install()
    sys.exit(run_plain(line))


def compare_main() -> None:
    """``python -m harness.compare ARGUMENTS``: a plain line starts light as well."""
    line = plain_compare(sys.argv[1:])
    if line is None:
        from harness.cli.compare import main as compare_command  # noqa: PLC0415

        compare_command()
        return
    sys.exit(run_plain(line, interrupted="harness: interrupted"))  # as that command says


__all__ = ["PlainCompare", "compare_main", "main", "plain_compare", "run_plain"]
