"""The ``harness`` executable: the command line, started as lightly as the command allows.

``harness compare`` is what CI gates and scripts call, often many times per job, and it
needs only click, rich and the compare package. The full command line imports every
command's machinery (the docker SDK and requests, cryptography, the build and run code):
about half a second before anything happens. So a line that starts with ``compare`` runs
that command on its own, as the group would run it (project policies, one-line errors,
exit codes); anything else, including group options before the command, starts the full
command line.
"""

from __future__ import annotations

import signal
import sys


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (CI cancelling a job, `timeout`) ends the command like Ctrl-C.
    raise KeyboardInterrupt


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["compare"]:
        from harness.compare.__main__ import run  # noqa: PLC0415 (the point of this module)

        signal.signal(signal.SIGTERM, _terminate)
        sys.exit(run(arguments[1:]))
    from harness.cli.main import main as full_command_line  # noqa: PLC0415

    full_command_line()


__all__ = ["main"]
