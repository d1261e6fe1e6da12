"""Plain bytes: the comparison for any file harness has no better reader for."""

from __future__ import annotations

from pathlib import Path

from harness.compare.model import ArtifactResult, Entry
from harness.compare.policy import Policy


def compare_bytes(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    """Called only when the bytes differ: say where, and that no tolerance applies."""
    where = "first difference" if result.size_a == result.size_b else "sizes differ"
    result.add_entry(
        Entry(
            where,
            "differs",
            a=result.size_a,
            b=result.size_b,
            note=f"first differing byte at offset {prefix}" if prefix is not None else None,
        )
    )
    if not policy.is_bitwise:
        result.notes.append(f"{policy.text} does not apply to raw bytes; compared bit for bit")
    result.status = "differs"
