"""Frameworks lock as researchers write them: which build each variant takes, asked of the
sources; what the error says when none has one; the variants agreeing on one version."""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.version import Version

from harness import doctor
from harness.cli.main import cli
from harness.config import Config, Variant, load_config
from harness.errors import LockError
from harness.images import framework_builds, lock
from tests.unit.test_wheelcache import Index, index  # noqa: F401 (the index fixture)

PYPI = "https://pypi.org/simple"


def project(root: Path, requirements: Sequence[str], extra: str = "") -> Config:
    listed = ", ".join(f'"{r}"' for r in requirements)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "research"\nversion = "0"\n\n[dependency-groups]\n'
        f'experiments = [{listed}]\n\n[tool.harness]\nimage = "research"\n\n'
        f"[tool.harness.variants.cuda]\n{extra}"
    )
    return load_config(root, environ={"PIP_FIND_LINKS": "/wheels"})


def sources(offered: Mapping[tuple[str, str], Sequence[str]]) -> framework_builds.BuildLister:
    """Builds by (distribution, device): what each variant's sources would list."""

    def builds(name: str, variant: Variant) -> list[framework_builds.Build]:
        where = "/wheels" if variant.find_links else PYPI
        return [
            framework_builds.Build(name, Version(v), where)
            for v in offered.get((name, variant.device), [])
        ]

    return builds


# This machine's situation: a CPU torch 2.13.0 in the wheel folder, PyPI's CUDA builds.
MACHINE = {
    ("torch", "cpu"): ["2.13.0+cpu", "2.13.0", "2.14.0", "2.15.0"],
    ("torch", "cuda"): ["2.13.0", "2.14.0", "2.15.0"],
    ("tensorflow", "cpu"): ["2.20.0", "2.21.0"],
    ("tensorflow", "cuda"): ["2.20.0", "2.21.0", "2.22.0rc0"],
    ("tensorflow-cpu", "cpu"): ["2.20.0", "2.21.0", "2.22.0rc0"],
}


def chosen(config: Config, offered: Mapping[tuple[str, str], Sequence[str]] = MACHINE) -> dict:
    variants = [config.variant("cpu"), config.variant("cuda")]
    declared = lock.declared_requirements(config)
    return {
        c.framework: (dict(c.requirements), c.differs)
        for c in framework_builds.choose(config, declared, variants, sources(offered))
    }


def test_plain_torch_takes_the_cpu_build_and_the_same_version_for_cuda(tmp_path: Path) -> None:
    """The issue's first friction: `torch` as written, both variants, no hand edit."""
    requirements, differs = chosen(project(tmp_path, ["torch", "numpy"]))["torch"]
    assert requirements == {"cpu": "torch==2.13.0+cpu", "cuda": "torch==2.13.0"}
    assert differs == ""


def test_a_version_no_source_has_for_the_cpu_names_the_builds_and_the_line(
    tmp_path: Path,
) -> None:
    with pytest.raises(LockError) as raised:
        chosen(project(tmp_path, ["torch==2.15.0"]))
    message, hint = raised.value.message, raised.value.hint
    assert "no CPU build of torch==2.15.0 for the cpu variant" in message
    assert "the CPU builds they have: 2.13.0+cpu" in message
    assert 'write "torch==2.13.0" in [dependency-groups] experiments' in hint


def test_no_cpu_build_anywhere_says_where_one_comes_from(tmp_path: Path) -> None:
    offered = {("torch", "cpu"): ["2.15.0"], ("torch", "cuda"): ["2.15.0"]}
    with pytest.raises(LockError) as raised:
        chosen(project(tmp_path, ["torch"]), offered)
    assert "they have only 2.15.0" in raised.value.message
    assert "download.pytorch.org/whl/cpu" in raised.value.hint


def test_torchvision_and_torchaudio_take_the_release_of_each_variant_s_torch(
    tmp_path: Path,
) -> None:
    offered = {
        **MACHINE,
        ("torchvision", "cpu"): ["0.28.0+cpu", "0.28.0", "0.29.0", "0.27.1+cpu"],
        ("torchvision", "cuda"): ["0.28.0", "0.29.0"],
        ("torchaudio", "cpu"): ["2.13.0+cpu", "2.13.0", "2.14.0"],
        ("torchaudio", "cuda"): ["2.13.0", "2.14.0"],
    }
    found = chosen(project(tmp_path, ["torch", "torchvision", "torchaudio>=2"]), offered)
    assert found["torchvision"] == (
        {"cpu": "torchvision==0.28.0+cpu", "cuda": "torchvision==0.28.0"},
        "",
    )
    assert found["torchaudio"][0] == {"cpu": "torchaudio==2.13.0+cpu", "cuda": "torchaudio==2.13.0"}


def test_no_cpu_torchvision_for_the_cpu_torch_says_where_one_comes_from(tmp_path: Path) -> None:
    # This machine's sources: a CPU torch in the wheel folder, PyPI's torchvision only.
    offered = {**MACHINE, ("torchvision", "cpu"): ["0.28.0"], ("torchvision", "cuda"): ["0.28.0"]}
    with pytest.raises(LockError) as raised:
        chosen(project(tmp_path, ["torch", "torchvision"]), offered)
    message, hint = raised.value.message, raised.value.hint
    assert "no build of torchvision for the cpu variant's torch 2.13.0+cpu" in message
    assert "the cpu variant needs torchvision 0.28 +cpu" in message
    assert "PyPI's torchvision is built against PyPI's CUDA torch" in message
    assert "torchvision-0.28.*+cpu wheels" in hint
    assert "index-url = https://download.pytorch.org/whl/cpu" in hint


def test_tensorflow_takes_its_cpu_distribution_and_its_cuda_extra(tmp_path: Path) -> None:
    requirements, _ = chosen(project(tmp_path, ["tensorflow>=2.20"]))["tensorflow"]
    # No pre-release unless asked for (tensorflow-cpu 2.22.0rc0 is on offer).
    assert requirements == {"cpu": "tensorflow-cpu==2.21.0", "cuda": "tensorflow[and-cuda]==2.21.0"}
    requirements, _ = chosen(project(tmp_path, ["tensorflow>=2.22.0rc0"]))["tensorflow"]
    assert requirements["cpu"] == "tensorflow-cpu==2.22.0rc0"
    # Beside torch, whose nvidia-* wheels are the CUDA runtime, no second set of them.
    both = chosen(project(tmp_path, ["torch", "tensorflow"]))
    assert both["tensorflow"][0]["cuda"] == "tensorflow==2.21.0"


def test_xgboost_takes_its_cpu_distribution_without_nccl(tmp_path: Path) -> None:
    # PyPI's xgboost for Linux requires NCCL's CUDA wheel: the CPU image takes xgboost-cpu,
    # the same library without it, at the version the CUDA image takes.
    offered = {
        ("xgboost", "cpu"): ["3.3.0", "3.4.1"],
        ("xgboost", "cuda"): ["3.3.0", "3.4.1"],
        ("xgboost-cpu", "cpu"): ["3.3.0", "3.4.1"],
    }
    requirements, differs = chosen(project(tmp_path, ["xgboost>=3"]), offered)["xgboost"]
    assert requirements == {"cpu": "xgboost-cpu==3.4.1", "cuda": "xgboost==3.4.1"}
    assert differs == ""
    # Where no source has xgboost-cpu, the CPU variant takes xgboost (and the device check
    # then names the NCCL wheel it pulls in, with the replacement to write).
    older = {("xgboost", "cpu"): ["3.4.1"], ("xgboost", "cuda"): ["3.4.1"]}
    requirements, _ = chosen(project(tmp_path, ["xgboost"]), older)["xgboost"]
    assert requirements == {"cpu": "xgboost==3.4.1", "cuda": "xgboost==3.4.1"}


def test_a_variant_s_own_replacement_wins(tmp_path: Path) -> None:
    config = project(tmp_path, ["torch"], 'replace = { torch = "torch==2.14.0" }\n')
    requirements, _ = chosen(config)["torch"]
    assert requirements == {"cpu": "torch==2.13.0+cpu"}


def test_variants_that_cannot_agree_say_which_differ_and_why(tmp_path: Path) -> None:
    offered = {("torch", "cpu"): ["2.13.0+cpu"], ("torch", "cuda"): ["2.15.0"]}
    requirements, differs = chosen(project(tmp_path, ["torch"]), offered)["torch"]
    assert requirements == {"cpu": "torch==2.13.0+cpu", "cuda": "torch==2.15.0"}
    assert "torch differs between variants (cpu 2.13.0+cpu, cuda 2.15.0)" in differs
    assert "the cpu variant's sources have no fitting build of 2.15.0" in differs


def test_markers_and_extras_are_kept(tmp_path: Path) -> None:
    config = project(tmp_path, ["torch[opt-einsum]>=2.0; python_version >= '3.10'"])
    requirements, _ = chosen(config)["torch"]
    assert Requirement(requirements["cpu"]) == Requirement(
        'torch[opt-einsum]==2.13.0+cpu; python_version >= "3.10"'
    )


def test_the_real_lister_reads_folders_file_urls_pages_and_the_index(
    tmp_path: Path,
    index: Index,  # noqa: F811
) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"x")
    (folder / "torch-2.12.0+cpu-cp311-cp311-macosx_14_0_arm64.whl").write_bytes(b"x")
    index.add("torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    index.add("torch-2.16.0-cp312-cp312-manylinux_2_28_x86_64.whl")  # not for Python 3.11
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    for entry in (str(folder), folder.as_uri()):
        config = load_config(
            tmp_path, environ={"PIP_FIND_LINKS": entry, "HARNESS_INDEX_URL": index.url}
        )
        found = framework_builds.lister(config)("torch", config.variant("cpu"))
        assert sorted(str(b.version) for b in found) == ["2.13.0+cpu", "2.15.0"]
        # The cuda variant is offered no wheel folder: only the index answers.
        found = framework_builds.lister(config)("torch", config.variant("cuda"))
        assert [str(b.version) for b in found] == ["2.15.0"]


@pytest.mark.parametrize("as_html", [False, True])
def test_the_lister_leaves_out_wheels_whose_python_the_image_lacks(
    tmp_path: Path,
    index: Index,  # noqa: F811
    as_html: bool,
) -> None:
    # A py3 wheel's tags fit every Python 3; only the page says xgboost-cpu 3.4.1 needs 3.12.
    index.html = as_html
    index.add("xgboost_cpu-3.0.5-py3-none-manylinux_2_28_x86_64.whl")
    newest = "xgboost_cpu-3.4.1-py3-none-manylinux_2_28_x86_64.whl"
    index.add(newest)
    index.requires_python[newest] = ">=3.12"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    config = load_config(tmp_path, environ={"HARNESS_INDEX_URL": index.url})
    found = framework_builds.lister(config)("xgboost-cpu", config.variant("cpu"))
    assert [str(b.version) for b in found] == ["3.0.5"]


def test_doctor_does_not_call_variants_of_different_frameworks_fit(tmp_path: Path) -> None:
    config = project(tmp_path, ["torch"])
    for variant, version in (("cpu", "2.13.0+cpu"), ("cuda", "2.15.0")):
        target = config.variant(variant)
        lock_input = lock.variant_input(config, target)
        pins = f"torch=={version} --hash=sha256:aa\n"
        if variant == "cuda":
            pins += "nvidia-cublas==13.0 --hash=sha256:bb\n"
        target.constraints.write_text(lock_input.header() + pins)
    check = doctor._lock_check(config)
    assert check.ok is False
    assert "the variants pin different torch versions (cpu 2.13.0+cpu, cuda 2.15.0)" in (
        check.detail
    )


@pytest.fixture
def fake_uv(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """uv that resolves each requirement to itself and writes uv.lock; records its calls."""
    calls: list[str] = []

    def uv(arguments: list[str], config: Config, *, cwd: Path, **_: object) -> object:
        calls.append(" ".join(arguments[:2]))
        if arguments[0] == "python":  # `uv python find`: this machine has the project's Python
            return types.SimpleNamespace(returncode=0, out="", err="")
        if arguments[0] == "lock":
            (cwd / "uv.lock").write_text("new lock\n")
            return None
        requirements = [
            r if "==" in r else f"{r}==1.0" for r in (cwd / "requirements.in").read_text().split()
        ]
        if any(r.startswith("torch==") and "+cpu" not in r for r in requirements):
            requirements.append("nvidia-cublas==13.0")  # what PyPI's torch pulls in
        (cwd / "constraints.txt").write_text(
            "".join(f"{r} --hash=sha256:aa\n" for r in requirements)
        )
        return None

    monkeypatch.setattr(lock, "_uv", uv)
    yield calls


def test_a_refused_resolution_leaves_uv_lock_and_every_file_as_they_were(
    tmp_path: Path, fake_uv: list[str]
) -> None:
    """The issue: uv.lock was written even when lock refused the resolution."""
    config = project(tmp_path, ["torch"], "find-links = true\n")
    (tmp_path / "uv.lock").write_text("old lock\n")
    # A CUDA variant offered the folder with the CPU torch: the resolution is refused.
    offered = {("torch", "cpu"): ["2.13.0+cpu"], ("torch", "cuda"): ["2.13.0+cpu"]}

    def cpu_everywhere(name: str, variant: Variant) -> list[framework_builds.Build]:
        return [framework_builds.Build(name, Version(v), "/wheels") for v in offered[(name, "cpu")]]

    with pytest.raises(LockError):
        lock.lock(config, [config.variant("cpu"), config.variant("cuda")], builds=cpu_everywhere)
    assert (tmp_path / "uv.lock").read_text() == "old lock\n"
    assert not (tmp_path / "constraints.txt").exists()
    assert not (tmp_path / "constraints-cuda.txt").exists()
    assert "lock" not in fake_uv  # uv.lock is only made once every variant resolved


def test_lock_writes_every_file_together_with_the_builds_in_the_header(
    tmp_path: Path, fake_uv: list[str]
) -> None:
    config = project(tmp_path, ["torch", "numpy"])
    notes: list[str] = []
    written = lock.lock(config, builds=sources(MACHINE), say=notes.append)
    assert [p.name for p in written] == ["uv.lock", "constraints.txt", "constraints-cuda.txt"]
    cpu = (tmp_path / "constraints.txt").read_text()
    assert "# resolved-as: torch -> torch==2.13.0+cpu" in cpu
    assert "\ntorch==2.13.0+cpu --hash" in cpu
    assert "# requirement: torch\n" in cpu  # the declaration, as written
    assert any("cpu takes torch==2.13.0+cpu (from /wheels)" in note for note in notes)
    # Current by the offline check, and a pin the header does not allow is stale.
    assert lock.check(config, uv_lock=False) == []
    assert "\ntorch==2.13.0 --hash" in (tmp_path / "constraints-cuda.txt").read_text()
    edited = cpu.replace("torch==2.13.0+cpu --", "torch==2.12.0 --")
    (tmp_path / "constraints.txt").write_text(edited)
    assert "its pins or hashes were changed after `harness lock` wrote them" in " ".join(
        lock.staleness(
            tmp_path / "constraints.txt", lock.variant_input(config, config.variant("cpu"))
        )
    )
    # Without the pins' digest (a file written before it existed), the header's resolved
    # build still says the pin is not the one locked.
    (tmp_path / "constraints.txt").write_text(
        "".join(line for line in edited.splitlines(True) if not line.startswith("# pins-sha256"))
    )
    assert "pin torch==2.12.0 does not satisfy torch==2.13.0+cpu" in " ".join(
        lock.staleness(
            tmp_path / "constraints.txt", lock.variant_input(config, config.variant("cpu"))
        )
    )


def test_uv_s_whole_explanation_is_shown(tmp_path: Path, index: Index) -> None:  # noqa: F811
    """Real uv against a local index without torch: its "because ..." reason reaches the
    user whole, not only its first line."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "research"\nversion = "0"\n\n[dependency-groups]\n'
        'experiments = ["torch==2.15.0"]\n\n[tool.harness.variants.cpu]\n'
        'replace = { torch = "torch==2.15.0+cpu" }\n'
    )
    result = CliRunner().invoke(
        cli,
        ["--project", str(tmp_path), "lock"],
        env={"HARNESS_INDEX_URL": index.url, "HARNESS_FIND_LINKS": str(tmp_path)},
    )
    assert result.exit_code == 2
    # uv wraps its lines to the terminal's width: the words, whatever the width.
    words = " ".join(result.stderr.split())
    assert "No solution found when resolving dependencies" in words
    assert "we can conclude that your requirements are unsatisfiable" in words
    assert "uv pip compile failed for the cpu variant, so no lock file was written" in words
    assert not (tmp_path / "uv.lock").exists()
