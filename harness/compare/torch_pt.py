"""PyTorch checkpoints (``torch.save`` zip archives), read without torch and without
running pickled code.

The archive holds ``<name>/data.pkl``, a protocol-2 pickle of the saved object in which
every tensor is a call to a rebuild function over a storage, and ``<name>/data/<key>``,
the raw storage bytes (stored uncompressed and aligned, so they are read in place). The
pickle is read by an Unpickler whose ``find_class`` knows only the tensor-rebuild and
storage names, all replaced by inert stand-ins: no torch function is ever called, and any
other global (``os.system``, a model class, a numpy reconstructor) is refused before it
can be resolved.
"""

from __future__ import annotations

import _compat_pickle
import io
import json
import pickle
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from math import prod
from pathlib import Path
from typing import IO, Any, Literal

from harness.compare.container import Container, compare_containers
from harness.compare.dtypes import TORCH_DTYPES, TORCH_STORAGES, DType
from harness.compare.model import ArtifactResult
from harness.compare.npy import member_opener, open_zip, stored_member_offset
from harness.compare.policy import Policy
from harness.compare.streams import FileRange, Source, StreamRange, StridedRange
from harness.errors import ArtifactError

_HINT_UNSAFE = (
    "harness reads tensors, plain containers and numbers from checkpoints; save the "
    "state_dict (not the model object) or use safetensors"
)
_HINT_MALFORMED = "the checkpoint is truncated or corrupt; regenerate it"
# The pickle describes the saved object; the tensors' bytes live outside it. A real
# state_dict's pickle is kilobytes to a few megabytes.
MAX_PICKLE = 256 << 20
# Leaves of the saved object (tensors and plain values). Shared references let a small
# pickle describe a tree with exponentially many paths; this bounds the walk.
MAX_LEAVES = 1_000_000


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: DType | None  # None: an untyped (byte) storage; the tensor names its dtype


@dataclass(frozen=True, slots=True)
class _DTypeName:
    dtype: DType


@dataclass(frozen=True, slots=True)
class _Storage:
    key: str
    dtype: DType | None
    numel: int
    byteorder: str


@dataclass(frozen=True, slots=True)
class PtTensor:
    """A tensor as the checkpoint describes it: a typed view into a storage."""

    storage: _Storage
    dtype: DType
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    # What else the loader sets on the tensor it returns, when not the default: its
    # conjugate and negative bits (``metadata``), ``requires_grad``, its class
    # (``Parameter``) and Python state. Each is compared as a value.
    attributes: tuple[tuple[str, Any], ...] = ()

    def with_attributes(self, **extra: Any) -> PtTensor:
        merged = dict(self.attributes)
        merged.update(extra)
        return replace(self, attributes=tuple(sorted(merged.items())))


@dataclass(frozen=True, slots=True)
class _TensorClass:
    name: str


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise ArtifactError(f"malformed tensor {what} {value!r}", hint=_HINT_MALFORMED)
    return tuple(value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, dtype: DType | None) -> PtTensor:
    if not isinstance(storage, _Storage) or dtype is None:
        raise ArtifactError("malformed tensor: no typed storage", hint=_HINT_MALFORMED)
    shape = _ints(size, "size")
    strides = _ints(stride, "stride")
    if not isinstance(offset, int) or offset < 0 or len(strides) != len(shape):
        raise ArtifactError("malformed tensor offset or stride", hint=_HINT_MALFORMED)
    if any(dim < 0 for dim in shape) or any(step < 0 for step in strides):
        raise ArtifactError("malformed tensor: negative size or stride", hint=_HINT_MALFORMED)
    available = storage.numel if storage.dtype is not None else storage.numel // dtype.itemsize
    if prod(shape):
        last = offset + sum((dim - 1) * step for dim, step in zip(shape, strides, strict=True))
        if last >= available:
            raise ArtifactError(
                f"malformed tensor: it reaches element {last} of a {available}-element storage",
                hint=_HINT_MALFORMED,
            )
    return PtTensor(storage, dtype, offset, shape, strides)


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ArtifactError(f"malformed tensor {what} {value!r}", hint=_HINT_MALFORMED)
    return value


def _no_hooks(hooks: Any) -> None:
    # torch.save drops hooks (it warns) and writes an empty OrderedDict; anything else
    # would have to be code.
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise ArtifactError("refusing to unpickle tensor backward hooks", hint=_HINT_UNSAFE)


def _metadata(value: Any) -> dict[str, Any]:
    """``torch._utils.get_tensor_metadata``: the conjugate and negative bits, and any
    other flag a later torch sets. Every key is kept: a flag harness does not know still
    changes the values the loader returns."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ArtifactError(f"malformed tensor metadata {value!r}", hint=_HINT_MALFORMED)
    return {key: value[key] for key in sorted(value) if value[key] is not False}


def _attributes(requires_grad: Any, hooks: Any, metadata: Any) -> dict[str, Any]:
    _no_hooks(hooks)
    found: dict[str, Any] = {f"metadata.{key}": item for key, item in _metadata(metadata).items()}
    if _flag(requires_grad, "requires_grad"):
        found["requires_grad"] = True
    return found


def _too_many(name: str, extra: tuple[Any, ...]) -> None:
    if extra:
        raise ArtifactError(
            f"refusing to unpickle {name} with {len(extra)} unknown arguments",
            hint="this checkpoint comes from a newer torch than harness reads; "
            "save a state_dict of plain tensors or use safetensors",
        )


def _rebuild_tensor_v2(  # noqa: PLR0917 (the signature torch pickles calls to)
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    hooks: Any = None,
    metadata: Any = None,
    *extra: Any,
) -> PtTensor:
    _too_many("_rebuild_tensor_v2", extra)
    dtype = storage.dtype if isinstance(storage, _Storage) else None
    tensor = _tensor(storage, offset, size, stride, dtype)
    found = _attributes(requires_grad, hooks, metadata)
    return tensor.with_attributes(**found) if found else tensor


def _rebuild_tensor_v3(  # noqa: PLR0917 (the signature torch pickles calls to)
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    hooks: Any,
    dtype: Any,
    metadata: Any = None,
    *extra: Any,
) -> PtTensor:
    _too_many("_rebuild_tensor_v3", extra)
    if not isinstance(dtype, _DTypeName):
        raise ArtifactError(f"malformed tensor dtype {dtype!r}", hint=_HINT_MALFORMED)
    tensor = _tensor(storage, offset, size, stride, dtype.dtype)
    found = _attributes(requires_grad, hooks, metadata)
    return tensor.with_attributes(**found) if found else tensor


def _as_tensor(data: Any, what: str) -> PtTensor:
    if not isinstance(data, PtTensor):
        raise ArtifactError(f"malformed {what}: its data is not a tensor", hint=_HINT_MALFORMED)
    return data


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any, *extra: Any) -> PtTensor:
    _too_many("_rebuild_parameter", extra)
    _no_hooks(hooks)
    tensor = _as_tensor(data, "Parameter")
    return tensor.with_attributes(type="Parameter", requires_grad=_flag(requires_grad, "flag"))


def _rebuild_parameter_with_state(
    data: Any, requires_grad: Any, hooks: Any, state: Any, *extra: Any
) -> PtTensor:
    _too_many("_rebuild_parameter_with_state", extra)
    tensor = _rebuild_parameter(data, requires_grad, hooks)
    return tensor.with_attributes(state=state) if state else tensor


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter):
        raise ArtifactError(f"refusing to rebuild a tensor with {func!r}", hint=_HINT_UNSAFE)
    if not isinstance(new_type, _TensorClass) or not isinstance(args, tuple):
        raise ArtifactError(f"refusing to rebuild a tensor as {new_type!r}", hint=_HINT_UNSAFE)
    tensor = _as_tensor(func(*args), "tensor")
    extra: dict[str, Any] = {}
    if new_type.name != "torch.Tensor":
        extra["type"] = new_type.name.rsplit(".", 1)[-1]
    if state:
        extra["state"] = state
    return tensor.with_attributes(**extra) if extra else tensor


class _PickledDict(dict[Any, Any]):
    """An ``OrderedDict`` as pickle rebuilds it.

    ``torch.save(model.state_dict())`` writes an OrderedDict that carries ``_metadata``
    (each layer's version) as an attribute, which pickle restores with a BUILD step:
    a plain dict has nowhere to put it.
    """


def _ordered_dict(items: Any = ()) -> _PickledDict:
    return _PickledDict(items)


def _bytearray(source: Any = b"", *args: Any) -> bytearray:
    # bytearray(N) allocates N zero bytes: a pickle of a few bytes could ask for gigabytes.
    if isinstance(source, int) and not 0 <= source <= MAX_PICKLE:
        raise ArtifactError(
            f"refusing to unpickle bytearray({source}): larger than {MAX_PICKLE} bytes",
            hint=_HINT_MALFORMED,
        )
    return bytearray(source, *args)


def _size(dims: Any = ()) -> tuple[int, ...]:
    return _ints(dims, "size")


def _device(*args: Any) -> str:
    return ":".join(str(arg) for arg in args)


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # Protocol 2 spells bytes objects as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ArtifactError("refusing to unpickle _codecs.encode with these arguments")
    return text.encode("latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _TensorClass("torch.Tensor"),
        ("torch.nn.parameter", "Parameter"): _TensorClass("torch.nn.parameter.Parameter"),
        ("collections", "OrderedDict"): _ordered_dict,
        ("torch", "Size"): _size,
        ("torch", "device"): _device,
        ("torch", "UntypedStorage"): _StorageType(None),
        ("torch.storage", "UntypedStorage"): _StorageType(None),
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): _bytearray,
        ("_codecs", "encode"): _encode,
    }
    for name, dtype in TORCH_STORAGES.items():
        table[("torch", name)] = _StorageType(dtype)
    for name, dtype in TORCH_DTYPES.items():
        table[("torch", name)] = _DTypeName(dtype)
    return table


_ALLOWED = _allowed()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes | IO[bytes], byteorder: str, *, legacy: bool = False) -> None:
        super().__init__(io.BytesIO(data) if isinstance(data, bytes) else data, encoding="utf-8")
        self._byteorder = byteorder
        # The legacy format's storage ids carry a sixth field, a view of another storage.
        self._fields = 6 if legacy else 5
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 spells Python 2 names (__builtin__.set); map them as pickle would,
        # without importing anything.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _ALLOWED.get((module, name))
        if found is None:
            raise ArtifactError(f"refusing to unpickle {module}.{name}", hint=_HINT_UNSAFE)
        return found

    def persistent_load(self, pid: Any) -> Any:
        if (
            not isinstance(pid, tuple)
            or len(pid) != self._fields
            or (self._fields == 6 and pid[5] is not None)
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or not isinstance(pid[4], int)
            or pid[4] < 0
        ):
            raise ArtifactError(f"refusing to unpickle persistent id {pid!r}", hint=_HINT_MALFORMED)
        key: str = pid[2]
        if key not in self.storages:
            order = "<" if self._byteorder == "little" else ">"
            self.storages[key] = _Storage(key, pid[1].dtype, pid[4], order)
        return self.storages[key]


def _load(data: bytes | _RestrictedUnpickler, byteorder: str, what: str) -> Any:
    try:
        if isinstance(data, _RestrictedUnpickler):
            return data.load()
        return _RestrictedUnpickler(data, byteorder).load()
    except ArtifactError as exc:
        raise ArtifactError(f"{what}: {exc.message}", hint=exc.hint) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        AttributeError,
        TypeError,
        ValueError,
        IndexError,
        KeyError,
        struct.error,
        RecursionError,
        MemoryError,
    ) as exc:
        raise ArtifactError(
            f"{what}: malformed pickle ({type(exc).__name__}: {exc})", hint=_HINT_MALFORMED
        ) from None


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    expected = 1
    for dim, step in zip(reversed(shape), reversed(strides), strict=True):
        if dim != 1 and step != expected:
            return False
        expected *= dim
    return True


# A key shown as it is: no character that the other kinds of segment start with.
_PLAIN_KEY = re.compile(r'[^/\[\]{}"@]+\Z')


def segment(key: Any, *, first: bool, index: bool = False, tuple_: bool = False) -> str:
    """One step of a path into a saved object, spelled so that no two paths look alike.

    ``conv1.weight`` (a key with a dot) and ``conv1/weight`` (a nested dict) differ;
    ``[0]`` is a list position, ``(0)`` a tuple position, ``["a/b"]`` a string key with
    special characters and
    ``{1}`` a key of another type (so ``{1}`` is not ``1``); ``@_metadata`` an attribute.
    """
    if index:
        return f"({key})" if tuple_ else f"[{key}]"
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return key if first else f"/{key}"
    if isinstance(key, str):
        return f"[{json.dumps(key)}]"
    return "{" + json.dumps(repr(key))[1:-1].replace("}", "\\u007d") + "}"


_MAX_DEPTH = 200


@dataclass(frozen=True, slots=True)
class _Alias:
    """A second reference to an object already met: pickle's memo lets a file of a few
    kilobytes name the same dict from many places, so a tree walk without this would
    take time exponential in the depth. The loader returns the very same object there."""

    first: str

    def __repr__(self) -> str:
        return f"<same object as {self.first or '(root)'}>"


def _flatten(value: Any, name: str, out: dict[str, Any], depth: int = 0) -> None:
    seen: dict[int, str] = {}
    stack: list[tuple[Any, str, int]] = [(value, name, depth)]
    visits = 0
    while stack:
        value, name, depth = stack.pop()
        visits += 1
        if visits > MAX_LEAVES or depth > _MAX_DEPTH:
            raise ArtifactError(
                f"the saved object has more than {MAX_LEAVES} parts or {_MAX_DEPTH} levels",
                hint="save a state_dict of tensors (or use safetensors)",
            )
        shared = isinstance(value, dict | list | tuple | PtTensor) and (
            not isinstance(value, dict | list | tuple) or len(value) > 0
        )
        if shared:
            if id(value) in seen:
                out[name] = _Alias(seen[id(value)])
                continue
            seen[id(value)] = name
        if isinstance(value, dict):
            children: list[tuple[Any, str, int]] = []
            for key, item in value.items():
                children.append((item, name + segment(key, first=not name), depth + 1))
            metadata = getattr(value, "__dict__", {}).get("_metadata")
            if metadata is not None:
                children.append((metadata, f"{name}@_metadata", depth + 1))
            if type(value) is not dict:
                out[f"{name}@type"] = "OrderedDict"
            stack.extend(reversed(children))
        elif isinstance(value, list | tuple) and any(
            isinstance(item, PtTensor | dict | list | tuple) for item in value
        ):
            tuple_ = isinstance(value, tuple)
            stack.extend(
                (item, name + segment(index, first=not name, index=True, tuple_=tuple_), depth + 1)
                for index, item in reversed(list(enumerate(value)))
            )
        else:
            out[name] = value


def pt_container(path: Path) -> Container:
    with open_zip(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in infos if name.endswith("data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise ArtifactError(
                f"{path} is not a torch.save checkpoint (no <name>/data.pkl)",
                hint="harness reads archives written by torch.save",
            )
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in infos:
            byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ArtifactError(f"{path}: unknown byte order {byteorder!r}")
        if infos[pickles[0]].file_size > MAX_PICKLE:
            raise ArtifactError(
                f"{path}: its pickle is {infos[pickles[0]].file_size} bytes, more than the "
                f"{MAX_PICKLE} a checkpoint's object description needs",
                hint=_HINT_MALFORMED,
            )
        loaded = _load(archive.read(pickles[0]), byteorder, str(path))
    return _container_of(loaded, lambda name, leaf: _tensor_source(path, infos, prefix, name, leaf))


def _container_of(loaded: Any, source: Callable[[str, PtTensor], Source]) -> Container:
    """The saved object's tensors (as sources) and plain values, by path."""
    leaves: dict[str, Any] = {}
    _flatten(loaded, "", leaves)
    container = Container()
    for name, leaf in leaves.items():
        if isinstance(leaf, PtTensor):
            container.tensors[name] = source(name, leaf)
            for attribute, value in leaf.attributes:
                container.values[f"{name}@{attribute}"] = value
        elif isinstance(leaf, _Alias | _Storage | _StorageType | _DTypeName | _TensorClass):
            container.values[name] = repr(leaf)
        else:
            container.values[name] = leaf
    return container


def _tensor_source(
    path: Path, infos: dict[str, zipfile.ZipInfo], prefix: str, name: str, tensor: PtTensor
) -> Source:
    member = f"{prefix}data/{tensor.storage.key}"
    info = infos.get(member)
    what = f"{path}:{name}"
    if info is None:
        raise ArtifactError(f"{what}: storage {member!r} is missing", hint=_HINT_MALFORMED)
    dtype = tensor.dtype.with_byteorder(tensor.storage.byteorder)
    storage_bytes = (
        tensor.storage.numel * dtype.itemsize
        if tensor.storage.dtype is not None
        else tensor.storage.numel
    )
    if info.file_size < storage_bytes:
        raise ArtifactError(
            f"{what} is truncated: storage {member!r} holds {info.file_size} of "
            f"{storage_bytes} bytes",
            hint=_HINT_MALFORMED,
        )
    start = tensor.offset * dtype.itemsize
    offset = stored_member_offset(path, info)
    if offset is not None and offset + info.file_size > path.stat().st_size:
        raise ArtifactError(f"{what} is truncated", hint=_HINT_MALFORMED)
    if _c_contiguous(tensor.size, tensor.stride):
        if offset is not None:
            return FileRange(path, offset + start, dtype, tensor.size, what=what)
        return StreamRange(member_opener(path, member, start), dtype, tensor.size, what=what)
    if offset is None:
        raise ArtifactError(
            f"{what}: a non-contiguous tensor in a compressed storage is not supported",
            hint="save contiguous tensors (tensor.contiguous()) or an uncompressed archive",
        )
    strides = tuple(step * dtype.itemsize for step in tensor.stride)
    return StridedRange(path, offset + start, dtype, tensor.size, strides, what=what)


# -- the legacy format (torch.save before 1.6, or _use_new_zipfile_serialization=False) --
#
# Four pickles in a row (a magic number, the protocol version, a dict describing the
# machine, the saved object), a fifth listing the storage keys, then each storage in that
# order: an 8-byte element count and the raw elements. Two saves of the same values name
# their storages differently, so the file is read by value like the zip format.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_HINT_LEGACY = "the legacy checkpoint is truncated or corrupt; regenerate it"


def _plain_pickle(handle: IO[bytes], what: str) -> Any:
    return _load(_RestrictedUnpickler(handle, "little"), "little", what)


def _legacy_container(path: Path) -> Container:
    what = str(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        if _plain_pickle(handle, what) != LEGACY_MAGIC:
            raise ArtifactError(
                f"{what} is neither a zip archive nor a legacy torch.save file",
                hint="harness reads files written by torch.save",
            )
        if _plain_pickle(handle, what) != LEGACY_PROTOCOL:
            raise ArtifactError(f"{what}: unknown legacy torch protocol", hint=_HINT_LEGACY)
        byteorder = _legacy_byteorder(_plain_pickle(handle, what), what)
        unpickler = _RestrictedUnpickler(handle, byteorder, legacy=True)
        loaded = _load(unpickler, byteorder, what)
        keys = _plain_pickle(handle, what)
        if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
            raise ArtifactError(f"{what}: its storage list does not match", hint=_HINT_LEGACY)
        offsets: dict[str, int] = {}
        for key in keys:
            storage = unpickler.storages[key]
            count = int.from_bytes(handle.read(8), byteorder)
            if storage.dtype is None or count != storage.numel:
                raise ArtifactError(f"{what}: storage {key!r} is malformed", hint=_HINT_LEGACY)
            offsets[key] = handle.tell()
            end = offsets[key] + count * storage.dtype.itemsize
            if end > size:
                raise ArtifactError(f"{what} is truncated", hint=_HINT_LEGACY)
            handle.seek(end)

    def source(name: str, leaf: PtTensor) -> Source:
        dtype = leaf.dtype.with_byteorder(leaf.storage.byteorder)
        start = offsets[leaf.storage.key] + leaf.offset * dtype.itemsize
        label = f"{what}:{name}"
        if _c_contiguous(leaf.size, leaf.stride):
            return FileRange(path, start, dtype, leaf.size, what=label)
        strides = tuple(step * dtype.itemsize for step in leaf.stride)
        return StridedRange(path, start, dtype, leaf.size, strides, what=label)

    return _container_of(loaded, source)


def _legacy_byteorder(info: Any, what: str) -> Literal["little", "big"]:
    if not isinstance(info, dict) or not isinstance(info.get("little_endian", True), bool):
        raise ArtifactError(f"{what}: malformed legacy header", hint=_HINT_LEGACY)
    return "little" if info.get("little_endian", True) else "big"


def compare_pt(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    zipped = zipfile.is_zipfile(a), zipfile.is_zipfile(b)
    if zipped == (True, True):
        equal = None if prefix is None else (a, b, prefix)
        compare_containers(result, pt_container(a), pt_container(b), policy, equal)
        return
    read = [
        pt_container(path) if is_zip else _legacy_container(path)
        for path, is_zip in zip((a, b), zipped, strict=True)
    ]
    if zipped != (False, False):
        result.notes.append("one checkpoint is in the legacy format, the other a zip archive")
    compare_containers(result, read[0], read[1], policy, None)
