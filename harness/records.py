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
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness import atomic
from harness.compare.kinds import KINDS
from harness.digests import sha256_file
from harness.errors import HarnessError, RunNotFound

SCHEMA = "harness.run-record/v1"
RUNS = Path(".harness") / "runs"
RECORD = "record.json"
ARTIFACTS = "artifacts"
LOG = "log.txt"
META = "meta"
STATUSES = ("running", "succeeded", "failed", "timeout", "aborted")


class CorruptRecord(HarnessError):
    default_hint = "the record was edited or truncated; rerun the experiment to get a new one"


def runs_root(project_root: Path) -> Path:
    return project_root / RUNS


def new_run_id(experiment: str, now: dt.datetime | None = None) -> str:
    """Sortable by start time, unique without coordination: 20261126-064501-torch-3f9a2c."""
    moment = now or dt.datetime.now(dt.UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{experiment}-{secrets.token_hex(3)}"


def write(folder: Path, record: Mapping[str, Any]) -> Path:
    path = folder / RECORD
    atomic.write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read(folder: Path) -> dict[str, Any]:
    path = folder / RECORD
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunNotFound(f"{folder} holds no {RECORD}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptRecord(f"{path} cannot be read: {error}") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise CorruptRecord(f"{path} is not a {SCHEMA} record (schema: {found!r})")
    return document


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
    """Every file the experiment wrote: path, size, sha256 and the kind compare reads it as."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        found.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "size": path.stat().st_size,
                "sha256": sha256_file(path),
                "kind": KINDS.get(path.suffix.lower(), "bytes"),
            }
        )
    return found


def log_tail(log: Path, lines: int = 30) -> list[str]:
    if not log.is_file():
        return []
    with log.open("rb") as stream:
        stream.seek(0, 2)
        stream.seek(max(0, stream.tell() - 64 * 1024))
        text = stream.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:]
