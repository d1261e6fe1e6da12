"""harness's runtime wheel from an installed copy: checked against RECORD, packed again the
same way every time."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from harness.errors import BuildError
from harness.images import runtime_wheel

FILES = {
    "harness/__init__.py": b'"""harness."""\n',
    "harness/runtime/__init__.py": b"",
    "harness/runtime/__main__.py": b"print('runtime')\n",
    "harness/images/dockerfiles/Dockerfile": b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n",
    "harness-9.9.dist-info/METADATA": b"Metadata-Version: 2.4\nName: harness\nVersion: 9.9\n",
    "harness-9.9.dist-info/WHEEL": (
        b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ),
    "harness-9.9.dist-info/entry_points.txt": (
        b"[console_scripts]\nharness = harness.cli.main:main\n"
    ),
    "harness-9.9.dist-info/INSTALLER": b"uv\n",
}


def record_hash(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def install(site: Path) -> metadata.Distribution:
    """A harness installed as an installer leaves it: files, bytecode, script, RECORD."""
    lines = []
    for name, content in FILES.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        lines.append(f"{name},{record_hash(content)},{len(content)}")
    pyc = site / "harness" / "__pycache__" / "__init__.cpython-311.pyc"
    pyc.parent.mkdir()
    pyc.write_bytes(b"\0bytecode")
    lines += [
        "harness/__pycache__/__init__.cpython-311.pyc,,",
        "../../../bin/harness,sha256=abc,10",
        "harness-9.9.dist-info/RECORD,,",
    ]
    (site / "harness-9.9.dist-info" / "RECORD").write_text("\n".join(lines) + "\n")
    return metadata.PathDistribution(site / "harness-9.9.dist-info")


def test_the_repacked_wheel_holds_the_package_and_its_metadata_only(tmp_path: Path) -> None:
    distribution = install(tmp_path / "site")
    wheel = runtime_wheel.repack_installed(tmp_path / "out", distribution)
    assert wheel.name == "harness-9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = archive.read("harness-9.9.dist-info/RECORD").decode()
        infos = archive.infolist()
    assert names == [
        "harness/__init__.py",
        "harness/images/dockerfiles/Dockerfile",
        "harness/runtime/__init__.py",
        "harness/runtime/__main__.py",
        "harness-9.9.dist-info/METADATA",
        "harness-9.9.dist-info/WHEEL",
        "harness-9.9.dist-info/entry_points.txt",
        "harness-9.9.dist-info/RECORD",
    ]
    for name in names[:-1]:
        assert f"{name},{record_hash(FILES[name])},{len(FILES[name])}" in record
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_the_same_files_give_the_same_wheel_bytes(tmp_path: Path) -> None:
    distribution = install(tmp_path / "site")
    first = runtime_wheel.repack_installed(tmp_path / "one", distribution).read_bytes()
    (tmp_path / "site" / "harness" / "__init__.py").touch()  # only the time changes
    second = runtime_wheel.repack_installed(tmp_path / "two", distribution).read_bytes()
    assert first == second


def test_an_installed_file_edited_after_installation_is_refused(tmp_path: Path) -> None:
    distribution = install(tmp_path / "site")
    (tmp_path / "site" / "harness" / "runtime" / "__main__.py").write_text("print('edited')\n")
    with pytest.raises(BuildError, match=r"harness/runtime/__main__.py differs") as raised:
        runtime_wheel.repack_installed(tmp_path / "out", distribution)
    assert "reinstall harness" in raised.value.hint


def test_a_record_without_hashes_is_refused(tmp_path: Path) -> None:
    distribution = install(tmp_path / "site")
    record = tmp_path / "site" / "harness-9.9.dist-info" / "RECORD"
    record.write_text(record.read_text().replace(record_hash(FILES["harness/__init__.py"]), ""))
    with pytest.raises(BuildError, match=r"gives harness/__init__\.py no sha256"):
        runtime_wheel.installed_files(distribution)


def test_the_checkout_harness_runs_from_is_found() -> None:
    source = runtime_wheel.locate()
    # These tests run harness from its checkout.
    assert source.kind == "checkout"
    assert (source.root / "harness" / "images" / "runtime_wheel.py").is_file()
    assert source.digest() == runtime_wheel.source_digest(source.root)
