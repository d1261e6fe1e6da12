"""`harness init` and `doctor` on a project shaped like a common MLOps template: a src/
layout on Python 3.14 with a deployment Dockerfile of its own."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness import doctor
from harness.config import load_config
from harness.images import dockerfiles
from harness.project_init import HARNESS_COPY, InitRequest, init_project

TEMPLATE = """\
[project]
name = "bikes"
version = "4.0.0"
requires-python = ">=3.14"
dependencies = ["mlflow>=3", "scikit-learn", "pynvml"]
"""
DEPLOYMENT = "# https://docs.docker.com/\nFROM python:3.14-slim\nCOPY dist/*.whl .\n"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(TEMPLATE)
    (tmp_path / ".python-version").write_text("3.14\n")
    (tmp_path / "Dockerfile").write_text(DEPLOYMENT)
    return tmp_path


def harness_table(root: Path) -> dict[str, object]:
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["harness"]
    assert isinstance(table, dict)
    return table


def test_init_names_harness_s_dockerfile_beside_a_deployment_one_and_says_so(
    template: Path,
) -> None:
    changes = init_project(template, InitRequest())
    lines = [change.line() for change in changes]
    said = [line for line in lines if "variants.cpu" in line]
    assert said and "FROM python:3.14-slim" in said[0]
    assert harness_table(template)["variants"] == {"cpu": {"dockerfile": "harness:Dockerfile"}}
    assert (template / "Dockerfile").read_text() == DEPLOYMENT
    config = load_config(template, environ={})
    assert dockerfiles.choose(config.variant("cpu"), template).label == "harness:Dockerfile"
    # Twice changes nothing.
    before = (template / "pyproject.toml").read_text()
    init_project(template, InitRequest())
    assert (template / "pyproject.toml").read_text() == before


def test_init_reports_the_python_the_images_get(template: Path) -> None:
    lines = [change.line() for change in init_project(template, InitRequest())]
    assert any(
        "images get Python 3.14 (from .python-version); a Debian forky base" in line
        for line in lines
    )
    assert load_config(template, environ={}).python == "3.14"


def test_init_with_dockerfiles_copies_beside_the_deployment_dockerfile(template: Path) -> None:
    init_project(template, InitRequest())
    init_project(template, InitRequest(dockerfiles=True))
    assert (template / "Dockerfile").read_text() == DEPLOYMENT
    assert (template / HARNESS_COPY).read_bytes() == dockerfiles.builtin_text("cpu")
    assert harness_table(template)["variants"] == {"cpu": {"dockerfile": HARNESS_COPY}}
    config = load_config(template, environ={})
    assert dockerfiles.choose(config.variant("cpu"), template).label == (f"project:{HARNESS_COPY}")


def test_a_dockerfile_written_for_harness_is_left_to_win(template: Path) -> None:
    (template / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    init_project(template, InitRequest())
    assert "variants" not in harness_table(template)


def test_doctor_notices_a_python_other_than_the_project_s(template: Path) -> None:
    config = load_config(template, {"python": "3.11"}, environ={})
    check = doctor._python_check(config)
    assert check.ok is False
    assert "the project asks for 3.14 (.python-version)" in check.detail
    assert 'set python = "3.14"' in check.fix
    assert doctor._python_check(load_config(template, environ={})).ok


def test_doctor_notices_a_python_no_base_can_have(template: Path) -> None:
    (template / ".python-version").write_text("3.12\n")
    (template / "pyproject.toml").write_text(TEMPLATE.replace(">=3.14", ">=3.12"))
    check = doctor._python_check(load_config(template, environ={}))
    assert check.ok is False
    assert "3.11 (bookworm), 3.13 (trixie), 3.14 (forky)" in check.detail
    assert "base = 'REF@sha256:...'" in check.fix
