"""HDF5 external links and virtual datasets: compared by the values they lead to when the
files they name lie inside the compared folder, refused on one line otherwise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.compare import compare_paths, h5links
from harness.compare.h5links import MAX_DEPTH
from harness.compare.model import ArtifactResult

VALUES = np.arange(6.0)


def write(path: Path, build: Callable[[h5py.File], object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        build(handle)
    return path


def data(path: Path, x: np.ndarray = VALUES, y: np.ndarray = VALUES + 1) -> Path:
    def build(handle: h5py.File) -> None:
        group = handle.create_group("g")
        group["x"] = x
        group["x"].attrs["unit"] = "m"
        handle["y"] = y

    return write(path, build)


def plain(handle: h5py.File, x: np.ndarray = VALUES) -> None:
    """The layout a link to data.h5:/g gives, written into the file itself."""
    group = handle.create_group("e")
    group["x"] = x
    group["x"].attrs["unit"] = "m"


def external(filename: str, path: str = "/g") -> Callable[[h5py.File], object]:
    return lambda handle: handle.__setitem__("e", h5py.ExternalLink(filename, path))


def model(results: list[ArtifactResult]) -> ArtifactResult:
    (found,) = [result for result in results if result.path.endswith("model.h5")]
    return found


def compare(tmp_path: Path) -> list[ArtifactResult]:
    return compare_paths(tmp_path / "a", tmp_path / "b").artifacts


def test_an_external_link_inside_the_folder_is_compared_by_its_target(tmp_path: Path) -> None:
    data(tmp_path / "a" / "data.h5")
    data(tmp_path / "b" / "data.h5")
    write(tmp_path / "a" / "model.h5", external("data.h5"))
    write(tmp_path / "b" / "model.h5", plain)
    # What h5py returns for a/model.h5 ["e/x"] (its unit too) is b/model.h5's.
    assert model(compare(tmp_path)).status == "equal"

    # The same link, to the other dataset of an identical file: what it returns differs.
    write(tmp_path / "b" / "model.h5", external("data.h5", "/y"))
    found = model(compare(tmp_path))
    assert found.status == "differs"
    assert found.error is None


def test_a_change_in_the_linked_file_is_a_difference(tmp_path: Path) -> None:
    data(tmp_path / "a" / "sub" / "data.h5")
    changed = VALUES.copy()
    changed[3] = np.nextafter(changed[3], 9.0)
    data(tmp_path / "b" / "sub" / "data.h5", x=changed)
    for side in "ab":
        write(tmp_path / side / "m" / "model.h5", external("../sub/data.h5"))
    found = model(compare(tmp_path))
    assert found.status == "differs"
    assert [t.name for t in found.tensors if t.status == "differs"] == ["e/x"]


def test_a_link_to_a_dataset_and_an_absolute_name_inside_the_folder(tmp_path: Path) -> None:
    for side in "ab":
        data(tmp_path / side / "data.h5")
    write(tmp_path / "a" / "model.h5", external(str(tmp_path / "a" / "data.h5"), "/g/x"))
    write(tmp_path / "b" / "model.h5", lambda h: h.__setitem__("e", VALUES))
    found = model(compare(tmp_path))
    # Values and the dataset's attribute: b has no unit.
    assert found.status == "differs"
    assert any("unit" in entry.where for entry in found.entries)


@pytest.mark.parametrize(
    "name",
    ["../outside.h5", "sub/../../outside.h5", "OUTSIDE_ABSOLUTE"],
)
def test_a_link_leading_outside_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    data(tmp_path / "outside.h5")
    name = str(tmp_path / "outside.h5") if name == "OUTSIDE_ABSOLUTE" else name
    for side in "ab":
        write(tmp_path / side / "model.h5", external(name))
    found = model(compare(tmp_path))
    assert found.status == "error"
    assert "outside the compared folder" in (found.error or "")
    assert "\n" not in (found.error or "")


def test_a_link_through_a_folder_link_is_refused(tmp_path: Path) -> None:
    data(tmp_path / "elsewhere" / "data.h5")
    for side in "ab":
        (tmp_path / side).mkdir()
        (tmp_path / side / "sub").symlink_to(tmp_path / "elsewhere")
        write(tmp_path / side / "model.h5", external("sub/data.h5"))
    results = compare_paths(tmp_path / "a", tmp_path / "b").artifacts
    found = model(results)
    assert found.status == "error"
    assert "symbolic link" in (found.error or "")


def test_two_named_files_may_link_inside_their_own_folders(tmp_path: Path) -> None:
    data(tmp_path / "a" / "data.h5")
    changed = VALUES.copy()
    changed[0] = -1
    data(tmp_path / "b" / "data.h5", x=changed)
    a = write(tmp_path / "a" / "model.h5", external("data.h5"))
    b = write(tmp_path / "b" / "model.h5", external("data.h5"))
    (result,) = compare_paths(a, b).artifacts
    assert result.status == "differs"


def test_cycles_deep_chains_and_dangling_links_are_refused(tmp_path: Path) -> None:
    # A link back to the group that holds it.
    for side in "ab":
        write(tmp_path / side / "model.h5", external("model.h5", "/"))
    assert "cycle" in (model(compare(tmp_path)).error or "")

    # A chain longer than the bound: model.h5 -> l0.h5 -> l1.h5 -> ...
    for side in "ab":
        folder = tmp_path / side
        write(folder / "model.h5", external("l0.h5", "/"))
        for level in range(MAX_DEPTH + 2):
            write(folder / f"l{level}.h5", external(f"l{level + 1}.h5", "/"))
    assert "nest more than" in (model(compare(tmp_path)).error or "")

    # A link to a file or an object that does not exist.
    for side in "ab":
        write(tmp_path / side / "model.h5", external("missing.h5"))
    assert model(compare(tmp_path)).status == "error"
    for side in "ab":
        data(tmp_path / side / "data.h5")
        write(tmp_path / side / "model.h5", external("data.h5", "/nothing"))
    assert "does not exist" in (model(compare(tmp_path)).error or "")


def test_exponential_fan_out_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each level links twice to the next: 2**8 copies of the last one, bounded by depth.
    levels = MAX_DEPTH - 1
    for side in "ab":
        folder = tmp_path / side
        for level in range(levels):
            write(
                folder / f"f{level}.h5",
                lambda h, n=level + 1: (
                    h.__setitem__("l", h5py.ExternalLink(f"f{n}.h5", "/")),
                    h.__setitem__("r", h5py.ExternalLink(f"f{n}.h5", "/")),
                ),
            )
        write(folder / f"f{levels}.h5", lambda h: h.__setitem__("v", VALUES))
        (folder / "f0.h5").replace(folder / "model.h5")
    # The same bytes, but they read other files: compared by value, and equal.
    assert model(compare(tmp_path)).status == "identical"
    write(tmp_path / "b" / f"f{levels}.h5", lambda h: h.__setitem__("v", VALUES + 1))
    found = model(compare(tmp_path))
    assert found.status == "differs"
    assert len(found.tensors) == 2**levels  # every path to v, each once
    # The names a file's links reach are bounded, however they multiply.
    monkeypatch.setattr(h5links, "MAX_NAMES", 2**levels)
    assert "reach more than" in (model(compare(tmp_path)).error or "")


def virtual(source: str, dataset: str = "/g/x") -> Callable[[h5py.File], object]:
    def build(handle: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(6,), dtype="f8")
        layout[:] = h5py.VirtualSource(source, dataset, shape=(6,))
        handle.create_virtual_dataset("v", layout, fillvalue=-7.0)

    return build


def test_a_virtual_dataset_inside_the_folder_is_compared_by_its_values(tmp_path: Path) -> None:
    for side in "ab":
        data(tmp_path / side / "src" / "data.h5")
    write(tmp_path / "a" / "model.h5", virtual("src/data.h5"))
    write(tmp_path / "b" / "model.h5", lambda h: h.__setitem__("v", VALUES))
    assert model(compare(tmp_path)).status == "equal"

    # The source changed on one side: the values differ, whatever the virtual file's bytes.
    write(tmp_path / "b" / "model.h5", virtual("src/data.h5"))
    changed = VALUES.copy()
    changed[5] = 99.0
    data(tmp_path / "b" / "src" / "data.h5", x=changed)
    found = model(compare(tmp_path))
    assert found.status == "differs"
    (tensor,) = found.tensors
    assert tensor.differing == 1


def test_a_virtual_dataset_reads_its_sources_only_through_the_checked_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same-named decoys where HDF5 would otherwise look: the current folder and the
    # folder of the descriptor's name.
    for side in "ab":
        data(tmp_path / side / "data.h5")
        write(tmp_path / side / "model.h5", virtual("data.h5"))
    decoys = tmp_path / "cwd"
    decoy = VALUES.copy()
    decoy[0] = 1e9
    data(decoys / "data.h5", x=decoy)
    monkeypatch.chdir(decoys)
    changed = VALUES.copy()
    changed[2] = -2.0
    data(tmp_path / "b" / "data.h5", x=changed)
    found = model(compare(tmp_path))
    (tensor,) = found.tensors
    assert tensor.differing == 1  # element 2 only: never the decoy's element 0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("../outside.h5", "outside the compared folder"),
        ("OUTSIDE_ABSOLUTE", "outside the compared folder"),
        ("INSIDE_ABSOLUTE", "absolute path"),
        ("data_%%.h5", "pattern"),
    ],
)
def test_a_virtual_dataset_with_other_sources_is_refused(
    tmp_path: Path, source: str, message: str
) -> None:
    data(tmp_path / "outside.h5")
    source = str(tmp_path / "outside.h5") if source == "OUTSIDE_ABSOLUTE" else source
    for side in "ab":
        data(tmp_path / side / "data.h5")
        named = str(tmp_path / side / "data.h5") if source == "INSIDE_ABSOLUTE" else source
        write(tmp_path / side / "model.h5", virtual(named))
    found = model(compare(tmp_path))
    assert found.status == "error"
    assert message in (found.error or "")


def test_vds_prefix_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for side in "ab":
        data(tmp_path / side / "data.h5")
        write(tmp_path / side / "model.h5", virtual("data.h5"))
    write(tmp_path / "b" / "model.h5", lambda h: h.__setitem__("v", VALUES))
    monkeypatch.setenv("HDF5_VDS_PREFIX", str(tmp_path / "outside"))
    assert "HDF5_VDS_PREFIX" in (model(compare(tmp_path)).error or "")
