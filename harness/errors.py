"""One family of errors, each carrying its exit code and a hint that names the fix.

Exit codes follow diff and diffoscope: 0 same / reproduced, 1 differs / not reproduced
(or stale), 2 trouble (usage, environment, unreadable input). The CLI prints
``harness: <message> (fix: <hint>)`` on one line and exits with ``exit_code``; tracebacks
are shown only with ``--debug``.
"""

from __future__ import annotations

import errno

EXIT_SAME = 0
EXIT_DIFFERS = 1
EXIT_TROUBLE = 2


class HarnessError(Exception):
    """Base of every error harness reports to its user."""

    exit_code: int = EXIT_TROUBLE
    default_hint: str = ""
    # The run this error ended, when it ended one (its record says how).
    run_id: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def one_line(self) -> str:
        """The message and its fix, on one line, as the CLI prints it."""
        text = " ".join(self.message.split())
        return f"{text} (fix: {self.hint})" if self.hint else text


class ConfigError(HarnessError):
    """The configuration (pyproject, environment, command line) is invalid."""

    default_hint = "see `harness config` for every option, its source and its value"


class EngineUnavailable(HarnessError):
    """The container engine cannot be reached."""

    default_hint = (
        "start the Docker daemon (for example `dockerd > dockerd.log 2>&1 &`) "
        "or point DOCKER_HOST / HARNESS_DOCKER_HOST at a running engine"
    )


class EngineError(HarnessError):
    """The engine answered, but refused or failed an operation."""


class LockError(HarnessError):
    """Constraints could not be written, or are missing or malformed."""

    default_hint = "run `harness lock` to write the constraints files"


class StaleLock(HarnessError):
    """The constraints no longer match the declared dependencies (an answer, not trouble)."""

    exit_code = EXIT_DIFFERS
    default_hint = "run `harness lock` and commit the constraints files"


class BaseImageError(HarnessError):
    """The base image cannot be bootstrapped or pulled."""


class BuildError(HarnessError):
    """An image build failed."""


class HashMismatch(BuildError):
    """A downloaded distribution does not match the hash pinned in the constraints."""

    default_hint = (
        "the download differs from the pinned hash: if the constraints were edited by hand "
        "run `harness lock`; otherwise distrust the index or mirror that served it"
    )


class ArtifactError(HarnessError):
    """An artifact cannot be read or compared (truncated, malformed, unsafe)."""


class RunNotFound(HarnessError):
    """No run record matches the given id or folder."""

    default_hint = "list the recorded runs with `harness runs list`"


class EnvironmentTrouble(HarnessError):
    """The machine failed harness: a full disk, a read-only or missing folder, a file it
    may not read. Trouble (exit 2), never an answer about the experiment."""


# What to do about the OS errors a machine gives most, by errno.
_OS_FIXES = {
    errno.ENOSPC: "free space on that file system (`df -h`), then run again",
    errno.EDQUOT: "free space within your quota, then run again",
    errno.EROFS: "the file system is read-only: make it writable, or point --project at a "
    "writable copy of the project",
    errno.EACCES: "check the permissions of that path (`ls -ld`), or run as its owner",
    errno.EPERM: "check the permissions of that path (`ls -ld`), or run as its owner",
    errno.ENOENT: "check that the path exists (and the folders above it)",
    errno.EIO: "the disk reported an I/O error: check it (`dmesg`) before trusting its files",
}


def from_os_error(error: OSError) -> EnvironmentTrouble:
    """An OS error as one line with its fix: what failed, on which path, and what to do."""
    where = f" on {error.filename}" if error.filename else ""
    reason = error.strerror or str(error) or type(error).__name__
    fix = _OS_FIXES.get(error.errno or 0, "check the path and the machine, then run again")
    return EnvironmentTrouble(f"{reason}{where}", fix)
