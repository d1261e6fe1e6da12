from __future__ import annotations

from pathlib import Path
from typing import NoReturn, cast

import pytest

from harness import doctor
from harness.config import Config, load_config
from harness.engine import ContainerEngine
from harness.errors import ConfigError, LockError
from harness.images import build, dockerfiles, lock, runtime_wheel

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


CUDA_VARIANT = """
[tool.harness.variants.cuda]
constraints = "constraints-cuda.txt"
"""


def cuda_file(project: Path, body: str) -> tuple[Config, Path]:
    """A constraints-cuda.txt whose header is current: only its pins can be wrong."""
    with (project / "pyproject.toml").open("a") as handle:
        handle.write(CUDA_VARIANT)
    config = load_config(project, environ={})
    expected = lock.variant_input(config, config.variant("cuda"))
    path = project / "constraints-cuda.txt"
    path.write_text(expected.header() + body)
    fresh_file(project)
    return config, path


CPU_TORCH_IN_CUDA = "numpy==2.4.6 --hash=sha256:aa\ntorch==2.13.0+cpu --hash=sha256:bb\n"


def test_check_refuses_a_current_cuda_file_that_pins_a_cpu_torch(project: Path) -> None:
    # The case of the issue: the header matched, so the file passed as current.
    config, _ = cuda_file(project, CPU_TORCH_IN_CUDA)
    (problem,) = lock.check(config, uv_lock=False)
    assert "constraints-cuda.txt pins torch==2.13.0+cpu, a CPU-only build" in problem
    assert "(fix: set find-links = false" in problem


def test_doctor_names_the_package_and_the_fix(project: Path) -> None:
    config, _ = cuda_file(project, CPU_TORCH_IN_CUDA)
    check = doctor._lock_check(config)
    assert check.ok is False
    assert "torch==2.13.0+cpu" in check.detail


def test_a_build_refuses_it_before_the_engine_is_asked(project: Path) -> None:
    config, _ = cuda_file(project, CPU_TORCH_IN_CUDA)
    with pytest.raises(LockError, match=r"CPU-only build") as raised:
        lock.require_fresh(config, config.variant("cuda"))
    assert "find-links = false" in raised.value.hint


def test_lock_refuses_to_write_a_resolution_that_does_not_fit_and_keeps_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, path = cuda_file(project, CPU_TORCH_IN_CUDA)
    before = path.read_bytes()

    def resolve(arguments: list[str], _config: object, *, cwd: Path, **_: object) -> None:
        # What uv writes when a +cpu wheel lies in a folder the resolver was offered.
        (cwd / "constraints.txt").write_text("torch==2.13.0+cpu \\\n    --hash=sha256:cc\n")

    monkeypatch.setattr(lock, "_uv", resolve)
    variant = config.variant("cuda")
    with pytest.raises(LockError, match="does not fit its cuda image") as raised:
        lock.compile_to(
            config,
            lock.variant_input(config, variant),
            path,
            [],
            find_links=True,
            variant=variant,
        )
    assert "torch==2.13.0+cpu" in raised.value.message
    assert path.read_bytes() == before


def test_the_cuda_variant_offers_no_wheel_folder_unless_told(project: Path) -> None:
    config = load_config(project, environ={"PIP_FIND_LINKS": "/wheels"})
    assert config.variant("cuda").find_links is False
    assert config.variant("cpu").find_links is True


def test_only_the_variants_a_project_uses_are_locked(project: Path) -> None:
    config = load_config(project, environ={})
    assert [v.name for v in lock.variants_in_use(config)] == ["cpu"]
    with (project / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.harness.experiments.train]\nentry = "t:f"\nvariant = "cuda"\n')
    config = load_config(project, environ={})
    assert [v.name for v in lock.variants_in_use(config)] == ["cpu", "cuda"]


def test_an_existing_constraints_file_keeps_its_variant_checked(project: Path) -> None:
    (project / "constraints-cuda.txt").write_text("")
    config = load_config(project, environ={})
    assert [v.name for v in lock.variants_in_use(config)] == ["cpu", "cuda"]


def test_only_harness_s_own_project_locks_its_wheel_build(project: Path) -> None:
    fresh_file(project)
    config = load_config(project, environ={})
    assert lock.locks_harness_build(config) is False
    # A project of its own has no build-constraints.txt, and needs none.
    assert lock.check(config, uv_lock=False) == []
    repository = load_config(Path(__file__).resolve().parents[2], environ={})
    assert lock.locks_harness_build(repository) is True


def test_pins_or_hashes_edited_after_lock_are_found() -> None:
    body = (
        "numpy==2.1.0 \\\n"
        "    --hash=sha256:" + "a" * 64 + " \\\n"
        "    --hash=sha256:" + "b" * 64 + "\n"
        "    # via -r requirements.in\n"
    )
    written = f"# python: 3.11\n# pins-sha256: {lock.pins_digest(body)}\n" + body
    assert lock.pins_edited(written, "constraints.txt") is None
    # Comments may change (uv's annotations); pins and hashes may not.
    assert lock.pins_edited(written.replace("# via", "# via numpy,"), "constraints.txt") is None
    for edited in (
        written.replace("b" * 64, "c" * 64),
        written.replace("numpy==2.1.0", "numpy==2.1.1"),
    ):
        assert lock.pins_edited(edited, "constraints.txt") == (
            "constraints.txt: its pins or hashes were changed after `harness lock` wrote them"
        )
    # A file written before the digest existed is not judged by it.
    assert lock.pins_edited(body, "constraints.txt") is None


def test_a_file_locked_before_the_pins_digest_is_said_by_every_check(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its pins cannot be told unedited: used (relocking would move pins), never in silence."""
    path = fresh_file(project)  # a header without `# pins-sha256:`, as older locks wrote
    config = load_config(project, environ={})
    assert lock.check(config, uv_lock=False) == []
    told = (
        "constraints.txt was locked before `harness lock` recorded its pins' digest, so a "
        "pin or hash edited by hand in it cannot be told"
    )
    assert lock.unverifiable(config) == [told]
    [check] = doctor._pins_digest_checks(config)
    assert (check.ok, check.required, check.detail) == (False, False, told)
    assert "`harness lock`" in check.fix
    said: list[str] = []

    class Prepared(Exception):
        """Where the build goes on to the engine: far enough to have said it."""

    def prepare(*_: object, **__: object) -> NoReturn:
        raise Prepared

    monkeypatch.setattr(build, "prepare", prepare)
    variant = config.variant("cpu")
    plan = build.BuildPlan(
        config,
        variant,
        [],
        b"",
        runtime_wheel.HarnessSource("checkout", project),
        dockerfiles.choose(variant, project),
    )
    with pytest.raises(Prepared):
        build.build(cast(ContainerEngine, None), plan, say=said.append)
    assert said == [f"warning: {told}: {lock.UNDIGESTED_FIX}"]
    # Once `harness lock` recorded the digest, nothing is said; a file without the lock's
    # header at all is stale, not this.
    body = path.read_text().split("# input-sha256: ")[1].split("\n", 1)[1]
    path.write_text(
        path.read_text().replace(body, f"# pins-sha256: {lock.pins_digest(body)}\n{body}")
    )
    assert lock.unverifiable(config) == [] and doctor._pins_digest_checks(config) == []
    path.write_text(body)
    assert lock.unverifiable(config) == []


def test_a_full_disk_during_lock_names_the_disk_not_the_dependencies() -> None:
    full = "error: Failed to write to cache\n  Caused by: No space left on device (os error 28)"
    assert "a disk is full" in str(lock._os_trouble(full))
    assert "read-only" in str(lock._os_trouble("Read-only file system (os error 30)"))
    assert lock._os_trouble("No solution found when resolving dependencies") is None
