"""HDF5 weights (``.h5``) and Keras archives (``.keras``), read with h5py.

Every dataset is compared by its path, block by block through h5py (never read whole);
attributes are compared as plain values, bytes as bytes. Soft links are compared by
the path they name. External links and virtual datasets are compared by the values they
lead to, as h5py would return them, when the files they name lie inside the compared
folder (see :mod:`harness.compare.h5links`); otherwise they are refused, as is external
storage.
A ``.keras`` file is a zip holding ``model.weights.h5``, ``config.json`` and
``metadata.json``: the weights are extracted to
a temporary file (h5py needs a seekable file), the config is compared as JSON, and
``metadata.json`` is skipped because it records the save date and library versions,
which differ between any two saves.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from contextlib import ExitStack, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import h5py

from harness.compare.container import Container, compare_containers
from harness.compare.dtypes import from_numpy
from harness.compare.h5links import LinkedFiles, refuse_outside
from harness.compare.jsonmetrics import check_json_size, loads_json
from harness.compare.model import ArtifactResult
from harness.compare.names import shown
from harness.compare.npy import open_zip
from harness.compare.policy import Policy
from harness.compare.streams import ArraySource
from harness.errors import ArtifactError

SKIPPED_MEMBERS = ("metadata.json",)
# Weights are extracted to a temporary file for h5py: the archive's declared size is what
# lands on disk, so a small zip cannot claim an unbounded one.
MAX_EXTRACTED = 64 << 30
# Object (variable-length) datasets are read whole as Python values.
MAX_OBJECT_ELEMENTS = 1 << 20


def _plain(value: Any) -> Any:
    """An HDF5 attribute or small dataset as a JSON-like Python value.

    Bytes stay bytes: decoding them (with replacement) would make two different invalid
    UTF-8 strings equal.
    """
    tolist = getattr(value, "tolist", None)
    if tolist is not None and not isinstance(value, bytes):
        return _plain(tolist())
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _names(handle: h5py.Group) -> list[str]:
    names: list[str] = []
    handle.visit_links(names.append)
    return names


def h5_reads_other_files(path: Path) -> bool:
    """Whether the HDF5 file holds an external link, a virtual dataset or a dataset stored
    in external files: what it loads as then depends on other files too."""
    try:
        handle = h5py.File(path, "r")
    except OSError:
        return False  # not HDF5 at all: its bytes are all there is
    with handle:
        for name in _names(handle):
            link = handle.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                return True
            if isinstance(link, h5py.SoftLink):
                continue
            obj = handle[name]
            if isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
                return True
    return False


def h5_container(path: Path, stack: ExitStack, label: str | None = None) -> Container:
    """The datasets (as arrays) and attributes (as values) of an HDF5 file kept open.

    Every link is followed by name, so an object reachable by two names is compared
    under both; a soft link is compared by the path it names (its target is compared
    under its own name); an external link is compared as the object it leads to, and a
    virtual dataset by its values, when the files they read lie inside the compared
    folder; a dataset stored in external files is refused.
    """
    label = label or str(path)
    try:
        handle = stack.enter_context(h5py.File(path, "r"))
    except OSError as exc:
        raise ArtifactError(
            f"{label} is not a readable HDF5 file ({exc})",
            hint="the file is truncated or corrupt; regenerate it",
        ) from None
    container = Container()
    files = LinkedFiles(stack, label, getattr(path, "place", None), path.stat())
    _add(container, files, handle, "", files.top)
    return container


def _add(
    container: Container,
    files: LinkedFiles,
    obj: h5py.Group | h5py.Dataset,
    prefix: str,
    where: LinkedFiles.Where,
) -> None:
    """``obj`` and everything below it, under the name ``prefix`` ("" for the root)."""
    objects: list[tuple[str, Any]] = [(prefix or "/", obj)]
    if isinstance(obj, h5py.Group):
        names = _names(obj)
        if prefix:  # a group reached through an external link
            files.count(len(names), prefix)
        for name in names:
            full = f"{prefix}/{name}" if prefix else name
            link = obj.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                target, inner = files.external(full, link.filename, link.path, where)
                _add(container, files, target, full, inner)
                continue
            if isinstance(link, h5py.SoftLink):
                container.values[f"{full}@soft link"] = link.path
                continue
            objects.append((full, files.member(obj, name, where)))
    for name, item in objects:
        for key, value in item.attrs.items():
            container.values[f"{name}@{key}"] = _plain(value)
        if isinstance(item, h5py.Dataset):
            _dataset(container, files, name, item, where)


def _dataset(
    container: Container,
    files: LinkedFiles,
    name: str,
    obj: h5py.Dataset,
    where: LinkedFiles.Where,
) -> None:
    label = files.label
    if obj.is_virtual:
        obj = files.virtual(name, obj, where)
    if obj.external:
        raise refuse_outside(label, name, "a dataset stored in external files")
    if obj.shape is None:
        container.values[name] = "<empty dataset>"
    elif obj.dtype.kind == "O" or obj.dtype.hasobject:
        if obj.size > MAX_OBJECT_ELEMENTS:
            raise ArtifactError(
                f"{label}: dataset {shown(name)} holds {obj.size} variable-length values, "
                f"more than the {MAX_OBJECT_ELEMENTS} harness reads",
                hint="store large arrays with a fixed-size dtype",
            )
        container.values[name] = _plain(obj[()])
    else:
        container.tensors[name] = ArraySource(
            partial(nullcontext, obj), from_numpy(obj.dtype), tuple(obj.shape)
        )


def compare_h5(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    with ExitStack() as stack:
        compare_containers(result, h5_container(a, stack), h5_container(b, stack), policy, None)


def _member_digest(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while block := member.read(1 << 20):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def keras_container(path: Path, stack: ExitStack) -> Container:
    container = Container()
    archive = stack.enter_context(open_zip(path))
    scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-keras-")))
    for info in archive.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if name in SKIPPED_MEMBERS:
            container.notes.append(f"{name} (save date, versions) is not compared")
        elif name.endswith(".h5"):
            if info.file_size > MAX_EXTRACTED:
                raise ArtifactError(
                    f"{path}:{name} declares {info.file_size} bytes, more than the "
                    f"{MAX_EXTRACTED} harness extracts",
                    hint="the archive is corrupt or not a Keras model; regenerate it",
                )
            extracted = scratch / f"{len(list(scratch.iterdir()))}.h5"
            with archive.open(info) as member, extracted.open("wb") as out:
                shutil.copyfileobj(member, out, 8 << 20)
            weights = h5_container(extracted, stack, f"{path}:{name}")
            label = "" if name == "model.weights.h5" else f"{name}:"
            container.tensors.update((label + key, src) for key, src in weights.tensors.items())
            container.values.update((label + key, val) for key, val in weights.values.items())
        elif name.endswith(".json"):
            check_json_size(info.file_size, f"{path}:{name}")
            try:
                container.values[name] = loads_json(archive.read(info))
            except (ValueError, RecursionError):
                raise ArtifactError(f"{path}:{name} is not valid JSON") from None
        else:
            container.values[name] = _member_digest(archive, name)
    return container


def compare_keras(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    with ExitStack() as stack:
        container_a = keras_container(a, stack)
        container_b = keras_container(b, stack)
        compare_containers(result, container_a, container_b, policy, None)
