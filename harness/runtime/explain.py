"""Why a command failed, in one line taken from its own output.

"command exited with status 1" names no cause; the cause is in the log, usually as the
last line of a Python traceback, else as a line that says error. This module picks that
line from the tail of the command's output, and says so plainly when the cause is a write
into the project folder, which is read-only in every run: the output folder is where a
run writes.

Standard library only, like the rest of the runtime.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence

# How much of a line a one-line error quotes.
MAX_QUOTED = 300
_TRACEBACK = "Traceback (most recent call last):"
# A line that says what went wrong, from a program that is not Python (or one that
# printed its own error): the last such line explains best.
_ERROR_LINE = re.compile(
    r"error|fatal|exception|can't|cannot|could not|no such file|permission denied|"
    r"read-only file system|not found|killed",
    re.IGNORECASE,
)
_READ_ONLY = re.compile(r"\[Errno 30\]|Read-only file system", re.IGNORECASE)
# What a download says when there is no network: a container's run has none, and a
# dataset or model fetched on first use (torchvision's download=True, a Hugging Face
# model by name) fails with its own error, the network's cause a few lines above it.
_NO_NETWORK = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"No address associated with hostname|Could not resolve host|getaddrinfo failed|"
    r"Failed to establish a new connection|Max retries exceeded with url|urlopen error|"
    r"couldn't connect to '?https?://",
    re.IGNORECASE,
)
# How far down an exception's chain (raise ... from, or during handling) the cause is sought.
_CHAIN_DEPTH = 16


def explaining_line(lines: Sequence[str]) -> str | None:
    """The line of ``lines`` (a command's output, oldest first) that explains its failure:
    the exception line that ends the last traceback, else the last line that reads as an
    error, else None."""
    cleaned = [line.rstrip() for line in lines]
    starts = [index for index, line in enumerate(cleaned) if line.strip() == _TRACEBACK]
    if starts:
        # Frames are indented; the first line after the header that is not, and is not
        # the header of a chained traceback, is the exception.
        for line in cleaned[starts[-1] + 1 :]:
            if line and not line[0].isspace() and not line.startswith("During handling"):
                return _quoted(line)
    for line in reversed(cleaned):
        if _ERROR_LINE.search(line):
            return _quoted(line)
    return None


def read_only_write(text: str) -> bool:
    """Whether ``text`` (an error line) says a write was refused by a read-only folder."""
    return bool(_READ_ONLY.search(text))


def is_read_only(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno == errno.EROFS


def read_only_fix(where: str) -> str:
    """The fix for a write into the read-only project: where the run writes instead."""
    return (
        f"the project folder is read-only in a run: write results into {where}, and "
        "scratch files under /tmp"
    )


def network_refused(lines: Sequence[str]) -> bool:
    """Whether a failed run's output says a connection it tried had no network."""
    return any(_NO_NETWORK.search(line) for line in lines)


def network_refused_error(error: BaseException) -> bool:
    """Whether an exception, or one in its chain, says the same."""
    seen: BaseException | None = error
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            return False
        if _NO_NETWORK.search(f"{type(seen).__name__}: {seen}"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# The fix for a download that needed the network.
NO_NETWORK_FIX = (
    "a run has no network, so that its result depends on its inputs alone: fetch the data "
    "or model once beforehand into a folder declared under inputs, and read it from there "
    "(torchvision: download=False; Hugging Face: the model's folder, HF_HUB_OFFLINE=1)"
)


def _quoted(line: str) -> str:
    text = " ".join(line.split())
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."
