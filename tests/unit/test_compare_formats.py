"""Each artifact kind read by its own reader: verdicts, statistics and bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from harness.compare import compare_paths
from harness.compare.model import ArtifactResult
from harness.compare.safetensors_ import safetensors_container

Array = np.ndarray[Any, Any]


def one(a: Path, b: Path, **options: Any) -> ArtifactResult:
    result = compare_paths(a, b, **options)
    assert len(result.artifacts) == 1
    return result.artifacts[0]


def save_npy(path: Path, array: Array, version: tuple[int, int] | None = None) -> Path:
    with path.open("wb") as handle:
        np.lib.format.write_array(handle, array, version=version)
    return path


def nudge(array: Array, *where: Any, ulps: int = 1) -> Array:
    out = array.copy()
    for index in where:
        value = out[index]
        for _ in range(ulps):
            value = np.nextafter(value, np.inf)
        out[index] = value
    return out


# -- .npy ------------------------------------------------------------------------------


def test_npy_identical(tmp_path: Path) -> None:
    data = np.arange(100, dtype=np.float32)
    artifact = one(save_npy(tmp_path / "a.npy", data), save_npy(tmp_path / "b.npy", data))
    assert artifact.status == "identical"
    assert artifact.tensors == []


def test_npy_one_ulp_apart(tmp_path: Path) -> None:
    data = np.linspace(-3, 3, 1000, dtype=np.float32).reshape(10, 100)
    a = save_npy(tmp_path / "a.npy", data)
    b = save_npy(tmp_path / "b.npy", nudge(data, (2, 5), (7, 99)))
    strict = one(a, b)
    assert strict.status == "differs"
    (tensor,) = strict.tensors
    assert (tensor.differing, tensor.elements, tensor.max_ulp) == (2, 1000, 1)
    assert tensor.first_differences == [(2, 5), (7, 99)]
    assert tensor.dtype_a == "float32"
    assert tensor.shape_a == (10, 100)
    loose = one(a, b, policy="ulp:1")
    assert loose.status == "within"
    assert loose.verdict == "within ulp:1"


def test_npy_same_values_other_header_is_equal(tmp_path: Path) -> None:
    data = np.arange(12, dtype=np.float64).reshape(3, 4)
    a = save_npy(tmp_path / "a.npy", data, version=(1, 0))
    b = save_npy(tmp_path / "b.npy", data, version=(2, 0))
    artifact = one(a, b)
    assert artifact.status == "equal"
    assert artifact.passed


def test_npy_byte_order_and_memory_order_do_not_matter(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((5, 7))
    a = save_npy(tmp_path / "a.npy", data)
    b = save_npy(tmp_path / "b.npy", np.asfortranarray(data.astype(">f8")))
    assert one(a, b).status == "equal"
    changed = data.copy()
    changed[4, 1] += 1
    c = save_npy(tmp_path / "c.npy", np.asfortranarray(changed))
    (tensor,) = one(a, c).tensors
    assert tensor.first_differences == [(4, 1)]
    d = save_npy(tmp_path / "d.npy", np.asfortranarray(data))
    (tensor,) = one(d, c).tensors
    assert tensor.first_differences == [(4, 1)]


def test_npy_shape_or_dtype_mismatch(tmp_path: Path) -> None:
    data = np.zeros((2, 3), dtype=np.float32)
    a = save_npy(tmp_path / "a.npy", data)
    shape = one(a, save_npy(tmp_path / "b.npy", data.reshape(3, 2)))
    assert shape.status == "differs"
    assert shape.tensors[0].note == "shape [2, 3] vs [3, 2]"
    dtype = one(a, save_npy(tmp_path / "c.npy", data.astype(np.float64)))
    assert dtype.status == "differs"
    assert dtype.tensors[0].note is not None
    assert "dtype float32 vs float64" in dtype.tensors[0].note


def test_truncated_npy_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    data = np.arange(1000, dtype=np.float32)
    a = save_npy(tmp_path / "a.npy", data)
    b = tmp_path / "b.npy"
    b.write_bytes(a.read_bytes()[:-100])
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "truncated" in artifact.error
    header_only = tmp_path / "c.npy"
    header_only.write_bytes(a.read_bytes()[:20])
    assert one(a, header_only).status == "error"
    huge = tmp_path / "e.npy"
    huge.write_bytes(b"\x93NUMPY\x02\x00" + (2**31).to_bytes(4, "little") + b"{}")
    bloated = one(a, huge)
    assert bloated.error is not None
    assert "implausible" in bloated.error
    garbage = tmp_path / "d.npy"
    garbage.write_bytes(b"not an npy file at all" * 10)
    broken = one(a, garbage)
    assert broken.status == "error"
    assert broken.error is not None
    assert "not an .npy file" in broken.error


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_object_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    a = tmp_path / "a.npy"
    b = tmp_path / "b.npy"
    np.save(a, np.array([_Boom(marker), 1], dtype=object), allow_pickle=True)
    np.save(b, np.array([_Boom(marker), 2], dtype=object), allow_pickle=True)
    artifact = one(a, b)
    assert artifact.status == "error"
    assert "never unpickles" in (artifact.error or "")
    assert not marker.exists()


def test_npy_scalar_and_empty(tmp_path: Path) -> None:
    a = save_npy(tmp_path / "a.npy", np.array(1.5, dtype=np.float32))
    b = save_npy(tmp_path / "b.npy", np.array(2.5, dtype=np.float32))
    (tensor,) = one(a, b).tensors
    assert (tensor.elements, tensor.differing, tensor.first_differences) == (1, 1, [()])
    empty_a = save_npy(tmp_path / "c.npy", np.zeros((0, 3), dtype=np.float32))
    empty_b = save_npy(tmp_path / "d.npy", np.zeros((0, 3), dtype=np.float32), version=(2, 0))
    assert one(empty_a, empty_b).status == "equal"


# -- .npz ------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_members(tmp_path: Path, compressed: bool) -> None:
    save = np.savez_compressed if compressed else np.savez
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((64, 64)).astype(np.float32)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    save(a, weights=weights, steps=np.arange(5), gone=np.zeros(2))
    save(b, weights=nudge(weights, (3, 4), ulps=3), steps=np.arange(5), new=np.ones(1))
    artifact = one(a, b, policy="ulp:4")
    by_name = {tensor.name: tensor for tensor in artifact.tensors}
    assert by_name["weights"].status == "within"
    assert by_name["weights"].max_ulp == 3
    assert by_name["weights"].first_differences == [(3, 4)]
    assert by_name["steps"].status == "identical"
    assert by_name["gone"].status == "removed"
    assert by_name["new"].status == "added"
    assert artifact.status == "differs"


def test_npz_same_arrays_written_at_different_times_are_equal(tmp_path: Path) -> None:
    data = np.arange(10.0)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for path, stamp in ((a, (2020, 1, 1, 0, 0, 0)), (b, (2024, 6, 1, 12, 0, 0))):
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, data)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(zipfile.ZipInfo("x.npy", date_time=stamp), buffer.getvalue())
    assert one(a, b).status == "equal"


def test_corrupt_npz_is_an_error(tmp_path: Path) -> None:
    a = tmp_path / "a.npz"
    np.savez(a, x=np.arange(3))
    b = tmp_path / "b.npz"
    b.write_bytes(b"PK\x03\x04 definitely not a zip")
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "zip" in artifact.error


# -- safetensors -----------------------------------------------------------------------


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> Path:
    """The documented layout, for dtypes numpy cannot name (BF16)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path


def test_safetensors_reader_matches_the_library(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    tensors = {
        "w": rng.standard_normal((8, 3)).astype(np.float32),
        "h": rng.standard_normal(5).astype(np.float16),
        "i": np.arange(7, dtype=np.int64),
        "flag": np.array([True, False]),
    }
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"step": "10"})
    loaded = load_file(str(path))
    container = safetensors_container(path)
    assert container.values == {"__metadata__": {"step": "10"}}
    assert set(container.tensors) == set(loaded)
    for name, source in container.tensors.items():
        with source.open() as reader:
            values = reader.read(source.count).reshape(source.shape)
        assert values.dtype == loaded[name].dtype
        assert np.array_equal(values, loaded[name])


def test_safetensors_differences(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file({"w": w, "b": np.zeros(4, np.float32)}, str(a), metadata={"run": "1"})
    save_file(
        {"w": nudge(w, (0, 1), ulps=2), "b": np.zeros(4, np.float32)}, str(b), metadata={"run": "2"}
    )
    artifact = one(a, b, policy="ulp:2")
    by_name = {tensor.name: tensor for tensor in artifact.tensors}
    assert by_name["w"].status == "within"
    assert by_name["w"].max_ulp == 2
    assert by_name["b"].status == "identical"
    assert [entry.where for entry in artifact.entries] == ["__metadata__.run"]
    assert artifact.status == "differs"


def test_safetensors_bfloat16(tmp_path: Path) -> None:
    values = np.array([1.0, -2.0, 0.15625, 1e-30], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    changed = bits.copy()
    changed[2] += 2
    a = write_safetensors(tmp_path / "a.safetensors", {"x": ("BF16", [4], bits.tobytes())})
    b = write_safetensors(tmp_path / "b.safetensors", {"x": ("BF16", [4], changed.tobytes())})
    artifact = one(a, b, policy="ulp:1")
    (tensor,) = artifact.tensors
    assert tensor.dtype_a == "bfloat16"
    assert tensor.max_ulp == 2
    assert tensor.worst_ulp is not None
    assert tensor.worst_ulp.a == 0.15625
    assert tensor.worst_ulp.b == pytest.approx(0.15625 + 2 * 2**-10)
    assert artifact.status == "differs"
    assert one(a, b, policy="ulp:2").status == "within"


def test_bad_safetensors_are_errors(tmp_path: Path) -> None:
    a = tmp_path / "a.safetensors"
    save_file({"w": np.arange(100, dtype=np.float32)}, str(a))
    cases = {
        "truncated": a.read_bytes()[:-40],
        "short": b"\x01\x02",
        "huge header": (10**9).to_bytes(8, "little") + b"{}",
        "not json": (4).to_bytes(8, "little") + b"nope",
    }
    for label, content in cases.items():
        b = tmp_path / f"{label}.safetensors"
        b.write_bytes(content)
        artifact = one(a, b)
        assert artifact.status == "error", label
        assert artifact.error


def test_safetensors_offsets_must_match_shape(tmp_path: Path) -> None:
    a = write_safetensors(tmp_path / "a.safetensors", {"x": ("F32", [2], b"\0" * 8)})
    b = write_safetensors(tmp_path / "b.safetensors", {"x": ("F32", [3], b"\0" * 8)})
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "do not match its shape" in artifact.error


# -- Keras / HDF5 ----------------------------------------------------------------------


def write_h5(path: Path, kernel: Array, bias: Array) -> Path:
    with h5py.File(path, "w") as handle:
        layer = handle.create_group("layers/dense/vars")
        layer.create_dataset("0", data=kernel, chunks=(2, kernel.shape[1]))
        layer.create_dataset("1", data=bias)
        handle.attrs["note"] = "weights"
    return path


def write_keras(path: Path, weights: Path, saved: str) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "units": 3}))
        archive.writestr("metadata.json", json.dumps({"date_saved": saved}))
        archive.write(weights, "model.weights.h5")
    return path


def test_h5_datasets_by_path(tmp_path: Path) -> None:
    kernel = np.random.default_rng(4).standard_normal((9, 3)).astype(np.float32)
    a = write_h5(tmp_path / "a.h5", kernel, np.zeros(3, np.float32))
    b = write_h5(tmp_path / "b.h5", nudge(kernel, (8, 2)), np.zeros(3, np.float32))
    artifact = one(a, b)
    by_name = {tensor.name: tensor for tensor in artifact.tensors}
    assert by_name["layers/dense/vars/0"].first_differences == [(8, 2)]
    assert by_name["layers/dense/vars/1"].status == "identical"
    assert artifact.status == "differs"
    assert one(a, b, policy="ulp:1").status == "within"


def test_keras_archive_ignores_save_date(tmp_path: Path) -> None:
    kernel = np.ones((4, 3), np.float32)
    weights = write_h5(tmp_path / "w.h5", kernel, np.zeros(3, np.float32))
    a = write_keras(tmp_path / "a.keras", weights, "2024-01-01")
    b = write_keras(tmp_path / "b.keras", weights, "2025-02-02")
    same = one(a, b)
    assert same.status == "equal"
    assert any("metadata.json" in note for note in same.notes)
    other = write_h5(tmp_path / "w2.h5", kernel * 2, np.zeros(3, np.float32))
    c = write_keras(tmp_path / "c.keras", other, "2024-01-01")
    changed = one(a, c)
    assert changed.status == "differs"
    assert [t.name for t in changed.tensors if t.status == "differs"] == ["layers/dense/vars/0"]


def test_bad_h5_is_an_error(tmp_path: Path) -> None:
    a = write_h5(tmp_path / "a.h5", np.ones((2, 2)), np.ones(2))
    b = tmp_path / "b.h5"
    b.write_bytes(a.read_bytes()[:300])
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "HDF5" in artifact.error


# -- JSON, CSV, text, bytes ------------------------------------------------------------


def test_json_metrics(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"acc": 0.9100, "loss": 0.25, "name": "x", "n": 3, "gone": 1}))
    b.write_text(json.dumps({"acc": 0.9101, "loss": 0.25, "name": "y", "n": 3, "new": []}))
    artifact = one(a, b, metric_tolerance="rtol=1e-3")
    statuses = {entry.where: entry.status for entry in artifact.entries}
    assert statuses == {
        "$.acc": "within",
        "$.name": "differs",
        "$.gone": "removed",
        "$.new": "added",
    }
    assert artifact.status == "differs"
    assert artifact.policy == "metric:rtol=0.001,atol=0.0"


def test_json_within_tolerance_and_equal(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text('{"acc": 0.91, "nan": NaN, "steps": [1, 2]}')
    b.write_text('{"acc": 0.9100001, "nan": NaN, "steps": [1, 2]}')
    c.write_text('{\n  "steps": [1, 2], "nan": NaN, "acc": 0.91\n}')
    assert one(a, b).status == "differs"
    assert one(a, b, metric_tolerance="rtol=1e-6").status == "within"
    assert one(a, c).status == "equal"


@pytest.mark.parametrize(("value_a", "value_b"), [("0.0", "-0.0"), ("1", "1.0"), ("2.0", "2")])
def test_json_bitwise_means_the_same_number_written_the_same_way(
    tmp_path: Path, value_a: str, value_b: str
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(f'{{"loss": {value_a}}}')
    b.write_text(f'{{"loss": {value_b}}}')
    bitwise = one(a, b)
    assert bitwise.status == "differs"
    assert [entry.where for entry in bitwise.entries] == ["$.loss"]
    # A tolerance accepts them: they are 0 apart.
    assert one(a, b, metric_tolerance="rtol=0").status == "within"


def test_bad_json_is_an_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("{}")
    b.write_text("{")
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "not valid JSON" in artifact.error


def test_csv_cells(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("epoch,loss,phase\n1,0.5,train\n2,0.25,train\n")
    b.write_text("epoch,loss,phase\n1,0.5000001,train\n2,0.25,eval\n3,0.1,eval\n")
    artifact = one(a, b, metric_tolerance="rtol=1e-6")
    statuses = {entry.where: entry.status for entry in artifact.entries}
    assert statuses == {
        "row 2, column loss": "within",
        "row 3, column phase": "differs",
        "rows": "differs",
    }
    c = tmp_path / "c.csv"
    c.write_text("epoch,loss,phase\n1,0.50,train\n2,0.25,train\n")
    assert one(a, c).status == "equal"


def test_text_line_diff(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("start\nstep 1 loss 0.5\nstep 2 loss 0.4\nend\n")
    b.write_text("start\nstep 1 loss 0.5\nstep 2 loss 0.3\nend\n")
    artifact = one(a, b, policy="ulp:4")
    assert artifact.status == "differs"
    assert artifact.entries[0].where == "line 3"
    assert "-step 2 loss 0.4" in artifact.diff
    assert "+step 2 loss 0.3" in artifact.diff


def test_unknown_extension_is_compared_as_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.weird", tmp_path / "b.weird"
    a.write_bytes(b"\x00\x01\x02\x03")
    b.write_bytes(b"\x00\x01\x09\x03")
    artifact = one(a, b)
    assert (artifact.kind, artifact.status) == ("bytes", "differs")
    assert artifact.entries[0].note == "first differing byte at offset 2"
    b.write_bytes(a.read_bytes())
    assert one(a, b).status == "identical"


def test_different_kinds_fall_back_to_bytes(tmp_path: Path) -> None:
    a = save_npy(tmp_path / "a.npy", np.arange(3))
    b = tmp_path / "b.json"
    b.write_text("[0, 1, 2]")
    artifact = one(a, b)
    assert (artifact.kind, artifact.status) == ("bytes", "differs")


# -- streaming -------------------------------------------------------------------------


def test_identical_files_never_load_numpy(tmp_path: Path) -> None:
    a = save_npy(tmp_path / "a.npy", np.arange(10.0))
    b = save_npy(tmp_path / "b.npy", np.arange(10.0))
    code = (
        "import sys; from harness.compare import compare_paths; "
        f"r = compare_paths({str(a)!r}, {str(b)!r}); "
        "print(r.artifacts[0].status, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["identical", "False"]


def test_arrays_larger_than_a_chunk(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    data = rng.standard_normal((1500, 1200)).astype(np.float32)  # 7.2 MB: several chunks
    changed = nudge(data, (0, 0), (1499, 1199), (750, 3))
    a = save_npy(tmp_path / "a.npy", data)
    b = save_npy(tmp_path / "b.npy", changed)
    c = save_npy(tmp_path / "c.npy", np.asfortranarray(changed))
    for other in (b, c):
        (tensor,) = one(a, other).tensors
        assert tensor.differing == 3
        assert tensor.first_differences == [(0, 0), (750, 3), (1499, 1199)]
    npz_a, npz_b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez_compressed(npz_a, x=data)
    np.savez_compressed(npz_b, x=changed)
    (tensor,) = one(npz_a, npz_b).tensors
    assert tensor.differing == 3


def test_difference_late_in_the_file_skips_the_equal_prefix(tmp_path: Path) -> None:
    data = np.zeros(3_000_000, dtype=np.float32)
    changed = data.copy()
    changed[-2] = 1.0
    a = save_npy(tmp_path / "a.npy", data)
    b = save_npy(tmp_path / "b.npy", changed)
    (tensor,) = one(a, b).tensors
    assert (tensor.differing, tensor.elements) == (1, 3_000_000)
    assert tensor.first_differences == [(2_999_998,)]
    assert tensor.worst_abs is not None
    assert tensor.worst_abs.index == (2_999_998,)
    first = {"first": np.ones(100_000, np.float32), "second": np.zeros(10, np.float32)}
    sa, sb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(first, str(sa))
    save_file({**first, "second": np.ones(10, np.float32)}, str(sb))
    statuses = {t.name: (t.status, t.differing) for t in one(sa, sb).tensors}
    assert statuses == {"first": ("identical", 0), "second": ("differs", 10)}
