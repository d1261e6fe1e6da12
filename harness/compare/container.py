"""Artifacts that hold named arrays (and a few plain values), compared name by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.compare.jsonmetrics import compare_values
from harness.compare.model import ArtifactResult, Entry, Status, TensorResult, combine
from harness.compare.numeric import compare_sources
from harness.compare.policy import Policy
from harness.compare.streams import Source


@dataclass
class Container:
    """What one multi-array artifact holds: arrays by name, and plain values by name."""

    tensors: dict[str, Source] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(a) + [name for name in b if name not in a]


def _one_sided(name: str, a: Source | None, b: Source | None) -> TensorResult:
    tensor = TensorResult(name=name, status="added" if a is None else "removed")
    if a is not None:
        tensor.dtype_a, tensor.shape_a, tensor.elements = a.dtype.name, a.shape, a.count
    if b is not None:
        tensor.dtype_b, tensor.shape_b, tensor.elements = b.dtype.name, b.shape, b.count
    return tensor


def compare_containers(
    result: ArtifactResult,
    a: Container,
    b: Container,
    policy: Policy,
    equal_prefix: tuple[Path, Path, int] | None,
    *,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Fill ``result`` with the tensor-by-tensor comparison and set its status."""
    statuses: list[Status] = []
    for name in _union(a.tensors, b.tensors):
        source_a, source_b = a.tensors.get(name), b.tensors.get(name)
        if source_a is None or source_b is None:
            tensor = _one_sided(name, source_a, source_b)
        else:
            if progress is not None:
                progress(f"{result.path}: {name}" if name else result.path)
            tensor = compare_sources(name, source_a, source_b, policy, equal_prefix)
        result.tensors.append(tensor)
        statuses.append(tensor.status)

    for name in _union(a.values, b.values):
        if name not in a.values:
            result.add_entry(Entry(name, "added", b=b.values[name]))
        elif name not in b.values:
            result.add_entry(Entry(name, "removed", a=a.values[name]))
        else:
            compare_values(name, a.values[name], b.values[name], policy, result)
    statuses.extend(result.entry_statuses())
    for note in dict.fromkeys(a.notes + b.notes):
        result.notes.append(note)
    result.status = combine(statuses)
