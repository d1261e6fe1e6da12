"""PyTorch checkpoints, read without torch and without running pickled code.

Hand-made archives mimic ``torch.save`` (a protocol-2 pickle whose tensors are
``torch._utils._rebuild_tensor_v2`` calls over persistent storage ids, next to the raw
storages); ``data/torch_*.pt`` were written by real torch (see make_torch_fixtures.py).
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.compare import compare_paths
from harness.compare.model import ArtifactResult
from harness.compare.torch_pt import LEGACY_MAGIC, pt_container

DATA = Path(__file__).parent / "data"
Array = np.ndarray[Any, Any]


class _Storage:
    def __init__(self, kind: type, key: str, numel: int) -> None:
        self.kind, self.key, self.numel = kind, key, numel


class _Tensor:
    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        self.args: tuple[Any, ...] = (storage, offset, size, stride, False, OrderedDict())


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """Just enough of a ``torch`` module for pickle to write the names torch writes."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None: ...

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    storages = {}
    for name in ("FloatStorage", "DoubleStorage", "LongStorage", "HalfStorage"):
        storage_type = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage_type)
        storages[name] = storage_type
    torch._utils = utils  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    yield types.SimpleNamespace(rebuild=_rebuild_tensor_v2, **storages)


def write_pt(
    path: Path,
    obj: Any,
    storages: dict[str, bytes],
    fake: types.SimpleNamespace | None = None,
    *,
    compress: int = zipfile.ZIP_STORED,
) -> Path:
    class Pickler(pickle.Pickler):
        def persistent_id(self, value: Any) -> Any:
            if isinstance(value, _Storage):
                return ("storage", value.kind, value.key, "cpu", value.numel)
            return None

        def reducer_override(self, value: Any) -> Any:
            if isinstance(value, _Tensor) and fake is not None:
                return (fake.rebuild, value.args)
            return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw, compress_type=compress)
        archive.writestr("archive/version", "3\n")
    return path


def one(a: Path, b: Path, **options: Any) -> ArtifactResult:
    (artifact,) = compare_paths(a, b, **options).artifacts
    return artifact


def state(fake: types.SimpleNamespace, weight: Array) -> tuple[dict[str, Any], dict[str, bytes]]:
    counter = np.arange(10, dtype=np.int64)
    float_storage = _Storage(fake.FloatStorage, "0", weight.size)
    long_storage = _Storage(fake.LongStorage, "1", counter.size)
    obj = {
        "model": OrderedDict(
            [
                ("w", _Tensor(float_storage, 0, weight.shape, (weight.shape[1], 1))),
                ("w_t", _Tensor(float_storage, 0, weight.shape[::-1], (1, weight.shape[1]))),
                ("every_third", _Tensor(long_storage, 1, (3,), (3,))),
            ]
        ),
        "epoch": 2,
    }
    return obj, {"0": weight.astype("<f4").tobytes(), "1": counter.tobytes()}


def test_handmade_checkpoint_tensors_and_views(
    tmp_path: Path, fake_torch: types.SimpleNamespace
) -> None:
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_pt(tmp_path / "a.pt", *state(fake_torch, weight), fake_torch)
    container = pt_container(path)
    assert container.values == {"epoch": 2, "model@type": "OrderedDict"}
    read = {}
    for name, source in container.tensors.items():
        with source.open() as reader:
            read[name] = reader.read(source.count).reshape(source.shape).copy()
    assert np.array_equal(read["model/w"], weight)
    assert np.array_equal(read["model/w_t"], weight.T)
    assert read["model/every_third"].tolist() == [1, 4, 7]


@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_handmade_checkpoints_compared(
    tmp_path: Path, fake_torch: types.SimpleNamespace, compress: int
) -> None:
    weight = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    changed = weight.copy()
    changed[2, 1] = np.nextafter(changed[2, 1], np.float32(2))
    a = write_pt(tmp_path / "a.pt", *state(fake_torch, weight), fake_torch, compress=compress)
    b = write_pt(tmp_path / "b.pt", *state(fake_torch, changed), fake_torch, compress=compress)
    if compress == zipfile.ZIP_DEFLATED:
        artifact = one(a, b)
        assert artifact.status == "error"  # strided views over compressed storages
        assert artifact.error is not None
        assert "non-contiguous" in artifact.error
        return
    artifact = one(a, b)
    by_name = {tensor.name: tensor for tensor in artifact.tensors}
    assert by_name["model/w"].first_differences == [(2, 1)]
    assert by_name["model/w_t"].first_differences == [(1, 2)]
    assert by_name["model/every_third"].status == "identical"
    assert artifact.status == "differs"
    assert one(a, b, policy="ulp:1").status == "within"


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, ("__import__('os').getpid()",))


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_arbitrary_pickles_are_refused_not_executed(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    evil: Any = _System(marker) if payload == "system" else _Eval()
    good = write_pt(tmp_path / "good.pt", {"epoch": 1}, {})
    bad = write_pt(tmp_path / "bad.pt", {"epoch": 1, "x": evil}, {})
    artifact = one(good, bad)
    assert artifact.status == "error"
    assert artifact.error is not None
    expected = f"{os.system.__module__}.system" if payload == "system" else "builtins.eval"
    assert f"refusing to unpickle {expected}" in artifact.error
    assert not marker.exists()


def test_malformed_tensor_layouts_are_refused(
    tmp_path: Path, fake_torch: types.SimpleNamespace
) -> None:
    storage = _Storage(fake_torch.FloatStorage, "0", 4)
    good = write_pt(
        tmp_path / "a.pt", {"w": _Tensor(storage, 0, (4,), (1,))}, {"0": bytes(16)}, fake_torch
    )
    cases = {
        "past the end": ({"w": _Tensor(storage, 2, (4,), (1,))}, {"0": bytes(16)}),
        "missing storage": ({"w": _Tensor(storage, 0, (4,), (1,))}, {}),
        "short storage": ({"w": _Tensor(storage, 0, (4,), (1,))}, {"0": bytes(8)}),
        "negative stride": ({"w": _Tensor(storage, 3, (4,), (-1,))}, {"0": bytes(16)}),
    }
    for label, (obj, storages) in cases.items():
        bad = write_pt(tmp_path / f"{label}.pt", obj, storages, fake_torch)
        artifact = one(good, bad)
        assert artifact.status == "error", label
        assert artifact.error


def test_not_a_checkpoint(tmp_path: Path) -> None:
    a = tmp_path / "a.pt"
    with zipfile.ZipFile(a, "w") as archive:
        archive.writestr("something/else.txt", "hi")
    b = tmp_path / "b.pt"
    with zipfile.ZipFile(b, "w") as archive:
        archive.writestr("something/else.txt", "ho")
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "data.pkl" in artifact.error


def test_legacy_format_is_refused_not_judged_by_its_bytes(tmp_path: Path) -> None:
    # Two legacy saves of the same values can differ in bytes and different values can
    # not be told from them: neither "differs" nor "equal" would be evidence.
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(pickle.dumps({"x": 1}, protocol=2))
    b.write_bytes(pickle.dumps({"x": 2}, protocol=2))
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "legacy" in artifact.error


# -- checkpoints written by real torch ---------------------------------------------------


def test_real_torch_checkpoint_is_read_exactly() -> None:
    container = pt_container(DATA / "torch_a.pt")
    assert {name: value for name, value in container.values.items() if "@" not in name} == {
        "epoch": 3,
        "lr": 0.001,
        "tags": ["seeded", "cpu"],
    }
    dtypes = {name: source.dtype.name for name, source in container.tensors.items()}
    assert dtypes == {
        "model/layer.weight": "float32",
        "model/layer.bias": "float32",
        "model/half": "float16",
        "model/brain": "bfloat16",
        "model/strided": "int64",
        "model/transposed": "float32",
        "model/u16": "uint16",
        "model/scalar": "float64",
    }

    def values(name: str) -> Array:
        source = container.tensors[name]
        with source.open() as reader:
            return reader.read(source.count).reshape(source.shape).copy()

    assert values("model/strided").tolist() == [1, 4, 7, 10, 13, 16]
    assert values("model/u16").tolist() == [1, 2, 65535]
    assert values("model/half").tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert values("model/scalar").tolist() == 2.5
    assert np.array_equal(values("model/transposed"), values("model/layer.weight").T)
    brain = values("model/brain").astype(np.uint32) << 16
    assert brain.view(np.float32)[[0, 1, 3]].tolist() == [1.0, -0.0, np.inf]


def test_real_torch_checkpoints_compared() -> None:
    artifact = one(DATA / "torch_a.pt", DATA / "torch_b.pt", policy="ulp:1")
    by_name = {tensor.name: tensor for tensor in artifact.tensors}
    weight = by_name["model/layer.weight"]
    assert (weight.status, weight.differing, weight.max_ulp) == ("within", 1, 1)
    assert weight.first_differences == [(1, 2)]
    assert all(t.status == "identical" for n, t in by_name.items() if n != "model/layer.weight")
    assert [(entry.where, entry.status) for entry in artifact.entries] == [("lr", "differs")]
    assert artifact.status == "differs"


def test_real_torch_module_object_is_refused() -> None:
    artifact = one(DATA / "torch_a.pt", DATA / "torch_module.pt")
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "refusing to unpickle torch.nn.modules.linear.Linear" in artifact.error
    assert artifact.hint is not None
    assert "state_dict" in artifact.hint


def test_plain_python_values_in_protocol_two(tmp_path: Path) -> None:
    obj = {"ids": {1, 2}, "blob": b"\x00\xff", "pair": (1, "a"), "z": complex(1, 2)}
    path = write_pt(tmp_path / "a.pt", obj, {})
    assert pt_container(path).values == {
        "ids": {1, 2},
        "blob": b"\x00\xff",
        "pair": (1, "a"),
        "z": complex(1, 2),
    }
    other = write_pt(tmp_path / "b.pt", {**obj, "blob": b"\x00\xfe"}, {})
    artifact = one(path, other)
    assert [(entry.where, entry.status) for entry in artifact.entries] == [("blob", "differs")]


def test_bin_and_ckpt_are_read_as_checkpoints_when_they_are_one(tmp_path: Path) -> None:
    a, b = tmp_path / "pytorch_model.bin", tmp_path / "other" / "pytorch_model.bin"
    b.parent.mkdir()
    a.write_bytes((DATA / "torch_a.pt").read_bytes())
    b.write_bytes((DATA / "torch_b.pt").read_bytes())
    assert one(a, b).kind == "pt"
    c, d = tmp_path / "blob.ckpt", tmp_path / "other" / "blob.ckpt"
    c.write_bytes(b"\x00" * 10)
    d.write_bytes(b"\x01" * 10)
    assert one(c, d).kind == "bytes"


# -- regressions: what torch.save(model.state_dict()) writes, and names that must not merge


def _state_dict(fake: types.SimpleNamespace, weight: Array) -> tuple[Any, dict[str, bytes]]:
    """A state_dict as torch writes it: an OrderedDict carrying ``_metadata`` (BUILD)."""
    storage = _Storage(fake.FloatStorage, "0", weight.size)
    saved = OrderedDict([("conv1.weight", _Tensor(storage, 0, weight.shape, (1,)))])
    saved._metadata = OrderedDict([("", {"version": 1}), ("conv1", {"version": 1})])  # type: ignore[attr-defined]
    return saved, {"0": weight.astype("<f4").tobytes()}


def test_changed_state_dict_with_metadata_is_compared(
    tmp_path: Path, fake_torch: types.SimpleNamespace
) -> None:
    weight = np.linspace(-1, 1, 6, dtype=np.float32)
    changed = weight.copy()
    changed.view(np.uint32)[2] += 1
    a = write_pt(tmp_path / "a.pt", *_state_dict(fake_torch, weight), fake_torch)
    b = write_pt(tmp_path / "b.pt", *_state_dict(fake_torch, changed), fake_torch)
    artifact = one(a, b, policy="ulp:1")
    assert artifact.error is None
    assert [(t.name, t.status, t.max_ulp) for t in artifact.tensors] == [
        ("conv1.weight", "within", 1)
    ]
    assert artifact.status == "within"
    assert one(a, b).status == "differs"


def test_nested_and_dotted_keys_stay_distinct(
    tmp_path: Path, fake_torch: types.SimpleNamespace
) -> None:
    storage = _Storage(fake_torch.FloatStorage, "0", 2)
    other = _Storage(fake_torch.FloatStorage, "1", 2)
    obj = {"a.b": _Tensor(storage, 0, (2,), (1,)), "a": {"b": _Tensor(other, 0, (2,), (1,))}}
    storages = {"0": np.zeros(2, "<f4").tobytes(), "1": np.ones(2, "<f4").tobytes()}
    path = write_pt(tmp_path / "both.pt", obj, storages, fake_torch)
    assert sorted(pt_container(path).tensors) == ["a.b", "a/b"]
    # The same tensor under a dotted key in A and nested in B is two changes, not a match.
    dotted = write_pt(tmp_path / "dotted.pt", {"a.b": obj["a.b"]}, storages, fake_torch)
    nested = write_pt(tmp_path / "nested.pt", {"a": {"b": obj["a.b"]}}, storages, fake_torch)
    artifact = one(dotted, nested)
    assert [(t.name, t.status) for t in artifact.tensors] == [("a.b", "removed"), ("a/b", "added")]


def test_key_types_are_kept(tmp_path: Path, fake_torch: types.SimpleNamespace) -> None:
    storage = _Storage(fake_torch.FloatStorage, "0", 2)
    storages = {"0": np.zeros(2, "<f4").tobytes()}
    tensor = _Tensor(storage, 0, (2,), (1,))
    by_int = write_pt(tmp_path / "int.pt", {1: tensor}, storages, fake_torch)
    by_str = write_pt(tmp_path / "str.pt", {"1": tensor}, storages, fake_torch)
    assert list(pt_container(by_int).tensors) == ["{1}"]
    assert list(pt_container(by_str).tensors) == ["1"]
    assert one(by_int, by_str).status == "differs"


def test_a_small_pickle_cannot_allocate_gigabytes(tmp_path: Path) -> None:
    class Huge:
        def __reduce__(self) -> Any:
            return (bytearray, (6_000_000_000,))

    a = write_pt(tmp_path / "a.pt", {"x": 1}, {})
    b = write_pt(tmp_path / "b.pt", {"x": Huge()}, {})
    assert b.stat().st_size < 4096
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "bytearray(6000000000)" in artifact.error


def test_an_oversized_pickle_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.compare.torch_pt.MAX_PICKLE", 1000)
    a = write_pt(tmp_path / "a.pt", {"x": 1}, {})
    b = write_pt(tmp_path / "b.pt", {"x": "y" * 5000}, {})
    artifact = one(a, b)
    assert artifact.status == "error"
    assert artifact.error is not None
    assert "more than the 1000" in artifact.error


def test_shared_references_are_walked_once(tmp_path: Path) -> None:
    # 60 levels of lists that share their children: 2**60 paths through a pickle of a
    # few hundred bytes. Each shared object is walked once, and a change at the bottom
    # is still found.
    def nested(leaf: int) -> Any:
        level: Any = [{"leaf": leaf}]
        for _ in range(60):
            level = [level, level]
        return level

    a = write_pt(tmp_path / "a.pt", {"x": nested(1)}, {})
    b = write_pt(tmp_path / "b.pt", {"x": nested(2)}, {})
    assert a.stat().st_size < 4096
    artifact = one(a, b)
    assert artifact.status == "differs"
    assert [entry.where for entry in artifact.entries] == ["x" + "[0]" * 61 + "/leaf"]
    same = write_pt(tmp_path / "c.pt", {"x": nested(1), "pad": 0}, {})
    assert one(a, same).status == "differs"  # "pad" only in C


# -- no false pass: every argument of a rebuild call is part of the value ---------------


def _tensor_with(storage: _Storage, *extra: Any, offset: int = 0) -> _Tensor:
    tensor = _Tensor(storage, offset, (2, 2), (2, 1))
    tensor.args = (*tensor.args[:4], *extra) if extra else tensor.args
    return tensor


_PLAIN: tuple[Any, ...] = (False, OrderedDict())


@pytest.mark.parametrize(
    ("args_a", "args_b"),
    [
        pytest.param(_PLAIN, (*_PLAIN, {"conj": True}), id="conjugate bit"),
        pytest.param(_PLAIN, (*_PLAIN, {"neg": True}), id="negative bit"),
        pytest.param((*_PLAIN, {"neg": True}), (*_PLAIN, {"conj": True}), id="neg vs conj"),
        pytest.param(_PLAIN, (True, OrderedDict()), id="requires_grad"),
        pytest.param(_PLAIN, (*_PLAIN, {"future_flag": 1}), id="unknown metadata"),
    ],
)
def test_a_rebuild_argument_that_changes_the_loaded_tensor_is_never_a_pass(
    tmp_path: Path,
    fake_torch: types.SimpleNamespace,
    args_a: tuple[Any, ...],
    args_b: tuple[Any, ...],
) -> None:
    raw = np.array([1.0, -2.0, 3.0, 4.0], dtype="<f4").tobytes()
    storage = _Storage(fake_torch.FloatStorage, "0", 4)
    a = write_pt(tmp_path / "a.pt", {"z": _tensor_with(storage, *args_a)}, {"0": raw}, fake_torch)
    b = write_pt(tmp_path / "b.pt", {"z": _tensor_with(storage, *args_b)}, {"0": raw}, fake_torch)
    artifact = one(a, b)
    assert artifact.status == "differs", artifact
    assert any(entry.where.startswith("z@") for entry in artifact.entries)
    assert compare_paths(a, b).exit_code == 1


def test_unknown_extra_rebuild_arguments_are_refused(
    tmp_path: Path, fake_torch: types.SimpleNamespace
) -> None:
    raw = np.zeros(4, dtype="<f4").tobytes()
    storage = _Storage(fake_torch.FloatStorage, "0", 4)
    a = write_pt(tmp_path / "a.pt", {"z": _tensor_with(storage, *_PLAIN)}, {"0": raw}, fake_torch)
    odd = _tensor_with(storage, *_PLAIN, None, "an argument from a future torch")
    b = write_pt(tmp_path / "b.pt", {"z": odd}, {"0": raw}, fake_torch)
    artifact = one(a, b)
    assert artifact.status == "error"
    assert "unknown arguments" in (artifact.error or "")


@pytest.mark.parametrize("with_tensor", [True, False])
def test_a_tuple_is_not_a_list(
    tmp_path: Path, fake_torch: types.SimpleNamespace, with_tensor: bool
) -> None:
    raw = np.zeros(4, dtype="<f4").tobytes()
    storage = _Storage(fake_torch.FloatStorage, "0", 4)
    item: Any = _tensor_with(storage, *_PLAIN) if with_tensor else 1
    a = write_pt(tmp_path / "a.pt", {"x": [item, 2]}, {"0": raw}, fake_torch)
    b = write_pt(tmp_path / "b.pt", {"x": (item, 2)}, {"0": raw}, fake_torch)
    assert one(a, b).status == "differs"


@pytest.mark.parametrize(
    "mutation",
    ["value", "offset", "size", "stride", "storage type", "key", "nested key", "epoch type"],
)
def test_changing_one_field_of_a_saved_object_is_never_a_pass(
    tmp_path: Path, fake_torch: types.SimpleNamespace, mutation: str
) -> None:
    """A property of the reader: start from one checkpoint, change one thing a loader
    would return differently, and the verdict must not be a pass."""
    values = np.arange(8, dtype="<f4")

    def build(change: str | None) -> tuple[dict[str, Any], dict[str, bytes]]:
        kind = fake_torch.DoubleStorage if change == "storage type" else fake_torch.FloatStorage
        raw = values.astype("<f8" if change == "storage type" else "<f4")
        if change == "value":
            raw = raw.copy()
            raw[3] = np.nextafter(raw[3], np.inf)
        storage = _Storage(kind, "0", 8)
        tensor = _Tensor(
            storage,
            1 if change == "offset" else 0,
            (2, 3) if change == "size" else (2, 2),
            (1, 2) if change == "stride" else (2, 1),
        )
        key = "W" if change == "key" else "w"
        inner = {"deeper": {"k2" if change == "nested key" else "k": 1}}
        epoch: Any = 2.0 if change == "epoch type" else 2
        return {key: tensor, "inner": inner, "epoch": epoch}, {"0": raw.tobytes()}

    a = write_pt(tmp_path / "a.pt", *build(None), fake_torch)
    b = write_pt(tmp_path / "b.pt", *build(mutation), fake_torch)
    assert compare_paths(a, b).exit_code != 0


# -- the legacy format, by value -------------------------------------------------------------


def write_legacy(
    path: Path, obj: Any, storages: dict[str, bytes], fake: types.SimpleNamespace
) -> Path:
    """A file laid out as torch.save(..., _use_new_zipfile_serialization=False) writes it."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, value: Any) -> Any:
            if isinstance(value, _Storage):
                return ("storage", value.kind, value.key, "cpu", value.numel, None)
            return None

        def reducer_override(self, value: Any) -> Any:
            if isinstance(value, _Tensor):
                return (fake.rebuild, value.args)
            return NotImplemented

    with path.open("wb") as handle:
        pickle.dump(LEGACY_MAGIC, handle, protocol=2)
        pickle.dump(1001, handle, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True}, handle, protocol=2)
        Pickler(handle, protocol=2).dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, handle, protocol=2)
        for key in keys:
            handle.write((len(storages[key]) // 4).to_bytes(8, "little"))
            handle.write(storages[key])
    return path


def test_legacy_checkpoints_are_compared_by_value(
    tmp_path: Path, fake_torch: types.SimpleNamespace
) -> None:
    values = np.arange(6, dtype="<f4")

    def save(path: Path, key: str, data: Array) -> Path:
        storage = _Storage(fake_torch.FloatStorage, key, 6)
        tensor = _Tensor(storage, 0, (2, 3), (3, 1))
        return write_legacy(path, {"w": tensor, "step": 3}, {key: data.tobytes()}, fake_torch)

    a = save(tmp_path / "a.pt", "94251234", values)
    same = save(tmp_path / "same.pt", "140000999", values)  # another process, another key
    assert a.read_bytes() != same.read_bytes()
    assert one(a, same).status == "equal"
    moved = values.copy()
    moved[4] = np.nextafter(moved[4], np.float32(np.inf))
    artifact = one(a, save(tmp_path / "b.pt", "94251234", moved))
    assert artifact.status == "differs"
    assert artifact.tensors[0].first_differences == [(1, 1)]
