"""Input digests from DVC: real dvc.lock files (written by DVC 3.67.1 and DVC 2.58.2 for the
same small project, reproduced byte for byte below) are verified against the files, and
changed data is refused naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("yaml", reason="the DVC files are YAML: PyYAML is a dependency of harness")

from harness.errors import ConfigError
from harness.integrations import dvc

DVC_YAML = """\
stages:
  prepare:
    cmd: python3 -c 'open("out.txt","w").write("x")'
    deps:
    - data/images
    - data/raw.csv
    - prepare.py
    outs:
    - out.txt
  inner:
    wdir: sub
    cmd: cat in.txt > out2.txt
    deps:
    - in.txt
    outs:
    - out2.txt
"""

# Written by `dvc repro` and `dvc add tracked.txt`, DVC 3.67.1.
DVC3_LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: python3 -c 'open("out.txt","w").write("x")'
    deps:
    - path: data/images
      hash: md5
      md5: 94555333927d9fd0dd6a90979f632488.dir
      size: 16
      nfiles: 3
    - path: data/raw.csv
      hash: md5
      md5: c7bec6a2edc60b03ab6ef7c9df4093ba
      size: 9
    - path: prepare.py
      hash: md5
      md5: dee5c46989f5ec092311188f4fe829c3
      size: 9
    outs:
    - path: out.txt
      hash: md5
      md5: 9dd4e461268c8034f5c8564e155c67a6
      size: 1
  inner:
    cmd: cat in.txt > out2.txt
    deps:
    - path: in.txt
      hash: md5
      md5: 49032ceff16ed3923602867ab9416af0
      size: 10
    outs:
    - path: out2.txt
      hash: md5
      md5: 49032ceff16ed3923602867ab9416af0
      size: 10
"""
DVC3_TRACKED = """\
outs:
- md5: 88a077cbf31a2bfeb0e4ef7fdc172ca7
  size: 8
  hash: md5
  path: tracked.txt
"""
DVC3_FILES = {
    "data/raw.csv": b"a,b\n1,2\r\n",
    "data/images/one.txt": b"hello\n",
    "data/images/sub/two.bin": b"\x00\x01\x02binary",
    "data/images/.hidden": b"h",
    "prepare.py": b"print(1)\n",
    "sub/in.txt": b"sub data\r\n",
    "out.txt": b"x",
    "tracked.txt": b"tracked\n",
    "dvc.yaml": DVC_YAML.encode(),
    "dvc.lock": DVC3_LOCK.encode(),
    "tracked.txt.dvc": DVC3_TRACKED.encode(),
}

# The same project under DVC 2.58.2, whose md5 reads a text file's CRLF as LF.
DVC2_LOCK = """\
schema: '2.0'
stages:
  inner:
    cmd: cat in.txt > out2.txt
    deps:
    - path: in.txt
      md5: d4258b2b4c318cbf240a86cd18c1a4ef
      size: 10
    outs:
    - path: out2.txt
      md5: d4258b2b4c318cbf240a86cd18c1a4ef
      size: 10
  prepare:
    cmd: python3 -c 'open("out.txt","w").write("x")'
    deps:
    - path: data/images
      md5: 2e67d442ec31ccc625df32e639693fe3.dir
      size: 19
      nfiles: 3
    - path: data/raw.csv
      md5: e5ebd4c02cefbe7955977c67ada242b7
      size: 9
    - path: prepare.py
      md5: dee5c46989f5ec092311188f4fe829c3
      size: 9
    outs:
    - path: out.txt
      md5: 9dd4e461268c8034f5c8564e155c67a6
      size: 1
"""
DVC2_TRACKED = """\
outs:
- md5: 88a077cbf31a2bfeb0e4ef7fdc172ca7
  size: 9
  path: tracked.txt
"""
DVC2_FILES = {
    **DVC3_FILES,
    "data/images/one.txt": b"hello\r\n",
    "data/images/sub/two.bin": b"\x00\x01\x02binary\r\n",
    "tracked.txt": b"tracked\r\n",
    "dvc.lock": DVC2_LOCK.encode(),
    "tracked.txt.dvc": DVC2_TRACKED.encode(),
}


def make(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def inputs(root: Path) -> dict[str, Path]:
    return {
        "images": root / "data" / "images",
        "raw": root / "data" / "raw.csv",
        "inner": root / "sub" / "in.txt",
        "tracked": root / "tracked.txt",
        "unknown": root / "data",
    }


@pytest.mark.parametrize(
    ("files", "images", "raw", "inner"),
    [
        (
            DVC3_FILES,
            "94555333927d9fd0dd6a90979f632488.dir",
            "c7bec6a2edc60b03ab6ef7c9df4093ba",
            "49032ceff16ed3923602867ab9416af0",
        ),
        (
            DVC2_FILES,
            "2e67d442ec31ccc625df32e639693fe3.dir",
            "e5ebd4c02cefbe7955977c67ada242b7",
            "d4258b2b4c318cbf240a86cd18c1a4ef",
        ),
    ],
    ids=["dvc3", "dvc2"],
)
def test_inputs_dvc_records_are_verified_with_dvcs_own_digests(
    tmp_path: Path, files: dict[str, bytes], images: str, raw: str, inner: str
) -> None:
    root = make(tmp_path, files)
    assert dvc.uses_dvc(root)
    checked = dvc.check_inputs(root, inputs(root))
    assert set(checked) == {"images", "raw", "inner", "tracked"}  # not "unknown"
    assert checked["images"] == {
        "dvc_md5": images,
        "verified": True,
        "dvc_file": "dvc.lock (stage prepare, deps)",
    }
    assert checked["raw"]["dvc_md5"] == raw
    # sub/in.txt is recorded as in.txt: its stage's wdir is sub.
    assert checked["inner"]["dvc_md5"] == inner
    assert checked["inner"]["dvc_file"] == "dvc.lock (stage inner, deps)"
    assert checked["tracked"] == {
        "dvc_md5": "88a077cbf31a2bfeb0e4ef7fdc172ca7",
        "verified": True,
        "dvc_file": "tracked.txt.dvc",
    }


def test_relative_input_paths_are_taken_from_the_project_root(tmp_path: Path) -> None:
    root = make(tmp_path, DVC3_FILES)
    checked = dvc.check_inputs(root, {"raw": Path("data/raw.csv")})
    assert checked["raw"]["verified"] is True


def test_a_changed_file_is_refused_naming_it(tmp_path: Path) -> None:
    root = make(tmp_path, DVC3_FILES)
    (root / "data" / "raw.csv").write_bytes(b"a,b\n9,2\r\n")  # same size, other bytes
    with pytest.raises(dvc.DvcMismatch, match=r"data/raw.csv no longer matches dvc.lock") as e:
        dvc.check_inputs(root, inputs(root))
    assert "c7bec6a2edc60b03ab6ef7c9df4093ba" in e.value.message
    assert "dvc checkout" in e.value.hint
    (root / "data" / "raw.csv").write_bytes(b"a,b\n")
    with pytest.raises(dvc.DvcMismatch, match=r"recorded 9 bytes, the file has 4"):
        dvc.check_inputs(root, {"raw": root / "data" / "raw.csv"})


def test_a_changed_folder_is_refused_naming_it(tmp_path: Path) -> None:
    root = make(tmp_path, DVC3_FILES)
    (root / "data" / "images" / "three.txt").write_text("new\n")
    with pytest.raises(dvc.DvcMismatch, match=r"data/images no longer matches .*4 files"):
        dvc.check_inputs(root, {"images": root / "data" / "images"})


def test_data_added_with_dvc_add_is_checked_too(tmp_path: Path) -> None:
    root = make(tmp_path, DVC2_FILES)
    (root / "tracked.txt").write_bytes(b"tracked\r\r")
    with pytest.raises(dvc.DvcMismatch, match=r"tracked.txt no longer matches tracked.txt.dvc"):
        dvc.check_inputs(root, {"tracked": root / "tracked.txt"})


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    root = make(tmp_path, DVC3_FILES)
    (root / "prepare.py").unlink()
    with pytest.raises(dvc.DvcMismatch, match=r"prepare\.py is a file in dvc\.lock"):
        dvc.check_inputs(root, {"code": root / "prepare.py"})


def test_without_dvc_nothing_is_checked(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n")
    assert not dvc.uses_dvc(tmp_path)
    assert dvc.check_inputs(tmp_path, {"data": tmp_path / "data.csv"}) == {}


def test_a_broken_lock_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: [\n")
    with pytest.raises(ConfigError, match=r"dvc\.lock is not valid YAML"):
        dvc.check_inputs(tmp_path, {})
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: 3\n")
    with pytest.raises(ConfigError, match=r"dvc\.lock has no stages table"):
        dvc.check_inputs(tmp_path, {})


def test_digests_follow_dvcs_schemes(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_bytes(b"one\r\ntwo\r\n")
    assert dvc.file_md5(text) == hashlib.md5(b"one\r\ntwo\r\n", usedforsecurity=False).hexdigest()
    assert dvc.file_md5(text, legacy=True) == dvc.file_md5(_written(tmp_path, b"one\ntwo\n"))
    binary = _written(tmp_path, b"\x00\r\n")
    assert dvc.file_md5(binary, legacy=True) == dvc.file_md5(binary)
    empty = tmp_path / "empty"
    empty.mkdir()
    # The md5 of "[]": a folder with no files.
    assert dvc.dir_md5(empty) == ("d751713988987e9331980363e24189ce.dir", 0, 0)


def _written(folder: Path, data: bytes) -> Path:
    path = folder / f"{len(list(folder.iterdir()))}.bin"
    path.write_bytes(data)
    return path
