"""Input digests from DVC: a run's inputs are checked against what ``dvc.lock`` records.

A project that versions its data with DVC already holds the md5 of every stage's
dependencies and outputs in ``dvc.lock`` (and of data added with ``dvc add`` in the
``.dvc`` file beside it). Before a run, each input that DVC knows is hashed the way DVC
hashes it and compared with that record: the run record then names the DVC version of its
data, and data that changed since DVC last saw it stops the run instead of silently
producing a result no ``dvc checkout`` can reproduce.

DVC's digests, as dvc-data computes them:

* a file: the md5 of its bytes. Entries written by DVC 2 (no ``hash: md5`` field) used
  ``md5-dos2unix``: the CRLF line endings of a text file are read as LF first, a file
  counting as text when its first 512 bytes hold no NUL and at most 30% bytes outside
  printable ASCII and ``\\n\\r\\t\\f\\b``. ``size`` is of the bytes on disk either way.
* a folder: ``<md5>.dir``, the md5 of ``json.dumps(entries, sort_keys=True)`` where
  ``entries`` lists ``{"md5": <file md5>, "relpath": <posix path>}`` for every file below
  it (hidden ones included), sorted by relpath; ``size`` and ``nfiles`` sum its files.

Paths in ``dvc.lock`` are relative to their stage's ``wdir`` (from ``dvc.yaml``), those of a
``.dvc`` file to its folder. Only inputs that are themselves a DVC entry are checked: a file
inside a tracked folder is covered by the folder's entry, not on its own. ``.dvcignore``
patterns are not applied: a folder holding files DVC ignores reads as changed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, HarnessError

DVC_LOCK = "dvc.lock"
DVC_YAML = "dvc.yaml"
DIR_SUFFIX = ".dir"
_CHUNK = 1 << 20
_TEXT_PROBE = 512
_TEXT_CHARS = bytes(range(32, 127)) + b"\n\r\t\f\b"


class DvcMismatch(HarnessError):
    """An input's content differs from the digest DVC recorded for it."""

    default_hint = (
        "restore the data DVC recorded with `dvc checkout`, or record the new data with "
        "`dvc repro` / `dvc commit`, then run again"
    )


@dataclass(frozen=True)
class DvcEntry:
    """One path DVC records a digest for."""

    path: Path
    md5: str
    size: int | None
    nfiles: int | None
    # Written by DVC 2 (no ``hash: md5`` field): its files were hashed as md5-dos2unix.
    legacy: bool
    # Where the digest is recorded, for messages: "dvc.lock (stage prepare)", "data.dvc".
    source: str


def uses_dvc(project_root: Path) -> bool:
    """Whether the project keeps a ``dvc.lock`` at its root."""
    return (project_root / DVC_LOCK).is_file()


def check_inputs(project_root: Path, inputs: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """For each input DVC records (in ``dvc.lock``, or a ``.dvc`` file beside it), hash it
    as DVC does and compare: ``{name: {"dvc_md5": ..., "verified": True, "dvc_file": ...}}``.

    Inputs DVC does not know are left out. Raises DvcMismatch naming the file when the
    content no longer matches, ConfigError when a DVC file cannot be read.
    """
    root = project_root.resolve()
    entries = list(lock_entries(root))
    checked: dict[str, dict[str, Any]] = {}
    for name, raw_path in inputs.items():
        path = raw_path if raw_path.is_absolute() else root / raw_path
        path = path.resolve()
        mine = [entry for entry in entries if entry.path == path]
        mine.extend(_dvc_file_entries(path))
        if not mine:
            continue
        for entry in mine:
            _verify(entry, root)
        checked[name] = {
            "dvc_md5": mine[0].md5,
            "verified": True,
            "dvc_file": mine[0].source,
        }
    return checked


def lock_entries(project_root: Path) -> Iterator[DvcEntry]:
    """Every dependency and output ``dvc.lock`` records, with its path resolved."""
    lock = project_root / DVC_LOCK
    if not lock.is_file():
        return
    document = _load_yaml(lock)
    stages = document.get("stages") if "schema" in document else document
    if not isinstance(stages, dict):
        raise ConfigError(f"{DVC_LOCK} has no stages table", "regenerate it with `dvc repro`")
    wdirs = _stage_wdirs(project_root)
    for stage, spec in stages.items():
        if not isinstance(spec, dict):
            continue
        base = project_root / wdirs.get(str(stage).split("@", 1)[0], ".")
        for kind in ("deps", "outs"):
            for item in spec.get(kind) or ():
                entry = _entry(item, base, f"{DVC_LOCK} (stage {stage}, {kind})")
                if entry is not None:
                    yield entry


def _dvc_file_entries(path: Path) -> list[DvcEntry]:
    """The entry of ``path`` in ``path.dvc``, written by ``dvc add``."""
    dvc_file = path.with_name(path.name + ".dvc")
    if not dvc_file.is_file():
        return []
    document = _load_yaml(dvc_file)
    base = dvc_file.parent / str(document.get("wdir", "."))
    found = []
    for item in document.get("outs") or ():
        entry = _entry(item, base, dvc_file.name)
        if entry is not None and entry.path == path:
            found.append(entry)
    return found


def _entry(item: object, base: Path, source: str) -> DvcEntry | None:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        return None
    md5 = item.get("md5")
    if not isinstance(md5, str):
        return None  # a remote dependency, or one recorded by another hash (etag, checksum)
    size, nfiles = item.get("size"), item.get("nfiles")
    return DvcEntry(
        path=(base / item["path"]).resolve(),
        md5=md5,
        size=size if isinstance(size, int) else None,
        nfiles=nfiles if isinstance(nfiles, int) else None,
        legacy=item.get("hash") != "md5",
        source=source,
    )


def _stage_wdirs(project_root: Path) -> dict[str, str]:
    dvc_yaml = project_root / DVC_YAML
    if not dvc_yaml.is_file():
        return {}
    stages = _load_yaml(dvc_yaml).get("stages")
    if not isinstance(stages, dict):
        return {}
    return {
        str(name): spec["wdir"]
        for name, spec in stages.items()
        if isinstance(spec, dict) and isinstance(spec.get("wdir"), str)
    }


def _verify(entry: DvcEntry, root: Path) -> None:
    shown = _relative(entry.path, root)
    if entry.md5.endswith(DIR_SUFFIX):
        if not entry.path.is_dir():
            raise DvcMismatch(f"{shown} is a folder in {entry.source}, but not one on disk")
        md5, size, nfiles = dir_md5(entry.path, legacy=entry.legacy)
        if md5 != entry.md5 or (entry.nfiles is not None and nfiles != entry.nfiles):
            raise DvcMismatch(
                f"{shown} no longer matches {entry.source}: DVC recorded {entry.md5} "
                f"({entry.nfiles} files), the folder holds {md5} ({nfiles} files)"
            )
        return
    if not entry.path.is_file():
        raise DvcMismatch(f"{shown} is a file in {entry.source}, but not one on disk")
    size = entry.path.stat().st_size
    # The size first: a changed size needs no hashing to tell.
    if entry.size is not None and size != entry.size:
        raise DvcMismatch(
            f"{shown} no longer matches {entry.source}: DVC recorded {entry.size} bytes, "
            f"the file has {size}"
        )
    md5 = file_md5(entry.path, legacy=entry.legacy)
    if md5 != entry.md5:
        raise DvcMismatch(
            f"{shown} no longer matches {entry.source}: DVC recorded md5 {entry.md5}, "
            f"the file has {md5}"
        )


def file_md5(path: Path, *, legacy: bool = False) -> str:
    """DVC's md5 of a file; ``legacy`` gives DVC 2's md5-dos2unix (see the module)."""
    digest = hashlib.md5(usedforsecurity=False)
    text: bool | None = None if legacy else False
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            if text is None:  # DVC 2 decided once, from the file's first block
                text = _is_text(chunk[:_TEXT_PROBE])
            # A CRLF split across two chunks stays CRLF, as it did in DVC 2.
            digest.update(chunk.replace(b"\r\n", b"\n") if text else chunk)
    return digest.hexdigest()


def dir_md5(path: Path, *, legacy: bool = False) -> tuple[str, int, int]:
    """DVC's ``<md5>.dir`` digest of a folder, with its total size and file count."""
    entries = []
    size = 0
    for file in _files(path):
        entries.append({"md5": file_md5(file, legacy=legacy), "relpath": _posix(file, path)})
        size += file.stat().st_size
    entries.sort(key=lambda entry: entry["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    digest = hashlib.md5(listing, usedforsecurity=False).hexdigest()
    return digest + DIR_SUFFIX, size, len(entries)


def _files(folder: Path) -> Iterator[Path]:
    for root, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            yield Path(root) / name


def _posix(file: Path, folder: Path) -> str:
    return file.relative_to(folder).as_posix()


def _is_text(block: bytes) -> bool:
    if not block:
        return True
    if b"\x00" in block:
        return False
    return len(block.translate(None, _TEXT_CHARS)) / len(block) <= 0.30


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _load_yaml(path: Path) -> dict[str, Any]:
    yaml = yaml_module()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}", "check the file") from None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{path.name} is not valid YAML: {error}", "regenerate it with dvc"
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name} is not a YAML mapping", "regenerate it with dvc")
    return document


def yaml_module() -> Any:
    """PyYAML, imported when a YAML file is first read (dvc.lock, MLproject)."""
    try:
        return importlib.import_module("yaml")
    except ImportError:
        raise HarnessError(
            "reading DVC and MLflow project files needs PyYAML, which is not installed",
            "pip install pyyaml",
        ) from None


def literal_dumper() -> Any:
    """PyYAML's safe dumper, writing multi-line strings (scripts, specs) as literal blocks,
    for the YAML files harness writes (MLproject, Kubernetes manifests)."""
    yaml = yaml_module()

    class Dumper(yaml.SafeDumper):  # type: ignore[misc, name-defined]
        pass

    def represent_text(dumper: Any, text: str) -> Any:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    Dumper.add_representer(str, represent_text)
    return Dumper
