"""Hostile inputs and false passes: what another machine's artifacts must not get past.

Each test is a regression for a case that was read unsafely or judged wrongly before.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.compare import compare_paths
from harness.compare.model import ArtifactResult, ComparisonResult


def compare(a: Path | str, b: Path | str, **options: Any) -> ComparisonResult:
    return compare_paths(a, b, **options)


def one(a: Path | str, b: Path | str, **options: Any) -> ArtifactResult:
    (artifact,) = compare(a, b, **options).artifacts
    return artifact


def folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "metrics.json").write_text('{"acc": 1}')
    (b / "metrics.json").write_text('{"acc": 1}')
    return a, b


# -- files that are not artifacts -----------------------------------------------------


@pytest.mark.parametrize("name", ["model.bin", "model.ckpt", "notes.txt"])
def test_link_to_a_device_is_refused_unread(tmp_path: Path, name: str) -> None:
    a, b = folders(tmp_path)
    (a / name).symlink_to("/dev/zero")
    (b / name).symlink_to("/dev/zero")
    result = compare(a, b)
    (artifact,) = [x for x in result.artifacts if x.path == name]
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "outside the compared folder" in artifact.error
    assert result.exit_code == 2


def test_link_leaving_the_folder_is_not_printed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$hash\n")
    a, b = folders(tmp_path)
    (a / "log.txt").symlink_to(secret)
    (b / "log.txt").write_text("other\n")
    result = compare(a, b)
    (artifact,) = [x for x in result.artifacts if x.path == "log.txt"]
    assert artifact.status == "error"
    assert "$6$hash" not in json.dumps([artifact.error, artifact.diff, str(artifact.entries)])


def test_link_inside_the_folder_is_followed(tmp_path: Path) -> None:
    a, b = folders(tmp_path)
    (a / "real.txt").write_text("x\n")
    (a / "alias.txt").symlink_to("real.txt")
    (b / "real.txt").write_text("x\n")
    (b / "alias.txt").write_text("x\n")
    assert compare(a, b).exit_code == 0


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    a, b = folders(tmp_path)
    os.mkfifo(a / "stream.npy")
    os.mkfifo(b / "stream.npy")
    (artifact,) = [x for x in compare(a, b).artifacts if x.path == "stream.npy"]
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "FIFO" in artifact.error


@pytest.mark.parametrize("path", ["/proc/self/status", "/dev/null"])
def test_kernel_files_named_directly_are_refused(tmp_path: Path, path: str) -> None:
    other = tmp_path / "status"
    other.write_text("x")
    artifact = one(path, other)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "kernel file" in artifact.error


# -- false passes ---------------------------------------------------------------------


def test_npy_nan_payloads_differ_under_bitwise(tmp_path: Path) -> None:
    a = np.full(8, np.nan, dtype=np.float32)
    b = a.copy()
    b.view(np.uint32)[3] ^= 1
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    bitwise = one(tmp_path / "a.npy", tmp_path / "b.npy")
    assert bitwise.status == "differs"
    assert bitwise.tensors[0].nan_payload == 1
    pardoned = one(tmp_path / "a.npy", tmp_path / "b.npy", policy="nan-equal")
    assert pardoned.status == "within"
    assert pardoned.verdict == "within nan-equal"


def _safetensors(path: Path, bits: list[int]) -> Path:
    data = struct.pack(f"<{len(bits)}H", *bits)
    header = json.dumps(
        {"w": {"dtype": "BF16", "shape": [len(bits)], "data_offsets": [0, len(data)]}}
    )
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + data)
    return path


def test_bfloat16_nan_payloads_differ_under_bitwise(tmp_path: Path) -> None:
    a = _safetensors(tmp_path / "a.safetensors", [0x7FC0, 0x3F80])
    b = _safetensors(tmp_path / "b.safetensors", [0x7FC1, 0x3F80])
    assert one(a, b).status == "differs"
    assert one(a, b, policy="ulp:4").status == "differs"
    assert one(a, b, policy="ulp:4,nan-equal").status == "within"


def test_flipped_bool_fails_ulp_one(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([True, False, True]))
    np.save(tmp_path / "b.npy", np.array([True, True, True]))
    artifact = one(tmp_path / "a.npy", tmp_path / "b.npy", policy="ulp:1")
    assert artifact.status == "differs"
    assert artifact.tensors[0].max_ulp is None


def test_oversized_json_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.compare.jsonmetrics.MAX_JSON", 100)
    (tmp_path / "a.json").write_text('{"x": 1}')
    (tmp_path / "b.json").write_text('{"x": "' + "y" * 200 + '"}')
    artifact = one(tmp_path / "a.json", tmp_path / "b.json")
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "more than the 100" in artifact.error
