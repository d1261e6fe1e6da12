"""Which reader handles which artifact, and the per-file comparison around it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import cast

from harness.compare.fastpath import first_difference
from harness.compare.inputs import Opened, open_named
from harness.compare.model import ArtifactResult
from harness.compare.names import shown
from harness.compare.policy import Policy, PolicySet
from harness.errors import ArtifactError

Comparer = Callable[[Path, Path, ArtifactResult, Policy, "int | None"], None]

KINDS: dict[str, str] = {
    ".npy": "npy",
    ".npz": "npz",
    ".safetensors": "safetensors",
    ".pt": "pt",
    ".pth": "pt",
    ".keras": "keras",
    ".skops": "skops",
    ".h5": "h5",
    ".hdf5": "h5",
    ".json": "json",
    ".csv": "table",
    ".tsv": "table",
    ".txt": "text",
    ".log": "text",
    ".md": "text",
    ".yaml": "text",
    ".yml": "text",
    ".toml": "text",
    ".cfg": "text",
    ".ini": "text",
    ".jsonl": "text",
}
NUMBER_KINDS = frozenset({"json", "table"})


# Extensions that torch checkpoints often carry (pytorch_model.bin, Lightning .ckpt) but
# other files do too: these are read as checkpoints only when they look like one.
MAYBE_TORCH = frozenset({".bin", ".ckpt"})


def _looks_like_torch(path: Path) -> bool:
    import zipfile  # noqa: PLC0415 (see _read_errors)

    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(
                name.endswith("/data.pkl") and name.count("/") == 1 for name in archive.namelist()
            )
    except (OSError, zipfile.BadZipFile):
        return False


def kind_by_name(name: str) -> str:
    """The kind a file's name alone tells (a maybe-checkpoint is bytes until read)."""
    return KINDS.get(Path(name).suffix.lower(), "bytes")


def kind_of(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in MAYBE_TORCH:
        return "pt" if _looks_like_torch(Path(path)) else "bytes"
    return KINDS.get(suffix, "bytes")


# Readers are imported by name only once a file's bytes differ: numpy and h5py would
# otherwise be a noticeable share of a comparison that turns out to be byte-identical.
_COMPARERS: dict[str, tuple[str, str]] = {
    "npy": ("harness.compare.npy", "compare_npy"),
    "npz": ("harness.compare.npy", "compare_npz"),
    "safetensors": ("harness.compare.safetensors_", "compare_safetensors"),
    "pt": ("harness.compare.torch_pt", "compare_pt"),
    "keras": ("harness.compare.keras", "compare_keras"),
    "h5": ("harness.compare.keras", "compare_h5"),
    "skops": ("harness.compare.skops", "compare_skops"),
    "json": ("harness.compare.jsonmetrics", "compare_json"),
    "table": ("harness.compare.table", "compare_table"),
    "text": ("harness.compare.text", "compare_text"),
    "bytes": ("harness.compare.bytes_", "compare_bytes"),
}


def _reads_other_files(kind: str, opened: Opened) -> bool:
    """Whether the same bytes can still load as different values: an HDF5 file's external
    links and virtual datasets read other files, which differ from side to side."""
    if kind != "h5":
        return False
    from harness.compare.keras import h5_reads_other_files  # noqa: PLC0415 (h5py: only here)

    return h5_reads_other_files(opened.reader_path())


def _comparer(kind: str) -> Comparer:
    module, name = _COMPARERS.get(kind, _COMPARERS["bytes"])
    return cast(Comparer, getattr(importlib.import_module(module), name))


def _read_errors() -> tuple[type[BaseException], ...]:
    """What malformed input can raise from the readers and the libraries under them;
    anything else is a bug and should surface as one.

    Built when a reader fails, not at import: the modules that define these errors are
    the readers' business, and a comparison of identical files needs none of them.
    """
    import csv  # noqa: PLC0415
    import pickle  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    return (
        ArtifactError,
        OSError,
        EOFError,
        ValueError,  # json.JSONDecodeError among them
        KeyError,
        IndexError,
        TypeError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        struct.error,
        csv.Error,
        RecursionError,
        MemoryError,
    )


def _error_result(
    relative: str, match: str | None, policies: PolicySet, exc: ArtifactError
) -> ArtifactResult:
    suffix_kind = KINDS.get(Path(relative).suffix.lower(), "bytes")
    policy = policies.for_artifact(match or relative, numbers=suffix_kind in NUMBER_KINDS)
    return ArtifactResult(
        path=relative,
        kind=suffix_kind,
        status="error",
        policy=policy.text,
        error=exc.message,
        hint=exc.hint or None,
    )


def _suffix(path: str) -> str:
    """``Path(path).suffix.lower()`` without building a Path (this runs for every file)."""
    name = path[path.rfind("/") + 1 :]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _kinds(a: Opened, b: Opened) -> tuple[str, str]:
    suffix_a, suffix_b = _suffix(a.path), _suffix(b.path)
    if suffix_a == suffix_b and suffix_a not in MAYBE_TORCH:
        kind = KINDS.get(suffix_a, "bytes")
        return kind, kind
    return kind_of(a.reader_path()), kind_of(b.reader_path())


def compare_files(
    a: Path,
    b: Path,
    relative: str,
    policies: PolicySet,
    progress: Callable[[str], None] | None = None,
    *,
    match: str | None = None,
) -> ArtifactResult:
    """Compare two files the user named (they may be links, but only to regular files)."""
    opened: list[Opened] = []
    try:
        opened.append(open_named(a, f"{shown(relative)} in A"))
        opened.append(open_named(b, f"{shown(relative)} in B"))
        return compare_opened(opened[0], opened[1], relative, policies, progress, match=match)
    except ArtifactError as exc:
        return _error_result(relative, match, policies, exc)
    finally:
        for handle in opened:
            handle.close()


def compare_opened(
    a: Opened,
    b: Opened,
    relative: str,
    policies: PolicySet,
    progress: Callable[[str], None] | None = None,
    *,
    match: str | None = None,
) -> ArtifactResult:
    """Compare one artifact present on both sides, each already opened and checked; read
    errors become an ``error`` verdict.

    ``relative`` names the artifact in the report; ``match`` (default: the same) is the
    path that policy globs are matched against.
    """
    kind_a, kind_b = _kinds(a, b)
    kind = kind_a if kind_a == kind_b else "bytes"
    policy = policies.for_artifact(match or relative, numbers=kind in NUMBER_KINDS)
    result = ArtifactResult(path=relative, kind=kind, status="identical", policy=policy.text)
    result.size_a, result.size_b = a.size, b.size
    if kind_a != kind_b:
        result.notes.append(f"A is {kind_a}, B is {kind_b}: compared as bytes")
    try:
        prefix = first_difference(a, b)
        if prefix is None and not _reads_other_files(kind, a):
            return result
        if progress is not None:
            progress(relative)
        _comparer(kind)(a.reader_path(), b.reader_path(), result, policy, prefix)
        if prefix is None and result.status == "equal":
            # The same bytes, and the files they name hold the same values.
            result.status = "identical"
            result.tensors.clear()
    except Exception as exc:  # narrowed at once: see _read_errors
        if not isinstance(exc, _read_errors()):
            raise
        result.status = "error"
        if isinstance(exc, ArtifactError):
            result.error, result.hint = exc.message, exc.hint or None
        elif isinstance(exc, OSError) and exc.strerror:
            result.error = f"{relative}: {exc.strerror}"
        else:
            result.error = f"{relative}: {type(exc).__name__}: {exc}"
        result.tensors.clear()
    return result
