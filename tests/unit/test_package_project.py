"""`harness package` in any project: the project's own wheel, twice, against hashed build
constraints; a project on a Python this machine lacks still gets its wheel built."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.errors import BuildError
from harness.images import lock, package

PYPROJECT = """\
[project]
name = "bikes"
version = "4.0.0"
requires-python = ">=3.14"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def test_a_project_without_a_build_system_is_told_how_to_get_one(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    with pytest.raises(BuildError, match=r"no \[build-system\]") as raised:
        package.check_project_wheel(load_config(tmp_path, environ={}))
    assert "hatchling" in raised.value.hint


def test_the_project_s_wheel_is_built_twice_against_resolved_hashed_constraints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    config = load_config(tmp_path, environ={})
    resolved: list[tuple[str, ...]] = []
    builds: list[list[str]] = []

    def compile_to(
        _config: object, lock_input: lock.LockInput, target: Path, *_: Any, **__: Any
    ) -> None:
        resolved.append(lock_input.requirements)
        target.write_text("hatchling==1.27.0 --hash=sha256:" + "a" * 64 + "\n")

    def uv_build(
        root: Path, constraints: Path, out_dir: Path, epoch: int, python: list[str]
    ) -> Path:
        assert constraints.read_text().startswith("hatchling==1.27.0")
        builds.append(python)
        wheel = out_dir / "bikes-4.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            info = zipfile.ZipInfo("bikes/__init__.py", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, "")
        return wheel

    monkeypatch.setattr(lock, "compile_to", compile_to)
    monkeypatch.setattr(lock, "missing_interpreter", lambda _config: "no Python 3.14 here")
    monkeypatch.setattr(package, "_uv_build", uv_build)
    result = package.check_project_wheel(config, tmp_path / "dist")
    assert resolved == [("hatchling",)]
    assert result.identical and result.wheel == "bikes-4.0.0-py3-none-any.whl"
    assert (tmp_path / "dist" / result.wheel).is_file()
    # The project's Python is not on this machine: this one runs the build backend.
    assert builds == [["--python", sys.executable]] * 2
