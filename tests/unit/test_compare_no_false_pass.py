"""No false pass: a difference in what a loader returns is never exit 0.

Each reader gets adversarial pairs whose bytes differ in a way the common case never
shows (overflowing numbers, duplicate keys, Latin-1 bytes, HDF5 links); each pair must
end in "differs" (exit 1) or a refusal (exit 2), never in a pass.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from harness.cli.compare import run
from harness.compare import compare_paths
from harness.compare.model import ArtifactResult
from harness.compare.names import shown
from harness.compare.report import to_html, to_markdown


def one(a: Path, b: Path, **options: Any) -> ArtifactResult:
    (artifact,) = compare_paths(a, b, **options).artifacts
    return artifact


def pair(tmp_path: Path, name: str, a: bytes, b: bytes) -> tuple[Path, Path]:
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    (tmp_path / "a" / name).write_bytes(a)
    (tmp_path / "b" / name).write_bytes(b)
    return tmp_path / "a" / name, tmp_path / "b" / name


# -- JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("1e400", "5e400", id="both overflow to infinity"),
        pytest.param("1e400", "Infinity", id="overflow is not infinity"),
        pytest.param("1e-400", "2e-400", id="both underflow to zero"),
        pytest.param("1" * 5000, "1" * 4999 + "2", id="5000-digit integers"),
        pytest.param("0.10000000000000000001", "0.10000000000000000002", id="same double"),
    ],
)
@pytest.mark.parametrize("policy", [None, "ulp:4", "close:rtol=1e-3,atol=1e-9"])
def test_json_numbers_that_float64_loses_are_compared_as_written(
    tmp_path: Path, a: str, b: str, policy: str | None
) -> None:
    path_a, path_b = pair(tmp_path, "m.json", f'{{"x": {a}}}'.encode(), f'{{"x": {b}}}'.encode())
    artifact = one(path_a, path_b, policy=policy)
    if policy is None or "e400" in a + b or len(a) > 100:
        assert artifact.status == "differs", artifact
    else:
        assert artifact.status in ("differs", "within"), artifact  # never "equal"


def test_json_numbers_written_alike_still_pass(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "m.json", b'{"x": 0.1, "y": 1e400}', b'{"y":  1e400, "x": 0.10}')
    assert one(a, b).status == "equal"


def test_json_duplicate_keys_are_refused(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "m.json", b'{"x": 1, "x": 2}', b'{"x": 2, "x": 2}')
    artifact = one(a, b)
    assert artifact.status == "error"
    assert "twice" in (artifact.error or "")


def test_json_nested_deep_is_compared_without_recursion(tmp_path: Path) -> None:
    depth = 900
    a, b = pair(
        tmp_path,
        "m.json",
        ("[" * depth + "1" + "]" * depth).encode(),
        ("[" * depth + "2" + "]" * depth).encode(),
    )
    assert one(a, b).status == "differs"
    deeper = 100_000
    c, d = pair(
        tmp_path,
        "n.json",
        ("[" * deeper + "]" * deeper).encode(),
        ("[" * deeper + " " + "]" * deeper).encode(),
    )
    artifact = one(c, d)
    assert artifact.status == "error"  # one line, exit 2: not a traceback


# -- CSV and text ------------------------------------------------------------------------


def test_latin1_csv_cells_are_never_replaced(tmp_path: Path) -> None:
    a, b = pair(
        tmp_path, "t.csv", "name\ncafé\n".encode("latin-1"), "name\ncafè\n".encode("latin-1")
    )
    artifact = one(a, b)
    assert artifact.status == "differs"
    assert artifact.entries[0].a != artifact.entries[0].b


def test_latin1_text_lines_are_shown_apart(tmp_path: Path) -> None:
    a, b = pair(tmp_path, "t.txt", "café\n".encode("latin-1"), "cafè\n".encode("latin-1"))
    artifact = one(a, b)
    assert artifact.status == "differs"
    assert (artifact.entries[0].a, artifact.entries[0].b) == ("caf\\xe9", "caf\\xe8")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("1" * 5000, "1" * 4999 + "2", id="5000-digit integers"),
        pytest.param("1e400", "7e999", id="overflowing floats"),
        pytest.param("1_000", "1000", id="underscore is not a number"),
        pytest.param("\u0661\u0662", "12", id="Arabic-Indic digits are not numbers"),
        pytest.param("1e-400", "0", id="underflow"),
    ],
)
def test_csv_numbers_are_compared_exactly_as_written(tmp_path: Path, a: str, b: str) -> None:
    path_a, path_b = pair(tmp_path, "t.csv", f"x\n{a}\n".encode(), f"x\n{b}\n".encode())
    assert one(path_a, path_b, metric_tolerance="rtol=1e-3").status == "differs"


# -- npz ---------------------------------------------------------------------------------


def test_npz_object_arrays_with_other_bytes_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, o=np.array(["x", 1], dtype=object), w=np.zeros(3))
    np.savez(b, o=np.array(["y", 1], dtype=object), w=np.zeros(3))
    artifact = one(a, b)
    assert artifact.status == "error"
    assert "never unpickles" in (artifact.error or "")


def test_npz_object_arrays_with_the_same_bytes_compare(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, o=np.array(["x", 1], dtype=object), w=np.zeros(3))
    np.savez_compressed(b, o=np.array(["x", 1], dtype=object), w=np.zeros(3))
    assert one(a, b).status == "equal"


# -- HDF5 --------------------------------------------------------------------------------


def _h5(path: Path, build: Any) -> Path:
    with h5py.File(path, "w") as handle:
        handle["w"] = np.arange(4.0)
        build(handle)
    return path


def test_hdf5_byte_attributes_compare_as_bytes(tmp_path: Path) -> None:
    # Two invalid UTF-8 strings: decoded with replacement they would both read "\ufffd\ufffd".
    def tagged(value: bytes) -> Any:
        return lambda handle: handle["w"].attrs.__setitem__("tag", np.bytes_(value))

    a = _h5(tmp_path / "a.h5", tagged(b"\xff\xfe"))
    b = _h5(tmp_path / "b.h5", tagged(b"\xff\xfd"))
    assert one(a, b).status == "differs"


def test_safetensors_duplicate_tensor_names_are_refused(tmp_path: Path) -> None:
    def save(path: Path, first: list[int]) -> Path:
        entry = '{{"dtype": "F32", "shape": [1], "data_offsets": {}}}'
        header = f'{{"w": {entry.format(first)}, "w": {entry.format([4, 8])}}}'.encode()
        header += b" " * (-len(header) % 8)
        data = np.array([1.0, 2.0], dtype="<f4").tobytes()
        path.write_bytes(len(header).to_bytes(8, "little") + header + data)
        return path

    artifact = one(
        save(tmp_path / "a.safetensors", [0, 4]), save(tmp_path / "b.safetensors", [4, 8])
    )
    assert artifact.status == "error"
    assert "twice" in (artifact.error or "")


def test_hdf5_soft_links_are_compared_by_target(tmp_path: Path) -> None:
    a = _h5(
        tmp_path / "a.h5",
        lambda h: (h.__setitem__("v", np.ones(2)), h.__setitem__("l", h5py.SoftLink("/w"))),
    )
    b = _h5(
        tmp_path / "b.h5",
        lambda h: (h.__setitem__("v", np.ones(2)), h.__setitem__("l", h5py.SoftLink("/v"))),
    )
    assert one(a, b).status == "differs"


def test_hdf5_external_links_and_virtual_datasets_outside_are_refused(tmp_path: Path) -> None:
    # Outside the folders of the compared files (inside, see test_compare_h5links.py).
    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as handle:
        handle["secret"] = np.arange(3.0)
    for side in "abcd":
        (tmp_path / side).mkdir()
    a = _h5(
        tmp_path / "a" / "a.h5",
        lambda h: h.__setitem__("e", h5py.ExternalLink(str(outside), "/secret")),
    )
    b = _h5(
        tmp_path / "b" / "b.h5",
        lambda h: h.__setitem__("e", h5py.ExternalLink(str(outside), "/other")),
    )
    artifact = one(a, b)
    assert artifact.status == "error"
    assert "external link" in (artifact.error or "")

    def virtual(handle: h5py.File) -> None:
        layout = h5py.VirtualLayout(shape=(3,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(outside), "secret", shape=(3,))
        handle.create_virtual_dataset("v", layout)

    c, d = (
        _h5(tmp_path / "c" / "c.h5", virtual),
        _h5(tmp_path / "d" / "d.h5", lambda h: h.attrs.__setitem__("x", 1)),
    )
    artifact = one(c, d)
    assert artifact.status == "error"
    assert "virtual dataset" in (artifact.error or "")


# -- inputs: links, FIFOs, swaps ---------------------------------------------------------


def test_a_folder_link_leaving_the_compared_folder_is_refused(tmp_path: Path) -> None:
    for side in "ab":
        (tmp_path / side).mkdir()
        (tmp_path / side / "data").symlink_to("/etc")
    result = compare_paths(tmp_path / "a", tmp_path / "b")
    assert result.exit_code == 2
    assert "outside the compared folder" in (result.artifacts[0].error or "")


def test_a_folder_link_inside_is_compared_by_its_target(tmp_path: Path) -> None:
    for side, target in (("a", "x"), ("b", "y")):
        (tmp_path / side / "x").mkdir(parents=True)
        (tmp_path / side / "y").mkdir()
        (tmp_path / side / "link").symlink_to(target)
    result = compare_paths(tmp_path / "a", tmp_path / "b")
    assert result.exit_code == 1


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    for side in "ab":
        (tmp_path / side).mkdir()
        os.mkfifo(tmp_path / side / "out.txt")
    result = compare_paths(tmp_path / "a", tmp_path / "b")
    assert result.exit_code == 2
    assert "FIFO" in (result.artifacts[0].error or "")


def test_a_file_swapped_for_a_link_or_fifo_during_the_walk_is_never_read(tmp_path: Path) -> None:
    """Swap the files for a link to a secret and for a FIFO as fast as possible while
    comparing: the secret never shows up and nothing hangs."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    for side in "ab":
        (tmp_path / side).mkdir()
        for index in range(20):
            (tmp_path / side / f"f{index}.txt").write_text(f"{side}\n")
    stop = threading.Event()

    def swap() -> None:
        index = 0
        while not stop.is_set():
            name = tmp_path / "b" / f"f{index % 20}.txt"
            spare = tmp_path / "b" / "spare"
            if index % 2:
                spare.symlink_to(secret)
            else:
                os.mkfifo(spare)
            spare.replace(name)
            index += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for _ in range(30):
            result = compare_paths(tmp_path / "a", tmp_path / "b")
            for artifact in result.artifacts:
                assert "TOP-SECRET" not in json.dumps([e.b for e in artifact.entries], default=str)
                assert "TOP-SECRET" not in "".join(artifact.diff)
                assert not artifact.passed
    finally:
        stop.set()
        swapper.join()


# -- errors and reports ------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["ulp:\u00b2", "ulp:\u0663", "close:rtol=1_0", "ulp:-1"])
def test_bad_policies_are_one_line_and_exit_2(
    tmp_path: Path, policy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pair(tmp_path, "x.txt", b"1", b"1")
    assert run([str(a), str(b), "--policy", policy]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err


HOSTILE_NAMES = [
    "new\nline.txt",
    "esc\x1b[31mred.txt",
    "bidi\u202eexe.txt",
    "pipe|`tick`.txt",
    "back\\slash.txt",
]


def test_reports_hold_for_any_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for side in "ab":
        (tmp_path / side).mkdir()
        for name in HOSTILE_NAMES:
            (tmp_path / side / name).write_text("same\n")
        (tmp_path / side).joinpath(os.fsdecode(b"bad\xffbyte.txt")).write_text(side)
    result = compare_paths(tmp_path / "a", tmp_path / "b")
    markdown = to_markdown(result)
    page = to_html(result)
    for text in (markdown, page):
        assert "\x1b" not in text and "\u202e" not in text
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(HOSTILE_NAMES) + 1  # the header, then one row per file
    for suffix in (".md", ".html"):
        report = tmp_path / f"report{suffix}"
        assert run([str(tmp_path / "a"), str(tmp_path / "b"), "--report", str(report)]) == 1
        report.read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert "\x1b[31m" not in out and "\u202e" not in out


def test_shown_names_are_unambiguous() -> None:
    assert shown("a\nb") != shown("a\\nb")
    assert shown("plain.txt") == "plain.txt"
    assert shown(os.fsdecode(b"x\xff")) == "x\\xff"


def test_json_output_keeps_plain_numbers_numbers(tmp_path: Path) -> None:
    from harness.compare.report import to_json  # noqa: PLC0415 (only this test)

    a, b = pair(tmp_path, "m.json", b'{"x": 0.5, "y": 1e400}', b'{"x": 0.25, "y": 2e400}')
    entries = json.loads(to_json(compare_paths(a, b)))["artifacts"][0]["differences"]
    assert [(entry["a"], entry["b"]) for entry in entries] == [(0.5, 0.25), ("1e400", "2e400")]
