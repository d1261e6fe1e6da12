"""The Python a project asks for chooses the image's Python and the Debian release of its base."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import project_python
from harness.config import load_config
from harness.engine import ImageInfo
from harness.errors import BaseImageError
from harness.images import base
from tests.unit.fake_docker import EngineDouble


class HoldsImages(EngineDouble):
    """An engine that holds the named images and nothing else."""

    def __init__(self, held: dict[str, ImageInfo] | None = None) -> None:
        self.held = held or {}

    def image(self, reference: str) -> ImageInfo | None:
        return self.held.get(reference)


def project(tmp_path: Path, requires: str | None, pinned: str | None = None) -> Path:
    lines = ["[project]", 'name = "bikes"', 'version = "0"']
    if requires is not None:
        lines.append(f'requires-python = "{requires}"')
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    if pinned is not None:
        (tmp_path / ".python-version").write_text(pinned)
    return tmp_path


@pytest.mark.parametrize(
    ("requires", "pinned", "python", "source"),
    [
        (">=3.14", "3.14\n", "3.14", ".python-version"),
        (">=3.14", None, "3.14", "requires-python >=3.14"),
        (">=3.11", None, "3.11", "requires-python >=3.11"),
        (">=3.12", None, "3.13", "requires-python >=3.12"),
        ("==3.12.*", None, "3.12", "requires-python ==3.12.*"),
        (None, "3.13.5\n", "3.13", ".python-version"),
        (None, "cpython-3.14\n", "3.14", ".python-version"),
        # A .python-version that requires-python rules out is not what the project runs on.
        (">=3.14", "3.11\n", "3.14", "requires-python >=3.14"),
    ],
)
def test_what_the_project_asks_for(
    tmp_path: Path, requires: str | None, pinned: str | None, python: str, source: str
) -> None:
    asked = project_python.asked(project(tmp_path, requires, pinned))
    assert asked == project_python.Asked(python, source)


def test_a_project_that_says_nothing_keeps_the_default(tmp_path: Path) -> None:
    assert project_python.asked(project(tmp_path, None, "pypy\n")) is None
    config = load_config(tmp_path, environ={})
    assert (config.python, config.sources["python"]) == ("3.11", "default")
    assert config.debian_suite == "bookworm"


def test_the_project_s_python_chooses_the_image_s_python_and_its_debian(tmp_path: Path) -> None:
    # The template: requires-python >=3.14 and .python-version 3.14, no python setting.
    config = load_config(project(tmp_path, ">=3.14", "3.14\n"), environ={})
    assert (config.python, config.sources["python"]) == ("3.14", "project (.python-version)")
    assert config.debian_suite == "forky"
    assert base.base_reference(config) == "harness-base:forky-python3.14"
    trixie = load_config(tmp_path, {"python": "3.13"}, environ={})
    assert (trixie.python, trixie.debian_suite) == ("3.13", "trixie")


def test_a_configured_python_or_suite_wins(tmp_path: Path) -> None:
    project(tmp_path, ">=3.14", "3.14\n")
    config = load_config(tmp_path, environ={"HARNESS_PYTHON": "3.13"})
    assert (config.python, config.debian_suite) == ("3.13", "trixie")
    config = load_config(tmp_path, environ={"HARNESS_DEBIAN_SUITE": "sid"})
    assert (config.python, config.debian_suite) == ("3.14", "sid")


def test_a_python_no_debian_release_carries_is_refused_in_one_line_before_debootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(project(tmp_path, "==3.12.*"), environ={})
    monkeypatch.setattr(base.shutil, "which", lambda _: pytest.fail("debootstrap was looked for"))
    with pytest.raises(BaseImageError) as raised:
        base.ensure_base(HoldsImages(), config, lambda _: None)
    message = raised.value.message
    assert "no Debian release carries Python 3.12" in message
    assert "3.11 (bookworm), 3.13 (trixie), 3.14 (forky)" in message
    assert "base = 'REF@sha256:...'" in raised.value.hint
    assert "\n" not in message + raised.value.hint


def test_a_suite_set_against_the_python_is_named_with_the_suite_that_has_it(
    tmp_path: Path,
) -> None:
    config = load_config(project(tmp_path, ">=3.14"), environ={"HARNESS_DEBIAN_SUITE": "bookworm"})
    with pytest.raises(BaseImageError, match=r"bookworm carries Python 3\.11, not 3\.14") as raised:
        base.ensure_base(HoldsImages(), config, lambda _: None)
    assert "forky" in raised.value.hint


def test_a_held_base_is_used_without_a_bootstrap(tmp_path: Path) -> None:
    config = load_config(project(tmp_path, ">=3.14"), environ={})
    reference = "harness-base:forky-python3.14"
    engine = HoldsImages({reference: ImageInfo("sha256:" + "f" * 64, (reference,), {}, 1)})
    found = base.ensure_base(engine, config, lambda _: None)
    assert found.reference == "harness-base:forky-python3.14"


def test_debootstrap_gets_the_development_script_for_a_release_it_does_not_know(
    tmp_path: Path,
) -> None:
    (tmp_path / "sid").write_text("")
    (tmp_path / "trixie").write_text("")
    assert base.debootstrap_script("trixie", tmp_path) == []
    assert base.debootstrap_script("forky", tmp_path) == [str(tmp_path / "sid")]
    assert base.debootstrap_script("forky", tmp_path / "nowhere") == []
