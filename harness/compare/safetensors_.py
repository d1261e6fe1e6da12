"""safetensors files, read from their documented layout.

An 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
and byte range, then the raw little-endian data. Reading the header directly lets every
tensor be streamed from its offset, and keeps the dtype name (BF16, F8_*) that a numpy
loader would have to drop.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from harness.compare.container import Container, compare_containers
from harness.compare.dtypes import SAFETENSORS
from harness.compare.jsonmetrics import no_duplicates as _no_duplicates
from harness.compare.model import ArtifactResult
from harness.compare.policy import Policy
from harness.compare.streams import FileRange
from harness.errors import ArtifactError

# The format caps the header at 100 MB; anything larger is not a safetensors file.
MAX_HEADER = 100_000_000
_HINT = "the file is not a valid safetensors file (truncated or corrupt); regenerate it"


def _fail(path: Path, why: str) -> ArtifactError:
    return ArtifactError(f"{path}: {why}", hint=_HINT)


def _shape(path: Path, name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in value
    ):
        raise _fail(path, f"tensor {name!r} has a malformed shape {value!r}")
    return tuple(value)


def safetensors_container(path: Path) -> Container:
    size = path.stat().st_size
    with path.open("rb") as handle:
        lead = handle.read(8)
        if len(lead) != 8:
            raise _fail(path, "too short for a safetensors header")
        (length,) = struct.unpack("<Q", lead)
        if length > MAX_HEADER or 8 + length > size:
            raise _fail(path, f"header length {length} does not fit the file ({size} bytes)")
        raw = handle.read(length)
    try:
        # Each key once: loaders disagree on which of two entries for one tensor counts.
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise _fail(path, "the header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    data_start = 8 + length
    data_size = size - data_start
    container = Container()
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        container.values["__metadata__"] = metadata
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise _fail(path, f"tensor {name!r} has a malformed entry")
        dtype = SAFETENSORS.get(str(info["dtype"]))
        if dtype is None:
            raise _fail(path, f"tensor {name!r} has an unsupported dtype {info['dtype']!r}")
        shape = _shape(path, name, info["shape"])
        offsets = info["data_offsets"]
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise _fail(path, f"tensor {name!r} has malformed data_offsets {offsets!r}")
        begin, end = offsets
        count = 1
        for dim in shape:
            count *= dim
        if not 0 <= begin <= end or end - begin != count * dtype.itemsize:
            raise _fail(path, f"tensor {name!r}: data_offsets {offsets} do not match its shape")
        if end > data_size:
            raise ArtifactError(
                f"{path} is truncated: tensor {name!r} ends at byte {end} of a "
                f"{data_size}-byte data section",
                hint="the file was cut short; re-run the step that wrote it",
            )
        container.tensors[name] = FileRange(
            path, data_start + begin, dtype.with_byteorder("<"), shape, what=f"{path}:{name}"
        )
    return container


def compare_safetensors(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    equal = None if prefix is None else (a, b, prefix)
    compare_containers(result, safetensors_container(a), safetensors_container(b), policy, equal)
