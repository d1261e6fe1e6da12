"""Files that change in every run without being results: logs, event files, time stamps.

A training loop that logs to TensorBoard writes ``events.out.tfevents.<time>.<host>...``,
and many libraries name their log files after the time they started. With no ``outputs``
declared every file an experiment writes is an artifact, so such files make a result that
reproduced bit for bit read as "NOT reproducible". When only files like these moved,
verify says so and gives the one line of configuration that sets them aside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

# TensorBoard's event files (torch.utils.tensorboard, tf.summary, Lightning, Keras).
_EVENTS = re.compile(r"^events\.out\.tfevents\.")
_LOG_SUFFIXES = frozenset({".log"})
# Folders a library fills with its own training telemetry (times, time left, progress),
# whatever the experiment's results: CatBoost writes catboost_info/ unless told not to.
_TELEMETRY_FOLDERS = frozenset({"catboost_info"})
# A date with a time (2026-12-06_10-15-00, 20261206-101500, Dec06_10-15-00) or a Unix
# time in seconds or milliseconds (1733480000): what libraries put into the names of files
# they write at startup.
_STAMP = re.compile(
    r"(?:\d{4}[-_.]?\d{2}[-_.]?\d{2}(?:[T_ -]?\d{2}[-_:.]?\d{2}(?:[-_:.]?\d{2})?(?:\.\d+)?)?"
    r"|(?:[A-Z][a-z]{2})\d{2}_\d{2}-\d{2}-\d{2}"
    r"|(?<!\d)1\d{9}(?:\d{3})?(?!\d))"
)


def is_log_like(path: str) -> bool:
    """Whether ``path`` (relative to the output folder) reads as a log or a time-stamped
    file rather than a result."""
    name = PurePosixPath(path).name
    return bool(
        _EVENTS.match(name)
        or PurePosixPath(name).suffix.lower() in _LOG_SUFFIXES
        or _STAMP.search(path)
        or _telemetry_folder(path) is not None
    )


def _telemetry_folder(path: str) -> str | None:
    return next(
        (part for part in PurePosixPath(path).parts[:-1] if part in _TELEMETRY_FOLDERS), None
    )


def exclude_globs(paths: Iterable[str]) -> list[str]:
    """The exclude globs that name ``paths``: by name for event files and logs (anywhere in
    the output folder), else the path with its time stamps as ``*``."""
    globs: list[str] = []
    for path in paths:
        name = PurePosixPath(path).name
        folder = _telemetry_folder(path)
        if folder is not None:
            glob = folder  # a glob names a folder the file lies in
        elif _EVENTS.match(name):
            glob = "events.out.tfevents.*"
        elif PurePosixPath(name).suffix.lower() in _LOG_SUFFIXES:
            glob = "*" + PurePosixPath(name).suffix
        else:
            glob = re.sub(r"\*+", "*", _STAMP.sub("*", path))
        if glob not in globs:
            globs.append(glob)
    return globs


def only_noise_moved(experiment: str, moved: Sequence[str]) -> str | None:
    """When every moved artifact is log-like, one line saying so, with the exact line to
    add; else None."""
    if not moved or not all(is_log_like(path) for path in moved):
        return None
    shown = ", ".join(moved[:3]) + (f" and {len(moved) - 3} more" if len(moved) > 3 else "")
    quoted = ", ".join(f'"{glob}"' for glob in exclude_globs(moved))
    return (
        f"only log or event files moved ({shown}): they are not results. Add "
        f"exclude = [{quoted}] under [tool.harness.experiments.{experiment}] "
        "(or list the results under outputs), then verify again"
    )
