"""Which Dockerfile a variant builds from: the project's own, else harness's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from harness import project_init, vcs
from harness.config import load_config
from harness.engine import ImageInfo
from harness.errors import ConfigError
from harness.images import build, dockerfiles
from harness.vcs import SourceState
from tests.conftest import REPOSITORY
from tests.unit.fake_docker import EngineDouble
from tests.unit.test_build import plan_of

BARE = """\
[project]
name = "bare"
version = "0"

[dependency-groups]
experiments = ["numpy"]
"""


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(BARE)
    return tmp_path


def test_a_project_without_dockerfiles_builds_with_harness_s_own(bare: Path) -> None:
    config = load_config(bare, environ={})
    cpu = dockerfiles.choose(config.variant("cpu"), bare)
    cuda = dockerfiles.choose(config.variant("cuda"), bare)
    assert (cpu.origin, cpu.name, cpu.label) == ("harness", "Dockerfile", "harness:Dockerfile")
    assert cuda.label == "harness:Dockerfile.cuda"
    assert b"USER 10001:10001" in cpu.text
    assert b"CUBLAS_WORKSPACE_CONFIG" in cuda.text
    assert b"CUBLAS_WORKSPACE_CONFIG" not in cpu.text


def test_the_project_s_own_dockerfile_wins(bare: Path) -> None:
    (bare / "Dockerfile.cuda").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    config = load_config(bare, environ={})
    chosen = dockerfiles.choose(config.variant("cuda"), bare)
    assert chosen.label == "project:Dockerfile.cuda"
    assert chosen.text == b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
    assert dockerfiles.choose(config.variant("cpu"), bare).origin == "harness"


def test_a_declared_dockerfile_that_is_missing_never_falls_back(bare: Path) -> None:
    with (bare / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.harness.variants.cpu]\ndockerfile = "docker/Dockerfile.ml"\n')
    config = load_config(bare, environ={})
    with pytest.raises(ConfigError, match=r"Dockerfile\.ml does not exist") as raised:
        dockerfiles.choose(config.variant("cpu"), bare)
    # The fix names harness's own explicitly, and following it works (it never points
    # back at the setting that failed).
    assert 'dockerfile = "harness:Dockerfile"' in raised.value.hint
    (bare / "pyproject.toml").write_text(
        (bare / "pyproject.toml").read_text().replace("docker/Dockerfile.ml", "harness:Dockerfile")
    )
    config = load_config(bare, environ={})
    assert dockerfiles.choose(config.variant("cpu"), bare).label == "harness:Dockerfile"


DEPLOYMENT = b"""\
# https://docs.docker.com/engine/reference/builder/
FROM python:3.14-slim
COPY dist/*.whl .
RUN pip install *.whl
CMD ["bikes", "--help"]
"""


def test_a_deployment_dockerfile_never_silently_becomes_the_experiment_image(
    bare: Path,
) -> None:
    (bare / "Dockerfile").write_bytes(DEPLOYMENT)
    config = load_config(bare, environ={})
    with pytest.raises(ConfigError) as raised:
        dockerfiles.choose(config.variant("cpu"), bare)
    assert "FROM python:3.14-slim" in raised.value.message
    assert "deployment Dockerfile" in raised.value.message
    assert "harness init" in raised.value.hint
    assert 'dockerfile = "harness:Dockerfile"' in raised.value.hint


def test_harness_s_own_dockerfile_can_be_named_beside_a_deployment_one(bare: Path) -> None:
    (bare / "Dockerfile").write_bytes(DEPLOYMENT)
    with (bare / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.harness.variants.cpu]\ndockerfile = "harness:Dockerfile"\n')
    config = load_config(bare, environ={})
    chosen = dockerfiles.choose(config.variant("cpu"), bare)
    assert (chosen.origin, chosen.label) == ("harness", "harness:Dockerfile")
    assert chosen.text == dockerfiles.builtin_text("cpu")
    assert config.as_dict()["variants"]["cpu"]["dockerfile"] == "harness:Dockerfile"


def test_an_unknown_harness_dockerfile_is_refused_with_the_names_there_are(bare: Path) -> None:
    with (bare / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.harness.variants.cpu]\ndockerfile = "harness:Dockerfile.rocm"\n')
    config = load_config(bare, environ={})
    with pytest.raises(ConfigError, match=r"harness:Dockerfile\.rocm") as raised:
        dockerfiles.choose(config.variant("cpu"), bare)
    assert "harness:Dockerfile, harness:Dockerfile.cuda" in raised.value.hint


def test_a_declared_project_dockerfile_is_used_as_written(bare: Path) -> None:
    # Naming a file is a decision: harness builds from it whatever its FROM.
    (bare / "Dockerfile").write_bytes(DEPLOYMENT)
    with (bare / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.harness.variants.cpu]\ndockerfile = "Dockerfile"\n')
    config = load_config(bare, environ={})
    assert dockerfiles.choose(config.variant("cpu"), bare).label == "project:Dockerfile"


def test_what_counts_as_written_for_harness() -> None:
    assert dockerfiles.meant_for_harness(b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    assert dockerfiles.meant_for_harness(b"ARG FRAMEWORKS_IMAGE=x\nFROM ${FRAMEWORKS_IMAGE}\n")
    assert not dockerfiles.meant_for_harness(DEPLOYMENT)
    assert not dockerfiles.meant_for_harness(b"# ARG BASE_IMAGE\nFROM debian\n")
    assert dockerfiles.first_from(b"FROM --platform=linux/amd64 python:3.14 AS x\n") == (
        "python:3.14"
    )


def test_a_variant_of_another_name_takes_its_device_s_dockerfile(bare: Path) -> None:
    with (bare / "pyproject.toml").open("a") as handle:
        handle.write(
            '\n[tool.harness.variants.gpu-small]\ndevice = "cuda"\n'
            'constraints = "constraints-gpu.txt"\n'
        )
    config = load_config(bare, environ={})
    variant = config.variant("gpu-small")
    assert (variant.device, variant.find_links) == ("cuda", False)
    assert dockerfiles.choose(variant, bare).label == "harness:Dockerfile.cuda"


def test_an_unknown_device_is_refused(bare: Path) -> None:
    with (bare / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.harness.variants.tpu]\ndevice = "tpu"\nconstraints = "c.txt"\n')
    with pytest.raises(ConfigError, match='device: expected one of cpu, cuda, got "tpu"'):
        load_config(bare, environ={})


def test_the_choice_is_a_label_and_part_of_the_build_input(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (bare / "constraints.txt").write_text("")
    monkeypatch.setattr(
        vcs, "source_state", lambda _root: SourceState("c0ffee", False, None, None, 1)
    )

    class Engine(EngineDouble):
        def image(self, reference: str) -> ImageInfo:
            return ImageInfo("sha256:base", (reference,), {}, 0)

    config = load_config(bare, environ={})
    builtin = build.prepare(Engine(), plan_of(config))
    assert builtin.labels[build.LABEL_DOCKERFILE] == "harness:Dockerfile"
    assert builtin.labels[build.LABEL_DOCKERFILE_SHA256] == plan_of(config).dockerfile.sha256

    (bare / "Dockerfile").write_bytes(dockerfiles.builtin_text("cpu"))
    own = build.prepare(Engine(), plan_of(config))
    assert own.labels[build.LABEL_DOCKERFILE] == "project:Dockerfile"
    # The same bytes from another place: another image, since the labels differ.
    assert own.build_input != builtin.build_input


def test_the_package_ships_one_template_for_both_dockerfiles() -> None:
    package = Path(dockerfiles.__file__).parent
    assert sorted(p.name for p in package.iterdir() if p.name.startswith("Dockerfile")) == [
        "Dockerfile.frameworks",
        "Dockerfile.frameworks-layer",
        "Dockerfile.in",
    ]


def test_harness_s_dockerfiles_build_on_the_frameworks_image_and_older_ones_do_not() -> None:
    assert dockerfiles.builds_on_frameworks(dockerfiles.builtin_text("cpu"))
    assert dockerfiles.builds_on_frameworks(dockerfiles.builtin_text("cuda"))
    assert dockerfiles.builds_on_frameworks(b"FROM x\n  arg frameworks_image\n")
    assert not dockerfiles.builds_on_frameworks(b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    # Named in a comment or as part of another argument's name, it is not declared.
    assert not dockerfiles.builds_on_frameworks(b"# ARG FRAMEWORKS_IMAGE\nFROM x\n")
    assert not dockerfiles.builds_on_frameworks(b"ARG FRAMEWORKS_IMAGE_OLD\nFROM x\n")


# The rendered Dockerfiles are part of every image's identity (build input and label):
# a change to them changes every image ID harness builds, so it must be deliberate.
RENDERED_SHA256 = {
    "cpu": "67150d50d0960d115ddb3fd8b06e1e8cd771f50c93f154b354408baef78c96b9",
    "cuda": "ace68a7df875bf8fda467c183c72bbcc1173650651c0ff9ad7317c6cbcf97f6d",
}
FRAMEWORKS_SHA256 = "c4be6b75bbfecaafcbc0666152fa52741359efa09ae1fee93e53716f588e2984"


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_rendered_dockerfiles_are_the_ones_images_were_built_from(device: str) -> None:
    text = dockerfiles.builtin_text(device)
    assert hashlib.sha256(text).hexdigest() == RENDERED_SHA256[device]
    assert b"@HEADER@" not in text
    assert b"@DEVICE_ENV@" not in text


def test_the_frameworks_dockerfile_is_the_one_frameworks_images_were_built_from() -> None:
    assert hashlib.sha256(dockerfiles.frameworks_text()).hexdigest() == FRAMEWORKS_SHA256


def test_the_cuda_dockerfile_differs_only_in_its_comment_and_environment() -> None:
    cpu = dockerfiles.builtin_text("cpu").decode().splitlines()
    cuda = dockerfiles.builtin_text("cuda").decode().splitlines()
    added = [line for line in cuda if line not in cpu]
    assert all(line.startswith(("#", "ENV NVIDIA", "    NVIDIA", "    CUBLAS")) for line in added)
    assert "    CUBLAS_WORKSPACE_CONFIG=:4096:8" in added
    assert [line for line in cpu if not line.startswith("#")] == [
        line for line in cuda if not line.startswith("#") and line not in added
    ]


def test_this_repository_s_dockerfiles_are_the_ones_init_writes(tmp_path: Path) -> None:
    """harness's own project keeps the layout it asks of others: the top-level Dockerfiles
    are what `harness init --dockerfiles` writes, byte for byte, and its variants build
    with them. (After a change to the template: copy the rendered files over them.)"""
    project_init.init_project(tmp_path, project_init.InitRequest(dockerfiles=True))
    for name in ("Dockerfile", "Dockerfile.cuda"):
        assert (REPOSITORY / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert (REPOSITORY / "Dockerfile").read_bytes() == dockerfiles.builtin_text("cpu")
    config = load_config(REPOSITORY, environ={})
    for variant in ("cpu", "cuda"):
        chosen = dockerfiles.choose(config.variant(variant), REPOSITORY)
        assert chosen.label == f"project:{dockerfiles.BUILTIN[variant]}"
        assert dockerfiles.builds_on_frameworks(chosen.text)
