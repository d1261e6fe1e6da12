"""The one way harness runs another program: bounded in time, and failing in one line.

A program that hangs (git waiting on a lock, a resolver on an index that stopped
answering, debootstrap on a dead mirror) would hold harness forever, and one that cannot
start would end it with an OSError traceback. :func:`call` gives every program a timeout
and turns both into a :class:`CommandError` that names the command and the fix, as
cibuildwheel's ``util/cmd.call`` does for its own commands. The output is captured as
bytes: what a program prints (a diff, a file name) need not be UTF-8.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

# git answers from the local repository: a minute is only ever exceeded by a hang.
GIT_S = 60.0
# Short local programs (dpkg-query, nvidia-smi).
LOCAL_S = 60.0
# Resolving or building against a package index downloads: generous, as a cold index
# over a slow mirror takes minutes, but not forever.
RESOLVE_S = 30 * 60.0
# debootstrap downloads and installs a whole Debian base (about a minute on a good mirror).
BOOTSTRAP_S = 60 * 60.0
# Packing a root file system into a tarball.
PACK_S = 30 * 60.0
# How much of a command an error shows.
_SHOWN = 120


class CommandError(HarnessError):
    """A program could not be run to its end: not installed, not startable, or too slow."""


class CommandMissing(CommandError):
    """The program is not installed (or not on PATH)."""


class CommandTimeout(CommandError):
    """The program ran past its timeout and was killed."""


@dataclass(frozen=True)
class Completed:
    """A program that ran to its end, whatever its exit status."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def call(
    command: Sequence[str],
    *,
    timeout: float,
    hint: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run ``command`` to its end (killed after ``timeout`` seconds) and capture its output.

    A non-zero exit status is the caller's to judge; a program that is missing, cannot
    start or runs too long raises a :class:`CommandError` whose fix is ``hint``.
    """
    shown = shown_command(command)
    try:
        result = subprocess.run(
            list(command),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandTimeout(
            f"`{shown}` did not finish within {timeout:g} s and was stopped", hint
        ) from None
    except FileNotFoundError:
        raise CommandMissing(f"`{command[0]}` is not installed (or not on PATH)", hint) from None
    except OSError as error:
        raise CommandError(f"`{shown}` could not start: {error.strerror or error}", hint) from None
    return Completed(result.returncode, result.stdout, result.stderr)


def shown_command(command: Sequence[str]) -> str:
    """The command as an error shows it: its words, cut short past a line."""
    text = " ".join(str(word) for word in command)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
