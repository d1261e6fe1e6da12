"""Run records: one versioned JSON document per run, stored atomically under .harness/runs/.

A run's folder holds ``record.json`` (schema ``harness/schemas/run-record.v1.json``), the
``artifacts/`` the experiment wrote, ``log.txt`` (its output as it came) and ``meta/``
(what the runtime inside the container reported). The record is written when the run
starts (status ``running``) and replaced when it ends, so that even a harness process
killed outright leaves a record saying the run never finished.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import stat
import statistics
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from harness import atomic, owner, untrusted
from harness.cleanup import quietly
from harness.compare.kinds import KINDS
from harness.config import STATE_FOLDER
from harness.digests import sha256_file
from harness.errors import ConfigError, HarnessError, RunNotFound
from harness.runtime import outputs as runtime_outputs

SCHEMA = "harness.run-record/v1"
RUNS = STATE_FOLDER / "runs"
RECORD = "record.json"
ARTIFACTS = "artifacts"
LOG = "log.txt"
META = "meta"
# What the experiment wrote that its outputs do not name (logs, event files): set aside by
# the runtime in its meta folder, listed in the record, never compared or certified.
UNLISTED = f"{META}/{runtime_outputs.UNLISTED}"
# Room kept beside a running record for its last write (see write()); bytes.
RESERVE = ".record-reserve"
RESERVE_SIZE = 64 * 1024
# "lost": the engine stopped answering during the run, so how it ended is unknown.
STATUSES = ("running", "succeeded", "failed", "timeout", "aborted", "lost")
# A run id names a folder under .harness/runs/: one path component of plain characters,
# so that no record, wherever it comes from, can name a place outside that folder.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SHA256 = re.compile(r"[0-9a-f]{64}")
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
# Artifacts nest in folders; past this many levels a tree is an attack, not an output.
ARTIFACT_DEPTH = 32


class CorruptRecord(HarnessError):
    default_hint = "the record was edited or truncated; rerun the experiment to get a new one"


def runs_root(project_root: Path) -> Path:
    return project_root / RUNS


def new_run_id(experiment: str, now: dt.datetime | None = None) -> str:
    """Sortable by start time, unique without coordination: 20261126-064501-torch-3f9a2c."""
    moment = now or dt.datetime.now(dt.UTC)
    run_id = f"{moment:%Y%m%d-%H%M%S}-{experiment}-{secrets.token_hex(3)}"
    # The configuration refuses such names; a run id is a folder name all the same.
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ConfigError(
            f"the experiment name {experiment!r} cannot name a run's folder",
            "use letters, digits, '.', '_' and '-' (no '..', at most 100 characters)",
        )
    return run_id


def write(folder: Path, record: Mapping[str, Any]) -> Path:
    """Write the record atomically. A run's first record leaves room for its last: should
    the disk fill during the run, the room is given back to write how the run ended."""
    path = folder / RECORD
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    reserve = folder / RESERVE
    try:
        atomic.write_text(path, text)
    except OSError:
        if not reserve.is_file():
            raise
        reserve.unlink()
        try:
            atomic.write_text(path, text)
        except OSError:
            # Still no room: how the run ended matters more than the last lines of its log
            # (log.txt keeps them).
            slim = {**record, "log_tail": []}
            atomic.write_text(path, json.dumps(slim, indent=2, sort_keys=True) + "\n")
    if record.get("status") == "running":
        if not reserve.exists():
            _reserve(reserve)
    else:
        reserve.unlink(missing_ok=True)
    return path


def _reserve(path: Path) -> None:
    """Allocate the room (not sparsely: these blocks are the run's, whatever else fills
    the disk after); written out where the file system cannot allocate."""
    with path.open("wb") as stream:
        try:
            os.posix_fallocate(stream.fileno(), 0, RESERVE_SIZE)
        except OSError:
            stream.write(bytes(RESERVE_SIZE))


def abandoned(record: Mapping[str, Any]) -> bool:
    """Whether a record says ``running`` though the harness process that ran it is gone
    (see :mod:`harness.owner`); a record that names no process, or one of another
    machine, is never taken for abandoned."""
    if record.get("status") != "running":
        return False
    process = owner.from_dict(record.get("harness_process"))
    return process is not None and process.alive() is False


def end_lost(folder: Path, record: dict[str, Any], reason: str) -> None:
    """End an abandoned run's record ``lost`` with ``reason``; a state folder that cannot be
    written (read-only) leaves it as it is, with a warning, and the reason still shown."""
    record.update(status="lost", error=reason, exit_code=None)
    timings = record.setdefault("timings", {})
    if isinstance(timings, dict):
        timings["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    quietly(f"writing the record of {folder.name}", lambda: write(folder, record))


def read(folder: Path) -> dict[str, Any]:
    """The record in ``folder``, read within bounds (size, nesting, a regular file)."""
    path = folder / RECORD
    try:
        document = untrusted.load_json(path, what="the record", follow_symlinks=False)
    except FileNotFoundError:
        raise RunNotFound(f"{folder} holds no {RECORD}") from None
    except untrusted.UntrustedInputError as error:
        raise CorruptRecord(f"{path} cannot be read: it {error.reason}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise CorruptRecord(f"{path} is not a {SCHEMA} record (schema: {found!r})")
    return document


def check_foreign(record: Mapping[str, Any], where: Path) -> None:
    """Refuse a record from elsewhere whose fields harness would trust: its run id (a
    folder name), status, experiment, image, seed, profile, threads, host and artifacts."""
    problem = _field_problem(record) or _artifacts_problem(record.get("artifacts"))
    if problem:
        raise CorruptRecord(
            f"the record in {where} {problem}",
            "collect only records harness wrote; download the run's folder again",
        )


def _field_problem(record: Mapping[str, Any]) -> str | None:
    run_id, image = record.get("run_id"), record.get("image")
    checks = (
        (
            isinstance(run_id, str) and RUN_ID.fullmatch(run_id) is not None,
            f"has no valid run_id ({_shown(run_id)}): letters, digits, . _ - only",
        ),
        (record.get("status") in STATUSES, f"has an unknown status {_shown(record.get('status'))}"),
        (
            isinstance(record.get("experiment"), str) and bool(record["experiment"]),
            "names no experiment",
        ),
        (
            _pinned(image, record.get("python_environment")),
            "names no image (id sha256:<64 hex>, reference, variant) and no Python "
            "environment (digest sha256:<64 hex>)",
        ),
        (_whole(record.get("seed")), "has no whole-number seed"),
        (_whole(record.get("threads")), "has no whole-number threads"),
        (isinstance(record.get("profile"), str), "names no profile"),
        (isinstance(record.get("host", ""), str), "names its host with something not a string"),
        *(
            (record.get(key) is None or isinstance(record[key], dict), f"has a {key} not an object")
            for key in ("engine", "container", "parameters")
        ),
    )
    return next((problem for ok, problem in checks if not ok), None)


def _pinned(image: object, environment: object) -> bool:
    """A run is pinned by an image, or (host executor) by a Python environment's digest."""
    if isinstance(image, dict):
        return (
            isinstance(image.get("id"), str)
            and IMAGE_ID.fullmatch(image["id"]) is not None
            and all(isinstance(image.get(k), str) for k in ("reference", "variant"))
        )
    return (
        image is None
        and isinstance(environment, dict)
        and isinstance(environment.get("digest"), str)
        and IMAGE_ID.fullmatch(environment["digest"]) is not None
    )


def _artifacts_problem(listed: object) -> str | None:
    if not isinstance(listed, list):
        return "has no artifacts list"
    seen: set[str] = set()
    for artifact in listed:
        path = safe_relative(artifact.get("path")) if isinstance(artifact, dict) else None
        if path is None:
            return f"lists an artifact path outside its folder: {_shown(artifact)}"
        checks = (
            (_whole(artifact.get("size")), f"gives artifact {path} no size"),
            (
                isinstance(artifact.get("sha256"), str)
                and SHA256.fullmatch(artifact["sha256"]) is not None,
                f"gives artifact {path} no sha256",
            ),
            (path.as_posix() not in seen, f"lists artifact {path} twice"),
        )
        problem = next((problem for ok, problem in checks if not ok), None)
        if problem:
            return problem
        seen.add(path.as_posix())
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def find(project_root: Path, reference: str) -> Path:
    """The folder of the run ``reference`` names: a run id, a unique prefix, or a folder."""
    as_path = Path(reference)
    if (as_path / RECORD).is_file():
        return as_path
    root = runs_root(project_root)
    if (root / reference / RECORD).is_file():
        return root / reference
    matches = [f for f in _run_folders(root) if f.name.startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"no run {reference!r} in {RUNS}")
    names = ", ".join(m.name for m in matches[:3])
    raise RunNotFound(
        f"{reference!r} matches {len(matches)} runs ({names}, ...)", "give more of the id"
    )


def recent_seconds(project_root: Path, experiment: str, *, newest: int = 3) -> float | None:
    """How long the experiment's newest succeeded runs took (the median of ``newest``), or
    None when it has none: what runs at once are ordered by, longest first.

    Only the folder names are listed, and only the newest of that experiment read, so this
    stays cheap under thousands of runs.
    """
    root = runs_root(project_root)
    if not root.is_dir():
        return None
    # A run id is DATE-TIME-EXPERIMENT-HEX (see new_run_id).
    named = sorted(
        folder
        for folder in root.iterdir()
        if folder.name.count("-") >= 3 and folder.name[16:-7] == experiment
    )
    seconds: list[float] = []
    for folder in reversed(named):
        try:
            record = read(folder)
        except HarnessError:
            continue
        timings = record.get("timings") or {}
        took = timings.get("container_s", timings.get("process_s"))
        if record.get("status") == "succeeded" and isinstance(took, int | float):
            seconds.append(float(took))
            if len(seconds) == newest:
                break
    return statistics.median(seconds) if seconds else None


def all_records(project_root: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Every run folder, oldest first, with its record (None when it cannot be read)."""
    for folder in _run_folders(runs_root(project_root)):
        try:
            yield folder, read(folder)
        except HarnessError:
            yield folder, None


def _run_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(f for f in root.iterdir() if (f / RECORD).is_file())


# -- digests ---------------------------------------------------------------------------


def digest_path(path: Path) -> dict[str, Any]:
    """sha256 of a file, or of a folder's sorted (relative path, file sha256) list."""
    if path.is_file():
        return {
            "kind": "file",
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
            "files": 1,
        }
    if path.is_dir():
        digest = hashlib.sha256()
        size = files = 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(bytes.fromhex(sha256_file(file)))
            size += file.stat().st_size
            files += 1
        return {"kind": "folder", "size": size, "sha256": digest.hexdigest(), "files": files}
    raise HarnessError(f"input {path} does not exist", "fix the path under inputs, or create it")


def artifacts(folder: Path) -> list[dict[str, Any]]:
    """Every file the experiment wrote: path, size, sha256 and the kind compare reads it as.

    Only regular files and folders: a symbolic link an experiment left would make harness
    hash (and a certificate sign) whatever file of this machine it points to.
    """
    found = []
    for path in regular_files(folder, what="artifact"):
        relative = path.relative_to(folder).as_posix()
        size, sha256 = _hash_inside(folder, relative)
        found.append(
            {
                "path": relative,
                "size": size,
                "sha256": sha256,
                "kind": KINDS.get(path.suffix.lower(), "bytes"),
            }
        )
    return found


def _hash_inside(folder: Path, relative: str) -> tuple[int, str]:
    """Size and sha256 of a file that :func:`regular_files` listed, opened again without
    following any link below ``folder`` and checked to be the regular file it was: what
    the walk saw may have been swapped for a link or a pipe since."""
    try:
        handle = untrusted.open_inside(folder, relative, what="the artifact")
    except untrusted.UntrustedInputError as error:
        raise CorruptRecord(error.message, error.hint) from None
    with os.fdopen(handle, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise CorruptRecord(
                f"artifact {relative} in {folder} is no longer a regular file",
                "experiments must write plain files; links could point anywhere",
            )
        digest = hashlib.sha256()
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return status.st_size, digest.hexdigest()


def is_artifact(path: str, outputs: Iterable[str], exclude: Iterable[str]) -> bool:
    """Whether the file at ``path`` (relative to the output folder) is an artifact: one an
    outputs glob names (every file, when there are none), and no exclude glob names (see
    :mod:`harness.runtime.outputs`, which the runtime sets files aside with)."""
    return runtime_outputs.is_artifact(path, outputs, exclude)


def set_aside_unlisted(folder: Path, outputs: Iterable[str], exclude: Iterable[str]) -> None:
    """Move every file of the run's ``artifacts/`` that is not an artifact into its
    ``meta/unlisted/``, for a run whose runtime did not (an image of an older harness), so
    that only artifacts are hashed, compared and certified."""
    try:
        runtime_outputs.set_aside(folder / ARTIFACTS, folder / UNLISTED, outputs, exclude)
    except ValueError as error:
        raise CorruptRecord(str(error)) from None


def entries(folder: Path) -> list[Path]:
    """Everything under ``folder`` that is not a folder (links included, never followed)."""
    try:
        return runtime_outputs.entries(folder, ARTIFACT_DEPTH)
    except ValueError as error:
        raise CorruptRecord(str(error)) from None


def unlisted(folder: Path) -> list[dict[str, Any]]:
    """The files set aside in the run's ``meta/unlisted/``: path, size and sha256 (for the
    record; nothing compares them)."""
    where = folder / UNLISTED
    if not where.is_dir() or where.is_symlink():
        return []
    found = []
    for path in regular_files(where, what="unlisted file"):
        relative = path.relative_to(where).as_posix()
        size, sha256 = _hash_inside(where, relative)
        found.append({"path": relative, "size": size, "sha256": sha256})
    return found


def regular_files(folder: Path, *, what: str, depth: int = ARTIFACT_DEPTH) -> list[Path]:
    """The regular files under ``folder``, sorted; any link, device or pipe is refused."""
    top = folder.lstat()
    if not stat.S_ISDIR(top.st_mode):
        raise CorruptRecord(f"{folder} is not a folder (a link or a file in its place)")
    files: list[Path] = []
    pending = [(folder, 0)]
    while pending:
        current, level = pending.pop()
        if level > depth:
            raise CorruptRecord(f"{current} nests deeper than {depth} folders")
        for entry in sorted(current.iterdir()):
            mode = entry.lstat().st_mode
            if stat.S_ISDIR(mode):
                pending.append((entry, level + 1))
            elif stat.S_ISREG(mode):
                files.append(entry)
            else:
                relative = entry.relative_to(folder).as_posix()
                raise CorruptRecord(
                    f"{what} {relative} in {folder} is not a regular file "
                    f"({'a symbolic link' if stat.S_ISLNK(mode) else 'a device, pipe or socket'})",
                    "experiments must write plain files; links could point anywhere",
                )
    return sorted(files)


def safe_relative(text: object) -> PurePosixPath | None:
    """``text`` as a path inside a folder, or None when it could leave it.

    Plain relative POSIX paths only: no absolute path, no ``..``, no empty or ``.``
    component, no backslash (a separator elsewhere), no NUL.
    """
    if not isinstance(text, str) or not text or len(text) > 4096:
        return None
    if "\\" in text or "\0" in text or text.startswith("/"):
        return None
    parts = text.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return PurePosixPath(*parts)


def log_tail(log: Path, lines: int = 30) -> list[str]:
    """The last lines of a run's log: only a regular file, never through a link, without
    blocking on a pipe, and no more than its last 64 KiB read."""
    try:
        handle = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []  # none, or a link: no tail to show
    with os.fdopen(handle, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode):
            return []
        stream.seek(max(0, status.st_size - 64 * 1024))
        text = stream.read(64 * 1024).decode("utf-8", "replace")
    return text.splitlines()[-lines:]


def device_class(record: Mapping[str, Any]) -> str:
    """What a run computed on, as far as bytes go: ``cpu``, or its GPUs' class (model and
    compute capability, see ``harness.runtime.fingerprint.gpu_class``). Runs agree bit for
    bit only within one class; across classes only a tolerance can hold."""
    if record.get("device") == "cpu":
        return "cpu"
    gpu = (record.get("fingerprint") or {}).get("gpu") or {}
    found = gpu.get("class") if isinstance(gpu, Mapping) else None
    return str(found) if found else "unknown GPU"


def isolation(record: Mapping[str, Any]) -> tuple[str, str]:
    """What pinned a run's software: ("image", image ID) for a container run, or
    ("python-environment", its digest) for a run of the host executor. Runs pinned by
    different things never count towards one quorum."""
    image = record.get("image")
    if isinstance(image, Mapping) and image.get("id"):
        return "image", str(image["id"])
    environment = record.get("python_environment")
    if isinstance(environment, Mapping) and environment.get("digest"):
        return "python-environment", str(environment["digest"])
    return "unknown", "unknown"
