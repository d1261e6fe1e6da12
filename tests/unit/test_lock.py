from __future__ import annotations

from pathlib import Path

import pytest

from harness import lock
from harness.config import load_config
from harness.errors import ConfigError, LockError

CONSTRAINTS = """\
numpy==2.4.6 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via -r requirements.in
torch==2.13.0+cpu \\
    --hash=sha256:cccc
tzdata==2025.1 ; sys_platform == 'win32' \\
    --hash=sha256:dddd
"""


def test_parse_constraints_reads_pins_hashes_and_markers() -> None:
    pins = lock.parse_constraints(CONSTRAINTS)
    assert [(p.name, p.version) for p in pins] == [
        ("numpy", "2.4.6"),
        ("torch", "2.13.0+cpu"),
        ("tzdata", "2025.1"),
    ]
    assert pins[0].hashes == ("sha256:aaaa", "sha256:bbbb")
    assert "win32" in pins[2].marker


def test_a_pin_without_hash_is_refused_by_name() -> None:
    with pytest.raises(LockError, match="scipy carries no hash"):
        lock.parse_constraints("scipy==1.0\n")


def test_a_range_is_not_a_pin() -> None:
    with pytest.raises(LockError, match="numpy is not pinned with =="):
        lock.parse_constraints("numpy>=2 --hash=sha256:aa\n")


def test_variant_input_applies_replacements(project: Path) -> None:
    config = load_config(project, environ={})
    cpu = lock.variant_input(config, config.variant("cpu"))
    cuda = lock.variant_input(config, config.variant("cuda"))
    assert cpu.requirements == ("numpy>=2.0", "torch==2.13.0+cpu")
    assert cuda.requirements == ("numpy>=2.0", "torch==2.13.0")
    assert cpu.digest != cuda.digest


def test_replacing_an_undeclared_package_is_an_error(project: Path) -> None:
    text = (project / "pyproject.toml").read_text().replace("torch = ", "jax = ")
    (project / "pyproject.toml").write_text(text)
    config = load_config(project, environ={})
    with pytest.raises(ConfigError, match="replaces 'jax'"):
        lock.variant_input(config, config.variant("cpu"))


def test_missing_dependency_group_is_an_error(project: Path) -> None:
    config = load_config(project, {"dependency-group": "nope"}, environ={})
    with pytest.raises(ConfigError, match="no \\[dependency-groups\\] 'nope'"):
        lock.declared_requirements(config)


def test_include_group_is_expanded(project: Path) -> None:
    text = (
        (project / "pyproject.toml")
        .read_text()
        .replace(
            'experiments = ["numpy>=2.0", "torch==2.13.0"]',
            'base = ["numpy>=2.0"]\nexperiments = [{include-group = "base"}, "torch==2.13.0"]',
        )
    )
    (project / "pyproject.toml").write_text(text)
    config = load_config(project, environ={})
    assert [r.name for r in lock.declared_requirements(config)] == ["numpy", "torch"]


def fresh_file(project: Path) -> Path:
    config = load_config(project, environ={})
    expected = lock.variant_input(config, config.variant("cpu"))
    body = "numpy==2.4.6 --hash=sha256:aa\ntorch==2.13.0+cpu --hash=sha256:bb\n"
    path = project / "constraints.txt"
    path.write_text(expected.header() + body)
    return path


def test_a_fresh_file_has_no_staleness(project: Path) -> None:
    path = fresh_file(project)
    config = load_config(project, environ={})
    assert lock.staleness(path, lock.variant_input(config, config.variant("cpu"))) == []


def test_staleness_names_an_added_dependency(project: Path) -> None:
    path = fresh_file(project)
    text = (
        (project / "pyproject.toml")
        .read_text()
        .replace('"torch==2.13.0"]', '"torch==2.13.0", "pandas"]')
    )
    (project / "pyproject.toml").write_text(text)
    config = load_config(project, environ={})
    problems = lock.staleness(path, lock.variant_input(config, config.variant("cpu")))
    assert problems == ["constraints.txt: pandas is declared but not locked"]


def test_staleness_names_a_changed_specifier(project: Path) -> None:
    path = fresh_file(project)
    text = (project / "pyproject.toml").read_text().replace("numpy>=2.0", "numpy<2")
    (project / "pyproject.toml").write_text(text)
    config = load_config(project, environ={})
    (problem,) = lock.staleness(path, lock.variant_input(config, config.variant("cpu")))
    assert "numpy changed from 'numpy>=2.0' to 'numpy<2'" in problem


def test_staleness_of_missing_and_headerless_files(project: Path) -> None:
    config = load_config(project, environ={})
    expected = lock.variant_input(config, config.variant("cpu"))
    assert lock.staleness(project / "constraints.txt", expected) == ["constraints.txt is missing"]
    (project / "constraints.txt").write_text("numpy==2 --hash=sha256:aa\n")
    assert lock.staleness(project / "constraints.txt", expected) == [
        "constraints.txt has no `harness lock` header"
    ]


def test_a_pin_that_no_longer_satisfies_is_stale(project: Path) -> None:
    path = fresh_file(project)
    path.write_text(path.read_text().replace("numpy==2.4.6", "numpy==1.26.4"))
    config = load_config(project, environ={})
    (problem,) = lock.staleness(path, lock.variant_input(config, config.variant("cpu")))
    assert "numpy==1.26.4 does not satisfy numpy>=2.0" in problem


def test_a_tampered_line_without_hash_is_reported(project: Path) -> None:
    path = fresh_file(project)
    path.write_text(
        path.read_text().replace("torch==2.13.0+cpu --hash=sha256:bb", "torch==2.13.0+cpu")
    )
    config = load_config(project, environ={})
    (problem,) = lock.staleness(path, lock.variant_input(config, config.variant("cpu")))
    assert "torch carries no hash" in problem


def test_committed_constraints_hash_every_pin_and_hold_no_machine_paths() -> None:
    repository = Path(__file__).resolve().parents[2]
    for name in ("constraints.txt", "constraints-cuda.txt", "build-constraints.txt"):
        text = (repository / name).read_text()
        pins = lock.parse_constraints(text, name)
        assert pins, name
        assert all(pin.hashes for pin in pins)
        assert "file://" not in text
        assert "--find-links" not in text
        assert "--index-url" not in text
    cpu = {
        p.name: p.version
        for p in lock.parse_constraints((repository / "constraints.txt").read_text())
    }
    cuda = {
        p.name: p.version
        for p in lock.parse_constraints((repository / "constraints-cuda.txt").read_text())
    }
    assert cpu["torch"].endswith("+cpu")
    assert "tensorflow-cpu" in cpu
    assert "+" not in cuda["torch"]
    assert any(name.startswith("nvidia-") for name in cuda)
