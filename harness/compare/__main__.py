"""``python -m harness.compare A B``: the compare command on its own.

It runs the command as the harness CLI group does: the project's
``[tool.harness.policies]`` apply, errors are printed on one line with their fix, and the
exit code is the error's.
"""

from __future__ import annotations

import sys

import click

from harness.cli.compare import compare, project_policies
from harness.cli.state import POLICIES_KEY
from harness.errors import EXIT_TROUBLE, HarnessError

EXIT_INTERRUPTED = 130


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
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("harness: interrupted", err=True)
        return EXIT_INTERRUPTED
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
