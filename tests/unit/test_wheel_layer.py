"""The deploy image's layer, written by harness from the project's wheel."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pytest

from harness.errors import BuildError
from harness.images import wheel_layer

SITE = PurePosixPath("/opt/harness/venv/lib/python3.13/site-packages")
BIN = PurePosixPath("/opt/harness/venv/bin")


def make_wheel(
    folder: Path,
    *,
    code: str = "def main():\n    return 0\n",
    extra: dict[str, bytes] | None = None,
    requires: tuple[str, ...] = ("numpy>=2.0",),
) -> Path:
    """A wheel as a build backend writes it: code, a data script, an entry point."""
    path = folder / "bikes-1.0-py3-none-any.whl"
    metadata = "Metadata-Version: 2.1\nName: bikes\nVersion: 1.0\n" + "".join(
        f"Requires-Dist: {line}\n" for line in requires
    )
    members = {
        "bikes/__init__.py": b"",
        "bikes/cli.py": code.encode(),
        "bikes/data/table.csv": b"a,b\n1,2\n",
        "solo.py": b"X = 1\n",
        "bikes-1.0.data/scripts/bikes-tool": b"#!python\nprint('hi')\n",
        "bikes-1.0.dist-info/METADATA": metadata.encode(),
        "bikes-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n",
        "bikes-1.0.dist-info/entry_points.txt": b"[console_scripts]\nbikes = bikes.cli:main\n",
        "bikes-1.0.dist-info/RECORD": b"ignored\n",
        **(extra or {}),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(zipfile.ZipInfo(name, (2026, 1, 2, 3, 4, 6)), content)
    return path


def test_the_wheel_installs_where_an_installer_puts_it(tmp_path: Path) -> None:
    files = wheel_layer.installed_files(make_wheel(tmp_path), "3.13")
    assert files[SITE / "bikes/cli.py"][1] == 0o644
    assert SITE / "solo.py" in files
    assert files[BIN / "bikes-tool"] == (b"#!/opt/harness/venv/bin/python\nprint('hi')\n", 0o755)
    launcher, mode = files[BIN / "bikes"]
    assert mode == 0o755
    assert launcher.startswith(b"#!/opt/harness/venv/bin/python\n")
    assert b"from bikes.cli import main" in launcher and b"sys.exit(main())" in launcher
    assert files[SITE / "bikes-1.0.dist-info/INSTALLER"][0] == b"harness\n"
    record = files[SITE / "bikes-1.0.dist-info/RECORD"][0].decode()
    assert "bikes/cli.py,sha256=" in record
    assert "../../../bin/bikes," in record  # scripts relative to site-packages
    assert "ignored" not in record


def test_the_layer_is_the_same_bytes_every_time_and_moves_with_the_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    first, second = io.BytesIO(), io.BytesIO()
    one = wheel_layer.write_layer(wheel_layer.installed_files(wheel, "3.13"), first, epoch=7)
    two = wheel_layer.write_layer(wheel_layer.installed_files(wheel, "3.13"), second, epoch=7)
    assert one == two and first.getvalue() == second.getvalue()
    (tmp_path / "other").mkdir()
    changed = make_wheel(tmp_path / "other", code="def main():\n    return 1\n")
    three = wheel_layer.write_layer(
        wheel_layer.installed_files(changed, "3.13"), io.BytesIO(), epoch=7
    )
    assert three.diff_id != one.diff_id
    first.seek(0)
    with tarfile.open(fileobj=first) as archive:
        members = archive.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "opt/harness/venv/lib" in names  # every parent folder is listed
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(7, 0, 0, "", "")}


@pytest.mark.parametrize("name", ["../escape.py", "/etc/passwd", "bikes/../../x", "a\\b"])
def test_a_member_that_would_land_outside_is_refused(tmp_path: Path, name: str) -> None:
    wheel = make_wheel(tmp_path, extra={name: b"x"})
    with pytest.raises(BuildError, match="outside its folder"):
        wheel_layer.installed_files(wheel, "3.13")


def test_a_link_in_the_wheel_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path)
    with zipfile.ZipFile(wheel, "a") as archive:
        link = zipfile.ZipInfo("bikes/link")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/shadow")
    with pytest.raises(BuildError, match="holds a link"):
        wheel_layer.facts(wheel)


def test_facts_name_the_distribution_its_dependencies_and_top_level_names(
    tmp_path: Path,
) -> None:
    facts = wheel_layer.facts(make_wheel(tmp_path, requires=("numpy>=2.0", "rich; extra=='x'")))
    assert (facts.name, facts.version) == ("bikes", "1.0")
    assert [str(r) for r in facts.requires] == ["numpy>=2.0", 'rich; extra == "x"']
    assert facts.top_level == ("bikes", "solo")


def test_compiled_modules_join_the_layer_and_its_record(tmp_path: Path) -> None:
    asked: list[PurePosixPath] = []

    def compiler(modules: Mapping[PurePosixPath, bytes]) -> dict[PurePosixPath, bytes]:
        asked.extend(sorted(modules))
        return {
            path.parent / "__pycache__" / f"{path.stem}.cpython-313.pyc": b"pyc" for path in modules
        }

    files = wheel_layer.installed_files(make_wheel(tmp_path), "3.13", compiler)
    # Only the modules in site-packages (not the scripts in bin/).
    assert asked == [SITE / "bikes/__init__.py", SITE / "bikes/cli.py", SITE / "solo.py"]
    assert files[SITE / "bikes/__pycache__/cli.cpython-313.pyc"] == (b"pyc", 0o644)
    record = files[SITE / "bikes-1.0.dist-info/RECORD"][0].decode()
    assert "bikes/__pycache__/cli.cpython-313.pyc,sha256=" in record
