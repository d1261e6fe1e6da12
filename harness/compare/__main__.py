"""``python -m harness.compare A B``: the compare command on its own.

It prints errors the way the harness CLI does (one line, with the fix) and exits with
the error's code.
"""

from __future__ import annotations

import sys

import click

from harness.compare.command import compare
from harness.errors import HarnessError


def main() -> None:
    try:
        code = compare.main(prog_name="harness compare", standalone_mode=False)
    except HarnessError as err:
        click.echo(f"harness: {err.one_line()}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
